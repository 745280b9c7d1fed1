/* The XACK and XDEL of entries a group is done with, sent together in one
 * round trip; the lazy acknowledgements waiting (ipc_lazy_acks.c, entries
 * of the shared stream meant for other groups) ride along with an XACK
 * sent there anyway. The router, the dispatchers (with their next read)
 * and the outbox (behind the replies that answered the requests) use it. */
#include "ipc_ack_batch.h"
#include "ipc_lazy_acks.h"
#include "ipc_stream.h"
#include "ipc_util.h"

#include <stdlib.h>
#include <string.h>

void ripc_ack_batch_init(ripc_ack_batch *b, int lane)
{
    memset(b, 0, sizeof(*b));
    b->lane = lane;
}

void ripc_ack_batch_free(ripc_ack_batch *b)
{
    for (size_t i = 0; i < b->count; i++) free(b->ids[i]);
    free(b->ids);
    ripc_ack_batch_init(b, b->lane);
}

void ripc_ack_batch_add(ripc_ack_batch *b, const char *redis_id)
{
    if (b->count == b->capacity) {
        b->capacity = b->capacity ? b->capacity * 2 : 64;
        b->ids = realloc(b->ids, b->capacity * sizeof(*b->ids));
        if (!b->ids) abort();
    }
    b->ids[b->count++] = ripc_strdup(redis_id);
}

int ripc_ack_batch_append(ripc_stream *s, redisContext *c, ripc_ack_batch *b, int take_lazy, const char *names[2])
{
    size_t lazy_count = 0;
    char **lazy = NULL;
    const char *key = s->lanes[b->lane];
    if (b->lane == RIPC_LANE_SHARED &&
        (take_lazy || b->count || ripc_lazy_acks_count(&s->lazy_acks) >= RIPC_LAZY_ACKS_MAX))
        lazy = ripc_lazy_acks_take(&s->lazy_acks, &lazy_count);
    size_t acks = b->count + lazy_count;
    size_t n = acks + b->count + 6;
    const char **argv = ripc_xmalloc(n * sizeof(*argv));
    size_t *lens = ripc_xmalloc(n * sizeof(*lens));
    int cmds = 0, ok = 1;
    if (acks) {
        size_t at = 0;
        argv[at] = "XACK"; lens[at++] = 4;
        argv[at] = key; lens[at++] = strlen(key);
        argv[at] = s->group; lens[at++] = strlen(s->group);
        for (size_t i = 0; i < b->count; i++) { argv[at] = b->ids[i]; lens[at++] = strlen(b->ids[i]); }
        for (size_t i = 0; i < lazy_count; i++) { argv[at] = lazy[i]; lens[at++] = strlen(lazy[i]); }
        ok = redisAppendCommandArgv(c, (int)at, argv, lens) == REDIS_OK;
        names[cmds++] = "XACK";
    }
    if (b->count && ok) {
        size_t at = 0;
        argv[at] = "XDEL"; lens[at++] = 4;
        argv[at] = key; lens[at++] = strlen(key);
        for (size_t i = 0; i < b->count; i++) { argv[at] = b->ids[i]; lens[at++] = strlen(b->ids[i]); }
        ok = redisAppendCommandArgv(c, (int)at, argv, lens) == REDIS_OK;
        names[cmds++] = "XDEL";
    }
    free(argv);
    free(lens);
    ripc_lazy_acks_free(lazy, lazy_count);
    ripc_ack_batch_free(b);
    return ok ? cmds : -1;
}

int ripc_ack_batch_read(ripc_stream *s, redisContext *c, int commands, const char *const names[2])
{
    for (int i = 0; i < commands; i++) {
        void *reply = NULL;
        if (redisGetReply(c, &reply) != REDIS_OK) return RIPC_CONNECTION;
        /* Refused, the entries stay pending: reclaimed and routed again later. */
        ripc_stream_note_reply(s, names[i], names[i], reply);
        freeReplyObject(reply);
    }
    return RIPC_OK;
}

int ripc_ack_batch_flush(ripc_stream *s, redisContext *c, ripc_ack_batch *b, int take_lazy, ripc_error *err)
{
    const char *names[2];
    int commands = ripc_ack_batch_append(s, c, b, take_lazy, names);
    int rc = commands < 0 ? RIPC_CONNECTION : ripc_ack_batch_read(s, c, commands, names);
    if (rc != RIPC_OK) ripc_error_set(err, RIPC_CONNECTION, "redis connection failed: %s", c->errstr);
    return rc;
}
