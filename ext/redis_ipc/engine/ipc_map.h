/* A string-keyed hash map (chained, power-of-two buckets). Not thread-safe:
 * its owner (ledger, in-flight set) holds the lock. Keys are copied. */
#ifndef RIPC_MAP_H
#define RIPC_MAP_H

#include <stddef.h>

typedef struct ripc_map_node {
    struct ripc_map_node *next;
    size_t hash;
    void *value;
    char key[]; /* NUL-terminated */
} ripc_map_node;

typedef struct ripc_map {
    ripc_map_node **buckets;
    size_t bucket_count;
    size_t size;
} ripc_map;

void ripc_map_init(ripc_map *map);
/* Frees every node; values are the caller's to free first (see ripc_map_each). */
void ripc_map_destroy(ripc_map *map);
/* Returns 0 when the key was absent and is now set, -1 when it already existed. */
int ripc_map_put(ripc_map *map, const char *key, void *value);
void *ripc_map_get(const ripc_map *map, const char *key, int *found);
/* Sets the value of a key already there (no allocation); -1 when absent. */
int ripc_map_replace(ripc_map *map, const char *key, void *value);
/* Removes the key; returns its value (NULL when absent, see found). */
void *ripc_map_remove(ripc_map *map, const char *key, int *found);
void ripc_map_each(ripc_map *map, void (*fn)(const char *key, void *value, void *arg), void *arg);

#endif
