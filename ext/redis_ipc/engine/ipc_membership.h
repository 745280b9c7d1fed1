/* Membership (ipc_membership.c): a group and this instance's place in it. */
#ifndef RIPC_MEMBERSHIP_H
#define RIPC_MEMBERSHIP_H

#include <hiredis/hiredis.h>
#include "redis_ipc.h"

struct ripc_stream;

/* Creates the group and registers this instance (idempotent,
 * so it runs again after Redis lost its data). */
int ripc_membership_join(struct ripc_stream *s, redisContext *c, ripc_error *err);
void ripc_membership_leave(struct ripc_stream *s, redisContext *c);

#endif
