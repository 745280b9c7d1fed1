/* The ACL check of connect (ipc_permissions.c). */
#ifndef RIPC_PERMISSIONS_H
#define RIPC_PERMISSIONS_H

#include <hiredis/hiredis.h>
#include "redis_ipc.h"

struct ripc_stream;
/* RIPC_COMMAND (naming every command refused, and the key or channel when
 * Redis says that is what is missing) when the Redis user may not run a
 * command the engine needs on this stream's keys; RIPC_CONNECTION when c
 * fails. Writes nothing. */
int ripc_permissions_check(struct ripc_stream *s, redisContext *c, ripc_error *err);

#endif
