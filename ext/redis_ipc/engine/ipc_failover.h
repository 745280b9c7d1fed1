/* Following a failover of the primary (ipc_failover.c): the stream's side
 * of what ipc_topology.c notices. */
#ifndef RIPC_FAILOVER_H
#define RIPC_FAILOVER_H

#include <hiredis/hiredis.h>

struct ripc_stream;
struct ripc_entry;

/* Run by the service thread after each beat: asks the server whether its
 * primary changed (ripc_server_poll) and, when the server counted a
 * failover since the last call, leaves the old primary: idle pool
 * connections closed, dispatchers' connections cut (they reconnect, read
 * again what waits on their consumers, flagged redelivered, and have the
 * outbox write again the requests still waiting: ipc_dispatcher.c), and
 * no peer judged dead until all had the time to beat on the new primary.
 * Nothing on a server that does not fail over. */
void ripc_failover_check(struct ripc_stream *s);
/* At connect: the failovers so far are not this stream's to follow. */
void ripc_failover_reset(struct ripc_stream *s);

/* A request read from a new primary may have been handed out, and run, on
 * the old one already: the old primary passed the entry to its replica,
 * then handed it to a consumer, and that delivery was lost with it. Read
 * again as new on the new primary, possibly by another instance, it must
 * be flagged. Those entries were written before the failover: a dispatcher
 * that rejoins after one marks the time (on the server's clock, c its new
 * connection), and requests whose Redis id is not later are flagged. */
void ripc_failover_mark(struct ripc_stream *s, redisContext *c);
/* 1 when request e may have run already, on the old primary (above) or in
 * this instance (a copy written again under the same id: the outbox marks
 * copies for groups of ours, this catches the ones it could not mark). On
 * a server that fails over; 0 otherwise. */
int ripc_failover_may_have_run(struct ripc_stream *s, const struct ripc_entry *e);

#endif
