#include "ipc_failover_marks.h"
#include "ipc_conn.h"
#include "ipc_entry.h"
#include "ipc_server_clock.h"
#include "ipc_stream.h"

#include <stdlib.h>

/* Entries stamped up to this long after the new primary's clock when a
 * dispatcher rejoins also count as written before the failover: the old
 * primary's clock, which stamped them, may run a little ahead. (Every ms
 * of it flags that much of the traffic written after the failover.) */
static const long long MARK_SLACK_MS = 100;

void ripc_failover_mark(ripc_stream *s, redisContext *c)
{
    /* The first dispatcher to rejoin after a failover marks it, at the
     * earliest; one that rejoins later (a helper started long after) must
     * not flag what was written since. The epoch is stored after the mark:
     * a dispatcher that finds it stored reads with the mark in place. */
    unsigned long epoch = ripc_conn_epoch(c), marked = atomic_load(&s->marked_epoch);
    if (epoch <= marked) return;
    ripc_error err;
    /* TIME of the new primary itself (max_age 0): it answers after it
     * took the role, so every entry it got from the old one is older. */
    long long now = ripc_server_clock_ms(&s->liveness.clock, c, 0, &err);
    if (now < 0) now = ripc_server_clock_estimate_ms(&s->liveness.clock);
    long long mark = now + MARK_SLACK_MS, seen = atomic_load(&s->failover_mark_ms);
    while (mark > seen && !atomic_compare_exchange_weak(&s->failover_mark_ms, &seen, mark)) {}
    while (epoch > marked && !atomic_compare_exchange_weak(&s->marked_epoch, &marked, epoch)) {}
}

int ripc_failover_may_have_run(ripc_stream *s, const ripc_entry *e)
{
    if (!ripc_server_fails_over(s->server)) return 0;
    /* A Redis entry id is <ms>-<seq>, ms from the clock of the primary that wrote it. */
    long long mark = atomic_load(&s->failover_mark_ms);
    int before = mark > 0 && strtoll(e->redis_id, NULL, 10) <= mark;
    /* Asked of every request, so that each is remembered. */
    int again = ripc_inflight_again(&s->inflight, ripc_entry_field(e, RIPC_FIELD_ID));
    return before || again;
}
