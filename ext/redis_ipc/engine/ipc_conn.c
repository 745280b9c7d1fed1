#include "ipc_conn.h"
#include "ipc_tls.h"
#include "ipc_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

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
    else snprintf(buf, len, "%s://%s:%d/%d", cfg->tls ? "rediss" : "redis", cfg->host ? cfg->host : "127.0.0.1",
                  cfg->port ? cfg->port : 6379, cfg->db);
}

int ripc_redis_config_same(const ripc_redis_config *a, const ripc_redis_config *b)
{
    if (!ripc_same_string(a->sentinels, b->sentinels) || !ripc_same_string(a->master_name, b->master_name) ||
        !ripc_same_string(a->sentinel_username, b->sentinel_username) ||
        !ripc_same_string(a->sentinel_password, b->sentinel_password) || !ripc_same_string(a->cluster_nodes, b->cluster_nodes))
        return 0;
    if (!ripc_same_string(a->path, b->path) || a->db != b->db) return 0;
    if (!ripc_same_string(a->username, b->username) || !ripc_same_string(a->password, b->password)) return 0;
    if (a->path) return 1;
    return a->port == b->port && ripc_same_string(a->host, b->host) && !a->tls == !b->tls &&
           !a->tls_skip_verify == !b->tls_skip_verify && ripc_same_string(a->tls_ca_file, b->tls_ca_file) &&
           ripc_same_string(a->tls_ca_path, b->tls_ca_path) && ripc_same_string(a->tls_cert, b->tls_cert) &&
           ripc_same_string(a->tls_key, b->tls_key) && ripc_same_string(a->tls_sni, b->tls_sni);
}

enum { CONFIG_STRINGS = 14 };

/* The string fields of a config: copying and freeing list them once. */
static void config_strings(ripc_redis_config *c, const char **slots[CONFIG_STRINGS])
{
    const char **all[CONFIG_STRINGS] = { &c->host, &c->path, &c->username, &c->password, &c->tls_ca_file,
                                         &c->tls_ca_path, &c->tls_cert, &c->tls_key, &c->tls_sni,
                                         &c->sentinels, &c->master_name, &c->sentinel_username,
                                         &c->sentinel_password, &c->cluster_nodes };
    memcpy(slots, all, sizeof(all));
}

void ripc_redis_config_copy(ripc_redis_config *dst, const ripc_redis_config *src)
{
    *dst = *src;
    const char **slots[CONFIG_STRINGS];
    config_strings(dst, slots);
    for (int i = 0; i < CONFIG_STRINGS; i++) *slots[i] = ripc_strdup(*slots[i]);
}

void ripc_redis_config_free(ripc_redis_config *cfg)
{
    const char **slots[CONFIG_STRINGS];
    config_strings(cfg, slots);
    for (int i = 0; i < CONFIG_STRINGS; i++) {
        free((char *)*slots[i]);
        *slots[i] = NULL;
    }
}

/* --- watching for a server that is no longer where the data is ------------ */

/* A watched connection's reader privdata. */
typedef struct watched_conn {
    ripc_conn_watch watch;
    redisReader *reader;
    int moved; /* failed by such a reply (ripc_conn_moved) */
} watched_conn;

/* hiredis's own reply builders, and ours: the same but for errors. */
static redisReplyObjectFunctions *plain_builders;
static redisReplyObjectFunctions watching_builders;
static pthread_once_t builders_once = PTHREAD_ONCE_INIT;

static void *create_string(const redisReadTask *task, char *str, size_t len);

static void copy_builders(void)
{
    redisReader *r = redisReaderCreate(); /* made with hiredis's builders */
    plain_builders = r->fn;
    redisReaderFree(r);
    watching_builders = *plain_builders;
    watching_builders.createString = create_string;
}

/* The codes of replies that mean the data is elsewhere now: a primary
 * demoted to replica (READONLY, or a blocked read ended by the change:
 * UNBLOCK), a slot that moved or is moving (MOVED, ASK, TRYAGAIN), a
 * cluster or link down during a failover (CLUSTERDOWN, MASTERDOWN). */
static int data_elsewhere(const char *str, size_t len)
{
    static const char *const codes[] = { "READONLY", "UNBLOCK", "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN" };
    size_t code_len = 0;
    while (code_len < len && str[code_len] != ' ') code_len++;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strlen(codes[i]) == code_len && memcmp(codes[i], str, code_len) == 0) return 1;
    return 0;
}

/* Such a reply fails the connection as a cut would (hiredis then refuses
 * every later read), so that every holder already reconnects and retries
 * instead of taking it for a refusal; a reply inside an array (a
 * transaction, a script's result) is left to its reader. */
static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    watched_conn *w = task->privdata;
    if (w && task->type == REDIS_REPLY_ERROR && !task->parent && data_elsewhere(str, len)) {
        redisReader *r = w->reader;
        r->err = REDIS_ERR_OTHER;
        snprintf(r->errstr, sizeof(r->errstr), "%.*s (the server no longer holds the stream: following it)",
                 (int)(len > 80 ? 80 : len), str);
        w->moved = 1;
        if (w->watch.moved) w->watch.moved(w->watch.arg, w->watch.epoch);
    }
    return plain_builders->createString(task, str, len);
}

static void watch(redisContext *c, const ripc_conn_watch *watch)
{
    pthread_once(&builders_once, copy_builders);
    watched_conn *w = ripc_xcalloc(1, sizeof(*w));
    w->watch = *watch;
    w->reader = c->reader;
    c->reader->privdata = w;
    c->reader->fn = &watching_builders;
}

unsigned long ripc_conn_epoch(const redisContext *c)
{
    if (!c || c->reader->fn != &watching_builders) return 0;
    return ((const watched_conn *)c->reader->privdata)->watch.epoch;
}

int ripc_conn_moved(const redisContext *c)
{
    return c && c->reader->fn == &watching_builders && ((const watched_conn *)c->reader->privdata)->moved;
}

void ripc_conn_close(redisContext *c)
{
    if (!c) return;
    if (c->reader && c->reader->fn == &watching_builders) free(c->reader->privdata);
    ripc_tls_fork_guard_enter(); /* SSL_free */
    redisFree(c);
    ripc_tls_fork_guard_leave();
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

/* The first reply on a new connection failed. Over TLS the server's alert
 * says why (a client certificate it demands); in plain text, a server that
 * hangs up at once is most likely a TLS port. */
static void fail_first_reply(redisContext *c, const ripc_redis_config *cfg, ripc_error *err, const char *what)
{
    char where[300];
    ripc_conn_describe(cfg, where, sizeof(where));
    const char *alert = cfg->tls ? ripc_tls_last_alert() : NULL;
    int unix_socket = cfg->path && *cfg->path;
    if (alert)
        ripc_error_set(err, RIPC_CONNECTION, "%s %s: the server ended the TLS connection: %s%s", what, where, alert,
                       strstr(alert, "certificate") ? " (does it demand a client certificate?)" : "");
    else if (cfg->tls && !(cfg->tls_cert && *cfg->tls_cert))
        /* The alert can be lost: a server that hangs up at once may reset
         * the connection before the client reads it. */
        ripc_error_set(err, RIPC_CONNECTION, "%s %s: %s (the server ended the TLS connection: does it demand a client "
                       "certificate?)", what, where, c->err ? c->errstr : "no reply");
    else if (!cfg->tls && !unix_socket && (c->err == REDIS_ERR_EOF || c->err == REDIS_ERR_IO))
        ripc_error_set(err, RIPC_CONNECTION, "%s %s: %s (is it a TLS port? use rediss:// or ssl: true)", what, where,
                       c->errstr);
    else
        ripc_error_set(err, RIPC_CONNECTION, "%s %s: %s", what, where, c->err ? c->errstr : "no reply");
    ripc_conn_close(c);
}

/* Each connection's first round trip: AUTH, SELECT, or else PING (TCP). It
 * proves the server speaks Redis here, and over TLS it also reads what the
 * server sends after the handshake (session tickets), which would otherwise
 * look like stray bytes to ripc_conn_idle_ok. */
static int first_round_trips(redisContext *c, const ripc_redis_config *cfg, ripc_error *err)
{
    int talked = cfg->path && *cfg->path; /* a unix socket needs no proof */
    if (cfg->password && *cfg->password) {
        redisReply *r = cfg->username && *cfg->username
            ? redisCommand(c, "AUTH %s %s", cfg->username, cfg->password)
            : redisCommand(c, "AUTH %s", cfg->password);
        if (!r) { fail_first_reply(c, cfg, err, "lost the connection while authenticating to"); return -1; }
        if (r->type == REDIS_REPLY_ERROR) {
            char where[300];
            ripc_conn_describe(cfg, where, sizeof(where));
            ripc_error_set(err, RIPC_CONNECTION, "authentication failed at %s: %s", where, r->str);
            freeReplyObject(r);
            ripc_conn_close(c);
            return -1;
        }
        freeReplyObject(r);
        talked = 1;
    }
    if (cfg->db) {
        redisReply *r = redisCommand(c, "SELECT %d", cfg->db);
        if (!r && !talked) { fail_first_reply(c, cfg, err, "could not talk to"); return -1; }
        if (!r || r->type == REDIS_REPLY_ERROR) {
            char where[300];
            ripc_conn_describe(cfg, where, sizeof(where));
            ripc_error_set(err, RIPC_CONNECTION, "could not select db %d at %s: %s", cfg->db, where,
                           r ? r->str : c->errstr);
            if (r) freeReplyObject(r);
            ripc_conn_close(c);
            return -1;
        }
        freeReplyObject(r);
        talked = 1;
    }
    if (!talked) {
        /* An error reply (NOAUTH...) still proves a Redis: commands report it. */
        redisReply *r = redisCommand(c, "PING");
        if (!r) { fail_first_reply(c, cfg, err, "could not talk to"); return -1; }
        freeReplyObject(r);
    }
    return 0;
}

/* The TLS handshake on c; -1 with err and c closed when it fails. */
static int start_tls(redisContext *c, const ripc_redis_config *cfg, ripc_tls_context *tls, struct timeval ctv,
                     ripc_error *err)
{
    /* The handshake's reads wait at most connect_timeout: a server that
     * never answers it must not hang the caller. */
    if (redisSetTimeout(c, ctv) != REDIS_OK) return fail(c, cfg, err, "could not set timeouts on");
    char where[300];
    ripc_conn_describe(cfg, where, sizeof(where));
    if (!tls) ripc_error_set(err, RIPC_CONFIGURATION, "TLS asked for %s without a TLS context", where);
    if (!tls || ripc_tls_handshake(c, tls, cfg, where, err) != 0) {
        ripc_conn_close(c);
        return -1;
    }
    return 0;
}

redisContext *ripc_conn_open(const ripc_redis_config *cfg, ripc_tls_context *tls, double extra_read_timeout,
                             const ripc_conn_watch *watching, ripc_error *err)
{
    struct timeval ctv = to_timeval(cfg->connect_timeout > 0 ? cfg->connect_timeout : 1.0);
    redisContext *c;
    int unix_socket = cfg->path && *cfg->path;
    if (unix_socket) c = redisConnectUnixWithTimeout(cfg->path, ctv);
    else c = redisConnectWithTimeout(cfg->host ? cfg->host : "127.0.0.1", cfg->port ? cfg->port : 6379, ctv);
    if (!c || c->err) { fail(c, cfg, err, "could not connect to"); return NULL; }

    /* hiredis frees its read buffer whenever it drains with more than 16 KB
     * spare, then grows it again for the next batch of entries: under load
     * that malloc churn was a tenth of a dispatcher's CPU. Keep up to 1 MB
     * (a buffer grown by a batch of huge entries is still given back). */
    c->reader->maxbuf = 1024 * 1024;

    /* From the handshake to the first replies, which read the session
     * tickets, OpenSSL takes its process-wide locks: fork waits. */
    int tls_on = cfg->tls && !unix_socket;
    if (tls_on) ripc_tls_fork_guard_enter();
    int failed = tls_on && start_tls(c, cfg, tls, ctv, err) != 0;
    if (!failed) {
        double rt = (cfg->timeout > 0 ? cfg->timeout : 1.0) + extra_read_timeout;
        failed = redisSetTimeout(c, to_timeval(rt)) != REDIS_OK ? fail(c, cfg, err, "could not set timeouts on")
                                                                : first_round_trips(c, cfg, err);
    }
    if (tls_on) ripc_tls_fork_guard_leave();
    if (failed) return NULL;
    if (watching) watch(c, watching);
    return c;
}

int ripc_conn_check_version(redisContext *c, const ripc_redis_config *cfg, ripc_error *err)
{
    redisReply *r = redisCommand(c, "INFO server");
    if (!r) {
        ripc_error_set(err, RIPC_CONNECTION, "redis connection failed: %s", c->err ? c->errstr : "no reply");
        return RIPC_CONNECTION;
    }
    /* A user without INFO (ACL) or a proxy that hides it: the commands
     * themselves will say if they are missing. */
    const char *line = r->type == REDIS_REPLY_STRING ? strstr(r->str, "redis_version:") : NULL;
    int major = 0, minor = 0, rc = RIPC_OK;
    if (line && sscanf(line, "redis_version:%d.%d", &major, &minor) == 2 && (major < 6 || (major == 6 && minor < 2))) {
        char where[300];
        ripc_conn_describe(cfg, where, sizeof(where));
        ripc_error_set(err, RIPC_CONFIGURATION,
                       "redis_ipc needs Redis 6.2 or newer (XPENDING IDLE, XTRIM MINID, XGROUP CREATECONSUMER); "
                       "%s runs %d.%d", where, major, minor);
        rc = RIPC_CONFIGURATION;
    }
    freeReplyObject(r);
    return rc;
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
    return ripc_conn_run_bounded_after(c, 0, NULL, argc, argv, lens, max_bytes, err);
}

/* Frees the replies gathered so far (a failed round trip gives none back). */
static void free_replies(redisReply **replies, int n)
{
    for (int i = 0; i < n; i++) {
        if (replies[i]) freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
}

redisReply *ripc_conn_run_bounded_after(redisContext *c, int queued, redisReply **queued_replies, int argc,
                                        const char **argv, const size_t *lens, size_t max_bytes, ripc_error *err)
{
    /* redisCommandArgv's loop, counting what each socket read brings (the
     * reader's buffer only grows while reading; parsing trims it). */
    int done = 0;
    for (int i = 0; i < queued; i++) queued_replies[i] = NULL;
    if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK) goto broken;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK) goto broken;
    size_t received = 0;
    int got = 0;
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK) goto broken;
        if (reply && got < queued) { /* a reply of a command queued before */
            queued_replies[got++] = reply;
            continue;
        }
        if (reply) return reply;
        if (received > max_bytes) {
            c->err = REDIS_ERR_OTHER; /* never read from c again */
            snprintf(c->errstr, sizeof(c->errstr), "reply over %zu bytes abandoned", max_bytes);
            free_replies(queued_replies, queued);
            ripc_error_set(err, RIPC_PROTOCOL, "a reply of Redis was over %zu bytes: abandoned", max_bytes);
            return NULL;
        }
        size_t before = c->reader->len;
        if (redisBufferRead(c) != REDIS_OK) goto broken;
        received += c->reader->len - before;
    }
broken:
    free_replies(queued_replies, queued);
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
    free_replies(replies, n);
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

const redisReply *ripc_reply_field(const redisReply *row, const char *name)
{
    for (size_t j = 0; row && row->type == REDIS_REPLY_ARRAY && j + 1 < row->elements; j += 2)
        if (row->element[j]->type == REDIS_REPLY_STRING && strcmp(row->element[j]->str, name) == 0) return row->element[j + 1];
    return NULL;
}

int ripc_reply_error_starts(const redisReply *reply, const char *prefix)
{
    return reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, prefix, strlen(prefix)) == 0;
}
