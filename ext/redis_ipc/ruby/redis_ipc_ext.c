/* Entry point of the extension: looks up the error classes the Ruby layer
 * defined, then sets up each binding. */
#include "redis_ipc_ext.h"

VALUE rb_eRedisIPCError, rb_eRedisIPCTimeoutError, rb_eRedisIPCConnectionError, rb_eRedisIPCCommandError,
    rb_eRedisIPCConfigurationError;

static VALUE pinned_class(VALUE under, const char *name)
{
    VALUE klass = rb_const_get(under, rb_intern(name));
    rb_gc_register_mark_object(klass);
    return klass;
}

RUBY_FUNC_EXPORTED void Init_redis_ipc(void)
{
    VALUE mRedisIPC = rb_define_module("RedisIPC");
    /* lib/redis_ipc.rb requires errors.rb before the extension. */
    rb_eRedisIPCError = pinned_class(mRedisIPC, "Error");
    rb_eRedisIPCTimeoutError = pinned_class(mRedisIPC, "TimeoutError");
    rb_eRedisIPCConnectionError = pinned_class(mRedisIPC, "ConnectionError");
    rb_eRedisIPCCommandError = pinned_class(mRedisIPC, "CommandError");
    rb_eRedisIPCConfigurationError = pinned_class(mRedisIPC, "ConfigurationError");
    Init_redis_ipc_engine(mRedisIPC);
    Init_redis_ipc_pending(mRedisIPC);
}
