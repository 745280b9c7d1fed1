/* Following a failover of the primary (ipc_failover.c): the stream's side
 * of what ipc_topology.c notices. */
#ifndef RIPC_FAILOVER_H
#define RIPC_FAILOVER_H

struct ripc_stream;

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

#endif
