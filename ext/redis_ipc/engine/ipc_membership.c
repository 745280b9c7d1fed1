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
     * lost nothing does not list us twice. The same group and consumers on
     * the group's requests lane: senders see there that this instance reads
     * it (ipc_routes.c); and the group on this instance's replies lane.
     * One round trip. */
    enum { MAX_COMMANDS = 7 + 2 * RIPC_MAX_DISPATCHERS };
    int dispatchers = s->options.dispatcher_count;
    if (dispatchers < 1 || dispatchers > RIPC_MAX_DISPATCHERS) { /* ripc_stream_new refuses these */
        ripc_error_set(err, RIPC_ARGUMENT, "dispatcher_count must be from 1 to %d", RIPC_MAX_DISPATCHERS);
        return RIPC_ARGUMENT;
    }
    /* Fixed sizes bounded by RIPC_MAX_DISPATCHERS: under 4 KB of stack. */
    int argcs[MAX_COMMANDS];
    const char **argvs[MAX_COMMANDS];
    const size_t *lens[MAX_COMMANDS];
    const char *argv_store[MAX_COMMANDS][6];
    size_t len_store[MAX_COMMANDS][6];
    const char *names[MAX_COMMANDS]; /* for a refusal's message */
    redisReply *replies[MAX_COMMANDS];

    int k = 0;
#define CMD(name, ...) do { \
        const char *a[] = { __VA_ARGS__ }; \
        names[k] = name; \
        argcs[k] = (int)(sizeof(a) / sizeof(a[0])); \
        for (int i = 0; i < argcs[k]; i++) { argv_store[k][i] = a[i]; len_store[k][i] = strlen(a[i]); } \
        argvs[k] = argv_store[k]; lens[k] = len_store[k]; k++; \
    } while (0)
    const char *requests = s->lanes[RIPC_LANE_REQUESTS], *replies_lane = s->lanes[RIPC_LANE_REPLIES];
    CMD("XGROUP CREATE", "XGROUP", "CREATE", s->stream, s->group, "$", "MKSTREAM");
    CMD("XGROUP CREATECONSUMER", "XGROUP", "CREATECONSUMER", s->stream, s->group, s->inbox);
    for (int d = 0; d < dispatchers; d++) {
        CMD("XGROUP CREATECONSUMER", "XGROUP", "CREATECONSUMER", s->stream, s->group, s->dispatcher_names[d]);
    }
    CMD("LREM", "LREM", s->consumers_key, "0", s->inbox);
    CMD("LPUSH", "LPUSH", s->consumers_key, s->inbox);
    /* From the start of the lanes: nothing is written there before a reader exists. */
    CMD("XGROUP CREATE", "XGROUP", "CREATE", requests, s->group, "0", "MKSTREAM");
    CMD("XGROUP CREATECONSUMER", "XGROUP", "CREATECONSUMER", requests, s->group, s->inbox);
    for (int d = 0; d < dispatchers; d++) {
        CMD("XGROUP CREATECONSUMER", "XGROUP", "CREATECONSUMER", requests, s->group, s->dispatcher_names[d]);
    }
    CMD("XGROUP CREATE", "XGROUP", "CREATE", replies_lane, s->group, "0", "MKSTREAM");
#undef CMD
    int n = k;

    if (ripc_conn_pipeline(c, n, argcs, argvs, lens, replies, err) != 0) return RIPC_CONNECTION;
    /* A group created now, on a stream made again, may reuse entry ids. */
    int created = 0;
    for (int i = 0; i < n; i++) created |= !strcmp(names[i], "XGROUP CREATE") && replies[i]->type == REDIS_REPLY_STATUS;
    if (created) ripc_inflight_forget_acked(&s->inflight);
    int rc = RIPC_OK;
    for (int i = 0; i < n && rc == RIPC_OK; i++) {
        if (!strcmp(names[i], "XGROUP CREATE") && ripc_reply_error_starts(replies[i], "BUSYGROUP")) continue;
        if (replies[i]->type != REDIS_REPLY_ERROR) continue;
        char what[1024];
        snprintf(what, sizeof(what), "%s joining group %s of stream %s", names[i], s->group, s->stream);
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
/* The consumers of ours on one lane: removed when they hold nothing.
 * Returns 1 when some hold pending entries (or Redis could not say). */
static int leave_lane(ripc_stream *s, redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "XINFO CONSUMERS %b %b", key, strlen(key), s->group, strlen(s->group));
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
        redisReply *del = redisCommand(c, "XGROUP DELCONSUMER %b %b %s", key, strlen(key), s->group, strlen(s->group), name);
        if (del) freeReplyObject(del);
    }
    freeReplyObject(r);
    return holds_pending;
}

int ripc_membership_leave(ripc_stream *s, redisContext *c)
{
    redisReply *r = redisCommand(c, "LREM %s 0 %s", s->consumers_key, s->inbox);
    if (r) freeReplyObject(r);
    int holds_pending = leave_lane(s, c, s->stream);
    holds_pending |= leave_lane(s, c, s->lanes[RIPC_LANE_REQUESTS]);
    /* Replies still on our lane have nobody left to wait for them. */
    r = redisCommand(c, "DEL %b", s->lanes[RIPC_LANE_REPLIES], strlen(s->lanes[RIPC_LANE_REPLIES]));
    if (r) freeReplyObject(r);
    return holds_pending;
}
