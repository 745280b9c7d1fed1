/* The waker: replies for this instance that another instance of our group
 * reads are XCLAIMed to our inbox consumer (WIRE.md step 2). Nothing in
 * Redis streams wakes us for that, so an instance of this engine that hands
 * a reply over also publishes on <stream>:<group>:<instance>:wake, and the
 * service thread (ipc_service.c), subscribed there, has the stream's inbox
 * swept at once. (1.x peers do not publish; for them the inbox is swept
 * every 20 ms while a sender waits.) No command is sent while idle.
 *
 * One subscriber connection per Redis server serves every stream of the
 * process that uses that server: each stream subscribes its own channel on
 * it. Only the service thread touches those connections; streams come and
 * go through the list below. */
#include "ipc_waker.h"
#include "ipc_conn.h"
#include "ipc_keys.h"
#include "ipc_service.h"
#include "ipc_stream.h"
#include "ipc_util.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A subscriber that cannot connect tries again after RETRY_MIN, doubling up
 * to RETRY_MAX: connecting blocks the service thread (up to connect_timeout
 * for a host that does not answer), and the inbox sweep covers missed wakes. */
static const double RETRY_MIN = 0.05, RETRY_MAX = 2.0;

typedef struct wake_entry {
    struct wake_entry *next;
    ripc_stream *stream;
    char *channel;
    int subscribed;            /* SUBSCRIBE sent on the current connection */
} wake_entry;

typedef struct unsubscribe {
    struct unsubscribe *next;
    char *channel;
} unsubscribe;

typedef struct subscriber {
    struct subscriber *next;
    ripc_server *server;       /* the streams' server (ipc_server.c) */
    redisContext *conn;        /* service thread only; NULL while disconnected */
    double retry_at, backoff;
    wake_entry *entries;       /* the streams using this server */
    unsubscribe *unsubscribes; /* channels of streams gone, to unsubscribe */
} subscriber;

static pthread_mutex_t wk_mutex = PTHREAD_MUTEX_INITIALIZER;
static subscriber *wk_subs;

/* A disconnected subscriber tries again at its own, slower pace (it
 * connects on the service thread), or at once when another connection to
 * its server has just worked. now 0: only the latter. */
static int retry_due(subscriber *sub, double now)
{
    return (now > 0 && now >= sub->retry_at) || ripc_server_retry_at(sub->server) == 0;
}

static void free_unsubscribes(subscriber *sub)
{
    while (sub->unsubscribes) {
        unsubscribe *u = sub->unsubscribes;
        sub->unsubscribes = u->next;
        free(u->channel);
        free(u);
    }
}

static void free_subscriber(subscriber *sub)
{
    ripc_conn_close(sub->conn);
    free_unsubscribes(sub);
    ripc_server_release(sub->server);
    free(sub);
}

static void ring(ripc_stream *s)
{
    atomic_store(&s->inbox_rung, 1);
    ripc_service_nudge(s, 0);
}

static void disconnect(subscriber *sub, double now)
{
    ripc_conn_close(sub->conn);
    sub->conn = NULL;
    sub->retry_at = now + RETRY_MIN;
    for (wake_entry *e = sub->entries; e; e = e->next) e->subscribed = 0;
    free_unsubscribes(sub); /* a new connection has none of them */
}

static void after_fork_child(void);
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void watch_forks(void) { pthread_atfork(NULL, NULL, after_fork_child); }

void ripc_waker_attach(ripc_stream *s)
{
    pthread_once(&fork_once, watch_forks);
    wake_entry *e = ripc_xcalloc(1, sizeof(*e));
    e->stream = s;
    e->channel = ripc_strdup(s->wake_channel);
    pthread_mutex_lock(&wk_mutex);
    subscriber *sub = wk_subs;
    while (sub && sub->server != s->server) sub = sub->next;
    if (!sub) {
        sub = ripc_xcalloc(1, sizeof(*sub));
        sub->server = s->server;
        ripc_server_retain(sub->server);
        sub->backoff = RETRY_MIN;
        sub->next = wk_subs;
        wk_subs = sub;
    }
    e->next = sub->entries;
    sub->entries = e;
    pthread_mutex_unlock(&wk_mutex);
}

void ripc_waker_detach(ripc_stream *s)
{
    pthread_mutex_lock(&wk_mutex);
    for (subscriber *sub = wk_subs; sub; sub = sub->next) {
        for (wake_entry **p = &sub->entries; *p; p = &(*p)->next) {
            wake_entry *e = *p;
            if (e->stream != s) continue;
            *p = e->next;
            if (e->subscribed && sub->conn) {
                unsubscribe *u = ripc_xcalloc(1, sizeof(*u));
                u->channel = e->channel;
                u->next = sub->unsubscribes;
                sub->unsubscribes = u;
            } else {
                free(e->channel);
            }
            free(e);
            pthread_mutex_unlock(&wk_mutex);
            return;
        }
    }
    pthread_mutex_unlock(&wk_mutex);
}

/* On a cluster, plain channels are broadcast to every node: the waker uses
 * the shard channels of the stream's slot instead (Redis 7), whose
 * messages stay on the nodes that serve it. */
static const char *sharded(const ripc_server *srv, const char *plain, const char *shard)
{
    return ripc_server_cluster(srv) ? shard : plain;
}

/* Sends the SUBSCRIBE and UNSUBSCRIBE commands waiting (lock held). */
static void send_pending(subscriber *sub, double now)
{
    redisContext *c = sub->conn;
    int queued = 0;
    for (wake_entry *e = sub->entries; e; e = e->next) {
        if (e->subscribed) continue;
        redisAppendCommand(c, "%s %s", sharded(sub->server, "SUBSCRIBE", "SSUBSCRIBE"), e->channel);
        e->subscribed = 1;
        queued = 1;
    }
    for (unsubscribe *u = sub->unsubscribes; u; u = u->next) {
        redisAppendCommand(c, "%s %s", sharded(sub->server, "UNSUBSCRIBE", "SUNSUBSCRIBE"), u->channel);
        queued = 1;
    }
    free_unsubscribes(sub);
    int done = !queued;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK) {
            disconnect(sub, now);
            return;
        }
}

int ripc_waker_prepare(struct pollfd *fds, int max)
{
    double now = ripc_now();
    int n = 0;
    pthread_mutex_lock(&wk_mutex);
    for (subscriber **p = &wk_subs; *p;) {
        subscriber *sub = *p;
        if (!sub->entries) {
            /* No stream uses this server any more. */
            *p = sub->next;
            free_subscriber(sub);
            continue;
        }
        if (!sub->conn && retry_due(sub, now)) {
            /* Connecting can take connect_timeout: not under the lock. Only
             * this thread frees subscribers, so sub stays. */
            pthread_mutex_unlock(&wk_mutex);
            ripc_error err;
            redisContext *c = ripc_server_connect(sub->server, 3600.0, &err);
            pthread_mutex_lock(&wk_mutex);
            now = ripc_now();
            if (c) {
                sub->conn = c;
                sub->backoff = RETRY_MIN;
                /* A hand-over may have been published while we were away. */
                for (wake_entry *e = sub->entries; e; e = e->next) ring(e->stream);
            } else {
                sub->retry_at = now + sub->backoff;
                sub->backoff = sub->backoff * 2 < RETRY_MAX ? sub->backoff * 2 : RETRY_MAX;
            }
        }
        if (sub->conn) send_pending(sub, now);
        if (sub->conn && n < max) {
            fds[n].fd = sub->conn->fd;
            fds[n].events = POLLIN;
            fds[n].revents = 0;
            n++;
        }
        p = &sub->next;
    }
    pthread_mutex_unlock(&wk_mutex);
    return n;
}

double ripc_waker_next_retry(void)
{
    double next = 0;
    pthread_mutex_lock(&wk_mutex);
    for (subscriber *sub = wk_subs; sub; sub = sub->next)
        if (!sub->conn && sub->entries) {
            double at = retry_due(sub, 0) ? ripc_now() : sub->retry_at;
            if (next == 0 || at < next) next = at;
        }
    pthread_mutex_unlock(&wk_mutex);
    return next;
}

void ripc_waker_read(int fd)
{
    double now = ripc_now();
    pthread_mutex_lock(&wk_mutex);
    subscriber *sub = wk_subs;
    while (sub && !(sub->conn && sub->conn->fd == fd)) sub = sub->next;
    if (sub && redisBufferRead(sub->conn) != REDIS_OK) {
        disconnect(sub, now); /* restart, CLIENT KILL: subscribe again */
        sub = NULL;
    }
    void *reply = NULL;
    while (sub && redisGetReplyFromReader(sub->conn, &reply) == REDIS_OK && reply) {
        const redisReply *r = reply;
        /* ["message", channel, payload] ("smessage" on a shard channel);
         * confirmations of (un)subscribing pass. A shard channel whose
         * slot moved is dropped by the server ("sunsubscribe" unasked):
         * subscribed again, which follows the slot (MOVED: ipc_conn.c). */
        const char *kind = r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING &&
                           r->element[1]->type == REDIS_REPLY_STRING ? r->element[0]->str : "";
        for (wake_entry *e = sub->entries; e && *kind; e = e->next) {
            if (strcmp(e->channel, r->element[1]->str) != 0) continue;
            if (strcmp(kind, "message") == 0 || strcmp(kind, "smessage") == 0) ring(e->stream);
            else if (strcmp(kind, "sunsubscribe") == 0) e->subscribed = 0;
        }
        freeReplyObject(reply);
        reply = NULL;
    }
    if (sub && sub->conn && sub->conn->err) disconnect(sub, now);
    pthread_mutex_unlock(&wk_mutex);
}

void ripc_waker_shutdown(void)
{
    pthread_mutex_lock(&wk_mutex);
    for (subscriber **p = &wk_subs; *p;) {
        subscriber *sub = *p;
        if (sub->entries) { p = &sub->next; continue; }
        *p = sub->next;
        free_subscriber(sub);
    }
    pthread_mutex_unlock(&wk_mutex);
}

/* In a forked child: forgets the parent's subscribers. */
static void after_fork_child(void)
{
    /* The parent's subscribers are not ours: close their sockets (never a
     * command on them) and forget them. Their memory stays as it is: the
     * service thread may have been in the middle of a read on one when the
     * process forked, and freeing a hiredis context it was changing aborts
     * the child (seen: "free(): invalid pointer" in redisFree). */
    pthread_mutex_init(&wk_mutex, NULL);
    for (subscriber *sub = wk_subs; sub; sub = sub->next)
        if (sub->conn) close(sub->conn->fd);
    wk_subs = NULL;
}

void ripc_waker_ring(ripc_stream *s, redisContext *c, const char *instance_id)
{
    char *channel = ripc_key_wake(s->stream, s->group, instance_id);
    redisReply *r = redisCommand(c, "%s %s 1", sharded(s->server, "PUBLISH", "SPUBLISH"), channel);
    free(channel);
    if (r) freeReplyObject(r);
}
