/* Small helpers shared by every engine file: clocks, random ids, error text. */
#ifndef RIPC_UTIL_H
#define RIPC_UTIL_H

#include <pthread.h>
#include <sys/types.h>
#include <stddef.h>
#include <time.h>
#include "redis_ipc.h"

/* Seconds on the monotonic clock; deadlines everywhere are expressed in it. */
double ripc_now(void);

/* Condition variables wait against CLOCK_MONOTONIC so wall-clock jumps
 * never stretch or cut a timeout. */
void ripc_cond_init(pthread_cond_t *cond);
/* Waits until signalled or the monotonic deadline passes (deadline <= 0: no deadline).
 * Returns 0 when signalled (or spuriously woken), ETIMEDOUT after the deadline. */
int ripc_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex, double deadline);

/* pthread_create with every asynchronous signal blocked in the new thread:
 * SIGINT, SIGTERM and the like go to the application's own threads (a
 * Ruby process's main thread, a C program's sigwait), never to one of
 * ours. Faults (SIGSEGV, SIGBUS, ...) stay deliverable so crash reports work.
 * The thread is named (at most 15 characters) for top -H, gdb and perf. */
int ripc_pthread_create(pthread_t *id, const char *name, void *(*fn)(void *), void *arg);

/* A native thread the engine starts and joins once. */
typedef struct ripc_thread {
    pthread_t id;
    int started;
} ripc_thread;
/* Returns 0, or -1 when the thread could not be created. */
int ripc_thread_start(ripc_thread *t, const char *name, void *(*fn)(void *), void *arg);
/* Joins it if it runs; safe to call again. */
void ripc_thread_join(ripc_thread *t);

/* Fills out with n random lowercase hex characters and a terminating NUL:
 * the kernel's CSPRNG, drawn a few hundred bytes at a time per thread (one
 * getrandom per request id was a system call per request). */
void ripc_random_hex(char *out, size_t n);

/* getpid(), without its system call (glibc keeps no cache): the engine
 * asks at every request whether it runs in a forked child. Right in a
 * child of fork(), whose handler renews it. */
pid_t ripc_getpid(void);

/* strdup/memdup that abort on out-of-memory: the engine has no sane way to
 * continue without memory, and a NULL check at every site hides real logic. */
void *ripc_xmalloc(size_t size);
void *ripc_xcalloc(size_t count, size_t size);
char *ripc_strdup(const char *s);
/* Both NULL, or both the same text. */
int ripc_same_string(const char *a, const char *b);
char *ripc_memdup(const char *s, size_t len); /* NUL-terminated copy */

/* True when the len bytes at s are valid UTF-8. */
int ripc_utf8_valid(const char *s, size_t len);

/* Sets err (when not NULL) to code and the formatted message. */
void ripc_error_set(ripc_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
