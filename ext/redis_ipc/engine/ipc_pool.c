#include "ipc_pool.h"
#include "ipc_conn.h"
#include "ipc_util.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

void ripc_pool_init(ripc_pool *p, ripc_server *server, int max)
{
    pthread_mutex_init(&p->mutex, NULL);
    ripc_cond_init(&p->cond);
    p->server = server;
    p->max = max > 0 ? max : 1;
    p->idle = ripc_xcalloc((size_t)p->max, sizeof(*p->idle));
    p->idle_count = 0;
    p->open_count = 0;
    p->pid = ripc_getpid();
}

int ripc_pool_checkout(ripc_pool *p, double deadline, redisContext **out, ripc_error *err)
{
    *out = NULL;
    double timeout = ripc_server_config(p->server)->timeout;
    if (deadline <= 0) deadline = ripc_now() + (timeout > 0 ? timeout : 1.0);
    pthread_mutex_lock(&p->mutex);
    for (;;) {
        if (p->idle_count > 0) {
            redisContext *c = p->idle[--p->idle_count];
            if (!ripc_conn_idle_ok(c) || ripc_server_replaced(p->server, c)) {
                /* Redis restarted or closed it while idle, or it goes to a
                 * primary replaced since: replace it rather than fail the
                 * caller's command. */
                p->open_count--;
                ripc_conn_close(c);
                continue;
            }
            *out = c;
            pthread_mutex_unlock(&p->mutex);
            return RIPC_OK;
        }
        if (p->open_count < p->max) {
            p->open_count++;
            pthread_mutex_unlock(&p->mutex);
            /* Connect outside the lock: it can take up to connect_timeout. */
            redisContext *c = ripc_server_connect(p->server, 0, err);
            if (c) { *out = c; return RIPC_OK; }
            pthread_mutex_lock(&p->mutex);
            p->open_count--;
            pthread_cond_signal(&p->cond);
            pthread_mutex_unlock(&p->mutex);
            return RIPC_CONNECTION;
        }
        if (ripc_now() >= deadline) {
            pthread_mutex_unlock(&p->mutex);
            ripc_error_set(err, RIPC_CONNECTION, "no Redis connection free in the pool of %d", p->max);
            return RIPC_CONNECTION;
        }
        ripc_cond_wait_until(&p->cond, &p->mutex, deadline);
    }
}

void ripc_pool_checkin(ripc_pool *p, redisContext *c, int broken)
{
    if (!c) return;
    pthread_mutex_lock(&p->mutex);
    if (broken || c->err || p->idle_count >= p->max || ripc_server_replaced(p->server, c)) {
        p->open_count--;
        pthread_mutex_unlock(&p->mutex);
        ripc_conn_close(c);
        pthread_mutex_lock(&p->mutex);
    } else {
        p->idle[p->idle_count++] = c;
    }
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->mutex);
}

void ripc_pool_close_idle(ripc_pool *p)
{
    pthread_mutex_lock(&p->mutex);
    while (p->idle_count > 0) {
        ripc_conn_close(p->idle[--p->idle_count]);
        p->open_count--;
    }
    pthread_mutex_unlock(&p->mutex);
}

int ripc_pool_open_count(ripc_pool *p)
{
    pthread_mutex_lock(&p->mutex);
    int n = p->open_count;
    pthread_mutex_unlock(&p->mutex);
    return n;
}

void ripc_pool_destroy(ripc_pool *p)
{
    ripc_pool_close_idle(p);
    free(p->idle);
    p->idle = NULL;
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mutex);
}
