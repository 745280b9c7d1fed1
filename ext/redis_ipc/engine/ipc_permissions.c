/* The ACL check of connect. With a Redis user that lacks a permission the
 * engine needs, connect used to succeed and the engine then failed in the
 * background, again and again, or quietly (a heartbeat that cannot ZADD
 * gets this live instance taken for dead). Redis checks ACLs when a
 * command is queued in a transaction, before anything runs: so connect
 * queues every command the engine sends, with the keys and channel it uses,
 * between MULTI and DISCARD, and reads the NOPERM answers. Nothing
 * executes, and the whole check is two round trips.
 *
 * A user may lack MULTI itself (the engine needs no transaction). Then the
 * probes run for real, so each is chosen to change nothing: a group that
 * does not exist (group names are not subject to ACLs), the id 0-0, XX,
 * this fresh instance's own keys; the two that would write something
 * (LPUSH, SUBSCRIBE) are left out and, if refused, show up when used.
 * Other errors (NOGROUP, a bad id, OOM) are the expected answers of these
 * probes. CLIENT ID and CLIENT UNBLOCK are not checked: without them the
 * engine falls back to cutting a dispatcher's socket at disconnect. */
#include "ipc_permissions.h"
#include "ipc_conn.h"
#include "ipc_keys.h"
#include "ipc_stream.h"
#include "ipc_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_ARGS = 10, MAX_PROBES = 40 };

typedef struct probe {
    const char *label;       /* the command as the message names it */
    const char *key;         /* the key or channel it touches, for the message */
    int transaction_only;    /* writes something if run for real */
    int argc;
    const char *argv[MAX_ARGS];
} probe;

typedef struct probes {
    probe list[MAX_PROBES];
    int count;
} probes;

#define PROBE(set, lbl, k, only, ...) do { \
        const char *a_[] = { __VA_ARGS__ }; \
        probe *p_ = &(set)->list[(set)->count++]; \
        p_->label = (lbl); p_->key = (k); p_->transaction_only = (only); \
        p_->argc = (int)(sizeof(a_) / sizeof(a_[0])); \
        memcpy(p_->argv, a_, sizeof(a_)); \
    } while (0)

/* Every command the engine sends, on the keys it sends it to (grep the
 * engine for redisCommand and argv arrays when adding one). */
static void build(ripc_stream *s, probes *p, const char *group, const char *instances, const char *wake, const char *seen)
{
    const char *S = s->stream, *I = s->inbox, *L = s->consumers_key, *id = s->instance_id;
    p->count = 0;
    PROBE(p, "XADD", S, 0, "XADD", S, "NOMKSTREAM", "0-0", "id", "probe");
    PROBE(p, "XREADGROUP", S, 0, "XREADGROUP", "GROUP", group, I, "COUNT", "1", "STREAMS", S, "0");
    PROBE(p, "XACK", S, 0, "XACK", S, group, "0-0");
    PROBE(p, "XDEL", S, 0, "XDEL", S, "0-0");
    PROBE(p, "XCLAIM", S, 0, "XCLAIM", S, group, I, "0", "0-0", "JUSTID");
    /* History reads run a script (ipc_scripts.c); its XREADGROUP is probed above. */
    PROBE(p, "SCRIPT LOAD", S, 1, "SCRIPT", "LOAD", "return 1");
    PROBE(p, "EVALSHA", S, 1, "EVALSHA", "0000000000000000000000000000000000000000", "1", S);
    PROBE(p, "XPENDING", S, 0, "XPENDING", S, group, "IDLE", "1", "-", "+", "1");
    PROBE(p, "TIME", S, 0, "TIME"); /* the server's clock (ipc_server_clock.c); S is never named */
    PROBE(p, "XINFO CONSUMERS", S, 0, "XINFO", "CONSUMERS", S, group);
    PROBE(p, "XINFO GROUPS", S, 0, "XINFO", "GROUPS", S);
    PROBE(p, "XGROUP CREATE", S, 0, "XGROUP", "CREATE", S, group, "not-an-id", "MKSTREAM"); /* the id is refused first */
    PROBE(p, "XGROUP CREATECONSUMER", S, 0, "XGROUP", "CREATECONSUMER", S, group, I);
    PROBE(p, "XGROUP DELCONSUMER", S, 0, "XGROUP", "DELCONSUMER", S, group, I);
    if (s->options.retention > 0) PROBE(p, "XTRIM", S, 0, "XTRIM", S, "MINID", "0");
    /* The direct lanes (ipc_lanes.h): written, read and kept as the stream is. */
    for (int lane = RIPC_LANE_REQUESTS; lane < RIPC_LANES; lane++) {
        const char *K = s->lanes[lane];
        PROBE(p, "XADD", K, 0, "XADD", K, "NOMKSTREAM", "0-0", "id", "probe");
        PROBE(p, "XREADGROUP", K, 0, "XREADGROUP", "GROUP", group, I, "COUNT", "1", "STREAMS", K, "0");
        PROBE(p, "XGROUP CREATE", K, 0, "XGROUP", "CREATE", K, group, "not-an-id", "MKSTREAM");
    }
    PROBE(p, "ZADD", instances, 0, "ZADD", instances, "XX", "0", id);
    PROBE(p, "ZRANGE", instances, 0, "ZRANGE", instances, "0", "0"); /* the no-responders check (ipc_responders.c) */
    PROBE(p, "ZRANGEBYSCORE", instances, 0, "ZRANGEBYSCORE", instances, "-inf", "-inf", "LIMIT", "0", "1");
    PROBE(p, "ZREM", instances, 0, "ZREM", instances, id);
    PROBE(p, "ZSCORE", instances, 0, "ZSCORE", instances, id);
    PROBE(p, "LRANGE", L, 0, "LRANGE", L, "0", "0");
    PROBE(p, "LREM", L, 0, "LREM", L, "0", I);
    PROBE(p, "LPUSH", L, 1, "LPUSH", L, I);
    PROBE(p, "DEL", L, 0, "DEL", L);
    PROBE(p, "SET", s->metrics_key, 0, "SET", s->metrics_key, "probe", "XX"); /* XX: no such key yet */
    if (ripc_server_cluster(s->server)) { /* shard channels (ipc_waker.c) */
        PROBE(p, "SPUBLISH", wake, 0, "SPUBLISH", wake, "1");
        PROBE(p, "SSUBSCRIBE", wake, 1, "SSUBSCRIBE", wake);
        PROBE(p, "SUNSUBSCRIBE", wake, 1, "SUNSUBSCRIBE", wake);
    } else {
        PROBE(p, "PUBLISH", wake, 0, "PUBLISH", wake, "1");
        PROBE(p, "SUBSCRIBE", wake, 1, "SUBSCRIBE", wake);
        PROBE(p, "UNSUBSCRIBE", wake, 1, "UNSUBSCRIBE", wake);
    }
    if (ripc_signing_on(&s->signing)) { /* replay markers and the takeover's question (ipc_signing.c) */
        PROBE(p, "SET", seen, 1, "SET", seen, "0-0", "NX", "PX", "1000");
        PROBE(p, "GET", seen, 0, "GET", seen);
        if (ripc_server_cluster(s->server)) PROBE(p, "PUBSUB SHARDNUMSUB", wake, 0, "PUBSUB", "SHARDNUMSUB", wake);
        else PROBE(p, "PUBSUB NUMSUB", wake, 0, "PUBSUB", "NUMSUB", wake);
    }
}

/* Appends text to the ", "-separated list in buf unless it is one of its items. */
static void add_once(char *buf, size_t len, const char *text)
{
    size_t n = strlen(text);
    for (const char *at = buf; *at;) {
        const char *end = strstr(at, ", ");
        size_t item = end ? (size_t)(end - at) : strlen(at);
        if (item == n && memcmp(at, text, n) == 0) return;
        if (!end) break;
        at = end + 2;
    }
    size_t used = strlen(buf);
    if (used + 1 >= len) return;
    snprintf(buf + used, len - used, "%s%s", used ? ", " : "", text);
}

/* What Redis says is missing: the command (listed by name), or a key or
 * the channel it touches (listed by name: every command on it is refused). */
static void note_refusal(const probe *p, const char *server_message, char *commands, char *resources, size_t len)
{
    /* Redis 6.2/7.0: "...to run the 'xadd' command", "...to access one of the
     * keys (channels) used as arguments"; 7.2: "User u has no permissions to
     * run the 'xadd' command", "No permissions to access a key (channel)". */
    char item[600];
    if (strstr(server_message, "to run")) {
        add_once(commands, len, p->label);
    } else if (strstr(server_message, "channel")) {
        snprintf(item, sizeof(item), "channel \"%s\"", p->key);
        add_once(resources, len, item);
    } else if (strstr(server_message, "key")) {
        snprintf(item, sizeof(item), "key \"%s\"", p->key);
        add_once(resources, len, item);
    } else {
        add_once(commands, len, p->label);
    }
}

/* Sends the probes (then DISCARD when in a transaction) and reads their
 * replies. -1 when the connection fails; -2 when DISCARD was refused, which
 * leaves the connection inside the transaction. */
static int run(redisContext *c, const probe *const *sent, int n, int in_transaction, redisReply **replies)
{
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *argv[MAX_ARGS];
        size_t lens[MAX_ARGS];
        for (int k = 0; k < sent[i]->argc; k++) {
            argv[k] = sent[i]->argv[k];
            lens[k] = strlen(argv[k]);
        }
        if (redisAppendCommandArgv(c, sent[i]->argc, argv, lens) != REDIS_OK) return -1;
    }
    if (in_transaction && redisAppendCommand(c, "DISCARD") != REDIS_OK) return -1;
    int total = n + (in_transaction ? 1 : 0);
    for (int i = 0; i < total; i++) {
        void *reply = NULL;
        if (redisGetReply(c, &reply) != REDIS_OK) return -1;
        if (i < n) {
            replies[i] = reply;
        } else {
            if (((redisReply *)reply)->type != REDIS_REPLY_STATUS) rc = -2;
            freeReplyObject(reply);
        }
    }
    return rc;
}

int ripc_permissions_check(ripc_stream *s, redisContext *c, ripc_error *err)
{
    size_t n = strlen(s->instance_id) + 32;
    char *group = ripc_xmalloc(n);
    const char *instances = s->instances_key, *wake = s->wake_channel;
    /* A group nobody has: probes that run for real find nothing to change. */
    snprintf(group, n, "redis_ipc_probe_%s", s->instance_id);
    char *seen = ripc_key_seen(s->stream, s->group, "probe");
    probes all;
    build(s, &all, group, instances, wake, seen);

    int rc = RIPC_OK;
    redisReply *multi = redisCommand(c, "MULTI");
    int in_transaction = multi && multi->type == REDIS_REPLY_STATUS;
    if (multi) freeReplyObject(multi);
    const probe *sent[MAX_PROBES];
    redisReply *replies[MAX_PROBES] = { 0 };
    int count = 0;
    for (int i = 0; i < all.count; i++)
        if (in_transaction || !all.list[i].transaction_only) sent[count++] = &all.list[i];
    int ran = c->err ? -1 : run(c, sent, count, in_transaction, replies);
    if (ran == -1) {
        ripc_error_set(err, RIPC_CONNECTION, "redis connection failed: %s", c->errstr[0] ? c->errstr : "no reply");
        rc = RIPC_CONNECTION;
    } else if (ran == -2) {
        /* An odd ACL (MULTI without DISCARD); connect closes this connection. */
        ripc_error_set(err, RIPC_COMMAND, "the Redis user may run MULTI but not DISCARD, which redis_ipc needs to check its permissions");
        rc = RIPC_COMMAND;
    } else {
        char commands[512] = "", resources[512] = "", first[256] = "";
        for (int i = 0; i < count; i++) {
            if (!ripc_reply_error_starts(replies[i], "NOPERM")) continue;
            note_refusal(sent[i], replies[i]->str, commands, resources, sizeof(commands));
            if (rc == RIPC_OK) snprintf(first, sizeof(first), "%s", replies[i]->str);
            rc = RIPC_COMMAND;
        }
        if (rc == RIPC_COMMAND)
            ripc_error_set(err, RIPC_COMMAND, "the Redis user lacks permissions redis_ipc needs: %s%s%s%s (Redis says: %s)",
                           !commands[0] ? "" : strstr(commands, ", ") ? "commands " : "command ", commands, commands[0] && resources[0] ? "; " : "", resources, first);
    }
    for (int i = 0; i < count; i++) if (replies[i]) freeReplyObject(replies[i]);
    free(group);
    free(seen);
    return rc;
}
