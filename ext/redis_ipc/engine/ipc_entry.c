#include "ipc_entry.h"
#include "ipc_signing.h"
#include "ipc_util.h"

#include <stdlib.h>
#include <string.h>

const char *const ripc_field_names[RIPC_FIELD_COUNT] = {
    "id", "instance_id", "status", "content", "source_group", "destination_group",
};

void ripc_entry_free(ripc_entry *entry)
{
    free(entry); /* its strings live in the same block */
}

static int field_index(const char *name, size_t len)
{
    for (int i = 0; i < RIPC_FIELD_COUNT; i++) {
        if (strlen(ripc_field_names[i]) == len && memcmp(ripc_field_names[i], name, len) == 0) return i;
    }
    return -1;
}

int ripc_entry_field_is(const ripc_entry *e, int field, const char *value)
{
    return e->fields[field].ptr && strcmp(e->fields[field].ptr, value) == 0;
}

static const char *check(ripc_entry *e)
{
    for (int i = 0; i < RIPC_FIELD_COUNT; i++) {
        if (i == RIPC_FIELD_CONTENT && e->unread_bytes) continue; /* left in Redis */
        if (!e->fields[i].ptr) return "an entry field is missing";
        if (!ripc_utf8_valid(e->fields[i].ptr, e->fields[i].len)) return "an entry field is not valid UTF-8";
    }
    const char *status = e->fields[RIPC_FIELD_STATUS].ptr;
    if (strcmp(status, "pending") && strcmp(status, "fulfilled") && strcmp(status, "rejected"))
        return "the entry's status is not pending, fulfilled or rejected";
    if (!e->fields[RIPC_FIELD_CONTENT].len && !e->unread_bytes) return "the entry's content is empty (content is always JSON text)";
    if (!e->fields[RIPC_FIELD_ID].len || !e->fields[RIPC_FIELD_INSTANCE_ID].len ||
        !e->fields[RIPC_FIELD_SOURCE_GROUP].len || !e->fields[RIPC_FIELD_DESTINATION_GROUP].len)
        return "an entry's id, instance_id or group is empty";
    return NULL;
}

/* The [field, value, ...] array of an entry element, or NULL (a deleted entry has none). */
static const redisReply *pairs_of(const redisReply *element)
{
    const redisReply *pairs = element->elements > 1 ? element->element[1] : NULL;
    return pairs && pairs->type == REDIS_REPLY_ARRAY ? pairs : NULL;
}

/* The signing fields' slot in e, when the stream is signed; else NULL (a field outside the six). */
static ripc_bytes *signing_slot(ripc_entry *e, const char *name, size_t len, int signed_stream)
{
    if (!signed_stream) return NULL;
    if (len == strlen(RIPC_SIGNED_AT_FIELD) && memcmp(name, RIPC_SIGNED_AT_FIELD, len) == 0) return &e->signature[RIPC_SIGNED_AT];
    if (len == strlen(RIPC_SIGNATURE_FIELD) && memcmp(name, RIPC_SIGNATURE_FIELD, len) == 0) return &e->signature[RIPC_SIGNATURE];
    return NULL;
}

ripc_entry *ripc_entry_from_reply(const redisReply *element, int signed_stream)
{
    if (!element || element->type != REDIS_REPLY_ARRAY || element->elements < 1) return NULL;
    const redisReply *id = element->element[0];
    if (!id || (id->type != REDIS_REPLY_STRING && id->type != REDIS_REPLY_STATUS)) return NULL;
    const redisReply *pairs = pairs_of(element);

    /* One block: the struct, then the id and each value NUL-terminated. A
     * request crosses four threads between the read and the free, and one
     * malloc instead of eight shows in the throughput. */
    size_t size = sizeof(ripc_entry) + id->len + 1;
    for (size_t i = 0; pairs && i < pairs->elements; i++)
        if (i % 2 == 1 && pairs->element[i]->type == REDIS_REPLY_STRING) size += pairs->element[i]->len + 1;
    ripc_entry *e = ripc_xcalloc(1, size);
    char *at = (char *)(e + 1);
    e->redis_id = at;
    memcpy(at, id->str, id->len);
    at += id->len + 1;

    if (!pairs) {
        /* XREADGROUP on history returns a nil body for entries deleted since. */
        e->problem = "the entry was deleted from the stream";
        return e;
    }
    if (pairs->elements % 2 != 0) {
        e->problem = "the entry has an odd number of field/value items";
        return e;
    }
    for (size_t i = 0; i < pairs->elements; i += 2) {
        const redisReply *name = pairs->element[i], *value = pairs->element[i + 1];
        if (name->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING) {
            e->problem = "an entry field is not a string";
            continue;
        }
        int idx = field_index(name->str, name->len);
        if (idx < 0 && name->len == 11 && memcmp(name->str, "redelivered", 11) == 0) {
            /* A request written again after a failover (ipc_outbox.c). */
            e->redelivered = 1;
            continue;
        }
        ripc_bytes *slot = idx >= 0 ? &e->fields[idx] : signing_slot(e, name->str, name->len, signed_stream);
        if (!slot) {
            e->problem = "the entry has a field outside the six of the wire contract";
            continue;
        }
        if (slot->ptr) {
            e->problem = "the entry has a field twice";
            continue;
        }
        memcpy(at, value->str, value->len);
        slot->ptr = at;
        slot->len = value->len;
        at += value->len + 1;
    }
    /* [id, fields, bytes]: an entry a script measured and left in Redis
     * (ipc_scripts.c); the router refuses or removes it. */
    const redisReply *unread = element->elements > 2 ? element->element[2] : NULL;
    if (unread && unread->type == REDIS_REPLY_INTEGER && unread->integer > 0) e->unread_bytes = (size_t)unread->integer;
    if (!e->problem) e->problem = check(e);
    return e;
}

int ripc_entry_element_for_other_group(const redisReply *element, const char *group)
{
    if (!element || element->type != REDIS_REPLY_ARRAY || element->elements < 1) return 0;
    const redisReply *pairs = pairs_of(element);
    if (!pairs || pairs->elements % 2 != 0) return 0;
    for (size_t i = 0; i < pairs->elements; i += 2) {
        const redisReply *n = pairs->element[i], *v = pairs->element[i + 1];
        if (n->type != REDIS_REPLY_STRING || field_index(n->str, n->len) != RIPC_FIELD_DESTINATION_GROUP) continue;
        if (v->type != REDIS_REPLY_STRING || v->len == 0) return 0;
        return strlen(group) != v->len || memcmp(group, v->str, v->len) != 0;
    }
    return 0;
}

int ripc_entry_xadd_argv(const char *key, int nomkstream, const char *const values[RIPC_FIELD_COUNT],
                         const size_t lens[RIPC_FIELD_COUNT], const char **argv, size_t *argvlen)
{
    int at = 0;
    argv[at] = "XADD"; argvlen[at++] = 4;
    argv[at] = key; argvlen[at++] = strlen(key);
    /* A direct lane exists while its reader does: never created by a write. */
    if (nomkstream) { argv[at] = "NOMKSTREAM"; argvlen[at++] = 10; }
    argv[at] = "*"; argvlen[at++] = 1;
    for (int i = 0; i < RIPC_FIELD_COUNT; i++) {
        argv[at] = ripc_field_names[i];
        argvlen[at++] = strlen(ripc_field_names[i]);
        argv[at] = values[i];
        argvlen[at++] = lens[i];
    }
    return at;
}
