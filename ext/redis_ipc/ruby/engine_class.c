/* RedisIPC::Engine: the Ruby face of one ripc_stream. Its methods are the
 * private plumbing of RedisIPC::Stream (lib/redis_ipc/stream.rb), which
 * checks arguments and builds entry objects; this file only moves bytes
 * between Ruby and the engine and waits with the GVL released. */
#include "redis_ipc_ext.h"

#include <ruby/io.h>
#include <ruby/thread.h>
#include <pthread.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/ipc_host.h"
#include "../engine/ipc_responders.h"
#include "../engine/ipc_util.h"

typedef struct engine {
    ripc_stream *stream;
    pid_t pid; /* the process that created it */
} engine;

static void *free_stream(void *stream)
{
    ripc_stream_free(stream);
    return NULL;
}

static void engine_free(void *ptr)
{
    engine *e = ptr;
    ripc_stream *s = e->stream;
    pid_t pid = e->pid;
    xfree(e);
    if (!s) return;
    /* Dropped while connected: closing means joins and a few Redis commands
     * (flush, unregister), which must not run here with the GVL held and
     * every Ruby thread stopped. A detached thread does it instead; not in
     * a forked child, where the stream is the parent's and freeing it only
     * closes inherited descriptors. */
    pthread_t closer;
    if (pid == ripc_getpid() && ripc_stream_connected(s) && ripc_pthread_create(&closer, "ripc closer", free_stream, s) == 0) {
        pthread_detach(closer);
        return;
    }
    ripc_stream_free(s);
}

static size_t engine_memsize(const void *ptr)
{
    (void)ptr;
    return sizeof(engine);
}

/* The engine holds no Ruby objects: nothing to mark or move. */
static const rb_data_type_t engine_type = {
    .wrap_struct_name = "RedisIPC::Engine",
    .function = { .dmark = NULL, .dfree = engine_free, .dsize = engine_memsize, .dcompact = NULL },
    .flags = 0, /* not FREE_IMMEDIATELY: freeing may join threads */
};

static VALUE engine_alloc(VALUE klass)
{
    engine *e;
    return TypedData_Make_Struct(klass, engine, &engine_type, e);
}

static ripc_stream *get_stream(VALUE self)
{
    engine *e;
    TypedData_Get_Struct(self, engine, &engine_type, e);
    if (!e->stream) rb_raise(rb_eRedisIPCError, "engine is not initialized");
    return e->stream;
}

/* --- options ---------------------------------------------------------------- */

static VALUE opt(VALUE hash, const char *key)
{
    return rb_hash_aref(hash, ID2SYM(rb_intern(key)));
}

static char *opt_string(VALUE hash, const char *key)
{
    VALUE v = opt(hash, key);
    if (NIL_P(v)) return NULL;
    StringValue(v);
    return ripc_memdup(RSTRING_PTR(v), (size_t)RSTRING_LEN(v));
}

static double opt_double(VALUE hash, const char *key, double fallback)
{
    VALUE v = opt(hash, key);
    return NIL_P(v) ? fallback : NUM2DBL(v);
}

static int opt_int(VALUE hash, const char *key, int fallback)
{
    VALUE v = opt(hash, key);
    return NIL_P(v) ? fallback : NUM2INT(v);
}

typedef struct init_args {
    VALUE self, stream, group, options;
    char *strings[14];
    char *keys[RIPC_MAX_SIGNING_KEYS]; /* copies of the signing keys, wiped after use */
    size_t key_lens[RIPC_MAX_SIGNING_KEYS];
} init_args;

/* signing_keys: an Array of Strings (ConnectOptions checked them), copied
 * into a's C memory. Never echoes a key. */
static void opt_signing(VALUE h, init_args *a, ripc_options *o)
{
    VALUE keys = opt(h, "signing_keys");
    if (NIL_P(keys)) return;
    Check_Type(keys, T_ARRAY);
    long n = RARRAY_LEN(keys);
    if (n < 1 || n > RIPC_MAX_SIGNING_KEYS) rb_raise(rb_eArgError, "signing keys: give 1 to %d keys", RIPC_MAX_SIGNING_KEYS);
    for (long i = 0; i < n; i++) {
        VALUE key = rb_ary_entry(keys, i);
        if (!RB_TYPE_P(key, T_STRING)) rb_raise(rb_eArgError, "signing key %ld must be a String", i + 1);
        a->key_lens[i] = (size_t)RSTRING_LEN(key);
        a->keys[i] = ripc_memdup(RSTRING_PTR(key), a->key_lens[i]);
    }
    o->signing_keys = (const char *const *)a->keys;
    o->signing_key_lens = a->key_lens;
    o->signing_key_count = (int)n;
    o->signing_max_age = opt_double(h, "signing_max_age", 30.0);
}

static VALUE init_body(VALUE arg)
{
    init_args *a = (init_args *)arg;
    ripc_options o;
    ripc_options_init(&o);
    VALUE h = a->options;
    Check_Type(h, T_HASH);
    /* Copies of the strings: ripc_stream_new copies them again into C memory it owns. */
    o.redis.host = a->strings[0] = opt_string(h, "host");
    o.redis.path = a->strings[1] = opt_string(h, "path");
    o.redis.username = a->strings[2] = opt_string(h, "username");
    o.redis.password = a->strings[3] = opt_string(h, "password");
    o.redis.tls_ca_file = a->strings[4] = opt_string(h, "tls_ca_file");
    o.redis.tls_ca_path = a->strings[5] = opt_string(h, "tls_ca_path");
    o.redis.tls_cert = a->strings[6] = opt_string(h, "tls_cert");
    o.redis.tls_key = a->strings[7] = opt_string(h, "tls_key");
    o.redis.tls_sni = a->strings[8] = opt_string(h, "tls_sni");
    o.redis.sentinels = a->strings[9] = opt_string(h, "sentinels");
    o.redis.master_name = a->strings[10] = opt_string(h, "master_name");
    o.redis.sentinel_username = a->strings[11] = opt_string(h, "sentinel_username");
    o.redis.sentinel_password = a->strings[12] = opt_string(h, "sentinel_password");
    o.redis.cluster_nodes = a->strings[13] = opt_string(h, "cluster_nodes");
    o.redis.tls = RTEST(opt(h, "tls"));
    o.redis.tls_skip_verify = RTEST(opt(h, "tls_skip_verify"));
    if (!o.redis.host) o.redis.host = "127.0.0.1";
    o.redis.port = opt_int(h, "port", 6379);
    o.redis.db = opt_int(h, "db", 0);
    o.redis.timeout = opt_double(h, "timeout", 1.0);
    o.redis.connect_timeout = opt_double(h, "connect_timeout", 1.0);
    o.pool_size = opt_int(h, "pool_size", 10);
    o.dispatcher_count = opt_int(h, "dispatcher_count", 2);
    o.consumer_count = opt_int(h, "consumer_count", 3);
    o.entry_timeout = opt_double(h, "entry_timeout", 5.0);
    o.cleanup_interval = opt_double(h, "cleanup_interval", 1.0);
    o.block_timeout = opt_double(h, "block_timeout", 5.0);
    o.reclaim_idle = opt_double(h, "reclaim_idle", 10.0);
    o.heartbeat_interval = opt_double(h, "heartbeat_interval", 0.6);
    o.dead_after = opt_double(h, "dead_after", 1.3);
    o.retention = opt_double(h, "retention", 600.0);
    {
        VALUE max = opt(h, "max_content_bytes");
        o.max_content_bytes = NIL_P(max) ? (4u << 20) : NUM2SIZET(max);
    }
    opt_signing(h, a, &o);
    /* Ruby threads run one at a time (the GVL): one running, one ready to
     * take over. 64 threads sending (bench/cost.rb, medians of 5 runs
     * alternated): no limit 17,795 round trips/s, 2: 20,117, 1: 17,914. */
    o.reply_wake_limit = 2;

    StringValueCStr(a->stream);
    StringValueCStr(a->group);
    ripc_error err;
    ripc_stream *s = ripc_stream_new(RSTRING_PTR(a->stream), RSTRING_PTR(a->group), &o, &err);
    if (!s) rbipc_raise(&err);
    engine *e;
    TypedData_Get_Struct(a->self, engine, &engine_type, e);
    if (e->stream) {
        ripc_stream_free(s);
        rb_raise(rb_eRedisIPCError, "engine is already initialized");
    }
    e->stream = s;
    e->pid = ripc_getpid();
    return a->self;
}

static VALUE init_cleanup(VALUE arg)
{
    init_args *a = (init_args *)arg;
    for (size_t i = 0; i < sizeof(a->strings) / sizeof(a->strings[0]); i++) free(a->strings[i]);
    for (int i = 0; i < RIPC_MAX_SIGNING_KEYS; i++) {
        if (!a->keys[i]) continue;
        /* Through a volatile pointer, so the compiler cannot drop the wipe of memory about to be freed. */
        volatile char *key = a->keys[i];
        for (size_t k = 0; k < a->key_lens[i]; k++) key[k] = 0;
        free(a->keys[i]);
    }
    return Qnil;
}

/* Engine.new(stream, group, options) */
static VALUE engine_initialize(VALUE self, VALUE stream, VALUE group, VALUE options)
{
    init_args a = { self, stream, group, options, { NULL }, { NULL }, { 0 } };
    return rb_ensure(init_body, (VALUE)&a, init_cleanup, (VALUE)&a);
}

/* --- lifecycle -------------------------------------------------------------- */

typedef struct call_args {
    ripc_stream *stream;
    ripc_error err;
    int rc;
} call_args;

/* Connecting, stopping and closing take at most the configured connect and
 * command timeouts and join threads that never take the GVL; they run
 * without it so other Ruby threads go on meanwhile. Nothing useful can be
 * done to cut them short, so the unblocking function does nothing. */
static void ubf_nothing(void *arg) { (void)arg; }

static void *connect_nogvl(void *arg)
{
    call_args *a = arg;
    a->rc = ripc_stream_connect(a->stream, &a->err);
    return NULL;
}

static VALUE engine_connect(VALUE self)
{
    call_args a = { get_stream(self), { 0, "" }, 0 };
    rb_thread_call_without_gvl(connect_nogvl, &a, ubf_nothing, NULL);
    if (a.rc != RIPC_OK) rbipc_raise(&a.err);
    return self;
}

static void *stop_nogvl(void *stream)
{
    ripc_stream_stop(stream);
    return NULL;
}

static void *close_nogvl(void *stream)
{
    ripc_stream_close(stream);
    return NULL;
}

static VALUE engine_stop(VALUE self)
{
    rb_thread_call_without_gvl(stop_nogvl, get_stream(self), ubf_nothing, NULL);
    return self;
}

static VALUE engine_close(VALUE self)
{
    rb_thread_call_without_gvl(close_nogvl, get_stream(self), ubf_nothing, NULL);
    return self;
}

/* engine.forget_parent -> true when this engine was the parent's, in a
 * forked child: it lets go of the parent's stream at once (its inherited
 * sockets closed without a command on them, ripc_stream_free) instead of
 * at GC time, and is unusable afterwards. False (and nothing done) in the
 * process that created it. */
static VALUE engine_forget_parent(VALUE self)
{
    engine *e;
    TypedData_Get_Struct(self, engine, &engine_type, e);
    if (!e->stream || e->pid == ripc_getpid()) return Qfalse;
    ripc_stream *s = e->stream;
    e->stream = NULL; /* first: engine_free must not free it again */
    ripc_stream_free(s);
    return Qtrue;
}

static VALUE engine_connected_p(VALUE self)
{
    return ripc_stream_connected(get_stream(self)) ? Qtrue : Qfalse;
}

static VALUE engine_instance_id(VALUE self)
{
    return rb_utf8_str_new_cstr(ripc_stream_instance_id(get_stream(self)));
}

static VALUE engine_stats(VALUE self)
{
    ripc_stats st;
    ripc_stream_stats(get_stream(self), &st);
    VALUE h = rb_hash_new();
    rb_hash_aset(h, ID2SYM(rb_intern("ledger_size")), SIZET2NUM(st.ledger_size));
    rb_hash_aset(h, ID2SYM(rb_intern("queued_requests")), SIZET2NUM(st.queued_requests));
    rb_hash_aset(h, ID2SYM(rb_intern("inflight_requests")), SIZET2NUM(st.inflight_requests));
    rb_hash_aset(h, ID2SYM(rb_intern("pool_connections")), SIZET2NUM(st.pool_connections));
    rb_hash_aset(h, ID2SYM(rb_intern("takeovers")), SIZET2NUM(st.takeovers));
    rb_hash_aset(h, ID2SYM(rb_intern("taken_over_entries")), SIZET2NUM(st.taken_over_entries));
    rb_hash_aset(h, ID2SYM(rb_intern("reply_waiters")), SIZET2NUM(st.reply_waiters));
    rb_hash_aset(h, ID2SYM(rb_intern("spare_descriptors")), SIZET2NUM(st.spare_descriptors));
    return h;
}

static VALUE latency_hash(const ripc_latency *l)
{
    VALUE h = rb_hash_new();
    /* nil, not 0, when the window measured nothing. */
    rb_hash_aset(h, ID2SYM(rb_intern("p50")), l->samples ? DBL2NUM(l->p50) : Qnil);
    rb_hash_aset(h, ID2SYM(rb_intern("p90")), l->samples ? DBL2NUM(l->p90) : Qnil);
    rb_hash_aset(h, ID2SYM(rb_intern("p99")), l->samples ? DBL2NUM(l->p99) : Qnil);
    rb_hash_aset(h, ID2SYM(rb_intern("samples")), ULL2NUM(l->samples));
    return h;
}

/* engine.metrics -> Hash (ripc_metrics in redis_ipc.h) */
static VALUE engine_metrics(VALUE self)
{
    ripc_metrics m;
    ripc_stream_metrics(get_stream(self), &m);
    VALUE h = rb_hash_new();
    const struct { const char *name; unsigned long long value; } counters[] = {
        { "sent", m.sent }, { "received", m.received }, { "fulfilled", m.fulfilled }, { "rejected", m.rejected },
        { "replies_fulfilled", m.replies_fulfilled }, { "replies_rejected", m.replies_rejected },
        { "timed_out", m.timed_out }, { "redelivered", m.redelivered },
    };
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
        rb_hash_aset(h, ID2SYM(rb_intern(counters[i].name)), ULL2NUM(counters[i].value));
    VALUE errors = rb_hash_new();
    for (int i = 0; i < m.error_count; i++)
        rb_hash_aset(errors, rb_utf8_str_new_cstr(m.errors[i].name), ULL2NUM(m.errors[i].count));
    rb_hash_aset(h, ID2SYM(rb_intern("errors")), errors);
    rb_hash_aset(h, ID2SYM(rb_intern("in_flight")), SIZET2NUM(m.in_flight));
    rb_hash_aset(h, ID2SYM(rb_intern("queued")), SIZET2NUM(m.queued));
    rb_hash_aset(h, ID2SYM(rb_intern("consumers_busy")), SIZET2NUM(m.consumers_busy));
    VALUE latency = rb_hash_new();
    rb_hash_aset(latency, ID2SYM(rb_intern("round_trip")), latency_hash(&m.round_trip));
    rb_hash_aset(latency, ID2SYM(rb_intern("handler")), latency_hash(&m.handler));
    rb_hash_aset(h, ID2SYM(rb_intern("latency")), latency);
    return h;
}

/* engine.note_error(class_name): one error of that class in the metrics. */
static VALUE engine_note_error(VALUE self, VALUE class_name)
{
    StringValueCStr(class_name);
    ripc_stream_note_error(get_stream(self), RSTRING_PTR(class_name));
    return Qnil;
}

/* engine.prometheus_text -> String: this instance's metrics in the Prometheus text format. */
static VALUE engine_prometheus_text(VALUE self)
{
    ripc_stream *s = get_stream(self);
    ripc_metrics m;
    ripc_stream_metrics(s, &m);
    ripc_metrics_source source = { ripc_stream_name(s), ripc_stream_group(s), ripc_stream_instance_id(s), &m };
    size_t len = ripc_metrics_prometheus(&source, 1, NULL, 0);
    VALUE text = rb_utf8_str_new(NULL, (long)len);
    ripc_metrics_prometheus(&source, 1, RSTRING_PTR(text), len + 1);
    return text;
}

/* --- sending ---------------------------------------------------------------- */

typedef struct send_args {
    ripc_stream *stream;
    char *to, *content;
    size_t content_len;
    double timeout;
    ripc_request *request;
    ripc_entry *reply;
    ripc_error err;
    int rc;
} send_args;

static void *flush_nogvl(void *stream)
{
    ripc_stream_flush(stream);
    return NULL;
}

/* Queues a write without I/O (the GVL stays held: only short engine locks
 * are taken), then writes with the GVL released only when no other thread
 * is writing already; under load, another one nearly always is, and this
 * thread never gives the GVL up. A write is bounded by the command timeout,
 * so the unblocking function has nothing to cut short. */
static void write_queued(ripc_stream *s, int flush)
{
    if (flush) rb_thread_call_without_gvl(flush_nogvl, s, ubf_nothing, NULL);
}

static void *learn_route_nogvl(void *arg)
{
    send_args *a = (send_args *)arg;
    ripc_stream_learn_route(a->stream, a->to);
    return NULL;
}

static VALUE send_body(VALUE arg)
{
    send_args *a = (send_args *)arg;
    int flush;
    /* The first request to a group: which lane it takes is asked without
     * the GVL (one round trip, bounded by the command timeout). */
    if (ripc_stream_route_unknown(a->stream, a->to)) rb_thread_call_without_gvl(learn_route_nogvl, a, ubf_nothing, NULL);
    a->rc = ripc_request_send_queued(a->stream, a->to, a->content, a->content_len, a->timeout, &a->request, &flush, &a->err);
    if (a->rc != RIPC_OK) rbipc_raise(&a->err);
    write_queued(a->stream, flush);
    a->rc = rbipc_wait_reply(a->request, 0, &a->reply);
    if (a->rc != RIPC_OK) rbipc_raise_outcome(a->rc, a->request, a->to, a->timeout);
    return rbipc_entry_to_array(a->reply);
}

static VALUE send_cleanup(VALUE arg)
{
    send_args *a = (send_args *)arg;
    if (a->request) ripc_request_release(a->request);
    ripc_entry_free(a->reply);
    free(a->to);
    free(a->content);
    return Qnil;
}

static void prepare_send(send_args *a, VALUE self, VALUE to, VALUE content, VALUE timeout)
{
    ripc_stream *s = get_stream(self);
    StringValueCStr(to);
    StringValue(content);
    double t = NUM2DBL(timeout);
    memset(a, 0, sizeof(*a));
    a->stream = s;
    a->timeout = t;
    /* The engine works without the GVL, so it gets C copies: a Ruby string's
     * bytes may move (compaction) or change while it runs. Nothing below
     * raises before the ensure that frees them is in place. */
    a->to = ripc_memdup(RSTRING_PTR(to), (size_t)RSTRING_LEN(to));
    a->content = ripc_memdup(RSTRING_PTR(content), (size_t)RSTRING_LEN(content));
    a->content_len = (size_t)RSTRING_LEN(content);
}

/* engine.send_request(to, content_json, timeout_seconds) -> reply array */
static VALUE engine_send_request(VALUE self, VALUE to, VALUE content, VALUE timeout)
{
    send_args a;
    prepare_send(&a, self, to, content, timeout);
    return rb_ensure(send_body, (VALUE)&a, send_cleanup, (VALUE)&a);
}

static VALUE send_async_body(VALUE arg)
{
    send_args *a = (send_args *)arg;
    /* Queued for the engine's writer, which batches it with the others in
     * flight. Posting only takes short engine locks (never held across I/O),
     * so it runs with the GVL held. */
    a->rc = ripc_request_post(a->stream, a->to, a->content, a->content_len, a->timeout, &a->request, &a->err);
    if (a->rc != RIPC_OK) rbipc_raise(&a->err);
    VALUE pending = rbipc_pending_new(a->request, a->to, a->timeout);
    a->request = NULL; /* the handle owns it now */
    a->to = NULL;
    return pending;
}

/* engine.send_request_async(to, content_json, timeout_seconds) -> RedisIPC::PendingRequest */
static VALUE engine_send_request_async(VALUE self, VALUE to, VALUE content, VALUE timeout)
{
    send_args a;
    prepare_send(&a, self, to, content, timeout);
    return rb_ensure(send_async_body, (VALUE)&a, send_cleanup, (VALUE)&a);
}

typedef struct responders_args {
    ripc_stream *stream;
    char *group;
    int alive;
} responders_args;

static void *responders_nogvl(void *arg)
{
    responders_args *a = arg;
    a->alive = ripc_responders_alive(a->stream, a->group);
    return NULL;
}

static VALUE responders_body(VALUE arg)
{
    responders_args *a = (responders_args *)arg;
    /* An interrupt may raise once the call returns: the copy is freed by the ensure. */
    rb_thread_call_without_gvl(responders_nogvl, a, ubf_nothing, NULL);
    return a->alive ? Qtrue : Qfalse;
}

static VALUE responders_cleanup(VALUE arg)
{
    free(((responders_args *)arg)->group);
    return Qnil;
}

/* engine.responders?(group) -> false when the group has no live member
 * (ipc_responders.h); one round trip, bounded by the command timeout,
 * without the GVL. */
static VALUE engine_responders_p(VALUE self, VALUE group)
{
    ripc_stream *s = get_stream(self);
    StringValueCStr(group);
    /* A C copy: the string's bytes may move while the GVL is released. */
    responders_args a = { s, ripc_memdup(RSTRING_PTR(group), (size_t)RSTRING_LEN(group)), 1 };
    return rb_ensure(responders_body, (VALUE)&a, responders_cleanup, (VALUE)&a);
}

/* --- serving ---------------------------------------------------------------- */

typedef struct pop_args {
    ripc_stream *stream;
    double deadline;
    void *item;
    int events; /* 1: the event queue instead of requests */
} pop_args;

static VALUE pop_body(VALUE arg)
{
    pop_args *a = (pop_args *)arg;
    int fd = a->events ? ripc_stream_events_fd(a->stream) : ripc_stream_requests_fd(a->stream);
    for (;;) {
        int rc = a->events ? ripc_stream_try_event(a->stream, (ripc_event **)&a->item)
                           : ripc_stream_try_request(a->stream, (ripc_entry **)&a->item);
        if (rc == RIPC_OK) break;
        if (rc != RIPC_AGAIN) return Qnil; /* stopped */
        if (a->deadline > 0 && ripc_monotonic_now() >= a->deadline) return Qnil;
        rbipc_wait_readable(fd, a->deadline);
    }
    if (a->events) {
        ripc_event *ev = a->item;
        return rb_ary_new_from_args(2, INT2NUM(ev->kind), rb_utf8_str_new_cstr(ev->message));
    }
    return rbipc_entry_to_array(a->item);
}

static VALUE pop_cleanup(VALUE arg)
{
    pop_args *a = (pop_args *)arg;
    if (a->events) ripc_event_free(a->item);
    else ripc_entry_free(a->item);
    a->item = NULL;
    return Qnil;
}

static VALUE pop(VALUE self, VALUE timeout, int events)
{
    pop_args a;
    memset(&a, 0, sizeof(a));
    a.stream = get_stream(self);
    a.events = events;
    a.deadline = NIL_P(timeout) ? 0 : ripc_monotonic_now() + NUM2DBL(timeout);
    return rb_ensure(pop_body, (VALUE)&a, pop_cleanup, (VALUE)&a);
}

/* engine.next_request(timeout = nil) -> entry array, or nil once stopped or timed out */
static VALUE engine_next_request(int argc, VALUE *argv, VALUE self)
{
    VALUE timeout = argc > 0 ? argv[0] : Qnil;
    rb_check_arity(argc, 0, 1);
    return pop(self, timeout, 0);
}

/* engine.next_event(timeout = nil) -> [kind, message], or nil once stopped */
static VALUE engine_next_event(int argc, VALUE *argv, VALUE self)
{
    VALUE timeout = argc > 0 ? argv[0] : Qnil;
    rb_check_arity(argc, 0, 1);
    return pop(self, timeout, 1);
}

/* engine.events_fd / engine.requests_fd -> Integer: descriptors readable
 * while an event (a request) is queued or the stream has stopped, so that
 * one Ruby thread can wait on many streams with IO.select (lib/redis_ipc/
 * watcher.rb). They belong to the engine and stay open until it is freed. */
static VALUE engine_events_fd(VALUE self)
{
    return INT2NUM(ripc_stream_events_fd(get_stream(self)));
}

static VALUE engine_requests_fd(VALUE self)
{
    return INT2NUM(ripc_stream_requests_fd(get_stream(self)));
}

typedef struct respond_args {
    ripc_stream *stream;
    ripc_entry request;
    int fulfilled;
    char *content;
    size_t content_len;
    ripc_error err;
    int rc;
} respond_args;

static void *flush_reply_nogvl(void *arg)
{
    respond_args *a = arg;
    a->rc = ripc_stream_flush_reply(a->stream, &a->err);
    return NULL;
}

static VALUE respond_body(VALUE arg)
{
    respond_args *a = (respond_args *)arg;
    int flush;
    a->rc = ripc_respond_queued(a->stream, &a->request, a->fulfilled, a->content, a->content_len, &flush, &a->err);
    if (a->rc != RIPC_OK) rbipc_raise(&a->err);
    /* Writing it here tells us if Redis refused it (CommandError); a reply
     * another thread's write took along is reported to on_error instead. */
    if (flush) rb_thread_call_without_gvl(flush_reply_nogvl, a, ubf_nothing, NULL);
    if (a->rc != RIPC_OK) rbipc_raise(&a->err);
    return Qtrue;
}

static VALUE respond_cleanup(VALUE arg)
{
    respond_args *a = (respond_args *)arg;
    free(a->request.redis_id);
    for (int i = 0; i < RIPC_FIELD_COUNT; i++) free(a->request.fields[i].ptr);
    free(a->content);
    return Qnil;
}

static void copy_field(ripc_bytes *f, VALUE v)
{
    f->ptr = ripc_memdup(RSTRING_PTR(v), (size_t)RSTRING_LEN(v));
    f->len = (size_t)RSTRING_LEN(v);
}

/* engine.respond(request_array, fulfilled, content_json) */
static VALUE engine_respond(VALUE self, VALUE request, VALUE fulfilled, VALUE content)
{
    ripc_stream *s = get_stream(self);
    Check_Type(request, T_ARRAY);
    /* As rbipc_entry_to_array built it: the redis id, the six fields, the redelivered flag, the lane. */
    if (RARRAY_LEN(request) != 3 + RIPC_FIELD_COUNT) rb_raise(rb_eArgError, "not a request of this stream");
    VALUE lane = RARRAY_AREF(request, 2 + RIPC_FIELD_COUNT);
    if (!FIXNUM_P(lane) || FIX2INT(lane) < 0 || FIX2INT(lane) > RIPC_MAX_LANE) rb_raise(rb_eArgError, "not a request of this stream");
    StringValue(content);
    for (long i = 0; i <= RIPC_FIELD_COUNT; i++) Check_Type(RARRAY_AREF(request, i), T_STRING);
    respond_args a;
    memset(&a, 0, sizeof(a));
    a.stream = s;
    a.fulfilled = RTEST(fulfilled);
    /* All conversions that can raise ran above; from here the copies are freed by the ensure. */
    VALUE rid = RARRAY_AREF(request, 0);
    a.request.redis_id = ripc_memdup(RSTRING_PTR(rid), (size_t)RSTRING_LEN(rid));
    a.request.lane = FIX2INT(lane);
    for (int i = 0; i < RIPC_FIELD_COUNT; i++) copy_field(&a.request.fields[i], RARRAY_AREF(request, i + 1));
    a.content = ripc_memdup(RSTRING_PTR(content), (size_t)RSTRING_LEN(content));
    a.content_len = (size_t)RSTRING_LEN(content);
    return rb_ensure(respond_body, (VALUE)&a, respond_cleanup, (VALUE)&a);
}

void Init_redis_ipc_engine(VALUE mRedisIPC)
{
    VALUE cEngine = rb_define_class_under(mRedisIPC, "Engine", rb_cObject);
    rb_define_alloc_func(cEngine, engine_alloc);
    /* Copies would share the C stream: one owner only. */
    rb_undef_method(cEngine, "dup");
    rb_undef_method(cEngine, "clone");
    rb_define_method(cEngine, "initialize", engine_initialize, 3);
    rb_define_method(cEngine, "connect", engine_connect, 0);
    rb_define_method(cEngine, "stop", engine_stop, 0);
    rb_define_method(cEngine, "close", engine_close, 0);
    rb_define_method(cEngine, "connected?", engine_connected_p, 0);
    rb_define_method(cEngine, "forget_parent", engine_forget_parent, 0);
    rb_define_method(cEngine, "instance_id", engine_instance_id, 0);
    rb_define_method(cEngine, "stats", engine_stats, 0);
    rb_define_method(cEngine, "metrics", engine_metrics, 0);
    rb_define_method(cEngine, "note_error", engine_note_error, 1);
    rb_define_method(cEngine, "prometheus_text", engine_prometheus_text, 0);
    rb_define_method(cEngine, "send_request", engine_send_request, 3);
    rb_define_method(cEngine, "send_request_async", engine_send_request_async, 3);
    rb_define_method(cEngine, "responders?", engine_responders_p, 1);
    rb_define_method(cEngine, "next_request", engine_next_request, -1);
    rb_define_method(cEngine, "next_event", engine_next_event, -1);
    rb_define_method(cEngine, "events_fd", engine_events_fd, 0);
    rb_define_method(cEngine, "requests_fd", engine_requests_fd, 0);
    rb_define_method(cEngine, "respond", engine_respond, 3);
    rb_define_const(cEngine, "EVENT_MALFORMED_ENTRY", INT2NUM(RIPC_EVENT_MALFORMED_ENTRY));
    rb_define_const(cEngine, "EVENT_CONNECTION", INT2NUM(RIPC_EVENT_CONNECTION));
    rb_define_const(cEngine, "EVENT_ERROR", INT2NUM(RIPC_EVENT_ERROR));
    rb_define_const(cEngine, "EVENT_COMMAND", INT2NUM(RIPC_EVENT_COMMAND));
    /* Whether this build speaks TLS (hiredis >= 1.0 with hiredis_ssl). */
    rb_define_const(cEngine, "TLS", ripc_tls_available() ? Qtrue : Qfalse);
    rb_define_const(cEngine, "SIGNING", ripc_signing_available() ? Qtrue : Qfalse);
    rb_define_const(cEngine, "EVENT_SIGNATURE", INT2NUM(RIPC_EVENT_SIGNATURE));
}
