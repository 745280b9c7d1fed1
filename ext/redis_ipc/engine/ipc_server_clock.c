#include "ipc_server_clock.h"
#include "ipc_conn.h"
#include "ipc_util.h"

#include <stdlib.h>
#include <time.h>

void ripc_server_clock_init(ripc_server_clock *k)
{
    pthread_mutex_init(&k->mutex, NULL);
    k->offset = 0;
    k->checked_at = 0;
}

void ripc_server_clock_destroy(ripc_server_clock *k)
{
    pthread_mutex_destroy(&k->mutex);
}

void ripc_server_clock_reset(ripc_server_clock *k)
{
    pthread_mutex_lock(&k->mutex);
    k->checked_at = 0;
    pthread_mutex_unlock(&k->mutex);
}

/* TIME answers [seconds, microseconds] as strings. */
static int parse_time(const redisReply *r, double *seconds)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) return -1;
    for (int i = 0; i < 2; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING) return -1;
    *seconds = (double)strtoll(r->element[0]->str, NULL, 10) + (double)strtoll(r->element[1]->str, NULL, 10) / 1e6;
    return 0;
}

long long ripc_server_clock_ms(ripc_server_clock *k, redisContext *c, double max_age, ripc_error *err)
{
    double now = ripc_now();
    pthread_mutex_lock(&k->mutex);
    int fresh = k->checked_at > 0 && now - k->checked_at < max_age;
    double offset = k->offset;
    pthread_mutex_unlock(&k->mutex);
    if (!fresh) {
        const char *argv[] = { "TIME" };
        size_t lens[] = { 4 };
        double sent = ripc_now();
        redisReply *r = ripc_conn_run(c, 1, argv, lens, err);
        if (!r) return -1;
        double received = ripc_now(), server;
        int ok = parse_time(r, &server) == 0;
        if (!ok) ripc_error_set(err, RIPC_PROTOCOL, "TIME answered %s", r->type == REDIS_REPLY_ERROR ? r->str : "something else");
        freeReplyObject(r);
        if (!ok) return -1;
        /* The server read its clock about half way through the round trip. */
        now = received;
        offset = server - (sent + received) / 2;
        pthread_mutex_lock(&k->mutex);
        k->offset = offset;
        k->checked_at = received;
        pthread_mutex_unlock(&k->mutex);
    }
    return (long long)((now + offset) * 1000);
}

long long ripc_server_clock_estimate_ms(ripc_server_clock *k)
{
    pthread_mutex_lock(&k->mutex);
    int known = k->checked_at > 0;
    double offset = k->offset;
    pthread_mutex_unlock(&k->mutex);
    if (known) return (long long)((ripc_now() + offset) * 1000);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
