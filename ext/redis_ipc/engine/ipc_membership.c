/* Joining and leaving a group (WIRE.md "Groups and instances" and "Keys"). */
#include "ipc_membership.h"
#include "ipc_conn.h"
#include "ipc_stream.h"

#include <stdio.h>
#include <string.h>

int ripc_membership_join(ripc_stream *s, redisContext *c, ripc_error *err)
{
    /* XGROUP CREATE (BUSYGROUP is fine), then CREATECONSUMER for the inbox and
     * each dispatcher as 1.x does, then LREM + LPUSH so re-joining after Redis
     * lost nothing does not list us twice. One round trip. */
    enum { MAX_COMMANDS = 4 + RIPC_MAX_DISPATCHERS };
    int dispatchers = s->options.dispatcher_count;
    if (dispatchers < 1 || dispatchers > RIPC_MAX_DISPATCHERS) { /* ripc_stream_new refuses these */
        ripc_error_set(err, RIPC_ARGUMENT, "dispatcher_count must be from 1 to %d", RIPC_MAX_DISPATCHERS);
        return RIPC_ARGUMENT;
    }
    /* Fixed sizes bounded by RIPC_MAX_DISPATCHERS: under 4 KB of stack. */
    int n = 4 + dispatchers;
    int argcs[MAX_COMMANDS];
    const char **argvs[MAX_COMMANDS];
    const size_t *lens[MAX_COMMANDS];
    const char *argv_store[MAX_COMMANDS][6];
    size_t len_store[MAX_COMMANDS][6];
    redisReply *replies[MAX_COMMANDS];

    int k = 0;
#define CMD(...) do { \
        const char *a[] = { __VA_ARGS__ }; \
        argcs[k] = (int)(sizeof(a) / sizeof(a[0])); \
        for (int i = 0; i < argcs[k]; i++) { argv_store[k][i] = a[i]; len_store[k][i] = strlen(a[i]); } \
        argvs[k] = argv_store[k]; lens[k] = len_store[k]; k++; \
    } while (0)
    CMD("XGROUP", "CREATE", s->stream, s->group, "$", "MKSTREAM");
    CMD("XGROUP", "CREATECONSUMER", s->stream, s->group, s->inbox);
    for (int d = 0; d < dispatchers; d++) {
        CMD("XGROUP", "CREATECONSUMER", s->stream, s->group, s->dispatcher_names[d]);
    }
    CMD("LREM", s->consumers_key, "0", s->inbox);
    CMD("LPUSH", s->consumers_key, s->inbox);
#undef CMD

    if (ripc_conn_pipeline(c, n, argcs, argvs, lens, replies, err) != 0) return RIPC_CONNECTION;
    int rc = RIPC_OK;
    for (int i = 0; i < n && rc == RIPC_OK; i++) {
        if (i == 0 && ripc_reply_error_starts(replies[i], "BUSYGROUP")) continue;
        if (replies[i]->type != REDIS_REPLY_ERROR) continue;
        const char *command = i == 0 ? "XGROUP CREATE" : i == n - 2 ? "LREM" : i == n - 1 ? "LPUSH" : "XGROUP CREATECONSUMER";
        char what[1024];
        snprintf(what, sizeof(what), "%s joining group %s of stream %s", command, s->group, s->stream);
        ripc_error_refused(err, what, replies[i]->str);
        rc = RIPC_COMMAND;
    }
    for (int i = 0; i < n; i++) freeReplyObject(replies[i]);
    return rc;
}

/* Stops being listed, and removes this instance's consumers from the group
 * when they hold no pending entries (a consumer deleted with pending
 * entries would orphan them). Entries still pending (requests read but not
 * answered, a read cut short by the stop) are left to a live instance,
 * which takes them over at its next heartbeat. */
int ripc_membership_leave(ripc_stream *s, redisContext *c)
{
    redisReply *r = redisCommand(c, "LREM %s 0 %s", s->consumers_key, s->inbox);
    if (r) freeReplyObject(r);
    r = redisCommand(c, "XINFO CONSUMERS %s %s", s->stream, s->group);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r) freeReplyObject(r);
        return 1;
    }
    int holds_pending = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *info = r->element[i];
        const redisReply *name_field = ripc_reply_field(info, "name"), *pending_field = ripc_reply_field(info, "pending");
        const char *name = name_field && name_field->type == REDIS_REPLY_STRING ? name_field->str : NULL;
        long long pending = pending_field && pending_field->type == REDIS_REPLY_INTEGER ? pending_field->integer : -1;
        if (!name) continue;
        int ours = !strcmp(name, s->inbox);
        for (int d = 0; d < s->options.dispatcher_count && !ours; d++) ours = !strcmp(name, s->dispatcher_names[d]);
        if (!ours) continue;
        if (pending != 0) {
            holds_pending = 1;
            continue;
        }
        redisReply *del = redisCommand(c, "XGROUP DELCONSUMER %s %s %s", s->stream, s->group, name);
        if (del) freeReplyObject(del);
    }
    freeReplyObject(r);
    return holds_pending;
}
