/* Liveness and takeover. Each instance of this engine beats into the sorted
 * set <stream>:<group>:instances (member: instance id, score: the server's
 * time in ms at its last beat, ipc_server_clock.h, so hosts whose clocks
 * differ agree). An instance whose beat is older than dead_after is dead:
 * the live instance that removes it from the set takes over the entries its
 * consumers had taken and not answered, long before the 10 s after which
 * 1.x peers would reclaim them.
 *
 * A request must run twice only when an instance really died. So an
 * instance judges others only after its own beats have gone through
 * promptly for dead_after: when Redis stalls (CLIENT PAUSE, DEBUG SLEEP, a
 * slow fork) or our connection breaks, every peer's beats stall too, and
 * nobody is judged until all had the chance to beat again. Likewise the 10 s
 * reclaim never takes entries from an instance that beats: a long handler
 * is not a dead one. Instances of 1.x do not beat and are reclaimed as 1.x
 * reclaims them; so are entries this instance holds but no longer tracks.
 * Entries claimed either way are marked redelivered. On a signed stream
 * neither path trusts a score alone: the instance must also have lost its
 * subscription to its wake channel (ipc_signing.c), which a forged write
 * cannot bring about. */
#include "ipc_conn.h"
#include "ipc_keys.h"
#include "ipc_membership.h"
#include "ipc_reports.h"
#include "ipc_service.h"
#include "ipc_stream.h"
#include "ipc_telemetry.h"
#include "ipc_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ripc_liveness_init(ripc_liveness *lv)
{
    memset(lv, 0, sizeof(*lv));
    ripc_server_clock_init(&lv->clock);
    pthread_mutex_init(&lv->mutex, NULL);
}

void ripc_liveness_destroy(ripc_liveness *lv)
{
    ripc_server_clock_destroy(&lv->clock);
    pthread_mutex_destroy(&lv->mutex);
}

void ripc_liveness_reset(ripc_liveness *lv)
{
    ripc_server_clock_reset(&lv->clock);
    lv->watch_since = 0;
    lv->last_beat = 0;
    atomic_store(&lv->beaten, 0);
    atomic_store(&lv->judging, 0);
    pthread_mutex_lock(&lv->mutex);
    lv->dead_count = 0;
    pthread_mutex_unlock(&lv->mutex);
}

long long ripc_liveness_server_ms(ripc_stream *s, redisContext *c, ripc_error *err)
{
    return ripc_server_clock_ms(&s->liveness.clock, c, RIPC_SERVER_CLOCK_MAX_AGE, err);
}

static long long dead_ms(ripc_stream *s) { return (long long)(s->options.dead_after * 1000); }

/* XCLAIMs ids (argv-ready strings) of a lane to our inbox when idle at
 * least min_idle ms; the inbox sweep routes them, as redelivered, at once
 * (JUSTID: what they hold is read there, measured, not here whatever its
 * size). Returns how many were claimed. */
static size_t claim_ids(ripc_stream *s, redisContext *c, const char *key, const char **ids, size_t n,
                        const char *min_idle, ripc_error *err)
{
    if (n == 0) return 0;
    const char **argv = ripc_xmalloc((n + 6) * sizeof(*argv));
    size_t *lens = ripc_xmalloc((n + 6) * sizeof(*lens));
    argv[0] = "XCLAIM"; argv[1] = key; argv[2] = s->group; argv[3] = s->inbox; argv[4] = min_idle;
    for (size_t i = 0; i < n; i++) argv[5 + i] = ids[i];
    argv[5 + n] = "JUSTID";
    for (size_t i = 0; i < n + 6; i++) lens[i] = strlen(argv[i]);
    redisReply *claimed_ids = ripc_conn_run(c, (int)(n + 6), argv, lens, err);
    free(argv);
    free(lens);
    size_t claimed = claimed_ids && claimed_ids->type == REDIS_REPLY_ARRAY ? claimed_ids->elements : 0;
    if (claimed) {
        atomic_store(&s->inbox_rung, 1);
        ripc_service_nudge(s, 0);
    }
    if (claimed_ids) freeReplyObject(claimed_ids);
    return claimed;
}

/* The ids of an XPENDING extended reply: [[id, consumer, idle, deliveries], ...]. */
static size_t pending_ids(const redisReply *rows, const char **ids)
{
    size_t n = 0;
    for (size_t i = 0; i < rows->elements; i++) {
        const redisReply *row = rows->element[i];
        if (row->type == REDIS_REPLY_ARRAY && row->elements >= 2 && row->element[0]->type == REDIS_REPLY_STRING)
            ids[n++] = row->element[0]->str;
    }
    return n;
}

/* Moves every entry pending on `consumer` on a lane to our inbox and
 * routes it: requests are served here, replies go where they belong. */
static size_t claim_all(ripc_stream *s, redisContext *c, const char *key, const char *consumer, ripc_error *err)
{
    size_t claimed = 0;
    for (int round = 0; round < 1000 && !c->err; round++) {
        redisReply *pending = redisCommand(c, "XPENDING %b %b - + 128 %b", key, strlen(key),
                                           s->group, strlen(s->group), consumer, strlen(consumer));
        int empty = !pending || pending->type != REDIS_REPLY_ARRAY || pending->elements == 0;
        if (!empty) {
            const char **ids = ripc_xmalloc(pending->elements * sizeof(*ids));
            claimed += claim_ids(s, c, key, ids, pending_ids(pending, ids), "0", err);
            free(ids);
        }
        if (pending) freeReplyObject(pending);
        if (empty) break;
    }
    return claimed;
}

static long long pending_of(ripc_stream *s, redisContext *c, const char *key, const char *consumer)
{
    redisReply *r = redisCommand(c, "XPENDING %b %b - + 1 %b", key, strlen(key), s->group,
                                 strlen(s->group), consumer, strlen(consumer));
    long long n = r && r->type == REDIS_REPLY_ARRAY ? (long long)r->elements : -1;
    if (r) freeReplyObject(r);
    return n;
}

/* The score of iid's last beat, or -1 when it is not in the set. */
static long long beat_of(ripc_stream *s, redisContext *c, const char *iid)
{
    redisReply *r = redisCommand(c, "ZSCORE %b %b", s->instances_key, strlen(s->instances_key), iid, strlen(iid));
    long long score = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    if (r) freeReplyObject(r);
    return score;
}

/* On a signed stream, scores prove nothing (anyone who can write can lower
 * them): an instance whose waker is still subscribed to its channel is
 * alive, whatever its score says (ipc_signing.c). Doubt counts as alive. */
static int still_connected(ripc_stream *s, redisContext *c, const char *iid, ripc_error *err)
{
    if (!ripc_signing_on(&s->signing)) return 0;
    char *channel = ripc_key_wake(s->stream, s->group, iid);
    int subscribed = ripc_signing_subscribed(c, channel, ripc_server_cluster(s->server), err);
    free(channel);
    return subscribed != 0;
}

/* Claims what the consumers of instance iid hold on a lane, and removes
 * those consumers. Returns how many entries it claimed. */
static size_t take_lane(ripc_stream *s, redisContext *c, const char *key, const char *iid, ripc_error *err)
{
    redisReply *info = redisCommand(c, "XINFO CONSUMERS %b %b", key, strlen(key), s->group, strlen(s->group));
    if (!info || info->type != REDIS_REPLY_ARRAY) {
        if (info) freeReplyObject(info);
        return 0;
    }
    size_t claimed = 0;
    for (size_t i = 0; i < info->elements; i++) {
        const redisReply *row = info->element[i];
        const redisReply *field = ripc_reply_field(row, "name");
        const char *name = field && field->type == REDIS_REPLY_STRING ? field->str : NULL;
        char owner[RIPC_INSTANCE_NAME_MAX];
        if (!name || !ripc_name_instance(name, owner, sizeof(owner)) || strcmp(owner, iid) != 0) continue;
        claimed += claim_all(s, c, key, name, err);
        /* A consumer is removed only once it holds nothing: deleting one
         * with pending entries would orphan them. */
        if (pending_of(s, c, key, name) == 0) {
            redisReply *del = redisCommand(c, "XGROUP DELCONSUMER %b %b %b", key, strlen(key), s->group,
                                           strlen(s->group), name, strlen(name));
            if (del) freeReplyObject(del);
        }
    }
    freeReplyObject(info);
    return claimed;
}

static void take_over(ripc_stream *s, redisContext *c, const char *iid, ripc_error *err)
{
    /* It may have beaten since the beat that found it dead. */
    long long now = ripc_liveness_server_ms(s, c, err);
    if (now < 0 || beat_of(s, c, iid) >= now - dead_ms(s) || still_connected(s, c, iid, err)) return;
    /* ZREM is the lock: of the live instances that saw the death, only the
     * one whose ZREM removed the member goes on. */
    redisReply *r = redisCommand(c, "ZREM %b %b", s->instances_key, strlen(s->instances_key), iid, strlen(iid));
    int won = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r) freeReplyObject(r);
    if (!won) return;
    /* Unlist it first, so no peer hands it anything more; the replies
     * to it have nobody left to wait for them. */
    char *consumers_key = ripc_key_consumers(s->stream, s->group, iid);
    char *replies_key = ripc_key_replies(s->stream, s->group, iid);
    r = redisCommand(c, "DEL %b %b", consumers_key, strlen(consumers_key), replies_key, strlen(replies_key));
    free(consumers_key);
    free(replies_key);
    if (r) freeReplyObject(r);

    size_t claimed = take_lane(s, c, s->stream, iid, err);
    claimed += take_lane(s, c, s->lanes[RIPC_LANE_REQUESTS], iid, err);
    atomic_fetch_add(&s->takeovers, 1);
    atomic_fetch_add(&s->taken_over_entries, claimed);
}

/* Dead instances seen by the beat, for the housekeeper to take over: the
 * beat itself must never wait behind a takeover. */
static void note_dead(ripc_stream *s, const char *iid)
{
    ripc_liveness *lv = &s->liveness;
    if (strlen(iid) >= RIPC_INSTANCE_NAME_MAX) return; /* not an id this engine writes */
    pthread_mutex_lock(&lv->mutex);
    int known = 0;
    for (int i = 0; i < lv->dead_count; i++) known |= strcmp(lv->dead[i], iid) == 0;
    if (!known && lv->dead_count < RIPC_MAX_DEAD) snprintf(lv->dead[lv->dead_count++], sizeof(lv->dead[0]), "%s", iid);
    pthread_mutex_unlock(&lv->mutex);
    ripc_service_nudge(s, 0);
}

void ripc_liveness_take_over_one(ripc_stream *s, redisContext *c, ripc_error *err)
{
    ripc_liveness *lv = &s->liveness;
    char iid[RIPC_INSTANCE_NAME_MAX];
    pthread_mutex_lock(&lv->mutex);
    int have = lv->dead_count > 0;
    if (have) snprintf(iid, sizeof(iid), "%s", lv->dead[--lv->dead_count]);
    pthread_mutex_unlock(&lv->mutex);
    if (!have || c->err || atomic_load(&s->stopping)) return;
    take_over(s, c, iid, err);
}

int ripc_liveness_pending(ripc_stream *s)
{
    pthread_mutex_lock(&s->liveness.mutex);
    int n = s->liveness.dead_count;
    pthread_mutex_unlock(&s->liveness.mutex);
    return n;
}

/* Is iid among the instances that beat within dead_after? */
static int alive(const redisReply *live, const char *iid)
{
    for (size_t i = 0; live && live->type == REDIS_REPLY_ARRAY && i < live->elements; i++)
        if (live->element[i]->type == REDIS_REPLY_STRING && strcmp(live->element[i]->str, iid) == 0) return 1;
    return 0;
}

/* The reclaim of one lane; *live is asked once for all of them. */
static void reclaim_lane(ripc_stream *s, redisContext *c, int lane, redisReply **live_set, int claim_untracked,
                         ripc_error *err)
{
    const char *key = s->lanes[lane];
    char idle_ms[32], from[80] = "-", live_from[32];
    snprintf(idle_ms, sizeof(idle_ms), "%lld", (long long)(s->options.reclaim_idle * 1000));
    redisReply *live = *live_set;
    char last_owner[RIPC_INSTANCE_NAME_MAX] = "";
    int last_connected = 0;
    for (int page = 0; page < 16 && !c->err; page++) {
        redisReply *rows = redisCommand(c, "XPENDING %b %b IDLE %s %s + 128", key, strlen(key),
                                        s->group, strlen(s->group), idle_ms, from);
        if (rows) ripc_stream_note_reply(s, "XPENDING", "XPENDING of idle entries", rows);
        if (!rows || rows->type != REDIS_REPLY_ARRAY || rows->elements == 0) {
            if (rows) freeReplyObject(rows);
            break;
        }
        if (!live) {
            /* Asked only when something is idle that long: a quiet group
             * costs one XPENDING per round. */
            long long now = ripc_liveness_server_ms(s, c, err);
            if (now < 0) { freeReplyObject(rows); break; }
            snprintf(live_from, sizeof(live_from), "%lld", now - dead_ms(s));
            live = *live_set = redisCommand(c, "ZRANGEBYSCORE %b %s +inf", s->instances_key, strlen(s->instances_key), live_from);
            if (!live) { freeReplyObject(rows); break; }
        }
        const char **ids = ripc_xmalloc(rows->elements * sizeof(*ids));
        size_t n = 0;
        for (size_t i = 0; i < rows->elements; i++) {
            const redisReply *row = rows->element[i];
            if (row->type != REDIS_REPLY_ARRAY || row->elements < 2 || row->element[0]->type != REDIS_REPLY_STRING ||
                row->element[1]->type != REDIS_REPLY_STRING)
                continue;
            const char *id = row->element[0]->str;
            char slot_buf[RIPC_LANE_SLOT_MAX];
            const char *slot = ripc_lane_slot(lane, id, slot_buf, sizeof(slot_buf));
            char owner[RIPC_INSTANCE_NAME_MAX];
            int known = ripc_name_instance(row->element[1]->str, owner, sizeof(owner));
            if (known && strcmp(owner, s->instance_id) == 0) {
                /* Ours: answered, with only its XACK lost (acknowledged now,
                 * with the lazy ones); or being handled; or forgotten (its
                 * reply given up after every retry, or refused): handled
                 * again. Any other entry of ours is a request parked for
                 * lack of room, or one a dispatcher's catch-up reads: left
                 * to them (taken here, it would be flagged as handled
                 * before), unless more were forgotten than remembered. */
                int state = ripc_inflight_state(&s->inflight, slot);
                if (state == RIPC_INFLIGHT_ANSWERED && lane == RIPC_LANE_SHARED) {
                    ripc_lazy_acks_add(&s->lazy_acks, id);
                    ripc_inflight_acked(&s->inflight, slot);
                } else if (state == RIPC_INFLIGHT_ANSWERED) {
                    redisReply *ack = redisCommand(c, "XACK %b %b %s", key, strlen(key), s->group, strlen(s->group), id);
                    if (ack) freeReplyObject(ack);
                    ripc_inflight_acked(&s->inflight, slot);
                }
                if (state != RIPC_INFLIGHT_FORGOTTEN && !(state == RIPC_INFLIGHT_NONE && claim_untracked)) continue;
            } else if (known && alive(live, owner)) {
                continue;
            } else if (known && ripc_signing_on(&s->signing)) {
                /* Rows come grouped by id, not owner: remember the last answer. */
                if (strcmp(owner, last_owner) != 0) {
                    snprintf(last_owner, sizeof(last_owner), "%s", owner);
                    last_connected = still_connected(s, c, owner, err);
                }
                if (last_connected) continue;
            }
            ids[n++] = id;
        }
        const redisReply *last = rows->element[rows->elements - 1];
        int more = rows->elements == 128 && last->type == REDIS_REPLY_ARRAY && last->elements >= 1 &&
                   last->element[0]->type == REDIS_REPLY_STRING;
        if (more) snprintf(from, sizeof(from), "(%s", last->element[0]->str);
        /* XCLAIM checks the idle time again: an entry taken meanwhile stays. */
        claim_ids(s, c, key, ids, n, idle_ms, err);
        free(ids);
        freeReplyObject(rows);
        if (!more) break;
    }
}

void ripc_liveness_reclaim(ripc_stream *s, redisContext *c, ripc_error *err)
{
    redisReply *live = NULL;
    int claim_untracked = ripc_inflight_take_overflow(&s->inflight);
    for (int lane = 0; lane < RIPC_LANES && !c->err; lane++) reclaim_lane(s, c, lane, &live, claim_untracked, err);
    if (live) freeReplyObject(live);
}

/* One beat: ZADD our score, and ask for instances older than dead_after. */
int ripc_liveness_beat(ripc_stream *s, redisContext *c, ripc_error *err)
{
    ripc_liveness *lv = &s->liveness;
    double sent = ripc_now();
    long long ms = ripc_liveness_server_ms(s, c, err);
    if (ms < 0) {
        lv->watch_since = 0;
        atomic_store(&lv->judging, 0);
        return RIPC_CONNECTION;
    }
    char now[32], dead_before[32];
    snprintf(now, sizeof(now), "%lld", ms);
    snprintf(dead_before, sizeof(dead_before), "(%lld", ms - dead_ms(s));
    const char *key = s->instances_key;
    const char *zadd[] = { "ZADD", key, now, s->instance_id };
    size_t zadd_len[] = { 4, strlen(key), strlen(now), strlen(s->instance_id) };
    const char *dead[] = { "ZRANGEBYSCORE", key, "-inf", dead_before, "LIMIT", "0", "16" };
    size_t dead_len[7];
    for (int i = 0; i < 7; i++) dead_len[i] = strlen(dead[i]);
    int argcs[] = { 4, 7 };
    const char **argvs[] = { zadd, dead };
    const size_t *lens[] = { zadd_len, dead_len };
    redisReply *replies[2];
    if (ripc_conn_pipeline(c, 2, argcs, argvs, lens, replies, err) != 0) {
        lv->watch_since = 0;
        atomic_store(&lv->judging, 0);
        return RIPC_CONNECTION;
    }
    double done = ripc_now();
    /* A slow beat, or a long gap since the last one, means Redis or this
     * connection stalled, and every peer's beats with it: watch afresh. */
    double beat = s->options.heartbeat_interval;
    int prompt = done - sent < beat / 2 && lv->last_beat > 0 && sent - lv->last_beat < beat * 1.5;
    if (!prompt || lv->watch_since == 0) lv->watch_since = done;
    lv->last_beat = done;
    int may_judge = done - lv->watch_since >= s->options.dead_after;
    atomic_store(&lv->judging, may_judge);

    /* A refused beat (OOM, NOPERM...) gets this live instance taken for dead. */
    if (replies[0]->type == REDIS_REPLY_ERROR)
        ripc_stream_refused(s, "ZADD", replies[0]->str, "Redis refused this instance's heartbeat (ZADD on %s): %s "
                            "(other instances of the group will take it for dead)", key, replies[0]->str);
    else
        ripc_stream_accepted(s, "ZADD");
    /* ZADD answering 1 means we were not in the set: someone took us for
     * dead (or Redis lost its data). List ourselves again. */
    if (replies[0]->type == REDIS_REPLY_INTEGER && replies[0]->integer == 1 && atomic_exchange(&lv->beaten, 1))
        ripc_membership_join(s, c, err);
    if (may_judge && replies[1]->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < replies[1]->elements && !atomic_load(&s->stopping); i++) {
            const redisReply *iid = replies[1]->element[i];
            if (iid->type == REDIS_REPLY_STRING && strcmp(iid->str, s->instance_id) != 0) note_dead(s, iid->str);
        }
    }
    freeReplyObject(replies[0]);
    freeReplyObject(replies[1]);
    return c->err ? RIPC_CONNECTION : RIPC_OK;
}

double ripc_liveness_tick(ripc_stream *s)
{
    ripc_error err;
    if (atomic_load(&s->stopping)) return ripc_now() + 3600;
    /* The service runs this before any chore (ipc_service.c), so no chore
     * can delay a beat past dead_after and get this live instance taken for
     * dead. A broken connection is replaced and the beat sent at once, not
     * a whole interval later: peers must not see a gap. */
    for (int attempt = 0; attempt < 2; attempt++) {
        redisContext *c = ripc_service_checkout(s, &err);
        int ok = c && ripc_liveness_beat(s, c, &err) == RIPC_OK && !c->err;
        if (ok) ripc_telemetry_publish(s, c);
        if (c) ripc_service_checkin(s, c);
        else {
            s->liveness.watch_since = 0;
            atomic_store(&s->liveness.judging, 0);
        }
        if (ok) break;
        if (attempt == 1) ripc_stream_outage(s, &err);
    }
    return ripc_now() + s->options.heartbeat_interval;
}

void ripc_liveness_leave(ripc_stream *s, redisContext *c, int holds_pending)
{
    /* With entries still pending on our consumers, we mark ourselves dead so
     * that a live instance takes them over at its next beat; otherwise we
     * simply leave the set. */
    const char *key = s->instances_key;
    redisReply *r = holds_pending
        ? redisCommand(c, "ZADD %b 0 %s", key, strlen(key), s->instance_id)
        : redisCommand(c, "ZREM %b %s", key, strlen(key), s->instance_id);
    if (r) freeReplyObject(r);
}
