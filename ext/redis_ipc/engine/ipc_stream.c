/* The endpoint: lifecycle (connect, stop, close), sending and answering. */
#include "ipc_stream.h"
#include "ipc_callbacks.h"
#include "ipc_conn.h"
#include "ipc_dispatcher.h"
#include "ipc_failover.h"
#include "ipc_entry.h"
#include "ipc_host.h"
#include "ipc_housekeeper.h"
#include "ipc_keys.h"
#include "ipc_membership.h"
#include "ipc_permissions.h"
#include "ipc_reports.h"
#include "ipc_router.h"
#include "ipc_server.h"
#include "ipc_telemetry.h"
#include "ipc_util.h"
#include "ipc_waker.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void ripc_options_init(ripc_options *o)
{
    memset(o, 0, sizeof(*o));
    o->redis.host = "127.0.0.1";
    o->redis.port = 6379;
    o->redis.timeout = 1.0;
    o->redis.connect_timeout = 1.0;
    o->pool_size = 10;
    o->dispatcher_count = 2;
    o->consumer_count = 3;
    o->entry_timeout = 5.0;
    o->cleanup_interval = 1.0;
    o->block_timeout = 30.0;
    o->reclaim_idle = 10.0;
    o->heartbeat_interval = 0.6;
    o->dead_after = 1.3;
    o->max_content_bytes = 4u << 20;
    o->retention = 600.0;
    o->signing_max_age = 30.0;
}

double ripc_monotonic_now(void) { return ripc_now(); }

const char *ripc_strerror(int code)
{
    switch (code) {
    case RIPC_OK: return "ok";
    case RIPC_TIMEOUT: return "timed out";
    case RIPC_CONNECTION: return "connection error";
    case RIPC_CLOSED: return "not connected";
    case RIPC_ARGUMENT: return "invalid argument";
    case RIPC_PROTOCOL: return "unexpected reply from Redis";
    case RIPC_STATE: return "invalid state";
    case RIPC_AGAIN: return "not yet";
    case RIPC_COMMAND: return "Redis refused the command";
    case RIPC_CONFIGURATION: return "not supported by this build or this Redis";
    default: return "unknown error";
    }
}

/* Requests queued beyond those being handled, per consumer (bounded prefetch). */
enum { PREFETCH_PER_TAKER = 8 };

static void unref(ripc_stream *s);
static void free_entry_node(ripc_qnode *n) { ripc_entry_free((ripc_entry *)n); }
static void free_event_node(ripc_qnode *n) { ripc_event_free((ripc_event *)n); }

/* A duration within (0, max], or [0, max] when zero_ok; NaN is never in range. */
static int check_seconds(const char *name, double value, double max, int zero_ok, ripc_error *err)
{
    if ((value > 0 || (zero_ok && value == 0)) && value <= max) return 1;
    ripc_error_set(err, RIPC_ARGUMENT, "%s must be %s %g seconds, got %g", name,
                   zero_ok ? "from 0 to" : "above 0 and at most", max, value);
    return 0;
}

static int check_count(const char *name, long long value, long long min, long long max, ripc_error *err)
{
    if (value >= min && value <= max) return 1;
    ripc_error_set(err, RIPC_ARGUMENT, "%s must be from %lld to %lld, got %lld", name, min, max, value);
    return 0;
}

/* Every option in range (redis_ipc.h): C programs fill the struct
 * themselves, and the engine sizes threads, connections and deadlines by it. */
static int check_options(const ripc_options *o, ripc_error *err)
{
    const ripc_redis_config *r = &o->redis;
    int unix_socket = r->path && *r->path;
    if (!(unix_socket || check_count("redis.port", r->port, 1, 65535, err)) ||
        !check_count("redis.db", r->db, 0, RIPC_MAX_DB, err) ||
        !check_seconds("redis.timeout", r->timeout, RIPC_MAX_REDIS_TIMEOUT, 0, err) ||
        !check_seconds("redis.connect_timeout", r->connect_timeout, RIPC_MAX_REDIS_TIMEOUT, 0, err) ||
        !check_count("pool_size", o->pool_size, 1, RIPC_MAX_POOL_SIZE, err) ||
        !check_count("dispatcher_count", o->dispatcher_count, 1, RIPC_MAX_DISPATCHERS, err) ||
        !check_count("consumer_count", o->consumer_count, 1, RIPC_MAX_CONSUMERS, err) ||
        !check_seconds("entry_timeout", o->entry_timeout, RIPC_MAX_ENTRY_TIMEOUT, 0, err) ||
        !check_seconds("cleanup_interval", o->cleanup_interval, RIPC_MAX_INTERVAL, 0, err) ||
        !check_seconds("block_timeout", o->block_timeout, RIPC_MAX_INTERVAL, 0, err) ||
        !check_seconds("reclaim_idle", o->reclaim_idle, RIPC_MAX_ENTRY_TIMEOUT, 0, err) ||
        !check_seconds("heartbeat_interval", o->heartbeat_interval, RIPC_MAX_HEARTBEAT, 0, err) ||
        !check_seconds("dead_after", o->dead_after, RIPC_MAX_INTERVAL, 0, err) ||
        !check_seconds("retention", o->retention, RIPC_MAX_RETENTION, 1, err) ||
        !check_count("max_content_bytes", (long long)o->max_content_bytes, 1, RIPC_MAX_CONTENT_BYTES, err) ||
        !check_count("reply_wake_limit", o->reply_wake_limit, 0, RIPC_MAX_REPLY_WAKE_LIMIT, err))
        return 0;
    if (o->dead_after <= o->heartbeat_interval) {
        ripc_error_set(err, RIPC_ARGUMENT, "dead_after (%g) must be longer than heartbeat_interval (%g)",
                       o->dead_after, o->heartbeat_interval);
        return 0;
    }
    return 1;
}

ripc_stream *ripc_stream_new(const char *stream, const char *group, const ripc_options *options, ripc_error *err)
{
    if (!stream || !*stream || !group || !*group) {
        ripc_error_set(err, RIPC_ARGUMENT, "stream and group names must not be empty");
        return NULL;
    }
    ripc_options defaults;
    ripc_options_init(&defaults);
    if (!options) options = &defaults;
    if (!check_options(options, err)) return NULL;
    ripc_signing signing;
    if (ripc_signing_init(&signing, options, err) != RIPC_OK) return NULL;
    ripc_stream *s = ripc_xcalloc(1, sizeof(*s));
    s->stream = ripc_strdup(stream);
    s->group = ripc_strdup(group);
    s->options = *options;
    s->signing = signing;
    ripc_options *o = &s->options;
    /* The keys live in s->signing only: the caller's may go away. */
    o->signing_keys = NULL;
    o->signing_key_lens = NULL;
    /* The server keeps copies of the settings' strings, so the caller's may go away. */
    if (!o->redis.host) o->redis.host = "127.0.0.1";
    /* TLS files are loaded here (once per server), and a mistake in them
     * (or no TLS in this build) is reported before anything connects. */
    s->server = ripc_server_acquire(&o->redis, stream, err);
    if (!s->server) {
        ripc_signing_destroy(&s->signing);
        free(s->stream); free(s->group);
        free(s);
        return NULL;
    }
    o->redis = *ripc_server_config(s->server);

    ripc_pool_init(&s->pool, s->server, o->pool_size);
    ripc_outbox_init(&s->outbox, s);
    ripc_lazy_acks_init(&s->lazy_acks);
    ripc_ledger_init(&s->ledger);
    s->ledger.wake_limit = o->reply_wake_limit;
    ripc_routes_init(&s->routes);
    ripc_metrics_init(&s->metrics);
    s->ledger.metrics = &s->metrics;
    ripc_refusals_init(&s->refusals);
    ripc_inflight_init(&s->inflight, 1);
    pthread_mutex_init(&s->lifecycle_mutex, NULL);
    pthread_mutex_init(&s->dispatchers_mutex, NULL);
    ripc_liveness_init(&s->liveness);
    pthread_mutex_init(&s->stop_mutex, NULL);
    ripc_cond_init(&s->stop_cond);
    s->pid = ripc_getpid();
    atomic_store(&s->refs, 1);
    int requests_ok = ripc_queue_init(&s->requests) == 0;
    int events_ok = ripc_queue_init(&s->events) == 0;
    if (!requests_ok || !events_ok) {
        /* Only file descriptor exhaustion gets here. */
        ripc_error_set(err, RIPC_STATE, "out of file descriptors");
        ripc_stream_free(s);
        return NULL;
    }
    return s;
}

/* Wakes every sleeping background thread: the stream is stopping. */
static void wake_sleepers(ripc_stream *s)
{
    ripc_inflight_close(&s->inflight);
    pthread_mutex_lock(&s->stop_mutex);
    pthread_cond_broadcast(&s->stop_cond);
    pthread_mutex_unlock(&s->stop_mutex);
}

/* Every name this instance uses (ipc_keys.c), new at each connect. */
static void free_names(ripc_stream *s)
{
    free(s->inbox);
    free(s->consumers_key);
    free(s->instances_key);
    free(s->wake_channel);
    free(s->metrics_key);
    free(s->lanes[RIPC_LANE_REQUESTS]);
    free(s->lanes[RIPC_LANE_REPLIES]);
    memset(s->lanes, 0, sizeof(s->lanes));
    for (int i = 0; s->dispatcher_names && i < s->options.dispatcher_count; i++) free(s->dispatcher_names[i]);
    free(s->dispatcher_names);
    s->inbox = s->consumers_key = s->instances_key = s->wake_channel = s->metrics_key = NULL;
    s->dispatcher_names = NULL;
}

static void build_names(ripc_stream *s)
{
    free_names(s);
    ripc_random_hex(s->instance_id, RIPC_INSTANCE_ID_LEN);
    s->inbox = ripc_name_inbox(s->instance_id);
    s->consumers_key = ripc_key_consumers(s->stream, s->group, s->instance_id);
    s->instances_key = ripc_key_instances(s->stream, s->group);
    s->wake_channel = ripc_key_wake(s->stream, s->group, s->instance_id);
    s->metrics_key = ripc_key_metrics(s->stream, s->group, s->instance_id);
    s->lanes[RIPC_LANE_SHARED] = s->stream;
    s->lanes[RIPC_LANE_REQUESTS] = ripc_key_requests(s->stream, s->group);
    s->lanes[RIPC_LANE_REPLIES] = ripc_key_replies(s->stream, s->group, s->instance_id);
    s->dispatcher_names = ripc_xcalloc((size_t)s->options.dispatcher_count, sizeof(*s->dispatcher_names));
    for (int i = 0; i < s->options.dispatcher_count; i++) s->dispatcher_names[i] = ripc_name_dispatcher(s->instance_id, i + 1);
}

/* Each beat, then a look whether the primary failed over (after: the
 * look must never delay a beat). */
static double beat(ripc_stream *s)
{
    double next = ripc_liveness_tick(s);
    ripc_failover_check(s);
    return next;
}

/* What the service thread runs for every stream (ipc_service.h). */
static const ripc_service_hooks service_hooks = {
    beat, ripc_housekeeper_tick,
    ripc_waker_attach, ripc_waker_detach, ripc_waker_prepare, ripc_waker_next_retry, ripc_waker_read, ripc_waker_shutdown,
};

int ripc_stream_connect(ripc_stream *s, ripc_error *err)
{
    pthread_mutex_lock(&s->lifecycle_mutex);
    if (atomic_load(&s->connected)) {
        pthread_mutex_unlock(&s->lifecycle_mutex);
        ripc_error_set(err, RIPC_STATE, "already connected to stream %s as group %s", s->stream, s->group);
        return RIPC_STATE;
    }
    if (s->pid != ripc_getpid()) {
        pthread_mutex_unlock(&s->lifecycle_mutex);
        ripc_error_set(err, RIPC_STATE, "this stream object belongs to process %d; create a new one after fork", (int)s->pid);
        return RIPC_STATE;
    }
    build_names(s); /* each connect is a new instance, as in 1.x */
    /* Bounded prefetch: requests taken but not answered stay within the
     * threads that take them plus a margin of PREFETCH_PER_TAKER each; the
     * rest wait in Redis. A smaller margin made reads so small that the
     * dispatcher held back throughput (64 in flight: -35 % at 2 in all). */
    int takers = s->request_fn ? s->handler_count : s->options.consumer_count;
    ripc_inflight_reset(&s->inflight, (size_t)takers * (1 + PREFETCH_PER_TAKER));
    atomic_store(&s->stopping, 0);
    atomic_store(&s->closing, 0);
    atomic_store(&s->outage, 0);
    ripc_liveness_reset(&s->liveness);
    ripc_refusals_reset(&s->refusals);
    ripc_ledger_reopen(&s->ledger);
    ripc_routes_reset(&s->routes);
    s->published.at = 0;
    ripc_queue_reopen(&s->requests);
    ripc_queue_reopen(&s->events);

    redisContext *c;
    int joined = 0;
    int rc = ripc_pool_checkout(&s->pool, 0, &c, err);
    if (rc == RIPC_OK) {
        /* An old Redis or a missing ACL permission fails here, before
         * anything is registered. */
        rc = ripc_conn_check_version(c, &s->options.redis, err);
        if (rc == RIPC_OK) rc = ripc_permissions_check(s, c, err);
        if (rc == RIPC_OK) rc = ripc_membership_join(s, c, err);
        joined = rc == RIPC_OK;
        if (rc == RIPC_OK) rc = ripc_liveness_beat(s, c, err);
        ripc_pool_checkin(&s->pool, c, rc != RIPC_OK);
    }
    ripc_failover_reset(s);
    if (rc == RIPC_OK) rc = ripc_dispatchers_start(s, err);
    if (rc == RIPC_OK) {
        /* Beats, chores and the waker's subscription go to the process's
         * service thread. */
        ripc_housekeeper_reset(s);
        rc = ripc_service_register(s, &service_hooks, err);
    }
    if (rc == RIPC_OK) ripc_outbox_start(&s->outbox);
    if (rc == RIPC_OK) rc = ripc_callbacks_start(s, err);
    if (rc != RIPC_OK) {
        atomic_store(&s->stopping, 1);
        ripc_dispatchers_interrupt(s);
        wake_sleepers(s);
        ripc_dispatchers_join(s);
        ripc_service_unregister(s);
        ripc_queue_close(&s->requests);
        ripc_queue_close(&s->events);
        ripc_callbacks_join(s, 1);
        ripc_outbox_stop(&s->outbox);
        /* Do not stay listed: peers would hand replies to nobody. */
        ripc_error ignored;
        if (joined && ripc_pool_checkout(&s->pool, 0, &c, &ignored) == RIPC_OK) {
            ripc_send_lazy_acks(s, c, &ignored);
            ripc_liveness_leave(s, c, ripc_membership_leave(s, c));
            ripc_pool_checkin(&s->pool, c, c->err != 0);
        }
        ripc_pool_close_idle(&s->pool);
        pthread_mutex_unlock(&s->lifecycle_mutex);
        return rc;
    }
    atomic_store(&s->connected, 1);
    pthread_mutex_unlock(&s->lifecycle_mutex);
    return RIPC_OK;
}

int ripc_stream_connected(ripc_stream *s)
{
    return atomic_load(&s->connected) && !atomic_load(&s->stopping);
}

void ripc_stream_stop(ripc_stream *s)
{
    if (s->pid != ripc_getpid()) return; /* after fork the threads are not ours to join */
    pthread_mutex_lock(&s->lifecycle_mutex);
    if (!atomic_load(&s->connected) || atomic_load(&s->stopping)) {
        pthread_mutex_unlock(&s->lifecycle_mutex);
        return;
    }
    atomic_store(&s->stopping, 1);
    wake_sleepers(s);
    ripc_dispatchers_interrupt(s);
    ripc_dispatchers_join(s);
    ripc_service_unregister(s);
    ripc_ledger_close(&s->ledger);
    ripc_queue_close(&s->requests);
    ripc_queue_close(&s->events);
    pthread_mutex_unlock(&s->lifecycle_mutex);
}

void ripc_stream_close(ripc_stream *s)
{
    if (s->pid != ripc_getpid()) return;
    ripc_stream_stop(s);
    /* Handler threads finish the callback they are in; their answers still
     * go out through the pool, which closes below. */
    ripc_callbacks_join(s, 0);
    pthread_mutex_lock(&s->lifecycle_mutex);
    if (atomic_load(&s->connected)) {
        atomic_store(&s->closing, 1);
        ripc_outbox_stop(&s->outbox); /* the last replies go out before we leave */
        redisContext *c;
        ripc_error err;
        if (ripc_pool_checkout(&s->pool, 0, &c, &err) == RIPC_OK) {
            ripc_send_lazy_acks(s, c, &err);
            ripc_liveness_leave(s, c, ripc_membership_leave(s, c));
            ripc_pool_checkin(&s->pool, c, c->err != 0);
        }
        /* Requests read but never taken stay pending in Redis, where the
         * group reclaims them: dropping our copies loses nothing. */
        ripc_qnode *n = ripc_queue_drain(&s->requests);
        while (n) { ripc_qnode *next = n->next; free_entry_node(n); n = next; }
        n = ripc_queue_drain(&s->events);
        while (n) { ripc_qnode *next = n->next; free_event_node(n); n = next; }
        ripc_pool_close_idle(&s->pool);
        atomic_store(&s->connected, 0);
    }
    pthread_mutex_unlock(&s->lifecycle_mutex);
}

void ripc_stream_disconnect(ripc_stream *s) { ripc_stream_close(s); }

void ripc_stream_free(ripc_stream *s)
{
    if (!s) return;
    if (s->pid != ripc_getpid()) {
        /* A forked child must not join the parent's threads nor write to its
         * sockets: close the inherited descriptors and leave the rest. */
        for (int i = 0; i < s->pool.idle_count; i++) close(s->pool.idle[i]->fd);
        if (s->service.conn) close(s->service.conn->fd);
        /* The dispatchers' sockets too: a child that kept them would keep
         * the parent's Redis clients open after the parent closed them. */
        for (int i = 0; s->dispatchers && i < s->options.dispatcher_count; i++)
            if (s->dispatchers[i].conn) close(s->dispatchers[i].conn->fd);
        return;
    }
    ripc_stream_close(s);
    unref(s);
}

static void unref(ripc_stream *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1) return;
    ripc_outbox_destroy(&s->outbox);
    ripc_lazy_acks_destroy(&s->lazy_acks);
    ripc_queue_destroy(&s->requests, free_entry_node);
    ripc_queue_destroy(&s->events, free_event_node);
    ripc_ledger_destroy(&s->ledger);
    ripc_routes_destroy(&s->routes);
    ripc_metrics_destroy(&s->metrics);
    ripc_refusals_destroy(&s->refusals);
    ripc_pool_destroy(&s->pool);
    ripc_server_release(s->server);
    ripc_signing_destroy(&s->signing);
    ripc_inflight_destroy(&s->inflight);
    pthread_mutex_destroy(&s->lifecycle_mutex);
    pthread_mutex_destroy(&s->dispatchers_mutex);
    ripc_liveness_destroy(&s->liveness);
    pthread_mutex_destroy(&s->stop_mutex);
    pthread_cond_destroy(&s->stop_cond);
    free(s->dispatchers);
    free_names(s);
    free(s->stream); free(s->group);
    free(s);
}

const char *ripc_stream_instance_id(ripc_stream *s) { return s->instance_id; }
const char *ripc_stream_name(ripc_stream *s) { return s->stream; }
const char *ripc_stream_group(ripc_stream *s) { return s->group; }

/* --- sending ---------------------------------------------------------------- */

static int check_usable(ripc_stream *s, ripc_error *err)
{
    if (s->pid != ripc_getpid()) {
        ripc_error_set(err, RIPC_STATE, "this stream was connected in process %d; create and connect a new one after fork", (int)s->pid);
        return RIPC_STATE;
    }
    if (!ripc_stream_connected(s)) {
        ripc_error_set(err, RIPC_CLOSED, "stream %s is not connected", s->stream);
        return RIPC_CLOSED;
    }
    return RIPC_OK;
}

static int send_request(ripc_stream *s, const char *to, const char *content, size_t len,
                        double timeout, int mode, ripc_request **out, int *flush, ripc_error *err)
{
    *out = NULL;
    int rc = check_usable(s, err);
    if (rc != RIPC_OK) return rc;
    if (!to || !*to) {
        ripc_error_set(err, RIPC_ARGUMENT, "the destination group must not be empty");
        return RIPC_ARGUMENT;
    }
    if (!content) { content = ""; len = 0; }
    double now = ripc_now();
    ripc_request *r = ripc_ledger_open(&s->ledger, now + (timeout > 0 ? timeout : s->options.entry_timeout), to);
    if (!r) {
        ripc_error_set(err, RIPC_CLOSED, "stream %s is disconnecting", s->stream);
        return RIPC_CLOSED;
    }
    if (ripc_ledger_size(&s->ledger) == 1) ripc_service_nudge(s, RIPC_INBOX_BUSY); /* inbox sweeps speed up while we wait */

    r->stream = s;
    atomic_fetch_add(&s->refs, 1);
    const char *values[RIPC_FIELD_COUNT] = { r->id, s->instance_id, "pending", content, s->group, to };
    size_t lens[RIPC_FIELD_COUNT] = { strlen(r->id), strlen(s->instance_id), 7, len, strlen(s->group), strlen(to) };
    /* Written by this thread, or by the one already writing (ipc_outbox.c);
     * a failure to write ends the request's slot with RIPC_CONNECTION. */
    int must_flush = ripc_outbox_request(&s->outbox, r->id, values, lens, mode);
    ripc_metrics_sent(&s->metrics);
    if (flush) *flush = must_flush;
    *out = r;
    return RIPC_OK;
}

int ripc_request_send(ripc_stream *s, const char *to, const char *content, size_t len,
                      double timeout, ripc_request **out, ripc_error *err)
{
    return send_request(s, to, content, len, timeout, RIPC_WRITE_NOW, out, NULL, err);
}

int ripc_request_post(ripc_stream *s, const char *to, const char *content, size_t len,
                      double timeout, ripc_request **out, ripc_error *err)
{
    return send_request(s, to, content, len, timeout, RIPC_WRITE_DEFER, out, NULL, err);
}

int ripc_stream_route_unknown(ripc_stream *s, const char *group)
{
    return ripc_stream_connected(s) && s->pid == ripc_getpid() && group && *group && !ripc_routes_known(&s->routes, group);
}

void ripc_stream_learn_route(ripc_stream *s, const char *group)
{
    if (ripc_stream_route_unknown(s, group)) ripc_routes_direct(s, group, 1);
}

int ripc_request_send_queued(ripc_stream *s, const char *to, const char *content, size_t len,
                             double timeout, ripc_request **out, int *flush, ripc_error *err)
{
    *flush = 0;
    return send_request(s, to, content, len, timeout, RIPC_WRITE_QUEUE, out, flush, err);
}

void ripc_stream_flush(ripc_stream *s)
{
    ripc_outbox_flush(&s->outbox);
}

int ripc_stream_flush_reply(ripc_stream *s, ripc_error *err)
{
    return ripc_outbox_flush_reply(&s->outbox, err);
}

int ripc_request_wait(ripc_request *r, ripc_entry **reply) { return ripc_ledger_wait(r, reply); }
int ripc_request_try(ripc_request *r, ripc_entry **reply) { return ripc_ledger_try(r, reply); }
int ripc_request_ready(ripc_request *r) { return ripc_ledger_ready(r); }
int ripc_request_watch(ripc_request *r, ripc_error *err)
{
    int code;
    int fd = ripc_ledger_watch(r, &code);
    if (fd >= 0) return fd;
    int why = errno;
    if (code == RIPC_STATE) ripc_error_set(err, RIPC_STATE, "another thread is already waiting for request %s", r->id);
    else ripc_error_set(err, RIPC_STATE, "no file descriptor left to wait for request %s", r->id);
    errno = why;
    return -1;
}
void ripc_request_unwatch(ripc_request *r) { ripc_ledger_unwatch(r); }
double ripc_request_deadline(ripc_request *r) { return r->deadline; }
void ripc_request_release(ripc_request *r)
{
    if (!r) return;
    ripc_stream *s = r->stream;
    if (s->pid != ripc_getpid()) return; /* a forked child must not take the parent's locks */
    ripc_ledger_release(r);
    unref(s);
}
const char *ripc_request_id(ripc_request *r) { return r->id; }
const char *ripc_request_error(ripc_request *r) { return r->error_message; }

int ripc_send(ripc_stream *s, const char *to, const char *content, size_t len,
              double timeout, ripc_entry **reply, ripc_error *err)
{
    ripc_request *r;
    *reply = NULL;
    int rc = ripc_request_send(s, to, content, len, timeout, &r, err);
    if (rc != RIPC_OK) return rc;
    rc = ripc_request_wait(r, reply);
    if (rc == RIPC_TIMEOUT) ripc_error_set(err, rc, "no reply from group %s within the timeout", to);
    else if (rc == RIPC_COMMAND) ripc_error_set(err, rc, "Redis refused the request to group %s: %s", to, ripc_request_error(r));
    else if (rc != RIPC_OK) ripc_error_set(err, rc, "%s while waiting for group %s", ripc_strerror(rc), to);
    ripc_request_release(r);
    return rc;
}

/* --- serving ---------------------------------------------------------------- */

int ripc_stream_next_request(ripc_stream *s, double deadline, ripc_entry **out)
{
    int rc = ripc_queue_pop(&s->requests, deadline, (ripc_qnode **)out);
    if (rc == RIPC_OK) ripc_telemetry_taken(s, *out);
    return rc;
}

int ripc_stream_try_request(ripc_stream *s, ripc_entry **out)
{
    int rc = ripc_queue_try_pop(&s->requests, (ripc_qnode **)out);
    if (rc == RIPC_OK) ripc_telemetry_taken(s, *out);
    return rc;
}

int ripc_stream_requests_fd(ripc_stream *s) { return ripc_queue_fd(&s->requests); }

int ripc_stream_next_event(ripc_stream *s, double deadline, ripc_event **out)
{
    return ripc_queue_pop(&s->events, deadline, (ripc_qnode **)out);
}

int ripc_stream_try_event(ripc_stream *s, ripc_event **out)
{
    return ripc_queue_try_pop(&s->events, (ripc_qnode **)out);
}

int ripc_stream_events_fd(ripc_stream *s) { return ripc_queue_fd(&s->events); }

static int respond(ripc_stream *s, const ripc_entry *request, int fulfilled,
                   const char *content, size_t len, int mode, int *flush, ripc_error *err)
{
    if (s->pid != ripc_getpid()) return check_usable(s, err);
    /* Still allowed while stopping: handlers that run may finish. */
    if (!atomic_load(&s->connected) || atomic_load(&s->closing)) {
        ripc_error_set(err, RIPC_CLOSED, "stream %s is not connected", s->stream);
        return RIPC_CLOSED;
    }
    if (!request || !request->redis_id) {
        ripc_error_set(err, RIPC_ARGUMENT, "not a request read from this stream");
        return RIPC_ARGUMENT;
    }
    double started;
    char buf[RIPC_LANE_SLOT_MAX];
    if (!ripc_inflight_answer(&s->inflight, ripc_lane_slot(request->lane, request->redis_id, buf, sizeof(buf)), &started)) {
        ripc_error_set(err, RIPC_STATE, "request %s was already answered", ripc_entry_field(request, RIPC_FIELD_ID));
        return RIPC_STATE;
    }
    /* The reply, then (batched with other answers) the request's ack and
     * delete. If it cannot be written the request stays pending in Redis,
     * and the group reclaims and answers it again. */
    int must_flush = ripc_outbox_answer(&s->outbox, request, fulfilled, content, len, mode, err);
    if (must_flush < 0) return must_flush; /* written by this thread, and refused */
    ripc_metrics_answered(&s->metrics, fulfilled, started);
    if (flush) *flush = must_flush;
    return RIPC_OK;
}

int ripc_respond(ripc_stream *s, const ripc_entry *request, int fulfilled,
                 const char *content, size_t len, ripc_error *err)
{
    return respond(s, request, fulfilled, content, len, RIPC_WRITE_NOW, NULL, err);
}

int ripc_respond_queued(ripc_stream *s, const ripc_entry *request, int fulfilled,
                        const char *content, size_t len, int *flush, ripc_error *err)
{
    *flush = 0;
    return respond(s, request, fulfilled, content, len, RIPC_WRITE_QUEUE, flush, err);
}

void ripc_stream_stats(ripc_stream *s, ripc_stats *out)
{
    out->ledger_size = ripc_ledger_size(&s->ledger);
    out->queued_requests = ripc_queue_length(&s->requests);
    out->inflight_requests = ripc_inflight_size(&s->inflight);
    out->pool_connections = (size_t)ripc_pool_open_count(&s->pool);
    out->takeovers = atomic_load(&s->takeovers);
    out->taken_over_entries = atomic_load(&s->taken_over_entries);
    ripc_ledger_bells(&s->ledger, &out->reply_waiters, &out->spare_descriptors);
}
