#ifndef REDIS_IPC_EXT_H
#define REDIS_IPC_EXT_H

#include <ruby.h>
#include "../engine/redis_ipc.h"

/* Exception classes, defined in lib/redis_ipc/errors.rb and pinned at load. */
extern VALUE rb_eRedisIPCError, rb_eRedisIPCTimeoutError, rb_eRedisIPCConnectionError, rb_eRedisIPCCommandError,
    rb_eRedisIPCConfigurationError;

void Init_redis_ipc_engine(VALUE mRedisIPC);
void Init_redis_ipc_pending(VALUE mRedisIPC);

/* convert.c: what every binding file needs. */
NORETURN(void rbipc_raise(const ripc_error *err));
/* Raises the exception for a request that ended without a reply. */
NORETURN(void rbipc_raise_outcome(int rc, ripc_request *request, const char *to, double timeout));
/* [redis_id, id, instance_id, status, content, source_group, destination_group, redelivered] */
VALUE rbipc_entry_to_array(const ripc_entry *e);
/* Waits, GVL released and interruptible, until fd is readable or the deadline (0: none). */
void rbipc_wait_readable(int fd, double deadline);
/* Waits for a request's outcome, until its own deadline or `limit` (0: none,
 * else RIPC_AGAIN when it passes first). */
int rbipc_wait_reply(ripc_request *r, double limit, ripc_entry **reply);

/* pending_class.c: wraps a request sent with send_request_async. */
VALUE rbipc_pending_new(ripc_request *request, char *to, double timeout);

#endif
