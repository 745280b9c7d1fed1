/* Helpers shared by the binding files: errors, entries, and waiting. */
#include "redis_ipc_ext.h"

#include <errno.h>
#include <ruby/io.h>

void rbipc_raise(const ripc_error *err)
{
    VALUE klass;
    switch (err->code) {
    case RIPC_TIMEOUT: klass = rb_eRedisIPCTimeoutError; break;
    case RIPC_CONNECTION: case RIPC_CLOSED: klass = rb_eRedisIPCConnectionError; break;
    case RIPC_ARGUMENT: klass = rb_eArgError; break;
    case RIPC_COMMAND: klass = rb_eRedisIPCCommandError; break;
    case RIPC_CONFIGURATION: klass = rb_eRedisIPCConfigurationError; break;
    default: klass = rb_eRedisIPCError; break;
    }
    rb_raise(klass, "%s", err->message);
}

void rbipc_raise_outcome(int rc, ripc_request *request, const char *to, double timeout)
{
    const char *request_id = ripc_request_id(request);
    switch (rc) {
    case RIPC_COMMAND:
        rb_raise(rb_eRedisIPCCommandError, "Redis refused the request to group %s: %s", to, ripc_request_error(request));
    case RIPC_TIMEOUT:
        rb_raise(rb_eRedisIPCTimeoutError, "no reply from group %s within %.3gs (request %s)", to, timeout, request_id);
    case RIPC_CLOSED:
        rb_raise(rb_eRedisIPCConnectionError, "stream disconnected while waiting for a reply from group %s", to);
    case RIPC_STATE:
        rb_raise(rb_eRedisIPCError, "the reply to request %s was already taken", request_id);
    default:
        rb_raise(rb_eRedisIPCConnectionError, "%s while waiting for a reply from group %s", ripc_strerror(rc), to);
    }
}

VALUE rbipc_entry_to_array(const ripc_entry *e)
{
    VALUE a = rb_ary_new_capa(3 + RIPC_FIELD_COUNT);
    rb_ary_push(a, e->redis_id ? rb_utf8_str_new_cstr(e->redis_id) : Qnil);
    for (int i = 0; i < RIPC_FIELD_COUNT; i++) {
        const ripc_bytes *f = &e->fields[i];
        rb_ary_push(a, f->ptr ? rb_utf8_str_new(f->ptr, (long)f->len) : Qnil);
    }
    rb_ary_push(a, e->redelivered ? Qtrue : Qfalse);
    rb_ary_push(a, INT2FIX(e->lane)); /* where its answer goes (engine_respond) */
    return a;
}

/* Ruby's own I/O wait releases the GVL with an unblocking function that
 * every kind of interrupt reaches (Thread#kill, Thread#raise, Timeout, a
 * signal such as SIGINT for the main thread) and raises here when one is
 * pending; callers hold their C memory under rb_ensure. This is why the
 * engine's waits are file descriptors rather than condition variables. */
void rbipc_wait_readable(int fd, double deadline)
{
    struct timeval tv, *tvp = NULL;
    if (deadline > 0) {
        double left = deadline - ripc_monotonic_now();
        if (left < 0) left = 0;
        tv.tv_sec = (time_t)left;
        tv.tv_usec = (suseconds_t)((left - (double)tv.tv_sec) * 1e6);
        tvp = &tv;
    }
    rb_wait_for_single_fd(fd, RB_WAITFD_IN, tvp);
}

typedef struct watch_args {
    ripc_request *request;
    int fd;
    double deadline, limit;
    ripc_entry **reply;
} watch_args;

static VALUE watch_body(VALUE arg)
{
    watch_args *a = (watch_args *)arg;
    int rc;
    while ((rc = ripc_request_try(a->request, a->reply)) == RIPC_AGAIN) {
        if (a->limit > 0 && ripc_monotonic_now() >= a->limit) break;
        rbipc_wait_readable(a->fd, a->deadline);
    }
    return INT2FIX(rc);
}

static VALUE watch_cleanup(VALUE arg)
{
    ripc_request_unwatch(((watch_args *)arg)->request);
    return Qnil;
}

int rbipc_wait_reply(ripc_request *r, double limit, ripc_entry **reply)
{
    /* A reply already there costs no descriptor: collecting many async
     * replies mostly ends here. */
    int rc = ripc_request_try(r, reply);
    if (rc != RIPC_AGAIN || (limit > 0 && ripc_monotonic_now() >= limit)) return rc;
    ripc_error err;
    watch_args a = { r, ripc_request_watch(r, &err), ripc_request_deadline(r), limit, reply };
    /* Errno::EMFILE, as File.open raises when descriptors run out: the
     * request goes on, and waiting works again once some are closed. */
    if (a.fd < 0) rb_syserr_fail(errno, err.message);
    if (limit > 0 && limit < a.deadline) a.deadline = limit;
    /* The descriptor is the pool's, lent while this thread waits: an
     * interrupt raising out of the wait must give it back. */
    return FIX2INT(rb_ensure(watch_body, (VALUE)&a, watch_cleanup, (VALUE)&a));
}
