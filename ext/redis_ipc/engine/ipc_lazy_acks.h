/* Acknowledgements of entries meant for other groups (ipc_lazy_acks.c). */
#ifndef RIPC_LAZY_ACKS_H
#define RIPC_LAZY_ACKS_H

#include <pthread.h>
#include <stddef.h>

/* At most this many wait; the router then sends them itself. */
enum { RIPC_LAZY_ACKS_MAX = 512 };
/* Seconds the oldest may wait before the housekeeper sends them. */
#define RIPC_LAZY_ACKS_DELAY 0.5

typedef struct ripc_lazy_acks {
    pthread_mutex_t mutex;
    char **ids;
    size_t count, capacity;
    double oldest; /* ripc_now() when the first waiting id came; 0: none wait */
} ripc_lazy_acks;

void ripc_lazy_acks_init(ripc_lazy_acks *a);
void ripc_lazy_acks_destroy(ripc_lazy_acks *a);
/* Keeps a copy of redis_id; returns 1 when it is the first one waiting. */
int ripc_lazy_acks_add(ripc_lazy_acks *a, const char *redis_id);
size_t ripc_lazy_acks_count(ripc_lazy_acks *a);
/* When the housekeeper must send them (0: nothing waits). */
double ripc_lazy_acks_due(ripc_lazy_acks *a);
/* Takes every waiting id: the caller frees them with ripc_lazy_acks_free. */
char **ripc_lazy_acks_take(ripc_lazy_acks *a, size_t *count);
void ripc_lazy_acks_free(char **ids, size_t count);

#endif
