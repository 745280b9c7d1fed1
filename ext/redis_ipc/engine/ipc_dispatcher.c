/* Dispatchers: native threads that block in XREADGROUP ... > on their own
 * connection, on every lane at once (ipc_lanes.h), and route what they read (blocking briefly, 0.1 s, only while
 * requests wait parked for room). The first runs from connect, the others
 * under load. On a lost connection they reconnect with capped backoff,
 * re-join the group and route what was delivered to the cut connection. */
#include "ipc_dispatcher.h"
#include "ipc_conn.h"
#include "ipc_failover_marks.h"
#include "ipc_membership.h"
#include "ipc_outbox.h"
#include "ipc_reports.h"
#include "ipc_router.h"
#include "ipc_stream.h"
#include "ipc_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* At most READ_COUNT entries a read, and about RIPC_READ_BUDGET times
 * max_content_bytes of them (plan_next_read; ripc_read_budget bounds it). */
enum { READ_COUNT = 128 };
/* How long a read blocks while requests wait parked for room. */
static const double PARKED_BLOCK = 0.1;
/* A dispatcher beyond the first retires after a read that waited this long for nothing. */
static const double EXTRA_IDLE = 2.0;
/* Between failed reconnects (a connect, or re-joining the group, failed):
 * from BACKOFF_FIRST doubling to BACKOFF_MAX, or longer while the server's
 * own schedule says so (ipc_server.c); also after Redis refused a read. */
static const double BACKOFF_FIRST = 0.01, BACKOFF_MAX = 0.25;

static void set_conn(ripc_dispatcher *d, redisContext *c)
{
    /* Acknowledgements held for a connection that is gone are dropped: the
     * entries stay pending, and the reconnect's catch-up reads them again. */
    if (!c)
        for (int lane = 0; lane < RIPC_LANES; lane++) ripc_ack_batch_free(&d->held[lane]);
    ripc_conn_swap(&d->mutex, &d->conn, c);
}

/* Queues the held acknowledgements on the connection, ahead of the next
 * read. Returns how many commands (names[] gets theirs), -1 when c failed. */
static int queue_held(ripc_dispatcher *d, const char *names[2 * RIPC_LANES])
{
    int queued = 0;
    for (int lane = 0; lane < RIPC_LANES; lane++) {
        int n = d->held[lane].count ? ripc_ack_batch_append(d->stream, d->conn, &d->held[lane], 0, names + queued) : 0;
        if (n < 0) return -1;
        queued += n;
    }
    return queued;
}

/* Sends what is held now (the dispatcher ends). */
static void send_held(ripc_dispatcher *d)
{
    const char *names[2 * RIPC_LANES];
    int queued = d->conn && !d->conn->err ? queue_held(d, names) : -1;
    if (queued > 0) ripc_ack_batch_read(d->stream, d->conn, queued, names);
}

/* Opens a dispatcher connection and learns its CLIENT ID (see interrupt);
 * NULL while Redis is away. */
static redisContext *open_conn(ripc_dispatcher *d, ripc_error *err)
{
    redisContext *c = ripc_server_connect(d->stream->server, d->stream->options.block_timeout, err);
    if (!c) return NULL;
    redisReply *id = redisCommand(c, "CLIENT ID");
    d->client_id = id && id->type == REDIS_REPLY_INTEGER ? id->integer : 0;
    if (id) freeReplyObject(id);
    return c;
}

/* The size of the largest entry of an entries array, in bytes of its values. */
static size_t largest_entry(const redisReply *entries)
{
    size_t largest = 0;
    for (size_t i = 0; entries && entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        const redisReply *pairs = e->type == REDIS_REPLY_ARRAY && e->elements > 1 ? e->element[1] : NULL;
        size_t size = 0;
        for (size_t j = 0; pairs && pairs->type == REDIS_REPLY_ARRAY && j < pairs->elements; j++)
            if (pairs->element[j]->type == REDIS_REPLY_STRING) size += pairs->element[j]->len;
        if (size > largest) largest = size;
    }
    return largest;
}

/* How many entries the next read asks for. Requests for us beyond the room
 * would be parked on this consumer, out of reach of the group's other
 * instances: so about the room, plus as many as the last read brought for
 * others (replies, other groups' traffic), which cost no room. And a read
 * holds every entry it returns at once, whatever their size: the count
 * shrinks when large entries come, so that a read stays near
 * RIPC_READ_BUDGET times max_content_bytes, and grows back as they stop.
 * (A read that brings more all the same is abandoned: see the loop.) */
static void plan_next_read(ripc_dispatcher *d, const redisReply *const by_lane[RIPC_LANES], const ripc_routed *routed)
{
    ripc_stream *s = d->stream;
    size_t largest = 0, read = 0;
    for (int lane = 0; lane < RIPC_LANES; lane++) {
        size_t lane_largest = largest_entry(by_lane[lane]);
        if (lane_largest > largest) largest = lane_largest;
        if (by_lane[lane] && by_lane[lane]->type == REDIS_REPLY_ARRAY) read += by_lane[lane]->elements;
    }
    d->largest = largest > d->largest / 2 ? largest : d->largest / 2;
    /* COUNT applies to each lane: a read may bring that many from each. */
    size_t by_size = s->options.max_content_bytes * RIPC_READ_BUDGET / (d->largest > 1024 ? d->largest : 1024) / RIPC_LANES;
    d->others = read - routed->requests;
    d->cap = by_size < READ_COUNT ? (by_size < 1 ? 1 : (int)by_size) : READ_COUNT;
    size_t by_room = ripc_inflight_room(&s->inflight) + d->others;
    d->count = by_room < (size_t)d->cap ? (by_room < 1 ? 1 : (int)by_room) : d->cap;
}

/* The count of the read about to be issued: the plan, its room reserved
 * now (another dispatcher may have read on the room the plan saw; what is
 * not reserved is not asked for). *granted: the room to give back once the
 * read's requests are taken. *room_bound: the room, not the size of the
 * entries nor READ_COUNT, kept the read smaller. */
static int count_now(ripc_dispatcher *d, size_t *granted, int *room_bound)
{
    size_t want = (size_t)d->count > d->others ? (size_t)d->count - d->others : 0;
    *granted = ripc_inflight_reserve(&d->stream->inflight, want);
    size_t count = *granted + d->others;
    if (count > (size_t)d->count) count = (size_t)d->count;
    if (count < 1) count = 1;
    *room_bound = count < (size_t)d->cap;
    return (int)count;
}

/* Routes what waits on this dispatcher's own consumer: requests parked for
 * lack of room, and entries Redis delivered to a connection that was cut
 * before they arrived (CLIENT KILL, a timeout), while there is room. Sets
 * d->parked when some stay (or the history was longer than one look). */
static void catch_up(ripc_dispatcher *d, redisContext *c, int redelivered, ripc_error *err)
{
    ripc_routed routed = { 0, 0 };
    int complete = 1;
    for (int lane = 0; lane < RIPC_LANES && !c->err && !routed.parked; lane++) {
        int lane_complete;
        ripc_route_history(d->stream, c, lane, d->name, d->count, redelivered, &routed, &lane_complete, err);
        complete = complete && lane_complete;
    }
    d->parked = routed.parked || !complete;
}

static redisContext *reconnect(ripc_dispatcher *d, ripc_error *err)
{
    ripc_stream *s = d->stream;
    redisContext *c = open_conn(d, err);
    if (!c) return NULL;
    if (ripc_membership_join(s, c, err) != RIPC_OK) {
        ripc_conn_close(c);
        return NULL;
    }
    ripc_stream_accepted(s, RIPC_REFUSAL_JOIN);
    /* After a failover, what waits on this consumer may have been handled
     * before (the acknowledgement lost with the old primary): flagged.
     * And requests of ours written before it are written again. */
    unsigned long epoch = ripc_conn_epoch(c);
    int failed_over = d->epoch && epoch != d->epoch;
    d->epoch = epoch;
    if (failed_over) ripc_failover_mark(s, c);
    catch_up(d, c, failed_over, err);
    if (c->err) {
        ripc_conn_close(c);
        return NULL;
    }
    if (failed_over) ripc_outbox_resend_lost(&s->outbox);
    return c;
}

/* Before each read: 1 when the dispatcher should read new entries now.
 * Full (as many requests taken as the consumers may hold), it reads new
 * entries only while a sender of this instance waits (its replies must
 * come, say to a handler that itself sends a request): requests beyond the
 * room stay parked. Otherwise it leaves new entries to the group's other
 * instances and waits for room. With room, parked requests come first. */
enum { READ_NOT_YET, READ_NOW, READ_NEVER };
static int ready_to_read(ripc_dispatcher *d, int extra, ripc_error *err)
{
    ripc_stream *s = d->stream;
    size_t room = ripc_inflight_room(&s->inflight);
    if (room > 0 && d->parked) {
        catch_up(d, d->conn, 0, err);
        return READ_NOT_YET;
    }
    if (room == 0 && ripc_ledger_size(&s->ledger) == 0) {
        /* A helper with nothing parked has no reason to stay: the room is
         * taken or reserved by the first dispatcher's read. */
        if (extra && !d->parked) return READ_NEVER;
        ripc_inflight_wait_room(&s->inflight, ripc_now() + PARKED_BLOCK);
        return READ_NOT_YET;
    }
    return READ_NOW;
}

static void start_helper(ripc_stream *s);
static void retire(ripc_dispatcher *d);

static void *dispatcher_main(void *arg)
{
    ripc_dispatcher *d = arg;
    ripc_stream *s = d->stream;
    char block_ms[32], parked_block_ms[32], count[16];
    /* The first dispatcher always reads; the others help under load and
     * retire after a read that waited EXTRA_IDLE for nothing, or when no
     * room is left for them to read on. */
    int extra = d != &s->dispatchers[0];
    snprintf(block_ms, sizeof(block_ms), "%lld", (long long)((extra ? EXTRA_IDLE : s->options.block_timeout) * 1000));
    snprintf(parked_block_ms, sizeof(parked_block_ms), "%lld", (long long)(PARKED_BLOCK * 1000));
    const char *argv[] = { "XREADGROUP", "GROUP", s->group, d->name, "COUNT", count, "BLOCK", block_ms, "STREAMS",
                           s->lanes[RIPC_LANE_SHARED], s->lanes[RIPC_LANE_REQUESTS], s->lanes[RIPC_LANE_REPLIES], ">", ">", ">" };
    enum { ARGC = 9 + 2 * RIPC_LANES };
    _Static_assert(sizeof(argv) / sizeof(argv[0]) == ARGC, "one key and one > per lane");
    size_t lens[ARGC];
    for (int i = 0; i < ARGC; i++) lens[i] = strlen(argv[i]);
    double backoff = BACKOFF_FIRST;
    ripc_error err;

    while (!atomic_load(&s->stopping)) {
        if (!d->conn) {
            redisContext *c = reconnect(d, &err);
            if (!c) {
                ripc_stream_outage(s, &err);
                double server_wait = ripc_server_retry_at(s->server) - ripc_now();
                if (ripc_stream_sleep(s, server_wait > backoff ? server_wait : backoff)) break;
                backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
                continue;
            }
            set_conn(d, c);
            /* ripc_stream_stop may have run before the connection was visible to it. */
            if (atomic_load(&s->stopping)) break;
        }
        int ready = ready_to_read(d, extra, &err);
        if (ready == READ_NEVER) {
            send_held(d);
            retire(d);
            break;
        }
        if (ready == READ_NOT_YET) {
            if (d->conn->err && !atomic_load(&s->stopping)) {
                ripc_stream_outage(s, &err);
                set_conn(d, NULL);
            }
            continue;
        }
        /* While requests wait parked, a short block: room is looked at again soon. */
        argv[7] = d->parked || ripc_inflight_room(&s->inflight) == 0 ? parked_block_ms : block_ms;
        lens[7] = strlen(argv[7]);
        /* The room this read may fill stays reserved until its requests are taken. */
        size_t granted;
        int room_bound;
        int read_count = count_now(d, &granted, &room_bound);
        snprintf(count, sizeof(count), "%d", read_count);
        lens[5] = strlen(count);
        /* Stop may interrupt the blocking read, never the routing after it:
         * entries read are always routed and acknowledged. */
        pthread_mutex_lock(&d->mutex);
        int stopping = atomic_load(&s->stopping);
        d->reading = !stopping;
        pthread_mutex_unlock(&d->mutex);
        if (stopping) {
            ripc_inflight_unreserve(&s->inflight, granted);
            break;
        }
        double issued = ripc_now();
        size_t bound = ripc_read_budget(s) + (size_t)d->count * RIPC_LANES * 1024; /* entries, ids and framing */
        /* The last read's XACK and XDEL go ahead of this read, in one write. */
        const char *held_names[2 * RIPC_LANES];
        redisReply *held_replies[2 * RIPC_LANES];
        int held = queue_held(d, held_names);
        redisReply *reply = held < 0 ? NULL
            : ripc_conn_run_bounded_after(d->conn, held, held_replies, ARGC, argv, lens, bound, &err);
        if (held < 0) ripc_error_set(&err, RIPC_CONNECTION, "redis connection failed: %s", d->conn->errstr);
        for (int i = 0; reply && i < held; i++) {
            /* Refused, the entries stay pending: reclaimed and routed again later. */
            ripc_stream_note_reply(s, held_names[i], held_names[i], held_replies[i]);
            freeReplyObject(held_replies[i]);
        }
        pthread_mutex_lock(&d->mutex);
        d->reading = 0;
        pthread_mutex_unlock(&d->mutex);
        if (!reply) {
            ripc_inflight_unreserve(&s->inflight, granted);
            if (atomic_load(&s->stopping)) break;
            /* Over the bound, the entries are delivered to this consumer
             * all the same: the reconnect's catch-up reads them as history,
             * measured first (ipc_scripts.c), a few at a time. */
            if (err.code == RIPC_PROTOCOL) d->count = 1;
            else ripc_stream_outage(s, &err);
            set_conn(d, NULL);
            continue;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            ripc_inflight_unreserve(&s->inflight, granted);
            /* The stream or group was deleted (FLUSHALL, DEL, XGROUP DESTROY):
             * NOGROUP, or UNBLOCKED for a read that was waiting. Re-join. */
            int nogroup = ripc_reply_error_starts(reply, "NOGROUP") || ripc_reply_error_starts(reply, "UNBLOCKED");
            if (!nogroup) ripc_stream_refused(s, "XREADGROUP", reply->str, "Redis refused XREADGROUP on stream %s: %s", s->stream, reply->str);
            freeReplyObject(reply);
            if (ripc_membership_join(s, d->conn, &err) != RIPC_OK) set_conn(d, NULL);
            if (!nogroup && ripc_stream_sleep(s, BACKOFF_MAX)) break;
            continue;
        }
        backoff = BACKOFF_FIRST;
        ripc_stream_outage_over(s);
        ripc_stream_accepted_since(s, "XREADGROUP", issued);
        const redisReply *by_lane[RIPC_LANES];
        int any = ripc_read_lanes(s, reply, by_lane);
        ripc_routed routed = { 0, 0 };
        int full = 0;
        for (int lane = 0; any && lane < RIPC_LANES; lane++) {
            const redisReply *entries = by_lane[lane];
            if (!entries || d->conn->err) continue;
            ripc_route_and_ack(s, d->conn, lane, entries, 0, &routed, d->held, &err);
            full |= entries->type == REDIS_REPLY_ARRAY && entries->elements >= (size_t)read_count;
        }
        /* Its requests are taken now: they count against the capacity themselves. */
        ripc_inflight_unreserve(&s->inflight, granted);
        if (any) {
            if (routed.parked) d->parked = 1;
            /* A full batch: more was waiting. Another dispatcher helps,
             * unless the room cut the read (it would find none either). */
            if (!extra && full && !room_bound && d->count > 1) start_helper(s);
            plan_next_read(d, by_lane, &routed);
            if (d->conn->err && !atomic_load(&s->stopping)) {
                ripc_stream_outage(s, &err);
                set_conn(d, NULL);
            }
        }
        int quiet = !any;
        freeReplyObject(reply);
        if (extra && quiet && !d->parked) {
            send_held(d);
            retire(d);
            break;
        }
    }
    send_held(d);
    set_conn(d, NULL);
    return NULL;
}

/* Starts the first dispatcher beyond the first that does not run (none
 * while stopping); a retired one's thread is joined first. */
static void start_helper(ripc_stream *s)
{
    pthread_mutex_lock(&s->dispatchers_mutex);
    for (int i = 1; i < s->options.dispatcher_count && !atomic_load(&s->stopping); i++) {
        ripc_dispatcher *d = &s->dispatchers[i];
        if (d->running) continue;
        ripc_thread_join(&d->thread);
        d->running = ripc_thread_start(&d->thread, "ripc dispatcher", dispatcher_main, d) == 0;
        break;
    }
    pthread_mutex_unlock(&s->dispatchers_mutex);
}

/* A helper dispatcher ends (start_helper joins its thread). */
static void retire(ripc_dispatcher *d)
{
    ripc_stream *s = d->stream;
    pthread_mutex_lock(&s->dispatchers_mutex);
    d->running = 0;
    pthread_mutex_unlock(&s->dispatchers_mutex);
}

int ripc_dispatchers_start(ripc_stream *s, ripc_error *err)
{
    int n = s->options.dispatcher_count;
    free(s->dispatchers);
    s->dispatchers = ripc_xcalloc((size_t)n, sizeof(*s->dispatchers));
    for (int i = 0; i < n; i++) {
        ripc_dispatcher *d = &s->dispatchers[i];
        d->stream = s;
        d->count = 1 + (int)ripc_inflight_room(&s->inflight);
        d->cap = READ_COUNT;
        d->name = s->dispatcher_names[i];
        for (int lane = 0; lane < RIPC_LANES; lane++) ripc_ack_batch_init(&d->held[lane], lane);
        pthread_mutex_init(&d->mutex, NULL);
    }
    /* The first reads from the start (its connection opened here, so that
     * connect fails fast, with the address, when Redis is away); the
     * others start under load (start_helper). */
    ripc_dispatcher *first = &s->dispatchers[0];
    first->conn = open_conn(first, err);
    if (!first->conn) return RIPC_CONNECTION;
    for (int i = 0; i < n; i++) s->dispatchers[i].epoch = ripc_conn_epoch(first->conn);
    first->running = ripc_thread_start(&first->thread, "ripc dispatcher", dispatcher_main, first) == 0;
    if (!first->running) {
        ripc_error_set(err, RIPC_STATE, "could not start a dispatcher thread");
        return RIPC_STATE;
    }
    return RIPC_OK;
}

static int still_reading(ripc_dispatcher *d)
{
    pthread_mutex_lock(&d->mutex);
    int reading = d->reading;
    pthread_mutex_unlock(&d->mutex);
    return reading;
}

/* Ends blocked reads. CLIENT UNBLOCK makes Redis answer the read with
 * nothing, atomically: either entries were delivered (and arrive whole, to
 * be routed) or none were. Cutting the socket instead could lose a reply
 * already on its way, leaving its entries pending on a consumer that is
 * going away. The socket is cut only when Redis cannot be asked. */
void ripc_dispatchers_interrupt(ripc_stream *s)
{
    /* None reading (a connect that failed before they started): asking
     * for a connection would only wait out a second connect_timeout. */
    int any_reading = 0;
    for (int i = 0; s->dispatchers && i < s->options.dispatcher_count; i++) any_reading |= still_reading(&s->dispatchers[i]);
    if (!any_reading) return;
    redisContext *c = NULL;
    ripc_error err;
    int have_conn = ripc_pool_checkout(&s->pool, ripc_now() + 0.5, &c, &err) == RIPC_OK;
    for (int i = 0; s->dispatchers && i < s->options.dispatcher_count; i++) {
        ripc_dispatcher *d = &s->dispatchers[i];
        /* A read sent but not yet blocked in Redis answers 0: ask again
         * until the thread is out of its read, for up to a second. */
        double give_up = ripc_now() + 1.0;
        while (have_conn && d->client_id && still_reading(d) && ripc_now() < give_up) {
            redisReply *r = redisCommand(c, "CLIENT UNBLOCK %lld", d->client_id);
            int unblocked = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
            if (r) freeReplyObject(r);
            if (!r) have_conn = 0;
            if (!unblocked && still_reading(d)) {
                struct timespec pause = { 0, 5 * 1000 * 1000 };
                nanosleep(&pause, NULL);
            }
        }
        pthread_mutex_lock(&d->mutex);
        if (d->reading) ripc_conn_interrupt(d->conn);
        pthread_mutex_unlock(&d->mutex);
    }
    if (c) ripc_pool_checkin(&s->pool, c, !have_conn || c->err);
}

void ripc_dispatchers_cut(ripc_stream *s)
{
    for (int i = 0; s->dispatchers && i < s->options.dispatcher_count; i++) {
        ripc_dispatcher *d = &s->dispatchers[i];
        pthread_mutex_lock(&d->mutex);
        if (d->conn && ripc_server_replaced(s->server, d->conn)) ripc_conn_interrupt(d->conn);
        pthread_mutex_unlock(&d->mutex);
    }
}

void ripc_dispatchers_join(ripc_stream *s)
{
    for (int i = 0; s->dispatchers && i < s->options.dispatcher_count; i++) {
        ripc_dispatcher *d = &s->dispatchers[i];
        ripc_thread_join(&d->thread);
        set_conn(d, NULL);
        pthread_mutex_destroy(&d->mutex);
    }
}
