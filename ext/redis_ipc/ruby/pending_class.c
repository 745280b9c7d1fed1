/* RedisIPC::PendingRequest: a request sent with send_request_async, whose
 * reply is waited for later (RedisIPC::Stream::PendingReply wraps it). */
#include "redis_ipc_ext.h"

#include <stdlib.h>

#include "../engine/ipc_util.h"

static VALUE cPendingRequest;

typedef struct pending {
    ripc_request *request; /* NULL once released */
    char *to;
    double timeout;
    pid_t pid; /* the process that sent it: a forked child cannot wait for it */
    int busy;  /* a thread is waiting: the request must not be released under it */
} pending;

static void pending_release(pending *p)
{
    /* The request keeps its stream's memory alive, whatever order the GC
     * frees the engine and this handle in. */
    ripc_request_release(p->request);
    p->request = NULL;
}

static void pending_free(void *ptr)
{
    pending *p = ptr;
    pending_release(p);
    free(p->to);
    xfree(p);
}

static size_t pending_memsize(const void *ptr)
{
    (void)ptr;
    return sizeof(pending);
}

/* No Ruby objects inside: nothing to mark or move. Freeing only takes a
 * short engine lock, so it may run at once. */
static const rb_data_type_t pending_type = {
    .wrap_struct_name = "RedisIPC::PendingRequest",
    .function = { .dmark = NULL, .dfree = pending_free, .dsize = pending_memsize, .dcompact = NULL },
    .flags = RUBY_TYPED_FREE_IMMEDIATELY,
};

VALUE rbipc_pending_new(ripc_request *request, char *to, double timeout)
{
    pending *p;
    VALUE obj = TypedData_Make_Struct(cPendingRequest, pending, &pending_type, p);
    p->request = request;
    p->to = to;
    p->timeout = timeout;
    p->pid = ripc_getpid();
    return obj;
}

static pending *get_pending(VALUE self)
{
    pending *p;
    TypedData_Get_Struct(self, pending, &pending_type, p);
    if (!p->request) rb_raise(rb_eRedisIPCError, "this request was already settled and released");
    return p;
}

typedef struct wait_args {
    pending *p;
    double limit;
    ripc_entry *reply;
    int rc;
} wait_args;

static VALUE wait_body(VALUE arg)
{
    wait_args *a = (wait_args *)arg;
    a->rc = rbipc_wait_reply(a->p->request, a->limit, &a->reply);
    if (a->rc == RIPC_AGAIN) return Qnil;
    if (a->rc != RIPC_OK) rbipc_raise_outcome(a->rc, a->p->request, a->p->to, a->p->timeout);
    return rbipc_entry_to_array(a->reply);
}

static VALUE wait_cleanup(VALUE arg)
{
    wait_args *a = (wait_args *)arg;
    a->p->busy = 0;
    ripc_entry_free(a->reply);
    /* Settled either way: give the ledger slot back now, not at GC time. */
    if (a->rc != RIPC_AGAIN) pending_release(a->p);
    return Qnil;
}

/* pending.wait(seconds = nil) -> reply array, or nil when `seconds` pass
 * before the reply does (the request then stays pending). Raises like
 * send_request once the request's own timeout passes. */
static VALUE pending_wait(int argc, VALUE *argv, VALUE self)
{
    rb_check_arity(argc, 0, 1);
    wait_args a = { get_pending(self), 0, NULL, RIPC_AGAIN };
    /* The wait releases the GVL; a second waiter could free the request
     * under the first (RedisIPC::Stream::PendingReply serializes waits). */
    if (a.p->busy) rb_raise(rb_eRedisIPCError, "another thread is already waiting for this request");
    if (a.p->pid != ripc_getpid())
        rb_raise(rb_eRedisIPCConnectionError, "request %s was sent by process %d, before a fork",
                 ripc_request_id(a.p->request), (int)a.p->pid);
    if (argc > 0 && !NIL_P(argv[0])) {
        double seconds = NUM2DBL(argv[0]);
        if (seconds < 0) rb_raise(rb_eArgError, "wait needs a non-negative number of seconds");
        a.limit = ripc_monotonic_now() + seconds;
        if (seconds == 0) a.limit = ripc_monotonic_now(); /* just look */
    }
    a.p->busy = 1;
    return rb_ensure(wait_body, (VALUE)&a, wait_cleanup, (VALUE)&a);
}

/* pending.ready? -> true once waiting would not block */
static VALUE pending_ready_p(VALUE self)
{
    pending *p;
    TypedData_Get_Struct(self, pending, &pending_type, p);
    return !p->request || ripc_request_ready(p->request) ? Qtrue : Qfalse;
}

static VALUE pending_id(VALUE self)
{
    return rb_utf8_str_new_cstr(ripc_request_id(get_pending(self)->request));
}

void Init_redis_ipc_pending(VALUE mRedisIPC)
{
    cPendingRequest = rb_define_class_under(mRedisIPC, "PendingRequest", rb_cObject);
    rb_undef_alloc_func(cPendingRequest);
    rb_undef_method(cPendingRequest, "dup");
    rb_undef_method(cPendingRequest, "clone");
    rb_define_method(cPendingRequest, "wait", pending_wait, -1);
    rb_define_method(cPendingRequest, "ready?", pending_ready_p, 0);
    rb_define_method(cPendingRequest, "id", pending_id, 0);
}
