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

void ripc_random_hex(char *out, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char buf[64];
    size_t done = 0;
    while (done < n) {
        size_t want = (n - done + 1) / 2;
        if (want > sizeof(buf)) want = sizeof(buf);
        ssize_t got = getrandom(buf, want, 0);
        if (got <= 0) {
            if (got < 0 && errno == EINTR) continue;
            abort(); /* the kernel's CSPRNG is not optional */
        }
        for (ssize_t i = 0; i < got && done < n; i++) {
            out[done++] = digits[buf[i] >> 4];
            if (done < n) out[done++] = digits[buf[i] & 15];
        }
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
