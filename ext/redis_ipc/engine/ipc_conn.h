/* One Redis connection: connect (TCP, TLS or unix socket), authenticate,
 * select the database, and run commands with errors turned into ripc_error. */
#ifndef RIPC_CONN_H
#define RIPC_CONN_H

#include <pthread.h>
#include <hiredis/hiredis.h>
#include "redis_ipc.h"

/* What a connection to a server that may fail over (Sentinel, Cluster)
 * watches for: a reply saying the data is no longer there (READONLY, MOVED,
 * ASK, TRYAGAIN, CLUSTERDOWN, MASTERDOWN, a blocked read ended because the
 * server became a replica) fails the connection at once, as if it had
 * been cut, and calls moved(arg, epoch) from the thread that read it.
 * epoch is the opener's, also returned by ripc_conn_epoch. */
typedef struct ripc_conn_watch {
    void (*moved)(void *arg, unsigned long epoch);
    void *arg;
    unsigned long epoch;
} ripc_conn_watch;

/* Opens a connection whose reads may wait timeout + extra_read_timeout seconds
 * (dispatchers add their BLOCK time so a quiet stream is not a failure),
 * over TLS with tls (made from cfg, ipc_tls.h) when cfg asks for TLS, with
 * watch (or NULL). Called by ripc_server_connect (ipc_server.h), the one way in. */
struct ripc_tls_context;
redisContext *ripc_conn_open(const ripc_redis_config *cfg, struct ripc_tls_context *tls, double extra_read_timeout,
                             const ripc_conn_watch *watch, ripc_error *err);
/* The epoch of c's watch; 0 for an unwatched connection. */
unsigned long ripc_conn_epoch(const redisContext *c);
/* 1 when c failed on such a reply: the server refused that command, and
 * refuses the ones pipelined after it (the data is elsewhere), so none of
 * them was carried out. Not after a cut, which leaves them in doubt. */
int ripc_conn_moved(const redisContext *c);
/* Closes without sending anything (also right after fork: never QUIT a parent's socket). */
void ripc_conn_close(redisContext *c);
/* An idle connection has nothing to read; EOF or stray bytes mean the
 * server closed it (restart, CLIENT KILL, idle timeout): replace it before
 * writing rather than fail the command. */
int ripc_conn_idle_ok(redisContext *c);
/* Makes a thread blocked on c return at once; c must then be closed by its owner. */
void ripc_conn_interrupt(redisContext *c);
/* Replaces *slot by c under lock (where another thread may interrupt it)
 * and closes the old connection outside the lock. */
void ripc_conn_swap(pthread_mutex_t *lock, redisContext **slot, redisContext *c);

/* "redis://host:port/db", "rediss://..." or "unix:///path": what error
 * messages name (never a password). */
void ripc_conn_describe(const ripc_redis_config *cfg, char *buf, size_t len);

/* A config whose strings are the holder's own (a stream's, the waker's):
 * ripc_redis_config_free frees just those copies. */
void ripc_redis_config_copy(ripc_redis_config *dst, const ripc_redis_config *src);
void ripc_redis_config_free(ripc_redis_config *cfg);
/* Both reach the same server as the same user, the same way. */
int ripc_redis_config_same(const ripc_redis_config *a, const ripc_redis_config *b);

/* RIPC_CONFIGURATION when the server runs a Redis older than the engine
 * needs (6.2), from its INFO; RIPC_CONNECTION when c fails. */
int ripc_conn_check_version(redisContext *c, const ripc_redis_config *cfg, ripc_error *err);

/* Runs one command. Returns the reply, or NULL with err set (RIPC_CONNECTION,
 * after which c is unusable). An error reply is returned as is. */
redisReply *ripc_conn_run(redisContext *c, int argc, const char **argv, const size_t *lens, ripc_error *err);
/* ripc_conn_run for a command whose reply may be large (entries): stops
 * reading once more than max_bytes arrived and returns NULL with err set
 * (RIPC_PROTOCOL); c is then in the middle of a reply and unusable, so the
 * caller closes it. What a caller holds for a reply thus stays near
 * max_bytes (plus one socket read), whatever was written to the stream. */
redisReply *ripc_conn_run_bounded(redisContext *c, int argc, const char **argv, const size_t *lens, size_t max_bytes,
                                  ripc_error *err);
/* The same after `queued` commands appended to c before (redisAppendCommand*):
 * their replies, which come first, go to queued_replies[] (all NULL when
 * it returns NULL). */
redisReply *ripc_conn_run_bounded_after(redisContext *c, int queued, redisReply **queued_replies, int argc,
                                        const char **argv, const size_t *lens, size_t max_bytes, ripc_error *err);
/* Runs n pipelined commands in one round trip; replies[i] are set (or NULL on
 * a connection failure, when -1 is returned). */
int ripc_conn_pipeline(redisContext *c, int n, const int *argcs, const char ***argvs, const size_t **lens,
                       redisReply **replies, ripc_error *err);

/* RIPC_COMMAND: "Redis refused <command>: <server_message>" (command may be NULL). */
void ripc_error_refused(ripc_error *err, const char *command, const char *server_message);
/* The error code an error reply starts with ("OOM", "NOPERM"...), into buf. */
void ripc_error_cause(const char *server_message, char *buf, size_t len);
int ripc_reply_error_starts(const redisReply *reply, const char *prefix);
/* The value of field `name` in a [field, value, ...] reply (a row of XINFO,
 * SENTINEL MASTER), or NULL. */
const redisReply *ripc_reply_field(const redisReply *row, const char *name);


#endif
