/* Membership (ipc_membership.c): a group and this instance's place in it. */
#ifndef RIPC_MEMBERSHIP_H
#define RIPC_MEMBERSHIP_H

#include <hiredis/hiredis.h>
#include "redis_ipc.h"

struct ripc_stream;

/* Creates the group and registers this instance (idempotent,
 * so it runs again after Redis lost its data). */
int ripc_membership_join(struct ripc_stream *s, redisContext *c, ripc_error *err);
/* Takes this instance's consumers off the group where they hold nothing;
 * returns 1 when some still hold entries (or that could not be seen). The
 * instance itself leaves with ripc_liveness_leave. */
int ripc_membership_leave(struct ripc_stream *s, redisContext *c);

#endif
