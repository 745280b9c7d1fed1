/* Servers: a process-wide list of the Redis servers its streams use, each
 * counted by the streams and subscribers that use it. A server is either
 * one address, or a primary found and followed through the sentinels or
 * the seed nodes of a cluster (ipc_topology.c finds it). */
#include "ipc_server.h"
#include "ipc_conn.h"
#include "ipc_tls.h"
#include "ipc_topology.h"
#include "ipc_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double RETRY_FIRST = 0.01, RETRY_MAX = 0.25;

struct ripc_server {
    ripc_server *next;
    int refs;                   /* registry lock */
    ripc_redis_config config;   /* its strings are its own (ripc_redis_config_copy) */
    ripc_topology *topology;    /* Sentinel or Cluster: where the primary is (NULL: config's address) */
    char *hash_tag;             /* Cluster: the tag its streams share, e.g. "{orders}" (part of its identity) */
    ripc_tls_context *tls;      /* with TLS on: every connection's (NULL otherwise) */
    pthread_mutex_t mutex;      /* the reachability below */
    int failures;               /* connects failed in a row */
    double retry_at;
};

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static ripc_server *registry;

/* The same server: the same address, login and TLS settings
 * (ripc_redis_config_same), the same timeouts, which its connections get,
 * and on a cluster the same slot. */
static int same_server(const ripc_server *srv, const ripc_redis_config *b, const char *hash_tag)
{
    const ripc_redis_config *a = &srv->config;
    return ripc_redis_config_same(a, b) && a->timeout == b->timeout && a->connect_timeout == b->connect_timeout &&
           ripc_same_string(srv->hash_tag, hash_tag);
}

static void free_server(ripc_server *srv)
{
    pthread_mutex_destroy(&srv->mutex);
    ripc_topology_free(srv->topology);
    ripc_tls_context_free(srv->tls);
    ripc_redis_config_free(&srv->config);
    free(srv->hash_tag);
    free(srv);
}

/* In a forked child: the locks may have been held by a thread that the
 * child does not have. The servers stay: the parent's streams, which the
 * child may still free, hold them. */
static void after_fork_child(void)
{
    pthread_mutex_init(&registry_mutex, NULL);
    for (ripc_server *srv = registry; srv; srv = srv->next) {
        pthread_mutex_init(&srv->mutex, NULL);
        ripc_topology_after_fork(srv->topology);
    }
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void watch_forks(void) { pthread_atfork(NULL, NULL, after_fork_child); }

static ripc_server *find(const ripc_redis_config *cfg, const char *hash_tag)
{
    ripc_server *srv = registry;
    while (srv && !same_server(srv, cfg, hash_tag)) srv = srv->next;
    return srv;
}

/* A new server, not yet listed: its topology checked and TLS files loaded. */
static ripc_server *make(const ripc_redis_config *cfg, const char *key, ripc_error *err)
{
    ripc_server *made = ripc_xcalloc(1, sizeof(*made));
    ripc_redis_config_copy(&made->config, cfg);
    pthread_mutex_init(&made->mutex, NULL);
    int ha = ripc_topology_wanted(cfg);
    if (ha) {
        made->topology = ripc_topology_new(&made->config, key, err);
        if (!made->topology) {
            free_server(made);
            return NULL;
        }
        made->hash_tag = ripc_strdup(ripc_topology_hash_tag(made->topology));
    }
    /* TLS never applies to a unix socket (which Sentinel and Cluster do not use). */
    if (cfg->tls && (ha || !(cfg->path && *cfg->path)) && !(made->tls = ripc_tls_context_new(cfg, err))) {
        free_server(made);
        return NULL;
    }
    return made;
}

ripc_server *ripc_server_acquire(const ripc_redis_config *cfg, const char *key, ripc_error *err)
{
    pthread_once(&fork_once, watch_forks);
    /* Checking the topology settings and loading TLS files take a while:
     * not under the lock. The server made is dropped if another thread
     * listed the same meanwhile. */
    ripc_server *made = make(cfg, key, err);
    if (!made) return NULL;
    pthread_mutex_lock(&registry_mutex);
    ripc_server *srv = find(cfg, made->hash_tag);
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

int ripc_server_fails_over(const ripc_server *srv)
{
    return srv->topology != NULL;
}

int ripc_server_cluster(const ripc_server *srv)
{
    return srv->topology && ripc_topology_cluster(srv->topology);
}

unsigned long ripc_server_epoch(const ripc_server *srv)
{
    return srv->topology ? ripc_topology_epoch(srv->topology) : 0;
}

int ripc_server_replaced(const ripc_server *srv, const redisContext *c)
{
    return srv->topology && ripc_conn_epoch(c) < ripc_server_epoch(srv);
}

void ripc_server_poll(ripc_server *srv)
{
    if (srv->topology) ripc_topology_poll(srv->topology, srv->tls);
}

redisContext *ripc_server_connect(ripc_server *srv, double extra_read_timeout, ripc_error *err)
{
    redisContext *c = srv->topology ? ripc_topology_connect(srv->topology, srv->tls, extra_read_timeout, err)
                                    : ripc_conn_open(&srv->config, srv->tls, extra_read_timeout, NULL, err);
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
