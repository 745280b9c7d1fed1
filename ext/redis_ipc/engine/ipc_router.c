/* What this group does with each entry it reads (WIRE.md "Flow in 1.x"):
 * entries for other groups are acknowledged; requests for us go to the
 * consumers; replies go to the ledger when they are ours, or are handed to
 * the instance of our group that waits for them. */
#include "ipc_stream_internal.h"
#include "ipc_conn.h"
#include "ipc_entry.h"
#include "ipc_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The XACK and XDEL ids one read calls for, sent together at the end. */
typedef struct ripc_batch {
    const char **ack_ids;
    const char **del_ids;
    size_t ack_count, del_count, capacity;
    char **owned;           /* ids copied for the batch */
    size_t owned_count;
} ripc_batch;

static void ripc_batch_init(ripc_batch *b)
{
    memset(b, 0, sizeof(*b));
}

static void ripc_batch_free(ripc_batch *b)
{
    for (size_t i = 0; i < b->owned_count; i++) free(b->owned[i]);
    free(b->owned);
    free(b->ack_ids);
    free(b->del_ids);
    ripc_batch_init(b);
}

static void batch_add(ripc_batch *b, const char *redis_id, int del)
{
    if (b->owned_count == b->capacity) {
        b->capacity = b->capacity ? b->capacity * 2 : 64;
        b->owned = realloc(b->owned, b->capacity * sizeof(*b->owned));
        b->ack_ids = realloc(b->ack_ids, b->capacity * sizeof(*b->ack_ids));
        b->del_ids = realloc(b->del_ids, b->capacity * sizeof(*b->del_ids));
        if (!b->owned || !b->ack_ids || !b->del_ids) abort();
    }
    char *id = ripc_strdup(redis_id);
    b->owned[b->owned_count++] = id;
    b->ack_ids[b->ack_count++] = id;
    if (del) b->del_ids[b->del_count++] = id;
}

static int ripc_batch_flush(ripc_stream *s, redisContext *c, ripc_batch *b, ripc_error *err)
{
    if (!b->ack_count && !b->del_count) return RIPC_OK;
    size_t n = b->ack_count + b->del_count + 6;
    const char **argv = ripc_xmalloc(n * sizeof(*argv));
    size_t *lens = ripc_xmalloc(n * sizeof(*lens));
    int argcs[2], cmds = 0;
    const char **argvs[2];
    const size_t *lensv[2];

    size_t at = 0;
    if (b->ack_count) {
        argvs[cmds] = argv + at; lensv[cmds] = lens + at;
        argv[at] = "XACK"; lens[at++] = 4;
        argv[at] = s->stream; lens[at++] = strlen(s->stream);
        argv[at] = s->group; lens[at++] = strlen(s->group);
        for (size_t i = 0; i < b->ack_count; i++) { argv[at] = b->ack_ids[i]; lens[at++] = strlen(b->ack_ids[i]); }
        argcs[cmds++] = (int)(b->ack_count + 3);
    }
    if (b->del_count) {
        argvs[cmds] = argv + at; lensv[cmds] = lens + at;
        argv[at] = "XDEL"; lens[at++] = 4;
        argv[at] = s->stream; lens[at++] = strlen(s->stream);
        for (size_t i = 0; i < b->del_count; i++) { argv[at] = b->del_ids[i]; lens[at++] = strlen(b->del_ids[i]); }
        argcs[cmds++] = (int)(b->del_count + 2);
    }
    redisReply *replies[2];
    int rc = ripc_conn_pipeline(c, cmds, argcs, argvs, lensv, replies, err) == 0 ? RIPC_OK : RIPC_CONNECTION;
    if (rc == RIPC_OK) for (int i = 0; i < cmds; i++) freeReplyObject(replies[i]);
    free(argv);
    free(lens);
    ripc_batch_free(b);
    return rc;
}

static int claim_to(ripc_stream *s, redisContext *c, const char *consumer, const char *redis_id)
{
    redisReply *claim = redisCommand(c, "XCLAIM %s %s %s 0 %s", s->stream, s->group, consumer, redis_id);
    int ok = claim && claim->type == REDIS_REPLY_ARRAY;
    if (claim) freeReplyObject(claim);
    return ok;
}

/* The consumer to hand instance iid's replies to: one it lists, as 1.x
 * does; or, when the list is gone but iid is an instance of this engine
 * that still beats (another instance took it for dead a moment ago), its
 * inbox, whose name is fixed. NULL: drop the reply, as 1.x does. */
static char *consumer_for(ripc_stream *s, redisContext *c, const char *iid)
{
    char *name = NULL;
    redisReply *list = redisCommand(c, "LRANGE %s:%s:%s:consumers 0 -1", s->stream, s->group, iid);
    if (list && list->type == REDIS_REPLY_ARRAY && list->elements > 0) {
        const redisReply *pick = list->element[(size_t)rand() % list->elements];
        if (pick->type == REDIS_REPLY_STRING) name = ripc_strdup(pick->str);
    } else if (list && list->type == REDIS_REPLY_ARRAY) {
        redisReply *beat = redisCommand(c, "ZSCORE %s:%s:instances %s", s->stream, s->group, iid);
        if (beat && beat->type == REDIS_REPLY_STRING && atof(beat->str) > 0) {
            size_t n = strlen(iid) + 16;
            name = ripc_xmalloc(n);
            snprintf(name, n, "consumer_%s_1", iid);
        }
        if (beat) freeReplyObject(beat);
    }
    if (list) freeReplyObject(list);
    return name;
}

/* A reply for another instance of our group: move it to that instance's
 * consumer and ring it (ipc_waker.c), or drop it when there is none. */
static void hand_over(ripc_stream *s, redisContext *c, ripc_entry *e, ripc_batch *b)
{
    const char *iid = ripc_entry_field(e, RIPC_FIELD_INSTANCE_ID);
    char *consumer = consumer_for(s, c, iid);
    int claimed = consumer && claim_to(s, c, consumer, e->redis_id);
    free(consumer);
    if (claimed) ripc_waker_ring(s, c, iid); /* an instance of this engine sweeps at once */
    else batch_add(b, e->redis_id, 1);
}

/* Returns 0 for a request already handed out (re-read from the inbox or
 * reclaimed while its handler runs), 1 for anything else. */
static int route_one(ripc_stream *s, redisContext *c, ripc_entry *e, ripc_batch *b)
{
    const ripc_bytes *dest = &e->fields[RIPC_FIELD_DESTINATION_GROUP];
    int for_us = dest->ptr && strcmp(dest->ptr, s->group) == 0;
    if (!e->problem && e->fields[RIPC_FIELD_CONTENT].len > s->options.max_content_bytes)
        e->problem = "the entry's content is larger than max_content_bytes";

    if (e->problem) {
        if (strcmp(e->problem, "the entry was deleted from the stream") == 0) {
            batch_add(b, e->redis_id, 0);
            ripc_entry_free(e);
            return 1;
        }
        /* Garbage addressed to us, or to nobody: report it and remove it so
         * it is never read again. Garbage for another group is that group's. */
        if (for_us || !dest->ptr) {
            ripc_stream_emit(s, RIPC_EVENT_MALFORMED_ENTRY, "malformed entry %s on stream %s: %s",
                             e->redis_id, s->stream, e->problem);
            batch_add(b, e->redis_id, 1);
        } else {
            batch_add(b, e->redis_id, 0);
        }
        ripc_entry_free(e);
        return 1;
    }
    if (!for_us) {
        batch_add(b, e->redis_id, 0);
        ripc_entry_free(e);
        return 1;
    }
    if (ripc_entry_field_is(e, RIPC_FIELD_STATUS, "pending")) {
        /* Already handed out (an inbox re-read or a reclaim of our own entry): skip. */
        if (ripc_inflight_add(s, e->redis_id) != 0) {
            ripc_entry_free(e);
            return 0;
        }
        if (ripc_queue_push(&s->requests, (ripc_qnode *)e) != 0) ripc_entry_free(e);
        return 1;
    }
    if (!ripc_entry_field_is(e, RIPC_FIELD_INSTANCE_ID, s->instance_id)) {
        hand_over(s, c, e, b);
        ripc_entry_free(e);
        return 1;
    }
    /* Queued for acknowledgement before the ledger may take the entry. */
    batch_add(b, e->redis_id, 1);
    int delivered = ripc_ledger_deliver(&s->ledger, e);
    if (delivered == RIPC_UNKNOWN)
        ripc_stream_emit(s, RIPC_EVENT_MALFORMED_ENTRY,
                         "reply %s on stream %s answers request %s, which is not waiting (late or unknown)",
                         e->redis_id, s->stream, ripc_entry_field(e, RIPC_FIELD_ID));
    if (delivered != RIPC_DELIVERED) ripc_entry_free(e);
    return 1;
}

size_t ripc_route_and_ack(ripc_stream *s, redisContext *c, const redisReply *entries, ripc_error *err)
{
    size_t taken = 0;
    if (!entries || entries->type != REDIS_REPLY_ARRAY) return 0;
    ripc_batch batch;
    ripc_batch_init(&batch);
    for (size_t i = 0; i < entries->elements; i++) {
        ripc_entry *e = ripc_entry_from_reply(entries->element[i]);
        if (e) taken += (size_t)route_one(s, c, e, &batch);
    }
    ripc_batch_flush(s, c, &batch, err);
    return taken;
}
