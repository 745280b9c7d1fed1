/* What a failover may have run twice (ipc_failover_marks.c): asked by the
 * router of every request it hands out on a server that fails over, kept
 * apart from ipc_failover.c (which drives the dispatchers) so that the
 * router, below the dispatchers, may ask it. */
#ifndef RIPC_FAILOVER_MARKS_H
#define RIPC_FAILOVER_MARKS_H

#include <hiredis/hiredis.h>

struct ripc_stream;
struct ripc_entry;

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
