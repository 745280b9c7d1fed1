#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_setname_np */
#endif
#include "ipc_util.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

double ripc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ripc_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

int ripc_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex, double deadline)
{
    if (deadline <= 0) return pthread_cond_wait(cond, mutex);
    struct timespec ts;
    double whole = (double)(long long)deadline;
    ts.tv_sec = (time_t)whole;
    ts.tv_nsec = (long)((deadline - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    return pthread_cond_timedwait(cond, mutex, &ts);
}

int ripc_pthread_create(pthread_t *id, const char *name, void *(*fn)(void *), void *arg)
{
    static const int faults[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS };
    sigset_t all, saved;
    sigfillset(&all);
    for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) sigdelset(&all, faults[i]);
    /* The new thread inherits the creator's mask: block, create, restore. */
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    int rc = pthread_create(id, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (rc == 0) pthread_setname_np(*id, name);
    return rc;
}

int ripc_thread_start(ripc_thread *t, const char *name, void *(*fn)(void *), void *arg)
{
    t->started = ripc_pthread_create(&t->id, name, fn, arg) == 0;
    return t->started ? 0 : -1;
}

void ripc_thread_join(ripc_thread *t)
{
    if (t->started) pthread_join(t->id, NULL);
    t->started = 0;
}

/* The process's id, and this thread's unused random bytes. In a forked
 * child only the forking thread goes on, and the handler runs on it: it
 * drops that thread's bytes, which the parent may use too. */
static pid_t cached_pid;
static __thread unsigned char random_pool[256];
static __thread size_t random_left;
static pthread_once_t fork_watch_once = PTHREAD_ONCE_INIT;

static void renew_after_fork(void)
{
    __atomic_store_n(&cached_pid, getpid(), __ATOMIC_RELAXED);
    random_left = 0;
}

static void watch_forks(void)
{
    __atomic_store_n(&cached_pid, getpid(), __ATOMIC_RELAXED);
    pthread_atfork(NULL, NULL, renew_after_fork);
}

pid_t ripc_getpid(void)
{
    pthread_once(&fork_watch_once, watch_forks);
    return __atomic_load_n(&cached_pid, __ATOMIC_RELAXED);
}

static unsigned char random_byte(void)
{
    if (random_left == 0) {
        pthread_once(&fork_watch_once, watch_forks); /* before any byte can cross a fork */
        ssize_t got;
        while ((got = getrandom(random_pool, sizeof(random_pool), 0)) <= 0)
            if (got == 0 || errno != EINTR) abort(); /* the kernel's CSPRNG is not optional */
        random_left = (size_t)got;
    }
    /* Taken from the end and wiped: a byte is never handed out twice. */
    unsigned char b = random_pool[--random_left];
    random_pool[random_left] = 0;
    return b;
}

void ripc_random_hex(char *out, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t done = 0; done < n; done += 2) {
        unsigned char b = random_byte();
        out[done] = digits[b >> 4];
        if (done + 1 < n) out[done + 1] = digits[b & 15];
    }
    out[n] = '\0';
}

void *ripc_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) { fputs("redis_ipc: out of memory\n", stderr); abort(); }
    return p;
}

void *ripc_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) { fputs("redis_ipc: out of memory\n", stderr); abort(); }
    return p;
}

char *ripc_memdup(const char *s, size_t len)
{
    char *p = ripc_xmalloc(len + 1);
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

int ripc_same_string(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

char *ripc_strdup(const char *s)
{
    return s ? ripc_memdup(s, strlen(s)) : NULL;
}

int ripc_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned char c = *p;
        size_t need;
        unsigned int cp;
        if (c < 0x80) { p++; continue; }
        else if ((c & 0xE0) == 0xC0) { need = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { need = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { need = 3; cp = c & 0x07; }
        else return 0;
        if ((size_t)(end - p) <= need) return 0;
        for (size_t i = 1; i <= need; i++) {
            if ((p[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        /* overlong forms, surrogates and values past U+10FFFF are invalid */
        if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000)) return 0;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        p += need + 1;
    }
    return 1;
}

void ripc_error_set(ripc_error *err, int code, const char *fmt, ...)
{
    if (!err) return;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}
