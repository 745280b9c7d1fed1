/* The housekeeper: a stream's chores, run by the service thread
 * (ipc_service.c) when due. It ends expired ledger slots, takes over dead
 * instances that the heartbeat found (ipc_liveness.c),
 * reads the inbox (the consumer that other instances of our group, 1.x ones
 * included, hand our replies to), reclaims entries left pending too long by
 * dead consumers, sends the lazy acknowledgements nothing took along
 * (ipc_lazy_acks.c), and trims the stream (ipc_retention.c). */
#include "ipc_housekeeper.h"
#include "ipc_conn.h"
#include "ipc_reports.h"
#include "ipc_retention.h"
#include "ipc_router.h"
#include "ipc_service.h"
#include "ipc_stream.h"
#include "ipc_util.h"

#include <stdio.h>
#include <string.h>

/* While a sender waits, replies handed to our inbox must be seen quickly
 * (RIPC_INBOX_BUSY); when nobody waits, a rare sweep only tidies up. */
static const double INBOX_BUSY = RIPC_INBOX_BUSY, INBOX_IDLE = 10.0;

/* Reads every entry pending on our inbox consumer and routes it. Returns
 * how many it took, counting requests parked for lack of room (to be swept
 * again soon); requests still being handled stay in the inbox and do not
 * count, or a long handler would keep the sweep at its busy pace. Peers
 * hand replies to it on the shared stream only; on the direct lanes only
 * this instance's own takeovers and reclaims fill it, and they ring
 * (all_lanes), so an idle instance never reads the direct lanes' inboxes. */
static size_t sweep_inbox(ripc_stream *s, redisContext *c, int all_lanes, ripc_error *err)
{
    /* Requests reach our inbox only by takeover or reclaim: redelivered. */
    ripc_routed routed = { 0, 0 };
    size_t taken = 0;
    for (int lane = 0; lane < (all_lanes ? RIPC_LANES : 1) && !c->err; lane++) {
        int complete;
        taken += ripc_route_history(s, c, lane, s->inbox, 128, 1, &routed, &complete, err);
    }
    return taken + routed.parked;
}

static double earliest(const ripc_chores *due)
{
    double next = due->ledger;
    if (due->inbox < next) next = due->inbox;
    if (due->reclaim < next) next = due->reclaim;
    if (due->trim < next) next = due->trim;
    if (due->routes < next) next = due->routes;
    return next;
}

/* Gives the service thread back to a beat that is due, or to stop. */
static int must_yield(ripc_stream *s)
{
    return atomic_load(&s->stopping) || ripc_service_beat_waiting();
}

/* The chores that talk to Redis, one step at a time: between steps a due
 * beat (of any stream) takes precedence, and what was not done stays due.
 * Returns 1 when it gave way before the end. */
static int run_redis_chores(ripc_stream *s, redisContext *c, ripc_chores *due, double now, int waiting, int acks)
{
    ripc_error err;
    const ripc_options *o = &s->options;
    while (ripc_liveness_pending(s) > 0 && !c->err) {
        ripc_liveness_take_over_one(s, c, &err);
        if (must_yield(s)) return 1;
    }
    if (!c->err && now >= due->reclaim) {
        ripc_liveness_reclaim(s, c, &err);
        due->reclaim = now + o->reclaim_idle / 2;
        if (must_yield(s)) return 1;
    }
    if (!c->err && now >= due->trim) {
        ripc_retention_trim(s, c);
        due->trim = now + (o->retention / 10 < 60 ? o->retention / 10 : 60);
        if (must_yield(s)) return 1;
    }
    if (!c->err && now >= due->inbox) {
        int all_lanes = due->inbox_all_lanes;
        size_t seen = sweep_inbox(s, c, all_lanes, &err);
        if (all_lanes && !c->err) due->inbox_all_lanes = 0;
        due->inbox = now + (seen || waiting ? INBOX_BUSY : INBOX_IDLE);
        if (must_yield(s)) return 1;
    }
    if (!c->err && now >= due->routes) {
        due->routes = ripc_routes_refresh(s, c, &err);
        if (must_yield(s)) return 1;
    }
    if (!c->err && acks) ripc_send_lazy_acks(s, c, &err);
    return 0;
}

void ripc_housekeeper_reset(ripc_stream *s)
{
    const ripc_options *o = &s->options;
    double now = ripc_now();
    ripc_chores *due = &s->chores;
    due->ledger = now + o->cleanup_interval;
    due->inbox = now;
    due->inbox_all_lanes = 1;
    due->routes = now;
    due->reclaim = now + o->reclaim_idle / 2;
    due->trim = o->retention > 0 ? now + 1.0 : 1e300;
}

double ripc_housekeeper_tick(ripc_stream *s)
{
    const ripc_options *o = &s->options;
    ripc_chores *due = &s->chores;
    ripc_error err;
    if (atomic_load(&s->stopping)) return ripc_now() + 3600;
    /* Acknowledgements of answered requests that no write took along. */
    ripc_outbox_flush_acks(&s->outbox);
    double now = ripc_now();
    if (now >= due->ledger) {
        ripc_ledger_sweep(&s->ledger, now);
        due->ledger = now + o->cleanup_interval;
    }
    int waiting = ripc_ledger_size(&s->ledger) > 0;
    if (waiting && due->inbox > now + INBOX_BUSY) due->inbox = now + INBOX_BUSY; /* a sender started waiting */
    if (atomic_exchange(&s->inbox_rung, 0)) due->inbox = now, due->inbox_all_lanes = 1; /* handed or claimed to us */
    if (atomic_exchange(&s->routes_wanted, 0)) due->routes = now;              /* a sender met a new group */
    int takeovers = ripc_liveness_pending(s) > 0;
    double acks_due = ripc_lazy_acks_due(&s->lazy_acks);
    int acks = acks_due > 0 && now >= acks_due;
    if (takeovers || acks || now >= due->inbox || now >= due->reclaim || now >= due->trim || now >= due->routes) {
        redisContext *c = ripc_service_checkout(s, &err);
        if (c) {
            int yielded = run_redis_chores(s, c, due, now, waiting, acks);
            ripc_service_checkin(s, c);
            if (yielded) return now; /* the rest as soon as the beat is sent */
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
            if (due->inbox < retry) due->inbox = retry;
            if (due->reclaim < retry) due->reclaim = retry;
            if (due->trim < retry) due->trim = retry;
            if (due->routes < retry) due->routes = retry;
        }
    }
    double next = earliest(due);
    acks_due = ripc_lazy_acks_due(&s->lazy_acks);
    if (acks_due > 0 && acks_due < next) next = acks_due;
    return next;
}
