/* Servers: a process-wide list of the Redis servers its streams use, each
 * counted by the streams and subscribers that use it. */
#include "ipc_server.h"
#include "ipc_conn.h"
#include "ipc_tls.h"
#include "ipc_util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const double RETRY_FIRST = 0.01, RETRY_MAX = 0.25;

struct ripc_server {
    ripc_server *next;
    int refs;                   /* registry lock */
    ripc_redis_config config;   /* its strings are its own (ripc_redis_config_copy) */
    ripc_tls_context *tls;      /* with TLS on: every connection's (NULL otherwise) */
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

static void free_server(ripc_server *srv)
{
    pthread_mutex_destroy(&srv->mutex);
    ripc_tls_context_free(srv->tls);
    ripc_redis_config_free(&srv->config);
    free(srv);
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

static ripc_server *find(const ripc_redis_config *cfg)
{
    ripc_server *srv = registry;
    while (srv && !same_settings(&srv->config, cfg)) srv = srv->next;
    return srv;
}

ripc_server *ripc_server_acquire(const ripc_redis_config *cfg, ripc_error *err)
{
    pthread_once(&fork_once, watch_forks);
    pthread_mutex_lock(&registry_mutex);
    ripc_server *srv = find(cfg);
    if (srv) srv->refs++;
    pthread_mutex_unlock(&registry_mutex);
    if (srv) return srv;

    /* Loading TLS files takes a while: not under the lock. */
    ripc_server *made = ripc_xcalloc(1, sizeof(*made));
    if (cfg->tls && !(cfg->path && *cfg->path) && !(made->tls = ripc_tls_context_new(cfg, err))) {
        free(made);
        return NULL;
    }
    ripc_redis_config_copy(&made->config, cfg);
    pthread_mutex_init(&made->mutex, NULL);
    pthread_mutex_lock(&registry_mutex);
    srv = find(cfg); /* another thread may have made it meanwhile */
    if (!srv) {
        srv = made;
        made = NULL;
        srv->next = registry;
        registry = srv;
    }
    srv->refs++;
    pthread_mutex_unlock(&registry_mutex);
    if (made) free_server(made);
    return srv;
}

void ripc_server_retain(ripc_server *srv)
{
    pthread_mutex_lock(&registry_mutex);
    srv->refs++;
    pthread_mutex_unlock(&registry_mutex);
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
    if (last) free_server(srv);
}

const ripc_redis_config *ripc_server_config(const ripc_server *srv)
{
    return &srv->config;
}

redisContext *ripc_server_connect(ripc_server *srv, double extra_read_timeout, ripc_error *err)
{
    redisContext *c = ripc_conn_open(&srv->config, srv->tls, extra_read_timeout, err);
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

