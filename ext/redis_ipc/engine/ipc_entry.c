#include "ipc_entry.h"
#include "ipc_util.h"

#include <stdlib.h>
#include <string.h>

const char *const ripc_field_names[RIPC_FIELD_COUNT] = {
    "id", "instance_id", "status", "content", "source_group", "destination_group",
};

void ripc_entry_free(ripc_entry *entry)
{
    if (!entry) return;
    free(entry->redis_id);
    for (int i = 0; i < RIPC_FIELD_COUNT; i++) free(entry->fields[i].ptr);
    free(entry);
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
        if (!e->fields[i].ptr) return "an entry field is missing";
        if (!ripc_utf8_valid(e->fields[i].ptr, e->fields[i].len)) return "an entry field is not valid UTF-8";
    }
    const char *status = e->fields[RIPC_FIELD_STATUS].ptr;
    if (strcmp(status, "pending") && strcmp(status, "fulfilled") && strcmp(status, "rejected"))
        return "the entry's status is not pending, fulfilled or rejected";
    if (!e->fields[RIPC_FIELD_CONTENT].len) return "the entry's content is empty (content is always JSON text)";
    if (!e->fields[RIPC_FIELD_ID].len || !e->fields[RIPC_FIELD_INSTANCE_ID].len ||
        !e->fields[RIPC_FIELD_SOURCE_GROUP].len || !e->fields[RIPC_FIELD_DESTINATION_GROUP].len)
        return "an entry's id, instance_id or group is empty";
    return NULL;
}

ripc_entry *ripc_entry_from_reply(const redisReply *element)
{
    if (!element || element->type != REDIS_REPLY_ARRAY || element->elements < 1) return NULL;
    const redisReply *id = element->element[0];
    if (!id || (id->type != REDIS_REPLY_STRING && id->type != REDIS_REPLY_STATUS)) return NULL;

    ripc_entry *e = ripc_xcalloc(1, sizeof(*e));
    e->redis_id = ripc_memdup(id->str, id->len);

    const redisReply *pairs = element->elements > 1 ? element->element[1] : NULL;
    if (!pairs || pairs->type != REDIS_REPLY_ARRAY) {
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
        if (idx < 0) {
            e->problem = "the entry has a field outside the six of the wire contract";
            continue;
        }
        if (e->fields[idx].ptr) {
            e->problem = "the entry has a field twice";
            continue;
        }
        e->fields[idx].ptr = ripc_memdup(value->str, value->len);
        e->fields[idx].len = value->len;
    }
    if (!e->problem) e->problem = check(e);
    return e;
}

void ripc_entry_xadd_argv(const char *stream, const char *const values[RIPC_FIELD_COUNT],
                          const size_t lens[RIPC_FIELD_COUNT], const char **argv, size_t *argvlen)
{
    argv[0] = "XADD"; argvlen[0] = 4;
    argv[1] = stream; argvlen[1] = strlen(stream);
    argv[2] = "*"; argvlen[2] = 1;
    for (int i = 0; i < RIPC_FIELD_COUNT; i++) {
        argv[3 + 2 * i] = ripc_field_names[i];
        argvlen[3 + 2 * i] = strlen(ripc_field_names[i]);
        argv[4 + 2 * i] = values[i];
        argvlen[4 + 2 * i] = lens[i];
    }
}
