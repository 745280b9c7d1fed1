#ifndef REDIS_IPC_EXT_H
#define REDIS_IPC_EXT_H

#include <ruby.h>
#include "../engine/redis_ipc.h"

/* Exception classes, defined in lib/redis_ipc/errors.rb and pinned at load. */
extern VALUE rb_eRedisIPCError, rb_eRedisIPCTimeoutError, rb_eRedisIPCConnectionError;

void Init_redis_ipc_engine(VALUE mRedisIPC);

#endif
