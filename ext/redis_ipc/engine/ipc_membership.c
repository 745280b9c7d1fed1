/* Joining and leaving a group (WIRE.md "Groups and instances" and "Keys"). */
#include "ipc_stream_internal.h"
#include "ipc_conn.h"

#include <string.h>

int ripc_membership_join(ripc_stream *s, redisContext *c, ripc_error *err)
{
    size_t ls = strlen(s->stream), lg = strlen(s->group), li = strlen(s->inbox), lk = strlen(s->consumers_key);
    const char *create[] = { "XGROUP", "CREATE", s->stream, s->group, "$", "MKSTREAM" };
    size_t create_len[] = { 6, 6, ls, lg, 1, 8 };
    const char *consumer[] = { "XGROUP", "CREATECONSUMER", s->stream, s->group, s->inbox };
    size_t consumer_len[] = { 6, 14, ls, lg, li };
    /* LREM first so re-joining after Redis lost nothing does not list us twice. */
    const char *lrem[] = { "LREM", s->consumers_key, "0", s->inbox };
    size_t lrem_len[] = { 4, lk, 1, li };
    const char *lpush[] = { "LPUSH", s->consumers_key, s->inbox };
    size_t lpush_len[] = { 5, lk, li };

    int argcs[] = { 6, 5, 4, 3 };
    const char **argvs[] = { create, consumer, lrem, lpush };
    const size_t *lens[] = { create_len, consumer_len, lrem_len, lpush_len };
    redisReply *replies[4];
    if (ripc_conn_pipeline(c, 4, argcs, argvs, lens, replies, err) != 0) return RIPC_CONNECTION;
    int rc = RIPC_OK;
    for (int i = 0; i < 4 && rc == RIPC_OK; i++) {
        if (i == 0 && ripc_reply_error_starts(replies[i], "BUSYGROUP")) continue; /* the group exists */
        if (ripc_reply_is_error(replies[i], err)) rc = RIPC_PROTOCOL;
    }
    for (int i = 0; i < 4; i++) freeReplyObject(replies[i]);
    return rc;
}

/* Stops being listed, and removes this instance's consumers from the group
 * when they hold no pending entries (a consumer deleted with pending
 * entries would orphan them). */
void ripc_membership_leave(ripc_stream *s, redisContext *c)
{
    ripc_error err;
    redisReply *r = redisCommand(c, "LREM %s 0 %s", s->consumers_key, s->inbox);
    if (r) freeReplyObject(r);
    r = redisCommand(c, "XINFO CONSUMERS %s %s", s->stream, s->group);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r) freeReplyObject(r);
        return;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *info = r->element[i];
        const char *name = NULL;
        long long pending = -1;
        for (size_t j = 0; info->type == REDIS_REPLY_ARRAY && j + 1 < info->elements; j += 2) {
            const redisReply *k = info->element[j], *v = info->element[j + 1];
            if (k->type != REDIS_REPLY_STRING) continue;
            if (!strcmp(k->str, "name") && v->type == REDIS_REPLY_STRING) name = v->str;
            if (!strcmp(k->str, "pending") && v->type == REDIS_REPLY_INTEGER) pending = v->integer;
        }
        if (!name || pending != 0) continue;
        int ours = !strcmp(name, s->inbox);
        for (int d = 0; d < s->options.dispatcher_count && !ours; d++) ours = !strcmp(name, s->dispatchers[d].name);
        if (!ours) continue;
        redisReply *del = redisCommand(c, "XGROUP DELCONSUMER %s %s %s", s->stream, s->group, name);
        if (del) freeReplyObject(del);
    }
    freeReplyObject(r);
    (void)err;
}
