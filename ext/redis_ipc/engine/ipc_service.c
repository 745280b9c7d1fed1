/* The service thread. Every connected stream of the process registers two
 * periodic tasks here: its heartbeat and its chores (takeovers, ledger
 * sweeps, the inbox sweep, reclaim, lazy acks, retention). One thread runs
 * them all, each on the stream's own service connection, so a process's
 * thread and connection counts no longer grow by two per stream for them.
 *
 * Beats come first: a beat that is due runs before any chores, and chores
 * do a bounded step at a time, giving the thread back as soon as a beat is
 * due (ripc_service_beat_waiting), so no chore delays a beat past
 * dead_after and gets a live instance taken for dead. What a single thread
 * cannot avoid: a command that blocks (a Redis that stalls, an unreachable
 * host waiting out connect_timeout) delays the other streams' work as long.
 * Streams on the same Redis stall together anyway, and their beats are
 * judged with that in mind (ipc_liveness.c); streams on a Redis that hangs
 * delay those on another by up to their timeouts (1 s by default).
 *
 * The thread starts with the first stream registered and ends when the
 * last one leaves, so an idle library holds no thread (and valgrind sees
 * none left at exit). A forked child starts with an empty service: the
 * parent's thread does not exist there, and the parent's streams are not
 * the child's to serve. */
#include "ipc_service.h"
#include "ipc_conn.h"
#include "ipc_notifier.h"
#include "ipc_stream.h"
#include "ipc_util.h"

#include <poll.h>
#include <pthread.h>
#include <string.h>

static struct {
    pthread_mutex_t lifecycle; /* starting and joining the thread */
    pthread_mutex_t mutex;     /* everything below and the tasks' fields */
    ripc_notifier wake;        /* new work sooner than the thread sleeps until, or quit */
    int wake_ok;
    pthread_cond_t done;       /* a task finished running */
    const ripc_service_hooks *hooks; /* the streams' (all the same) */
    ripc_service_task *tasks;
    ripc_service_task *running;
    int running_chores;        /* running's chores (not its beat) */
    double sleeps_until;       /* 0 while the thread works */
    int quit;
    ripc_thread thread;
} svc;

static pthread_once_t svc_once = PTHREAD_ONCE_INIT;

static void svc_init_state(void)
{
    memset(&svc, 0, sizeof(svc));
    pthread_mutex_init(&svc.lifecycle, NULL);
    pthread_mutex_init(&svc.mutex, NULL);
    ripc_cond_init(&svc.done);
    svc.wake_ok = ripc_notifier_open(&svc.wake) == 0;
}

/* In a forked child only the forking thread exists: the locks may have been
 * held by a parent thread at fork time, so they are made anew. */
static void svc_after_fork_child(void)
{
    /* The doorbell is shared with the parent: ringing it would wake the
     * parent's thread. */
    if (svc.wake_ok) ripc_notifier_close(&svc.wake);
    svc_init_state();
}

static void svc_init(void)
{
    svc_init_state();
    pthread_atfork(NULL, NULL, svc_after_fork_child);
}

static double next_due(const ripc_service_task *t)
{
    return t->beat_due < t->chores_due ? t->beat_due : t->chores_due;
}

/* The task whose `beat` (or chores) time is the earliest, when it is due by now. */
static ripc_service_task *due_task(double now, int beat)
{
    ripc_service_task *best = NULL;
    for (ripc_service_task *t = svc.tasks; t; t = t->next) {
        double due = beat ? t->beat_due : t->chores_due;
        if (due <= now && (!best || due < (beat ? best->beat_due : best->chores_due))) best = t;
    }
    return best;
}

/* How often a busy thread still reads the subscribers. */
static const double IO_EVERY = 0.01;

/* Descriptors the hooks may add to the doorbell's. */
enum { MAX_WATCHED = 64 };

/* Waits (lock not held) for the doorbell, for the hooks' descriptors (the
 * waker's subscriber connections), or until `until`. */
static void wait_io(const ripc_service_hooks *hooks, double until)
{
    struct pollfd fds[1 + MAX_WATCHED];
    fds[0].fd = svc.wake.read_fd;
    fds[0].events = POLLIN;
    fds[0].revents = 0;
    int n = 1 + hooks->prepare(fds + 1, MAX_WATCHED);
    double retry = hooks->next_retry();
    if (retry > 0 && retry < until) until = retry;
    double wait = until - ripc_now();
    int ms = wait <= 0 ? 0 : wait > 3600 ? 3600 * 1000 : (int)(wait * 1000) + 1;
    if (poll(fds, (nfds_t)n, ms) <= 0) return;
    if (fds[0].revents) ripc_notifier_drain(&svc.wake);
    for (int i = 1; i < n; i++)
        if (fds[i].revents) hooks->read(fds[i].fd);
}

static void *service_main(void *arg)
{
    (void)arg;
    double last_io = 0;
    pthread_mutex_lock(&svc.mutex);
    while (!svc.quit) {
        double now = ripc_now();
        ripc_service_task *t = due_task(now, 1);
        int beat = t != NULL;
        if (!t) t = due_task(now, 0);
        if (!t || now - last_io >= IO_EVERY) {
            double until = now;
            if (!t) {
                until = now + 3600;
                for (ripc_service_task *u = svc.tasks; u; u = u->next)
                    if (next_due(u) < until) until = next_due(u);
            }
            svc.sleeps_until = until;
            pthread_mutex_unlock(&svc.mutex);
            wait_io(svc.hooks, until);
            pthread_mutex_lock(&svc.mutex);
            svc.sleeps_until = 0;
            last_io = ripc_now();
            continue;
        }
        svc.running = t;
        svc.running_chores = !beat;
        if (!beat) t->nudged = 0;
        pthread_mutex_unlock(&svc.mutex);
        double next = beat ? t->hooks->beat(t->stream) : t->hooks->chores(t->stream);
        pthread_mutex_lock(&svc.mutex);
        if (beat) t->beat_due = next;
        else t->chores_due = t->nudged ? ripc_now() : next;
        svc.running = NULL;
        pthread_cond_broadcast(&svc.done);
    }
    const ripc_service_hooks *hooks = svc.hooks;
    pthread_mutex_unlock(&svc.mutex);
    hooks->shutdown(); /* every stream has left */
    return NULL;
}

/* Lock order: svc.lifecycle, then the waker's lock (a subscriber message
 * nudges a stream under it), then svc.mutex; the waker is attached and
 * detached outside svc.mutex for that. `registered` changes under both
 * svc.lifecycle and svc.mutex, so either lock is enough to read it. */
int ripc_service_register(ripc_stream *s, const ripc_service_hooks *hooks, ripc_error *err)
{
    pthread_once(&svc_once, svc_init);
    ripc_service_task *t = &s->service;
    pthread_mutex_lock(&svc.lifecycle);
    if (t->registered) {
        pthread_mutex_unlock(&svc.lifecycle);
        return RIPC_OK;
    }
    if (!svc.wake_ok) {
        pthread_mutex_unlock(&svc.lifecycle);
        ripc_error_set(err, RIPC_STATE, "out of file descriptors");
        return RIPC_STATE;
    }
    hooks->attach(s);
    pthread_mutex_lock(&svc.mutex);
    double now = ripc_now();
    svc.hooks = hooks;
    t->hooks = hooks;
    t->stream = s;
    t->beat_due = now + s->options.heartbeat_interval; /* connect has just beaten */
    t->chores_due = now;
    t->nudged = 0;
    t->registered = 1;
    t->next = svc.tasks;
    svc.tasks = t;
    int rc = RIPC_OK;
    if (!svc.thread.started) {
        svc.quit = 0;
        if (ripc_thread_start(&svc.thread, "ripc service", service_main, NULL) != 0) {
            svc.tasks = t->next;
            t->registered = 0;
            ripc_error_set(err, RIPC_STATE, "could not start the service thread");
            rc = RIPC_STATE;
        }
    } else if (svc.sleeps_until > 0) {
        ripc_notifier_ring(&svc.wake); /* to subscribe its channel now */
    }
    pthread_mutex_unlock(&svc.mutex);
    if (rc != RIPC_OK) {
        hooks->detach(s);
        hooks->shutdown();
    }
    pthread_mutex_unlock(&svc.lifecycle);
    return rc;
}

void ripc_service_unregister(ripc_stream *s)
{
    ripc_service_task *t = &s->service;
    pthread_once(&svc_once, svc_init);
    pthread_mutex_lock(&svc.lifecycle);
    int joining = 0;
    if (t->registered) {
        pthread_mutex_lock(&svc.mutex);
        for (ripc_service_task **p = &svc.tasks; *p; p = &(*p)->next)
            if (*p == t) { *p = t->next; break; }
        t->registered = 0;
        t->next = NULL;
        /* Its beat or chores may be running: they end soon (they look at
         * s->stopping between steps) and must not touch it afterwards. */
        while (svc.running == t) pthread_cond_wait(&svc.done, &svc.mutex);
        pthread_mutex_unlock(&svc.mutex);
        t->hooks->detach(s);
        pthread_mutex_lock(&svc.mutex);
        if (!svc.tasks && svc.thread.started) {
            svc.quit = 1;
            ripc_notifier_ring(&svc.wake);
            joining = 1;
        }
        pthread_mutex_unlock(&svc.mutex);
    }
    if (joining) {
        ripc_thread_join(&svc.thread);
        t->hooks->shutdown(); /* the thread's own call may have come first */
    }
    pthread_mutex_unlock(&svc.lifecycle);
    ripc_conn_close(t->conn);
    t->conn = NULL;
}

void ripc_service_nudge(ripc_stream *s, double within)
{
    ripc_service_task *t = &s->service;
    pthread_once(&svc_once, svc_init);
    pthread_mutex_lock(&svc.mutex);
    if (t->registered) {
        double now = ripc_now();
        if (svc.running == t && svc.running_chores) {
            t->nudged = 1; /* it looks again as soon as this round ends */
        } else if (t->chores_due > now + within) {
            /* Frequent nudges (each round trip) cost nothing while the
             * chores run at a pace that meets them anyway. */
            t->chores_due = now;
            if (svc.sleeps_until > now) ripc_notifier_ring(&svc.wake);
        }
    }
    pthread_mutex_unlock(&svc.mutex);
}

int ripc_service_beat_waiting(void)
{
    pthread_mutex_lock(&svc.mutex);
    int waiting = due_task(ripc_now(), 1) != NULL;
    pthread_mutex_unlock(&svc.mutex);
    return waiting;
}

redisContext *ripc_service_checkout(ripc_stream *s, ripc_error *err)
{
    redisContext *c;
    /* Without waiting: a pool that senders have taken up must not delay a beat. */
    if (ripc_pool_checkout(&s->pool, ripc_now(), &c, err) == RIPC_OK) return c;
    ripc_service_task *t = &s->service;
    if (t->conn && (!ripc_conn_idle_ok(t->conn) || ripc_server_replaced(s->server, t->conn))) {
        ripc_conn_close(t->conn); /* closed while idle (restart, CLIENT KILL), or to a replaced primary */
        t->conn = NULL;
    }
    if (!t->conn) t->conn = ripc_server_connect(s->server, 0, err);
    return t->conn;
}

void ripc_service_checkin(ripc_stream *s, redisContext *c)
{
    ripc_service_task *t = &s->service;
    if (c == t->conn) {
        if (c->err) {
            ripc_conn_close(c);
            t->conn = NULL;
        }
        return;
    }
    ripc_pool_checkin(&s->pool, c, c->err != 0);
}
