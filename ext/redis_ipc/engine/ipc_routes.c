#include "ipc_routes.h"
#include "ipc_conn.h"
#include "ipc_keys.h"
#include "ipc_service.h"
#include "ipc_stream.h"
#include "ipc_util.h"

#include <stdlib.h>
#include <string.h>

/* An answer is asked again once it is REFRESH old, and trusted until it is
 * STALE old (a refresh that cannot reach Redis must not keep a group on a
 * lane its members may have left). A group no sender used for UNUSED is
 * forgotten, so an idle process asks nothing. At most MAX_GROUPS are
 * remembered; past that, a new group takes the shared stream. */
static const double REFRESH = 0.5, STALE = 2.0, UNUSED = 30.0;
enum { MAX_GROUPS = 1024, CHECKS_PER_ROUND = 256 };

struct route {
    int direct;
    double checked; /* 0: never */
    double used;
};

void ripc_routes_init(ripc_routes *r)
{
    pthread_mutex_init(&r->mutex, NULL);
    ripc_map_init(&r->groups);
}

static void free_route(const char *key, void *value, void *arg)
{
    (void)key; (void)arg;
    free(value);
}

void ripc_routes_reset(ripc_routes *r)
{
    pthread_mutex_lock(&r->mutex);
    ripc_map_each(&r->groups, free_route, NULL);
    ripc_map_destroy(&r->groups);
    ripc_map_init(&r->groups);
    pthread_mutex_unlock(&r->mutex);
}

void ripc_routes_destroy(ripc_routes *r)
{
    ripc_routes_reset(r);
    ripc_map_destroy(&r->groups);
    pthread_mutex_destroy(&r->mutex);
}

static int ask(ripc_stream *s, redisContext *c, char **groups, size_t count, ripc_error *err);

int ripc_routes_direct(ripc_stream *s, const char *group, int may_ask)
{
    ripc_routes *r = &s->routes;
    double now = ripc_now();
    int found, direct = 0, new_group = 0;
    pthread_mutex_lock(&r->mutex);
    struct route *route = ripc_map_get(&r->groups, group, &found);
    if (found) {
        route->used = now;
        direct = route->direct && now - route->checked < STALE;
    } else if (r->groups.size < MAX_GROUPS) {
        route = ripc_xcalloc(1, sizeof(*route));
        route->used = now;
        ripc_map_put(&r->groups, group, route);
        new_group = 1;
    }
    pthread_mutex_unlock(&r->mutex);
    if (!new_group) return direct;
    /* A group met for the first time: asked here, once, when a connection
     * is free (the first request to it then takes its lane as the later
     * ones do); else by the service thread at once. Either way the service
     * thread's refresh now has a group to look after. */
    redisContext *c;
    ripc_error err;
    int asked = 0;
    if (may_ask && ripc_pool_checkout(&s->pool, 0, &c, &err) == RIPC_OK) {
        char *name = ripc_strdup(group);
        asked = ask(s, c, &name, 1, &err) == 0;
        ripc_pool_checkin(&s->pool, c, c->err != 0);
        free(name);
        if (asked) {
            pthread_mutex_lock(&r->mutex);
            route = ripc_map_get(&r->groups, group, &found);
            direct = found && route->direct;
            pthread_mutex_unlock(&r->mutex);
        }
    }
    atomic_store(&s->routes_wanted, 1);
    ripc_service_nudge(s, 0);
    return direct;
}

int ripc_routes_known(ripc_routes *r, const char *group)
{
    int found;
    pthread_mutex_lock(&r->mutex);
    ripc_map_get(&r->groups, group, &found);
    pthread_mutex_unlock(&r->mutex);
    return found;
}

void ripc_routes_lost(ripc_routes *r, const char *group, size_t len)
{
    char *name = ripc_xmalloc(len + 1);
    memcpy(name, group, len);
    name[len] = '\0';
    int found;
    pthread_mutex_lock(&r->mutex);
    struct route *route = ripc_map_get(&r->groups, name, &found);
    if (found) route->direct = 0;
    pthread_mutex_unlock(&r->mutex);
    free(name);
}

/* Whether a consumer of instance iid is in an XINFO CONSUMERS reply. */
static int instance_listed(const redisReply *consumers, const char *iid)
{
    for (size_t i = 0; i < consumers->elements; i++) {
        const redisReply *name = ripc_reply_field(consumers->element[i], "name");
        char owner[RIPC_INSTANCE_NAME_MAX];
        if (name && name->type == REDIS_REPLY_STRING && ripc_name_instance(name->str, owner, sizeof(owner)) &&
            strcmp(owner, iid) == 0)
            return 1;
    }
    return 0;
}

/* From XINFO CONSUMERS of the group on the shared stream and on its
 * requests lane: direct when the lane has readers and every consumer on
 * the shared stream belongs to one of their instances. */
static int judge(const redisReply *shared, const redisReply *lane)
{
    if (!shared || !lane || shared->type != REDIS_REPLY_ARRAY || lane->type != REDIS_REPLY_ARRAY || lane->elements == 0)
        return 0;
    for (size_t i = 0; i < shared->elements; i++) {
        const redisReply *name = ripc_reply_field(shared->element[i], "name");
        char owner[RIPC_INSTANCE_NAME_MAX];
        if (!name || name->type != REDIS_REPLY_STRING || !ripc_name_instance(name->str, owner, sizeof(owner)) ||
            !instance_listed(lane, owner))
            return 0;
    }
    return 1;
}

typedef struct due_list {
    double now;
    char **groups;
    size_t count;
    double next;
} due_list;

static void collect_due(const char *group, void *value, void *arg)
{
    struct route *route = value;
    due_list *due = arg;
    if (due->now - route->used >= UNUSED) return; /* forgotten below */
    double at = route->checked + REFRESH;
    if (at <= due->now && due->count < CHECKS_PER_ROUND) due->groups[due->count++] = ripc_strdup(group);
    else if (at < due->next) due->next = at;
}

typedef struct unused_list {
    double now;
    char **groups;
    size_t count;
} unused_list;

static void collect_unused(const char *group, void *value, void *arg)
{
    struct route *route = value;
    unused_list *unused = arg;
    if (unused->now - route->used >= UNUSED && unused->count < CHECKS_PER_ROUND) unused->groups[unused->count++] = ripc_strdup(group);
}

double ripc_routes_refresh(ripc_stream *s, redisContext *c, ripc_error *err)
{
    ripc_routes *r = &s->routes;
    double now = ripc_now();
    due_list due = { now, ripc_xmalloc(CHECKS_PER_ROUND * sizeof(char *)), 0, now + REFRESH };
    unused_list unused = { now, ripc_xmalloc(CHECKS_PER_ROUND * sizeof(char *)), 0 };
    pthread_mutex_lock(&r->mutex);
    ripc_map_each(&r->groups, collect_unused, &unused);
    for (size_t i = 0; i < unused.count; i++) {
        int found;
        free(ripc_map_remove(&r->groups, unused.groups[i], &found));
        free(unused.groups[i]);
    }
    ripc_map_each(&r->groups, collect_due, &due);
    if (r->groups.size == 0) due.next = now + UNUSED;
    pthread_mutex_unlock(&r->mutex);
    free(unused.groups);
    if (due.count == 0) {
        free(due.groups);
        return due.next;
    }

    int asked = ask(s, c, due.groups, due.count, err);
    double checked = ripc_now();
    for (size_t g = 0; g < due.count; g++) free(due.groups[g]);
    free(due.groups);
    /* Not all asked (more than a round's worth): the rest soon. */
    return asked == 0 && due.count == CHECKS_PER_ROUND ? checked : checked + REFRESH;
}

/* Asks Redis about groups[0..count), two XINFO CONSUMERS each, all in one
 * round trip, and records the answers. -1 when the connection failed. */
static int ask(ripc_stream *s, redisContext *c, char **groups, size_t count, ripc_error *err)
{
    ripc_routes *r = &s->routes;
    size_t n = 2 * count;
    int *argcs = ripc_xmalloc(n * sizeof(*argcs));
    const char ***argvs = ripc_xmalloc(n * sizeof(*argvs));
    const size_t **lens = ripc_xmalloc(n * sizeof(*lens));
    const char **argv = ripc_xmalloc(4 * n * sizeof(*argv));
    size_t *len = ripc_xmalloc(4 * n * sizeof(*len));
    char **lane_keys = ripc_xmalloc(count * sizeof(*lane_keys));
    redisReply **replies = ripc_xcalloc(n, sizeof(*replies));
    for (size_t g = 0; g < count; g++) {
        lane_keys[g] = ripc_key_requests(s->stream, groups[g]);
        const char *keys[2] = { s->stream, lane_keys[g] };
        for (int k = 0; k < 2; k++) {
            size_t at = 2 * g + (size_t)k;
            const char **a = argv + 4 * at;
            a[0] = "XINFO"; a[1] = "CONSUMERS"; a[2] = keys[k]; a[3] = groups[g];
            for (int i = 0; i < 4; i++) len[4 * at + (size_t)i] = strlen(a[i]);
            argcs[at] = 4; argvs[at] = a; lens[at] = len + 4 * at;
        }
    }
    int ok = ripc_conn_pipeline(c, (int)n, argcs, argvs, lens, replies, err) == 0;
    double checked = ripc_now();
    pthread_mutex_lock(&r->mutex);
    for (size_t g = 0; g < count && ok; g++) {
        int found;
        struct route *route = ripc_map_get(&r->groups, groups[g], &found);
        if (!found) continue;
        route->direct = judge(replies[2 * g], replies[2 * g + 1]);
        route->checked = checked;
    }
    pthread_mutex_unlock(&r->mutex);
    for (size_t i = 0; i < n; i++)
        if (replies[i]) freeReplyObject(replies[i]);
    for (size_t g = 0; g < count; g++) free(lane_keys[g]);
    free(replies); free(lane_keys); free(len); free(argv); free(lens); free(argvs); free(argcs);
    return ok ? 0 : -1;
}
