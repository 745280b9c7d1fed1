/* Servers: a process-wide list of the Redis servers its streams use, each
 * counted by the streams and subscribers that use it. */
#include "ipc_server.h"
#include "ipc_conn.h"
#include "ipc_util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const double RETRY_FIRST = 0.01, RETRY_MAX = 0.25;

struct ripc_server {
    ripc_server *next;
    int refs;                   /* registry lock */
    ripc_redis_config config;   /* its strings are its own (ripc_redis_config_copy) */
    pthread_mutex_t mutex;      /* the reachability below */
    int failures;               /* connects failed in a row */
    double retry_at;
};

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static ripc_server *registry;

/* The same server: the same address, login and TLS settings
 * (ripc_redis_config_same), and the same timeouts, which its connections
 * get. */
static int same_settings(const ripc_redis_config *a, const ripc_redis_config *b)
{
    return ripc_redis_config_same(a, b) && a->timeout == b->timeout && a->connect_timeout == b->connect_timeout;
}

/* In a forked child: the locks may have been held by a thread that the
 * child does not have. The servers stay: the parent's streams, which the
 * child may still free, hold them. */
static void after_fork_child(void)
{
    pthread_mutex_init(&registry_mutex, NULL);
    for (ripc_server *srv = registry; srv; srv = srv->next) pthread_mutex_init(&srv->mutex, NULL);
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void watch_forks(void) { pthread_atfork(NULL, NULL, after_fork_child); }

ripc_server *ripc_server_acquire(const ripc_redis_config *cfg)
{
    pthread_once(&fork_once, watch_forks);
    pthread_mutex_lock(&registry_mutex);
    ripc_server *srv = registry;
    while (srv && !same_settings(&srv->config, cfg)) srv = srv->next;
    if (!srv) {
        srv = ripc_xcalloc(1, sizeof(*srv));
        ripc_redis_config_copy(&srv->config, cfg);
        pthread_mutex_init(&srv->mutex, NULL);
        srv->next = registry;
        registry = srv;
    }
    srv->refs++;
    pthread_mutex_unlock(&registry_mutex);
    return srv;
}

void ripc_server_release(ripc_server *srv)
{
    if (!srv) return;
    pthread_mutex_lock(&registry_mutex);
    int last = --srv->refs == 0;
    if (last) {
        ripc_server **p = &registry;
        while (*p != srv) p = &(*p)->next;
        *p = srv->next;
    }
    pthread_mutex_unlock(&registry_mutex);
    if (!last) return;
    pthread_mutex_destroy(&srv->mutex);
    ripc_redis_config_free(&srv->config);
    free(srv);
}

const ripc_redis_config *ripc_server_config(const ripc_server *srv)
{
    return &srv->config;
}

redisContext *ripc_server_connect(ripc_server *srv, double extra_read_timeout, ripc_error *err)
{
    redisContext *c = ripc_conn_open(&srv->config, extra_read_timeout, err);
    pthread_mutex_lock(&srv->mutex);
    if (c) {
        srv->failures = 0;
        srv->retry_at = 0;
    } else {
        double delay = RETRY_FIRST;
        for (int i = 0; i < srv->failures && delay < RETRY_MAX; i++) delay *= 2;
        srv->failures++;
        srv->retry_at = ripc_now() + (delay < RETRY_MAX ? delay : RETRY_MAX);
    }
    pthread_mutex_unlock(&srv->mutex);
    return c;
}

double ripc_server_retry_at(ripc_server *srv)
{
    pthread_mutex_lock(&srv->mutex);
    double at = srv->retry_at;
    pthread_mutex_unlock(&srv->mutex);
    return at;
}

