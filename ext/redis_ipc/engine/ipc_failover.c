#include "ipc_failover.h"
#include "ipc_dispatcher.h"
#include "ipc_stream.h"

void ripc_failover_reset(ripc_stream *s)
{
    s->seen_epoch = ripc_server_epoch(s->server);
    atomic_store(&s->failover_mark_ms, 0);
    atomic_store(&s->marked_epoch, s->seen_epoch);
}

void ripc_failover_check(ripc_stream *s)
{
    if (!ripc_server_fails_over(s->server)) return;
    ripc_server_poll(s->server);
    unsigned long epoch = ripc_server_epoch(s->server);
    if (epoch == s->seen_epoch) return;
    s->seen_epoch = epoch;
    /* Peers' beats of the last moments went to the old primary and are
     * lost: nobody is judged dead for twice dead_after, time enough for
     * every live instance to follow and beat on the new one. */
    s->liveness.watch_since = ripc_now() + s->options.dead_after;
    atomic_store(&s->liveness.judging, 0);
    ripc_pool_close_idle(&s->pool);
    ripc_dispatchers_cut(s);
}
