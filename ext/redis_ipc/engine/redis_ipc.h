/*
 * redis_ipc: request/reply between processes over one Redis stream.
 *
 * This is the engine's public API. It has no Ruby in it: the Ruby gem is a
 * thin binding over these functions, and a C program can link the engine
 * directly. The wire format is the one of the pure-Ruby redis_ipc 1.x gem,
 * so processes of both kinds can share a stream.
 *
 * Threads: every function is safe to call from any thread, except
 * ripc_stream_free, which must be the last call on a stream.
 */
#ifndef REDIS_IPC_H
#define REDIS_IPC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The shared library exports only this API; inside the Ruby extension it
 * stays hidden, so the extension exports nothing but Init_redis_ipc. */
#if defined(RIPC_BUILDING_LIBRARY)
#define RIPC_API __attribute__((visibility("default")))
#else
#define RIPC_API
#endif

/* Return codes. Negative values are errors; a message goes into ripc_error. */
enum {
    RIPC_OK = 0,
    RIPC_TIMEOUT = -1,    /* no reply (or no item) before the deadline */
    RIPC_CONNECTION = -2, /* Redis could not be reached or failed mid-command */
    RIPC_CLOSED = -3,     /* the stream is not connected, or was disconnected while waiting */
    /* -4 was RIPC_WOKEN, returned by the former ripc_request_wake */
    RIPC_ARGUMENT = -5,   /* a bad argument: nothing was written */
    RIPC_PROTOCOL = -6,   /* Redis answered something the engine did not expect */
    RIPC_STATE = -7,      /* the call does not fit the object's state (already connected, already answered) */
    RIPC_AGAIN = -8,      /* a non-blocking call found nothing yet */
    RIPC_COMMAND = -9,    /* Redis refused a command (OOM, READONLY, NOPERM, WRONGTYPE...): the message has Redis's words */
    RIPC_CONFIGURATION = -10 /* the settings ask for what this build or this Redis lacks: TLS in an
                                engine built on hiredis 0.14, unusable TLS files, a Redis older than 6.2 */
};

typedef struct ripc_error {
    int code;
    char message[256];
} ripc_error;

/* The six fields of a stream entry (WIRE.md), in the order they are written. */
enum {
    RIPC_FIELD_ID,
    RIPC_FIELD_INSTANCE_ID,
    RIPC_FIELD_STATUS,
    RIPC_FIELD_CONTENT,
    RIPC_FIELD_SOURCE_GROUP,
    RIPC_FIELD_DESTINATION_GROUP,
    RIPC_FIELD_COUNT
};
RIPC_API extern const char *const ripc_field_names[RIPC_FIELD_COUNT];

typedef struct ripc_bytes {
    char *ptr; /* NUL-terminated copy, NULL when the field was absent */
    size_t len;
} ripc_bytes;

/* A request or a reply read from the stream: one allocation holding the
 * struct and every string it points to. Whoever the engine hands one to
 * gives it back with ripc_entry_free (never free() its strings one by one). */
typedef struct ripc_entry {
    struct ripc_entry *next; /* queue link: keep first */
    char *redis_id;          /* the stream entry id, e.g. "1700000000000-0" */
    ripc_bytes fields[RIPC_FIELD_COUNT];
    const char *problem;     /* static text when the entry breaks the wire contract, else NULL */
    int redelivered;         /* a request claimed from an instance that died (or a 1.x consumer idle
                                past reclaim_idle): it may have been handled there already */
    size_t unread_bytes;     /* > 0: an entry too large to read, its large values left in Redis; it
                                has a problem and never reaches a handler */
    ripc_bytes signature[2]; /* on a signed stream, its signed_at and signature fields (RIPC_SIGNED_AT,
                                RIPC_SIGNATURE); ptr NULL when absent */
    int lane;                /* the stream it was read from: 0 the shared stream of the 1.x wire, else one
                                of this gem's direct lanes (docs/wire.md); its answer goes back that way */
} ripc_entry;
enum { RIPC_MAX_LANE = 2 };
enum { RIPC_SIGNED_AT, RIPC_SIGNATURE };

RIPC_API void ripc_entry_free(ripc_entry *entry);

typedef struct ripc_redis_config {
    const char *host;     /* default "127.0.0.1" */
    int port;             /* default 6379 */
    const char *path;     /* unix socket; when set, host and port are ignored */
    const char *username; /* AUTH username (Redis 6 ACL), optional */
    const char *password; /* AUTH password, optional */
    int db;               /* SELECT db when non-zero */
    double timeout;         /* seconds for each command's read/write; default 1.0 */
    double connect_timeout; /* seconds to connect, TLS handshake included; default 1.0 */
    /* TLS (not with a unix socket). Needs the engine built on hiredis >= 1.0
     * with hiredis_ssl (ripc_tls_available); otherwise ripc_stream_new fails
     * with RIPC_CONFIGURATION. Files are PEM. */
    int tls;                  /* 1: connect with TLS */
    const char *tls_ca_file;  /* CAs to trust; with neither this nor tls_ca_path, OpenSSL's default
                                 store (SSL_CERT_FILE / SSL_CERT_DIR, else the system's) */
    const char *tls_ca_path;  /* a folder of hashed CA certificates (c_rehash) */
    const char *tls_cert;     /* client certificate (chain), for servers that demand one */
    const char *tls_key;      /* its private key; default: tls_cert (both in one file) */
    const char *tls_sni;      /* the name sent as SNI and checked against the server's certificate;
                                 default host (an IP address is checked but not sent) */
    int tls_skip_verify;      /* 1: accept any server certificate (tests only: open to interception) */
    /* High availability. Lists are "host:port,host:port" ("[::1]:26379" for
     * IPv6); with one of them set, host, port and path are ignored. */
    const char *sentinels;         /* Redis Sentinel: the primary named master_name is asked of these,
                                      in turn, and followed through failovers */
    const char *master_name;       /* with sentinels: the name the sentinels monitor it by */
    const char *sentinel_username; /* AUTH for the sentinels themselves (optional) */
    const char *sentinel_password;
    const char *cluster_nodes;     /* Redis Cluster: seed nodes, any of its nodes in any order; the
                                      stream's name must carry a hash tag ("{orders}") so that every
                                      key of the stream lives in one slot, on one primary */
} ripc_redis_config;

typedef struct ripc_options {
    ripc_redis_config redis;
    int pool_size;          /* connections for commands (sends, replies, acks); default 10 */
    int dispatcher_count;   /* reader threads, each with its own connection; default 2 */
    int consumer_count;     /* threads taking requests with ripc_stream_next_request (a request
                               callback's own threads count instead): an instance holds at most
                               this many unanswered requests plus a small margin; default 3 */
    double entry_timeout;   /* default wait for a reply, seconds; default 5 */
    double cleanup_interval;/* how often expired ledger slots are swept, seconds; default 1 */
    double block_timeout;   /* how long one blocking read may wait before it is reissued; default 30 (the Ruby gem passes 5) */
    double reclaim_idle;    /* entries pending this long on any consumer are reclaimed; default 10 (as 1.x) */
    double heartbeat_interval; /* how often this instance says it is alive; default 0.6 */
    double dead_after;      /* an instance silent this long is dead and taken over; default 1.3 */
    size_t max_content_bytes; /* a larger request is rejected, any other larger entry is malformed; default 4 MiB */
    double retention;       /* entries older than this that no group holds pending are trimmed; 0: never; default 600 */
    /* Signed streams (README "Signed streams"): with keys, every entry this
     * instance writes carries an HMAC-SHA256 made with signing_keys[0] over
     * its fields and a timestamp, and every entry it reads must carry one
     * made with any of the keys, written less than signing_max_age seconds
     * ago (on the server's clock) and never seen before. The keys are
     * copied by ripc_stream_new (and wiped when the stream is freed).
     * Needs the engine built with OpenSSL's libcrypto
     * (ripc_signing_available), else RIPC_CONFIGURATION. */
    const char *const *signing_keys; /* NULL or signing_key_count keys; none: an unsigned stream (1.x wire) */
    const size_t *signing_key_lens;  /* their lengths; NULL: each is NUL-terminated */
    int signing_key_count;           /* 0 to RIPC_MAX_SIGNING_KEYS */
    double signing_max_age;          /* seconds; default 30 */
    /* Threads woken for their replies and not yet back from the wait, at
     * most: the others are woken as those come back; 0: no limit (default).
     * A host whose threads take turns on one lock (Ruby's GVL) sets 2, one
     * running and one ready: threads woken beyond that only queue for the lock.
     * With a limit, a watcher must unwatch as soon as its wait ends: until
     * then it holds one of the turns. */
    int reply_wake_limit;
} ripc_options;

/* Fills o with the defaults above. */
RIPC_API void ripc_options_init(ripc_options *o);

/* The largest values ripc_stream_new accepts: RIPC_ARGUMENT past them, and
 * for values of 0 or below (but retention and db may be 0, and port is not
 * looked at with a path). Far beyond what a deployment needs, they keep a
 * mistake from starting thousands of threads or connections, or a duration
 * from overflowing a clock. Durations are seconds. */
#define RIPC_MAX_POOL_SIZE 2048
#define RIPC_MAX_DISPATCHERS 16
#define RIPC_MAX_CONSUMERS 256
#define RIPC_MAX_DB 65535
#define RIPC_MAX_REDIS_TIMEOUT 60.0     /* redis.timeout, redis.connect_timeout */
#define RIPC_MAX_ENTRY_TIMEOUT 86400.0  /* entry_timeout, reclaim_idle */
#define RIPC_MAX_INTERVAL 3600.0        /* cleanup_interval, block_timeout, dead_after */
#define RIPC_MAX_HEARTBEAT 60.0         /* heartbeat_interval (dead_after must exceed it) */
#define RIPC_MAX_RETENTION 2592000.0    /* retention: 30 days */
#define RIPC_MAX_CONTENT_BYTES (512u * 1024 * 1024)
#define RIPC_MAX_SIGNING_KEYS 8
#define RIPC_MAX_REPLY_WAKE_LIMIT 1024
#define RIPC_MAX_SIGNING_KEY_BYTES 1024
#define RIPC_MAX_SIGNING_AGE 86400.0    /* signing_max_age */

typedef struct ripc_stream ripc_stream;

/* Errors seen by background threads (a malformed entry, a lost connection),
 * delivered by ripc_stream_next_event. */
enum {
    RIPC_EVENT_MALFORMED_ENTRY = 1,
    RIPC_EVENT_CONNECTION = 2,
    RIPC_EVENT_ERROR = 3,
    RIPC_EVENT_COMMAND = 4, /* Redis refused a command; once per cause until it is accepted again */
    RIPC_EVENT_SIGNATURE = 5 /* on a signed stream, an entry without a valid signature, or a replay: removed */
};
typedef struct ripc_event {
    struct ripc_event *next; /* queue link: keep first */
    int kind;
    char *message;
} ripc_event;
RIPC_API void ripc_event_free(ripc_event *event);

/* Names are copied. Returns NULL (with err, RIPC_ARGUMENT) for an empty
 * stream or group name or an option out of range (see RIPC_MAX_*). */
RIPC_API ripc_stream *ripc_stream_new(const char *stream, const char *group, const ripc_options *options, ripc_error *err);
/* Disconnects if needed and frees everything. */
RIPC_API void ripc_stream_free(ripc_stream *s);

/* Joins the stream: creates the group, registers this instance, starts the
 * dispatcher threads and hands the heartbeat and chores to the process's
 * service thread (started with the first connected stream, ended with the
 * last one). */
RIPC_API int ripc_stream_connect(ripc_stream *s, ripc_error *err);
RIPC_API int ripc_stream_connected(ripc_stream *s);
/* First half of a disconnect: stops the background threads, fails waiting
 * senders with RIPC_CLOSED and wakes request waiters. Replies can still be sent
 * (handlers that are running may finish) until ripc_stream_close. */
RIPC_API void ripc_stream_stop(ripc_stream *s);
/* Second half: unregisters the instance and closes every connection. */
RIPC_API void ripc_stream_close(ripc_stream *s);

RIPC_API const char *ripc_stream_instance_id(ripc_stream *s);
RIPC_API const char *ripc_stream_name(ripc_stream *s);
RIPC_API const char *ripc_stream_group(ripc_stream *s);

/* --- Sending ------------------------------------------------------------- */

typedef struct ripc_request ripc_request;

/* Writes a request to group `to` and registers it in the ledger. timeout <= 0
 * uses the entry_timeout option. The request must be released with
 * ripc_request_release whatever happens next. */
RIPC_API int ripc_request_send(ripc_stream *s, const char *to, const char *content, size_t len,
                      double timeout, ripc_request **out, ripc_error *err);
/* Waiting for the reply. Descriptors belong to waiters, not requests: a
 * request nobody waits for holds none, so any number can be in flight.
 *
 * ripc_request_wait blocks until the outcome or the request's deadline:
 * RIPC_OK (*reply is yours to free), RIPC_TIMEOUT, RIPC_CLOSED,
 * RIPC_CONNECTION, RIPC_COMMAND (Redis refused the request's XADD: see
 * ripc_request_error), or RIPC_STATE when the reply was already taken, another
 * thread waits for the same request, or no descriptor could be opened.
 * To stop waits early, ripc_stream_stop ends them all with RIPC_CLOSED. */
RIPC_API int ripc_request_wait(ripc_request *r, ripc_entry **reply);
/* The same without blocking: RIPC_AGAIN while the reply is still awaited. */
RIPC_API int ripc_request_try(ripc_request *r, ripc_entry **reply);
/* 1 once ripc_request_try would not return RIPC_AGAIN; takes nothing. */
RIPC_API int ripc_request_ready(ripc_request *r);
/* For waiting from an event loop or a runtime's own I/O wait (that is how
 * the Ruby binding waits, so interrupts reach it): lends the request a
 * descriptor from the stream's small pool, readable once ripc_request_try
 * has an outcome (at once if it has one already), until
 * ripc_request_unwatch gives it back. One watcher per request at a time:
 * -1 with err (RIPC_STATE) and errno EBUSY when another one watches, or
 * errno EMFILE/ENFILE when no descriptor is left. Watch the
 * requests you are about to wait for, not every request in flight: a
 * descriptor lent per request would bring back the limit this avoids. */
RIPC_API int ripc_request_watch(ripc_request *r, ripc_error *err);
RIPC_API void ripc_request_unwatch(ripc_request *r);
RIPC_API double ripc_request_deadline(ripc_request *r); /* on ripc_monotonic_now() */
/* Removes the request from the ledger and frees it (giving back a descriptor
 * it was watched with); a reply arriving later is reported as unknown. */
RIPC_API void ripc_request_release(ripc_request *r);
RIPC_API const char *ripc_request_id(ripc_request *r);
/* After RIPC_COMMAND: what Redis answered when it refused the request (else NULL). */
RIPC_API const char *ripc_request_error(ripc_request *r);

/* Convenience for C callers: send, wait, release. */
RIPC_API int ripc_send(ripc_stream *s, const char *to, const char *content, size_t len,
              double timeout, ripc_entry **reply, ripc_error *err);

/* --- Serving ------------------------------------------------------------- */

/* Takes the next request addressed to this group: RIPC_OK (*out is yours;
 * answer it with ripc_respond, then free it), RIPC_TIMEOUT, or RIPC_CLOSED
 * once the stream stops. deadline is on ripc_monotonic_now(), 0 for none. */
RIPC_API int ripc_stream_next_request(ripc_stream *s, double deadline, ripc_entry **out);
/* The same without blocking: RIPC_AGAIN when none is queued. */
RIPC_API int ripc_stream_try_request(ripc_stream *s, ripc_entry **out);
/* Readable while a request is queued or the stream has stopped. */
RIPC_API int ripc_stream_requests_fd(ripc_stream *s);

/* Answers a request: writes the reply, acknowledges and deletes the request.
 * RIPC_STATE when the request was already answered; RIPC_COMMAND when Redis
 * refused the reply (the request stays pending and is reclaimed and handed
 * out again after reclaim_idle; a refusal of a reply that another thread's
 * write took along goes to the events as RIPC_EVENT_COMMAND instead). */
RIPC_API int ripc_respond(ripc_stream *s, const ripc_entry *request, int fulfilled,
                 const char *content, size_t len, ripc_error *err);

/* Background errors, taken like requests. */
RIPC_API int ripc_stream_next_event(ripc_stream *s, double deadline, ripc_event **out);
RIPC_API int ripc_stream_try_event(ripc_stream *s, ripc_event **out);
RIPC_API int ripc_stream_events_fd(ripc_stream *s);

/* --- Callbacks (for C programs) -------------------------------------------- */

/* Called on one of the engine's handler threads for each request; the entry
 * is the callback's to answer (ripc_respond, now or later from any thread)
 * and to free (ripc_entry_free). */
typedef void (*ripc_request_fn)(ripc_stream *s, ripc_entry *request, void *userdata);
/* Called on the engine's reporter thread for each background error. */
typedef void (*ripc_error_fn)(ripc_stream *s, int kind, const char *message, void *userdata);

/* Set before ripc_stream_connect. With a request callback, connect starts
 * `threads` handler threads (0: 3) that take requests and call it; without
 * one, take requests yourself with ripc_stream_next_request. Likewise the
 * error callback replaces ripc_stream_next_event. Every thread the engine
 * starts, these included, blocks asynchronous signals (SIGINT, SIGTERM,
 * SIGCHLD, ...): they reach the program's own threads. A callback that
 * starts a child process should reset the child's signal mask. */
RIPC_API int ripc_stream_on_request(ripc_stream *s, ripc_request_fn fn, void *userdata, int threads);
RIPC_API int ripc_stream_on_error(ripc_stream *s, ripc_error_fn fn, void *userdata);

/* Stops and closes: handler threads finish the callback they are in. */
RIPC_API void ripc_stream_disconnect(ripc_stream *s);

/* --- Introspection ------------------------------------------------------- */

typedef struct ripc_stats {
    size_t ledger_size;      /* requests waiting for a reply */
    size_t queued_requests;  /* requests read but not yet taken by a consumer */
    size_t inflight_requests;/* requests taken but not yet answered */
    size_t pool_connections; /* command connections open */
    size_t takeovers;        /* dead instances this one took over */
    size_t taken_over_entries; /* entries claimed from them */
    size_t reply_waiters;    /* requests being waited for now: each holds one descriptor */
    size_t spare_descriptors;/* descriptors kept open for the next waiters */
} ripc_stats;
RIPC_API void ripc_stream_stats(ripc_stream *s, ripc_stats *out);

/* Metrics: what the stream did since it was created (counters), what it
 * holds now (gauges) and how long things took over the last minute
 * (latency percentiles, in seconds; 0 with samples 0 when nothing was
 * measured). Each connected instance also publishes its figures at each
 * heartbeat, where `redis-ipc stats` reads them. */
enum { RIPC_METRICS_ERROR_CLASSES = 16, RIPC_METRICS_CLASS_LEN = 48 };
typedef struct ripc_metrics_error {
    char name[RIPC_METRICS_CLASS_LEN]; /* "connection", "command", "malformed", "error", a class a program noted... */
    unsigned long long count;
} ripc_metrics_error;
typedef struct ripc_latency {
    double p50, p90, p99;
    unsigned long long samples; /* measured in the window */
} ripc_latency;
typedef struct ripc_metrics {
    double at;                       /* ripc_monotonic_now() of the process, when taken */
    unsigned long long sent;         /* requests written */
    unsigned long long received;     /* requests handed to a handler */
    unsigned long long fulfilled, rejected;             /* requests this instance answered, by outcome */
    unsigned long long replies_fulfilled, replies_rejected; /* replies its own requests got */
    unsigned long long timed_out;    /* its requests that got no reply in time */
    unsigned long long redelivered;  /* received requests that may have been handled elsewhere already */
    int error_count;
    ripc_metrics_error errors[RIPC_METRICS_ERROR_CLASSES]; /* by class; "other" past the table */
    size_t in_flight;                /* its requests waiting for a reply */
    size_t queued;                   /* requests read, waiting for a handler */
    size_t consumers_busy;           /* requests a handler holds and has not answered */
    ripc_latency round_trip;         /* a request written to its reply read */
    ripc_latency handler;            /* a request taken by a handler to its answer */
} ripc_metrics;
RIPC_API void ripc_stream_metrics(ripc_stream *s, ripc_metrics *out);
/* Counts an error of the program's own (a handler that failed, say) under
 * class_name, next to the engine's. */
RIPC_API void ripc_stream_note_error(ripc_stream *s, const char *class_name);

/* Metrics in the Prometheus text format (version 0.0.4), one sample per
 * source for each family, labelled stream, group and instance. Writes at
 * most size bytes (NUL included) and returns the length the whole text
 * needs, as snprintf does. */
typedef struct ripc_metrics_source {
    const char *stream, *group, *instance;
    const ripc_metrics *metrics;
} ripc_metrics_source;
RIPC_API size_t ripc_metrics_prometheus(const ripc_metrics_source *sources, size_t count, char *buf, size_t size);

RIPC_API double ripc_monotonic_now(void);
/* 1 when this engine was built with TLS (hiredis >= 1.0 with hiredis_ssl). */
RIPC_API int ripc_tls_available(void);
/* 1 when this engine can sign (built with OpenSSL's libcrypto). */
RIPC_API int ripc_signing_available(void);
RIPC_API const char *ripc_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif
