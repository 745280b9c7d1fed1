/* The no-responders check (ipc_responders.h). It judges by what peers
 * leave in Redis, without a command of their own:
 *   - <stream>:<group>:instances, the heartbeats of this engine's instances
 *     (ipc_liveness.c): one scored within dead_after is alive; one listed
 *     with an older score is dead, whatever its consumers show;
 *   - XINFO CONSUMERS of the group: a consumer whose instance beats nowhere
 *     (1.x, or a foreign peer keeping WIRE.md) is alive while its idle time
 *     (since its last read) stays under reclaim_idle, the age past which the
 *     engine already takes such a peer's entries for abandoned. 1.x readers
 *     poll every few milliseconds, so a live one is never near that.
 * Both judgements wait, as takeovers do, until this instance's own beats
 * have gone through promptly for dead_after (judge below). */
#include "ipc_responders.h"
#include "ipc_stream.h"
#include "ipc_conn.h"
#include "ipc_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int listed(const redisReply *members, const char *iid)
{
    for (size_t i = 0; members->type == REDIS_REPLY_ARRAY && i < members->elements; i++)
        if (members->element[i]->type == REDIS_REPLY_STRING && strcmp(members->element[i]->str, iid) == 0) return 1;
    return 0;
}

/* A consumer named after an instance of this engine listed in known. */
static int ours(const redisReply *name, const redisReply *known)
{
    char iid[RIPC_INSTANCE_NAME_MAX];
    return name && name->type == REDIS_REPLY_STRING && ripc_name_instance(name->str, iid, sizeof(iid)) && listed(known, iid);
}

/* In one round trip: the command `first` (when first_argc > 0), then the
 * group's members as Redis holds them: the instances listed in key
 * (ZRANGE) and the group's consumers (XINFO CONSUMERS). replies[] gets
 * them in that order; -1 when the connection failed. */
static int ask_members(ripc_stream *s, redisContext *c, const char *key, const char *group, int first_argc,
                       const char **first, redisReply **replies, ripc_error *err)
{
    const char *known[] = { "ZRANGE", key, "0", "-1" };
    const char *consumers[] = { "XINFO", "CONSUMERS", s->stream, group };
    size_t first_len[8], known_len[4], consumers_len[4];
    for (int i = 0; i < first_argc; i++) first_len[i] = strlen(first[i]);
    for (int i = 0; i < 4; i++) known_len[i] = strlen(known[i]), consumers_len[i] = strlen(consumers[i]);
    int argcs[] = { first_argc, 4, 4 };
    const char **argvs[] = { first, known, consumers };
    const size_t *lens[] = { first_len, known_len, consumers_len };
    int skip = first_argc > 0 ? 0 : 1;
    return ripc_conn_pipeline(c, 3 - skip, argcs + skip, argvs + skip, lens + skip, replies, err);
}

/* From the three replies (live beats, every listed instance, the group's
 * consumers): 1 alive or in doubt, 0 none. While this instance may not
 * judge others (its own beats were not prompt for dead_after: a stall of
 * Redis or of its connection delays every peer's beats too), a stale beat
 * or a long idle time is no proof of death: only a group that does not
 * exist, or has neither instances nor consumers left, has no member. */
static int judge(ripc_stream *s, int judging, const redisReply *live, const redisReply *known, const redisReply *consumers)
{
    if (live->type != REDIS_REPLY_ARRAY || known->type != REDIS_REPLY_ARRAY) return 1;
    if (live->elements > 0) return 1;
    if (!judging && known->elements > 0) return 1;
    if (consumers->type == REDIS_REPLY_ERROR) {
        /* No group by that name, or no stream at all: nobody reads it. */
        return !(ripc_reply_error_starts(consumers, "NOGROUP") || strstr(consumers->str, "no such key"));
    }
    if (consumers->type != REDIS_REPLY_ARRAY) return 1;
    long long idle_max = (long long)(s->options.reclaim_idle * 1000);
    for (size_t i = 0; i < consumers->elements; i++) {
        const redisReply *row = consumers->element[i];
        const redisReply *name = ripc_reply_field(row, "name"), *idle = ripc_reply_field(row, "idle");
        if (!name || name->type != REDIS_REPLY_STRING || !idle || idle->type != REDIS_REPLY_INTEGER) return 1;
        if (ours(name, known)) continue; /* judged by its beats */
        if (!judging || idle->integer < idle_max) return 1;
    }
    return 0;
}

int ripc_responders_alive(ripc_stream *s, const char *group)
{
    if (s->pid != ripc_getpid() || !atomic_load(&s->connected) || atomic_load(&s->stopping) || !group || !*group) return 1;
    redisContext *c;
    ripc_error err;
    /* Without waiting for a connection: a pool taken up by senders must not
     * delay this send; it goes unchecked instead. */
    if (ripc_pool_checkout(&s->pool, ripc_now(), &c, &err) != RIPC_OK) return 1;
    int alive = 1;
    double sent = ripc_now();
    long long now = ripc_liveness_server_ms(s, c, &err);
    if (now >= 0) {
        char *key = ripc_key_instances(s->stream, group);
        char since[32];
        snprintf(since, sizeof(since), "%lld", now - (long long)(s->options.dead_after * 1000));
        const char *live[] = { "ZRANGEBYSCORE", key, since, "+inf", "LIMIT", "0", "1" };
        redisReply *replies[3];
        if (ask_members(s, c, key, group, 7, live, replies, &err) == 0) {
            /* A check that was slow, as a beat that was slow, means Redis
             * stalled: peers' beats may be waiting behind it. */
            int prompt = ripc_now() - sent < s->options.heartbeat_interval / 2;
            alive = judge(s, prompt && atomic_load(&s->liveness.judging), replies[0], replies[1], replies[2]);
            for (int i = 0; i < 3; i++) freeReplyObject(replies[i]);
        }
        free(key);
    }
    ripc_pool_checkin(&s->pool, c, c->err != 0);
    return alive;
}

int ripc_responders_only_ours(ripc_stream *s, const char *group)
{
    redisContext *c;
    ripc_error err;
    if (ripc_pool_checkout(&s->pool, 0, &c, &err) != RIPC_OK) return -1;
    char *key = ripc_key_instances(s->stream, group);
    redisReply *replies[2];
    int all_ours = -1;
    if (ask_members(s, c, key, group, 0, NULL, replies, &err) == 0) {
        all_ours = replies[0]->type == REDIS_REPLY_ARRAY && replies[1]->type == REDIS_REPLY_ARRAY;
        for (size_t i = 0; all_ours && i < replies[1]->elements; i++)
            all_ours = ours(ripc_reply_field(replies[1]->element[i], "name"), replies[0]);
        for (int i = 0; i < 2; i++) freeReplyObject(replies[i]);
    }
    free(key);
    ripc_pool_checkin(&s->pool, c, c->err != 0);
    return all_ours;
}
