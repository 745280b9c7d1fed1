/* The last ids seen, at most `capacity` of them: the oldest is forgotten
 * when a new one comes (ipc_recent_ids.c). Not thread-safe: its owner (the
 * ledger, the in-flight set) holds the lock. */
#ifndef RIPC_RECENT_IDS_H
#define RIPC_RECENT_IDS_H

#include <stddef.h>
#include "ipc_map.h"

typedef struct ripc_recent_ids {
    ripc_map index;  /* the ids remembered, for lookups */
    char *ring;      /* capacity slots of `width` bytes, oldest at next; NULL until the first add */
    size_t capacity, width, next;
} ripc_recent_ids;

/* Ids of width bytes or more, and "", are never remembered. */
void ripc_recent_ids_init(ripc_recent_ids *r, size_t capacity, size_t width);
void ripc_recent_ids_destroy(ripc_recent_ids *r);
/* Forgets every id (the ring is kept). */
void ripc_recent_ids_clear(ripc_recent_ids *r);
int ripc_recent_ids_has(const ripc_recent_ids *r, const char *id);
/* Remembers id; 1 when it was remembered already (it is not added again). */
int ripc_recent_ids_add(ripc_recent_ids *r, const char *id);

#endif
