#include "ipc_conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

void ripc_error_set(ripc_error *err, int code, const char *fmt, ...)
{
    if (!err) return;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

static struct timeval to_timeval(double seconds)
{
    struct timeval tv;
    if (seconds < 0) seconds = 0;
    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    return tv;
}

void ripc_conn_describe(const ripc_redis_config *cfg, char *buf, size_t len)
{
    if (cfg->path && *cfg->path) snprintf(buf, len, "unix://%s", cfg->path);
    else snprintf(buf, len, "redis://%s:%d/%d", cfg->host ? cfg->host : "127.0.0.1", cfg->port ? cfg->port : 6379, cfg->db);
}

void ripc_conn_close(redisContext *c)
{
    if (c) redisFree(c);
}

int ripc_conn_idle_ok(redisContext *c)
{
    char byte;
    ssize_t n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void ripc_conn_interrupt(redisContext *c)
{
    /* shutdown() wakes a thread blocked in read() on this socket without
     * freeing anything under it; its owner sees an error and closes. */
    if (c && c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
}

void ripc_conn_swap(pthread_mutex_t *lock, redisContext **slot, redisContext *c)
{
    pthread_mutex_lock(lock);
    redisContext *old = *slot;
    *slot = c;
    pthread_mutex_unlock(lock);
    ripc_conn_close(old);
}

static int fail(redisContext *c, const ripc_redis_config *cfg, ripc_error *err, const char *what)
{
    char where[300];
    ripc_conn_describe(cfg, where, sizeof(where));
    ripc_error_set(err, RIPC_CONNECTION, "%s %s: %s", what, where, c && c->err ? c->errstr : "out of memory");
    ripc_conn_close(c);
    return -1;
}

redisContext *ripc_conn_open(const ripc_redis_config *cfg, double extra_read_timeout, ripc_error *err)
{
    struct timeval ctv = to_timeval(cfg->connect_timeout > 0 ? cfg->connect_timeout : 1.0);
    redisContext *c;
    if (cfg->path && *cfg->path) c = redisConnectUnixWithTimeout(cfg->path, ctv);
    else c = redisConnectWithTimeout(cfg->host ? cfg->host : "127.0.0.1", cfg->port ? cfg->port : 6379, ctv);
    if (!c || c->err) { fail(c, cfg, err, "could not connect to"); return NULL; }

    /* hiredis frees its read buffer whenever it drains with more than 16 KB
     * spare, then grows it again for the next batch of entries: under load
     * that malloc churn was a tenth of a dispatcher's CPU. Keep up to 1 MB
     * (a buffer grown by a batch of huge entries is still given back). */
    c->reader->maxbuf = 1024 * 1024;

    double rt = (cfg->timeout > 0 ? cfg->timeout : 1.0) + extra_read_timeout;
    if (redisSetTimeout(c, to_timeval(rt)) != REDIS_OK) { fail(c, cfg, err, "could not set timeouts on"); return NULL; }

    if (cfg->password && *cfg->password) {
        redisReply *r = cfg->username && *cfg->username
            ? redisCommand(c, "AUTH %s %s", cfg->username, cfg->password)
            : redisCommand(c, "AUTH %s", cfg->password);
        if (!r) { fail(c, cfg, err, "lost the connection while authenticating to"); return NULL; }
        if (r->type == REDIS_REPLY_ERROR) {
            char where[300];
            ripc_conn_describe(cfg, where, sizeof(where));
            ripc_error_set(err, RIPC_CONNECTION, "authentication failed at %s: %s", where, r->str);
            freeReplyObject(r);
            ripc_conn_close(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (cfg->db) {
        redisReply *r = redisCommand(c, "SELECT %d", cfg->db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            char where[300];
            ripc_conn_describe(cfg, where, sizeof(where));
            ripc_error_set(err, RIPC_CONNECTION, "could not select db %d at %s: %s", cfg->db, where,
                           r ? r->str : c->errstr);
            if (r) freeReplyObject(r);
            ripc_conn_close(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    return c;
}

redisReply *ripc_conn_run(redisContext *c, int argc, const char **argv, const size_t *lens, ripc_error *err)
{
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (!r) ripc_error_set(err, RIPC_CONNECTION, "redis connection failed: %s", c->err ? c->errstr : "no reply");
    return r;
}

redisReply *ripc_conn_run_bounded(redisContext *c, int argc, const char **argv, const size_t *lens, size_t max_bytes,
                                  ripc_error *err)
{
    /* redisCommandArgv's loop, counting what each socket read brings (the
     * reader's buffer only grows while reading; parsing trims it). */
    int done = 0;
    if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK) goto broken;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK) goto broken;
    size_t received = 0;
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK) goto broken;
        if (reply) return reply;
        if (received > max_bytes) {
            c->err = REDIS_ERR_OTHER; /* never read from c again */
            snprintf(c->errstr, sizeof(c->errstr), "reply over %zu bytes abandoned", max_bytes);
            ripc_error_set(err, RIPC_PROTOCOL, "a reply of Redis was over %zu bytes: abandoned", max_bytes);
            return NULL;
        }
        size_t before = c->reader->len;
        if (redisBufferRead(c) != REDIS_OK) goto broken;
        received += c->reader->len - before;
    }
broken:
    ripc_error_set(err, RIPC_CONNECTION, "redis connection failed: %s", c->err ? c->errstr : "no reply");
    return NULL;
}

int ripc_conn_pipeline(redisContext *c, int n, const int *argcs, const char ***argvs, const size_t **lens,
                       redisReply **replies, ripc_error *err)
{
    for (int i = 0; i < n; i++) replies[i] = NULL;
    for (int i = 0; i < n; i++) {
        if (redisAppendCommandArgv(c, argcs[i], argvs[i], lens[i]) != REDIS_OK) goto broken;
    }
    for (int i = 0; i < n; i++) {
        void *reply = NULL;
        if (redisGetReply(c, &reply) != REDIS_OK) goto broken;
        replies[i] = reply;
    }
    return 0;
broken:
    for (int i = 0; i < n; i++) {
        if (replies[i]) freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
    ripc_error_set(err, RIPC_CONNECTION, "redis connection failed: %s", c->err ? c->errstr : "no reply");
    return -1;
}

void ripc_error_refused(ripc_error *err, const char *command, const char *server_message)
{
    if (command) ripc_error_set(err, RIPC_COMMAND, "Redis refused %s: %s", command, server_message);
    else ripc_error_set(err, RIPC_COMMAND, "Redis refused a command: %s", server_message);
}

void ripc_error_cause(const char *server_message, char *buf, size_t len)
{
    /* Redis starts every error with its code in capitals (OOM, NOPERM,
     * READONLY, WRONGTYPE, ERR...): the same code is the same cause. */
    size_t n = strcspn(server_message, " ");
    if (n >= len) n = len - 1;
    memcpy(buf, server_message, n);
    buf[n] = '\0';
}

int ripc_reply_error_starts(const redisReply *reply, const char *prefix)
{
    return reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, prefix, strlen(prefix)) == 0;
}
