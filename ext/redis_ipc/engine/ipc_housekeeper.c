/* The housekeeper thread: ends expired ledger slots, takes over dead
 * instances that the heartbeat thread found (ipc_liveness.c),
 * reads the inbox (the consumer that other instances of our group, 1.x ones
 * included, hand our replies to), reclaims entries left pending too long by
 * dead consumers, sends the lazy acknowledgements nothing took along
 * (ipc_lazy_acks.c), and trims the stream (ipc_retention.c). */
#include "ipc_stream_internal.h"
#include "ipc_conn.h"
#include "ipc_util.h"

#include <stdio.h>
#include <string.h>

/* While a sender waits, replies handed to our inbox must be seen quickly
 * (RIPC_INBOX_BUSY); when nobody waits, a rare sweep only tidies up. */
static const double INBOX_BUSY = RIPC_INBOX_BUSY, INBOX_IDLE = 10.0;

/* Reads every entry pending on our inbox consumer (XREADGROUP ... 0 pages
 * through history) and routes it. Returns how many it took; requests still
 * being handled stay in the inbox and do not count, or a long handler would
 * keep the sweep at its busy pace. */
static size_t sweep_inbox(ripc_stream *s, redisContext *c, ripc_error *err)
{
    char from[64] = "0";
    size_t seen = 0;
    for (int page = 0; page < 64; page++) {
        redisReply *r = redisCommand(c, "XREADGROUP GROUP %s %s COUNT 128 STREAMS %s %s",
                                     s->group, s->inbox, s->stream, from);
        if (!r) {
            ripc_error_set(err, RIPC_CONNECTION, "redis connection failed: %s", c->errstr);
            return seen;
        }
        /* Keyed apart from the dispatchers' XREADGROUP, which clears its own. */
        ripc_stream_note_reply(s, "inbox XREADGROUP", "XREADGROUP of this instance's inbox", r);
        const redisReply *entries = NULL;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
            r->element[0]->elements == 2)
            entries = r->element[0]->element[1];
        if (!entries || entries->type != REDIS_REPLY_ARRAY || entries->elements == 0) {
            freeReplyObject(r);
            return seen;
        }
        const redisReply *last = entries->element[entries->elements - 1];
        if (last->type == REDIS_REPLY_ARRAY && last->elements >= 1 && last->element[0]->type == REDIS_REPLY_STRING)
            snprintf(from, sizeof(from), "%s", last->element[0]->str);
        /* Requests reach our inbox only by takeover or reclaim: redelivered. */
        ripc_routed routed = { 0, 0 };
        seen += ripc_route_and_ack(s, c, entries, 1, &routed, err) + routed.parked; /* parked: sweep again soon */
        freeReplyObject(r);
        if (c->err) return seen;
    }
    return seen;
}

/* Each chore runs when due; the thread sleeps until the next one is. */
typedef struct chores {
    double ledger, inbox, reclaim, trim;
} chores;

static double earliest(const chores *due)
{
    double next = due->ledger;
    if (due->inbox < next) next = due->inbox;
    if (due->reclaim < next) next = due->reclaim;
    if (due->trim < next) next = due->trim;
    return next;
}

static void run_redis_chores(ripc_stream *s, redisContext *c, chores *due, double now, int waiting, int acks)
{
    ripc_error err;
    const ripc_options *o = &s->options;
    ripc_liveness_take_overs(s, c, &err);
    if (!c->err && now >= due->reclaim) {
        ripc_liveness_reclaim(s, c, &err);
        due->reclaim = now + o->reclaim_idle / 2;
    }
    if (!c->err && now >= due->trim) {
        ripc_retention_trim(s, c);
        due->trim = now + (o->retention / 10 < 60 ? o->retention / 10 : 60);
    }
    if (!c->err && now >= due->inbox) {
        size_t seen = sweep_inbox(s, c, &err);
        due->inbox = now + (seen || waiting ? INBOX_BUSY : INBOX_IDLE);
    }
    if (!c->err && acks) ripc_send_lazy_acks(s, c, &err);
}

static void *housekeeper_main(void *arg)
{
    ripc_stream *s = arg;
    const ripc_options *o = &s->options;
    double now = ripc_now();
    chores due = {
        .ledger = now + o->cleanup_interval,
        .inbox = now,
        .reclaim = now + o->reclaim_idle / 2,
        .trim = now + 1.0,
    };
    if (o->retention <= 0) due.trim = 1e300;
    ripc_error err;

    while (!atomic_load(&s->stopping)) {
        atomic_store(&s->housekeeper_nudged, 0);
        now = ripc_now();
        if (now >= due.ledger) {
            ripc_ledger_sweep(&s->ledger, now);
            due.ledger = now + o->cleanup_interval;
        }
        int waiting = ripc_ledger_size(&s->ledger) > 0;
        if (waiting && due.inbox > now + INBOX_BUSY) due.inbox = now + INBOX_BUSY; /* a sender started waiting */
        if (atomic_exchange(&s->inbox_rung, 0)) due.inbox = now;                  /* a reply was handed to us */
        int takeovers = ripc_liveness_pending(s) > 0;
        double acks_due = ripc_lazy_acks_due(&s->lazy_acks);
        int acks = acks_due > 0 && now >= acks_due;
        if (takeovers || acks || now >= due.inbox || now >= due.reclaim || now >= due.trim) {
            redisContext *c;
            if (ripc_pool_checkout(&s->pool, 0, &c, &err) == RIPC_OK) {
                run_redis_chores(s, c, &due, now, waiting, acks);
                ripc_pool_checkin(&s->pool, c, c->err != 0);
            } else {
                ripc_stream_outage(s, &err);
                /* Entries whose lazy acknowledgement is dropped here stay
                 * pending and come back through reclaim, to be acknowledged then. */
                if (acks) {
                    size_t n;
                    char **ids = ripc_lazy_acks_take(&s->lazy_acks, &n);
                    ripc_lazy_acks_free(ids, n);
                }
                double retry = now + o->heartbeat_interval;
                if (due.inbox < retry) due.inbox = retry;
                if (due.reclaim < retry) due.reclaim = retry;
                if (due.trim < retry) due.trim = retry;
            }
        }
        double next = earliest(&due);
        acks_due = ripc_lazy_acks_due(&s->lazy_acks);
        if (acks_due > 0 && acks_due < next) next = acks_due;
        double wait = next - ripc_now();
        if (wait > 0 && ripc_stream_sleep(s, wait, 1)) break;
    }
    return NULL;
}

int ripc_housekeeper_start(ripc_stream *s, ripc_error *err)
{
    if (ripc_thread_start(&s->housekeeper, "ripc housekeep", housekeeper_main, s) == 0) return RIPC_OK;
    ripc_error_set(err, RIPC_STATE, "could not start the housekeeper thread");
    return RIPC_STATE;
}

void ripc_housekeeper_join(ripc_stream *s)
{
    ripc_thread_join(&s->housekeeper);
}
