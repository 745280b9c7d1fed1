/* Whether a group has anyone to answer a request: the check behind
 * RedisIPC::NoRespondersError (a send to a group with no live member fails
 * at once instead of waiting out its timeout). */
#ifndef RIPC_RESPONDERS_H
#define RIPC_RESPONDERS_H

struct ripc_stream;

/* 0 when `group` has no live member on the stream: no such consumer group,
 * or none of its instances alive. Alive means what it means to takeovers
 * and reclaims (ipc_liveness.c): an instance of this engine that beat
 * within dead_after on the server's clock, or a member that does not beat
 * (1.x) whose consumer read within reclaim_idle. 1 otherwise, and in any
 * doubt (Redis unreachable, a command refused, the stream not connected,
 * no connection of the pool free at once):
 * the check must never fail a send the group would have answered. One
 * round trip on a connection of the stream's pool (two when the server
 * clock is due for a TIME). */
int ripc_responders_alive(struct ripc_stream *s, const char *group);

/* 1 when every consumer of `group` belongs to an instance of this engine
 * (listed in its instances key): then an entry may carry a field beyond
 * the six of the 1.x wire. 0 when one may be 1.x (or Redis refused to
 * tell). -1 when Redis could not be asked (no connection, or it failed):
 * the caller must not take that for either answer. */
int ripc_responders_only_ours(struct ripc_stream *s, const char *group);

#endif
