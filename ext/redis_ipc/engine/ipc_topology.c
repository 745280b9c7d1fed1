/* Finding the primary. With Sentinel: SENTINEL MASTER of every sentinel,
 * the view with the highest config epoch (the latest failover: a sentinel
 * that has not seen it yet still names the old primary), then ROLE at that
 * address. With Cluster: CLUSTER KEYSLOT and CLUSTER SLOTS of each seed
 * node in turn. The answer is kept until a connection to it fails or a
 * reply says the data is elsewhere (ipc_conn.c's watch), and with Sentinel
 * until a poll finds another primary; the next connect looks again. */
#include "ipc_topology.h"
#include "ipc_conn.h"
#include "ipc_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MAX_ADDRESSES = 32, HOST_MAX = 256 };

typedef struct address {
    char host[HOST_MAX];
    int port;
} address;

struct ripc_topology {
    const ripc_redis_config *cfg;
    int cluster;
    address seeds[MAX_ADDRESSES]; /* sentinels, or seed nodes */
    int seed_count;
    char *hash_tag;
    pthread_mutex_t locating;     /* one lookup at a time */
    pthread_mutex_t mutex;        /* what follows */
    int located;                  /* primary is current */
    int known;                    /* primary was found once */
    address primary;
    address replicas[MAX_ADDRESSES]; /* Cluster: the primary's replicas when it was found */
    int replica_count;
    double next_poll;             /* Sentinel: when ripc_topology_poll may ask again */
    atomic_ulong epoch;
    redisContext *links[MAX_ADDRESSES]; /* Sentinel: kept connections to the sentinels (under locating) */
    double link_retry[MAX_ADDRESSES];   /* Sentinel: a poll skips a sentinel that failed until then */
};

/* A poll runs on the service thread, just after a beat: a sentinel that
 * does not answer must not hold it long, nor at every poll. */
static const double POLL_CONNECT_TIMEOUT = 0.5, POLL_SKIP_FAILED = 5.0;

int ripc_topology_wanted(const ripc_redis_config *cfg)
{
    return (cfg->sentinels && *cfg->sentinels) || (cfg->cluster_nodes && *cfg->cluster_nodes);
}

/* "host:port" or "[v6]:port" into a; 0 when it is neither. */
static int parse_address(const char *text, size_t len, address *a)
{
    while (len && *text == ' ') text++, len--;
    while (len && text[len - 1] == ' ') len--;
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (text[i] == ':') colon = text + i;
    if (!colon) return 0;
    const char *host = text;
    size_t host_len = (size_t)(colon - text);
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') host++, host_len -= 2;
    if (host_len == 0 || host_len >= HOST_MAX) return 0;
    const char *digits = colon + 1;
    size_t digit_count = len - (size_t)(colon - text) - 1;
    if (digit_count == 0 || digit_count > 5) return 0;
    long port = 0;
    for (size_t i = 0; i < digit_count; i++) {
        if (digits[i] < '0' || digits[i] > '9') return 0;
        port = port * 10 + (digits[i] - '0');
    }
    if (port < 1 || port > 65535) return 0;
    memcpy(a->host, host, host_len);
    a->host[host_len] = '\0';
    a->port = (int)port;
    return 1;
}

static int parse_list(const char *name, const char *list, address *out, int *count, ripc_error *err)
{
    *count = 0;
    for (const char *at = list; *at;) {
        size_t len = strcspn(at, ",");
        if (*count == MAX_ADDRESSES) {
            ripc_error_set(err, RIPC_ARGUMENT, "redis.%s: more than %d addresses", name, MAX_ADDRESSES);
            return 0;
        }
        if (!parse_address(at, len, &out[*count])) {
            ripc_error_set(err, RIPC_ARGUMENT, "redis.%s: \"%.*s\" is not host:port", name, (int)(len > 100 ? 100 : len), at);
            return 0;
        }
        (*count)++;
        at += len;
        if (*at == ',') at++;
    }
    if (*count == 0) ripc_error_set(err, RIPC_ARGUMENT, "redis.%s lists no address", name);
    return *count > 0;
}

/* The hash tag of key as Redis Cluster reads it: what lies between the
 * first '{' and the next '}', when that is not empty. */
static char *hash_tag_of(const char *key)
{
    const char *open = key ? strchr(key, '{') : NULL;
    const char *close = open ? strchr(open + 1, '}') : NULL;
    if (!close || close == open + 1) return NULL;
    return ripc_memdup(open, (size_t)(close - open + 1));
}

ripc_topology *ripc_topology_new(const ripc_redis_config *cfg, const char *key, ripc_error *err)
{
    int sentinel = cfg->sentinels && *cfg->sentinels, cluster = cfg->cluster_nodes && *cfg->cluster_nodes;
    if (sentinel && cluster) {
        ripc_error_set(err, RIPC_ARGUMENT, "redis.sentinels and redis.cluster_nodes exclude each other");
        return NULL;
    }
    if (sentinel && !(cfg->master_name && *cfg->master_name)) {
        ripc_error_set(err, RIPC_ARGUMENT, "redis.sentinels needs redis.master_name, the name the sentinels know the primary by");
        return NULL;
    }
    if (cluster && cfg->db != 0) {
        ripc_error_set(err, RIPC_ARGUMENT, "Redis Cluster has db 0 only, got db %d", cfg->db);
        return NULL;
    }
    char *tag = cluster ? hash_tag_of(key) : NULL;
    if (cluster && !tag) {
        ripc_error_set(err, RIPC_ARGUMENT,
                       "on Redis Cluster the stream name must carry a hash tag, e.g. \"{%.60s}\": every key of a "
                       "stream (the stream, its instances and consumers lists) must live in one slot, and those "
                       "key names (the 1.x wire's) are built from the stream name",
                       key ? key : "orders");
        return NULL;
    }
    ripc_topology *t = ripc_xcalloc(1, sizeof(*t));
    t->cfg = cfg;
    t->cluster = cluster;
    t->hash_tag = tag;
    if (!parse_list(cluster ? "cluster_nodes" : "sentinels", cluster ? cfg->cluster_nodes : cfg->sentinels, t->seeds,
                    &t->seed_count, err)) {
        free(tag);
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->locating, NULL);
    pthread_mutex_init(&t->mutex, NULL);
    atomic_init(&t->epoch, 1);
    return t;
}

void ripc_topology_free(ripc_topology *t)
{
    if (!t) return;
    for (int i = 0; i < t->seed_count; i++) ripc_conn_close(t->links[i]);
    pthread_mutex_destroy(&t->locating);
    pthread_mutex_destroy(&t->mutex);
    free(t->hash_tag);
    free(t);
}

void ripc_topology_after_fork(ripc_topology *t)
{
    if (!t) return;
    /* The parent's: their sockets closed, never their memory freed (a
     * thread of the parent may have been using one at the fork). */
    for (int i = 0; i < t->seed_count; i++) {
        if (t->links[i]) close(t->links[i]->fd);
        t->links[i] = NULL;
    }
    pthread_mutex_init(&t->locating, NULL);
    pthread_mutex_init(&t->mutex, NULL);
}

const char *ripc_topology_hash_tag(const ripc_topology *t) { return t->hash_tag; }
int ripc_topology_cluster(const ripc_topology *t) { return t->cluster; }
unsigned long ripc_topology_epoch(ripc_topology *t) { return atomic_load(&t->epoch); }

/* The server's settings, at another address. */
static ripc_redis_config at_address(const ripc_topology *t, const address *a)
{
    ripc_redis_config cfg = *t->cfg;
    cfg.host = a->host;
    cfg.port = a->port;
    cfg.path = NULL;
    return cfg;
}

static int same_address(const address *a, const address *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* A string element as an address ("" or "?": the node asked, whose own address Redis does not know). */
static int reply_address(const redisReply *host, const redisReply *port, const address *asked, address *out)
{
    if (!host || !port || host->type != REDIS_REPLY_STRING || host->len >= HOST_MAX) return 0;
    long long p = port->type == REDIS_REPLY_INTEGER ? port->integer
                : port->type == REDIS_REPLY_STRING ? strtoll(port->str, NULL, 10) : 0;
    if (p < 1 || p > 65535) return 0;
    snprintf(out->host, HOST_MAX, "%s", host->len == 0 || strcmp(host->str, "?") == 0 ? asked->host : host->str);
    out->port = (int)p;
    return 1;
}

/* What one sentinel says of the primary (SENTINEL MASTER): its address,
 * and the config epoch of that view, which each failover raises, so that
 * of several sentinels the one that saw the latest failover wins. The
 * connection is kept for the next look (ripc_topology_poll). */
static int sentinel_view(ripc_topology *t, struct ripc_tls_context *tls, int i, int polling, address *found,
                         long long *config_epoch, ripc_error *err)
{
    const address *sentinel = &t->seeds[i];
    if (polling && ripc_now() < t->link_retry[i]) return 0;
    if (!t->links[i]) {
        ripc_redis_config cfg = at_address(t, sentinel);
        cfg.username = t->cfg->sentinel_username;
        cfg.password = t->cfg->sentinel_password;
        cfg.db = 0;
        if (polling && cfg.connect_timeout > POLL_CONNECT_TIMEOUT) cfg.connect_timeout = POLL_CONNECT_TIMEOUT;
        t->links[i] = ripc_conn_open(&cfg, tls, 0, NULL, err);
        if (!t->links[i]) {
            t->link_retry[i] = ripc_now() + POLL_SKIP_FAILED;
            return 0;
        }
    }
    redisReply *r = redisCommand(t->links[i], "SENTINEL MASTER %s", t->cfg->master_name);
    const redisReply *ip = ripc_reply_field(r, "ip"), *port = ripc_reply_field(r, "port");
    const redisReply *epoch = ripc_reply_field(r, "config-epoch");
    int ok = reply_address(ip, port, sentinel, found) && epoch && epoch->type == REDIS_REPLY_STRING;
    if (ok) *config_epoch = strtoll(epoch->str, NULL, 10);
    else if (r)
        ripc_error_set(err, RIPC_CONNECTION, "sentinel %s:%d knows no primary named %s%s%s", sentinel->host, sentinel->port,
                       t->cfg->master_name, r->type == REDIS_REPLY_ERROR ? ": " : "", r->type == REDIS_REPLY_ERROR ? r->str : "");
    else
        ripc_error_set(err, RIPC_CONNECTION, "lost sentinel %s:%d: %s", sentinel->host, sentinel->port, t->links[i]->errstr);
    if (r) freeReplyObject(r);
    if (!r) {
        ripc_conn_close(t->links[i]);
        t->links[i] = NULL;
        t->link_retry[i] = ripc_now() + POLL_SKIP_FAILED;
    }
    return ok;
}

/* The primary as the sentinels see it: the view of the latest failover. */
static int ask_sentinels(ripc_topology *t, struct ripc_tls_context *tls, int polling, address *found, ripc_error *err)
{
    long long best = -1;
    for (int i = 0; i < t->seed_count; i++) {
        address a;
        long long config_epoch;
        if (sentinel_view(t, tls, i, polling, &a, &config_epoch, err) && config_epoch > best) {
            best = config_epoch;
            *found = a;
        }
    }
    return best >= 0;
}

/* ROLE at the primary the sentinels name: it may not have taken the role yet. */
static int is_primary(ripc_topology *t, struct ripc_tls_context *tls, const address *a, ripc_error *err)
{
    ripc_redis_config cfg = at_address(t, a);
    redisContext *c = ripc_conn_open(&cfg, tls, 0, NULL, err);
    if (!c) return 0;
    redisReply *r = redisCommand(c, "ROLE");
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->type == REDIS_REPLY_STRING &&
             strcmp(r->element[0]->str, "master") == 0;
    if (!ok)
        ripc_error_set(err, RIPC_CONNECTION, "%s:%d, named primary of %s by the sentinels, is not a primary (yet)", a->host,
                       a->port, t->cfg->master_name);
    if (r) freeReplyObject(r);
    ripc_conn_close(c);
    return ok;
}

/* The owner of the stream's slot (and its replicas) as one node sees it. */
static int ask_node(ripc_topology *t, struct ripc_tls_context *tls, const address *node, address *found,
                    address *replicas, int *replica_count, ripc_error *err)
{
    ripc_redis_config cfg = at_address(t, node);
    redisContext *c = ripc_conn_open(&cfg, tls, 0, NULL, err);
    if (!c) return 0;
    int ok = 0;
    redisReply *slot = redisCommand(c, "CLUSTER KEYSLOT %s", t->hash_tag);
    redisReply *slots = slot && slot->type == REDIS_REPLY_INTEGER ? redisCommand(c, "CLUSTER SLOTS") : NULL;
    for (size_t i = 0; slots && slots->type == REDIS_REPLY_ARRAY && i < slots->elements && !ok; i++) {
        const redisReply *range = slots->element[i];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3) continue;
        if (slot->integer < range->element[0]->integer || slot->integer > range->element[1]->integer) continue;
        const redisReply *owner = range->element[2];
        if (owner->type != REDIS_REPLY_ARRAY || owner->elements < 2) break;
        ok = reply_address(owner->element[0], owner->element[1], node, found);
        *replica_count = 0;
        for (size_t j = 3; ok && j < range->elements && *replica_count < MAX_ADDRESSES; j++) {
            const redisReply *r = range->element[j];
            if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
                reply_address(r->element[0], r->element[1], node, &replicas[*replica_count]))
                (*replica_count)++;
        }
    }
    if (!ok)
        ripc_error_set(err, RIPC_CONNECTION, "cluster node %s:%d knows no primary for the slot of %s%s%s", node->host,
                       node->port, t->hash_tag, slot && slot->type == REDIS_REPLY_ERROR ? ": " : "",
                       slot && slot->type == REDIS_REPLY_ERROR ? slot->str : "");
    if (slot) freeReplyObject(slot);
    if (slots) freeReplyObject(slots);
    ripc_conn_close(c);
    return ok;
}

/* Finds the primary and keeps it; a new primary that was a replica of the
 * last one (Sentinel: any other primary) counts a failover. */
static int locate(ripc_topology *t, struct ripc_tls_context *tls, ripc_error *err)
{
    pthread_mutex_lock(&t->locating);
    pthread_mutex_lock(&t->mutex);
    int located = t->located;
    pthread_mutex_unlock(&t->mutex);
    if (located) { /* another thread just did */
        pthread_mutex_unlock(&t->locating);
        return 1;
    }
    address found, replicas[MAX_ADDRESSES];
    int replica_count = 0, ok = 0;
    if (t->cluster)
        for (int i = 0; i < t->seed_count && !ok; i++) ok = ask_node(t, tls, &t->seeds[i], &found, replicas, &replica_count, err);
    else
        ok = ask_sentinels(t, tls, 0, &found, err) && is_primary(t, tls, &found, err);
    if (ok) {
        pthread_mutex_lock(&t->mutex);
        int promoted = 0;
        if (t->known && !same_address(&t->primary, &found)) {
            promoted = !t->cluster;
            for (int i = 0; i < t->replica_count && !promoted; i++) promoted = same_address(&t->replicas[i], &found);
        }
        if (promoted) atomic_fetch_add(&t->epoch, 1);
        t->primary = found;
        memcpy(t->replicas, replicas, sizeof(replicas[0]) * (size_t)replica_count);
        t->replica_count = replica_count;
        t->known = t->located = 1;
        pthread_mutex_unlock(&t->mutex);
    }
    pthread_mutex_unlock(&t->locating);
    return ok;
}

void ripc_topology_poll(ripc_topology *t, struct ripc_tls_context *tls)
{
    if (t->cluster) return;
    double now = ripc_now();
    pthread_mutex_lock(&t->mutex);
    int due = t->known && now >= t->next_poll;
    if (due) t->next_poll = now + RIPC_TOPOLOGY_POLL;
    pthread_mutex_unlock(&t->mutex);
    /* A lookup under way tells as much. */
    if (!due || pthread_mutex_trylock(&t->locating) != 0) return;
    address found;
    ripc_error err;
    if (ask_sentinels(t, tls, 1, &found, &err)) {
        pthread_mutex_lock(&t->mutex);
        if (!same_address(&t->primary, &found)) {
            /* A failover: the old primary may still take writes for a
             * while (until the sentinels turn it into a replica), all
             * of them lost. Every connection to it must go. */
            t->primary = found;
            t->located = 0;
            atomic_fetch_add(&t->epoch, 1);
        }
        pthread_mutex_unlock(&t->mutex);
    }
    pthread_mutex_unlock(&t->locating);
}

/* Given up: the next connect looks again. Only by a connection of the
 * current epoch: one of an older epoch reports what is already known. */
static void give_up(void *arg, unsigned long epoch)
{
    ripc_topology *t = arg;
    pthread_mutex_lock(&t->mutex);
    if (epoch == atomic_load(&t->epoch)) t->located = 0;
    pthread_mutex_unlock(&t->mutex);
}

redisContext *ripc_topology_connect(ripc_topology *t, struct ripc_tls_context *tls, double extra_read_timeout,
                                    ripc_error *err)
{
    pthread_mutex_lock(&t->mutex);
    int located = t->located;
    pthread_mutex_unlock(&t->mutex);
    if (!located && !locate(t, tls, err)) return NULL;
    pthread_mutex_lock(&t->mutex);
    address primary = t->primary;
    ripc_conn_watch watch = { give_up, t, atomic_load(&t->epoch) };
    pthread_mutex_unlock(&t->mutex);
    ripc_redis_config cfg = at_address(t, &primary);
    redisContext *c = ripc_conn_open(&cfg, tls, extra_read_timeout, &watch, err);
    if (!c) give_up(t, watch.epoch);
    return c;
}
