#include "ipc_map.h"
#include "ipc_util.h"

#include <stdlib.h>
#include <string.h>

static size_t hash_key(const char *key)
{
    /* FNV-1a: keys are short random ids, so a simple hash spreads them well. */
    size_t h = (size_t)1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= (size_t)1099511628211ULL;
    }
    return h;
}

void ripc_map_init(ripc_map *map)
{
    map->bucket_count = 16;
    map->buckets = ripc_xcalloc(map->bucket_count, sizeof(*map->buckets));
    map->size = 0;
}

void ripc_map_destroy(ripc_map *map)
{
    if (!map->buckets) return;
    for (size_t i = 0; i < map->bucket_count; i++) {
        ripc_map_node *node = map->buckets[i];
        while (node) {
            ripc_map_node *next = node->next;
            free(node);
            node = next;
        }
    }
    free(map->buckets);
    map->buckets = NULL;
    map->size = 0;
}

static void grow(ripc_map *map)
{
    size_t count = map->bucket_count * 2;
    ripc_map_node **buckets = ripc_xcalloc(count, sizeof(*buckets));
    for (size_t i = 0; i < map->bucket_count; i++) {
        ripc_map_node *node = map->buckets[i];
        while (node) {
            ripc_map_node *next = node->next;
            size_t b = node->hash & (count - 1);
            node->next = buckets[b];
            buckets[b] = node;
            node = next;
        }
    }
    free(map->buckets);
    map->buckets = buckets;
    map->bucket_count = count;
}

static ripc_map_node **find(const ripc_map *map, const char *key, size_t hash)
{
    ripc_map_node **link = &map->buckets[hash & (map->bucket_count - 1)];
    while (*link && ((*link)->hash != hash || strcmp((*link)->key, key) != 0)) link = &(*link)->next;
    return link;
}

int ripc_map_put(ripc_map *map, const char *key, void *value)
{
    size_t hash = hash_key(key);
    if (*find(map, key, hash)) return -1;
    if (map->size >= map->bucket_count) grow(map);
    size_t len = strlen(key);
    ripc_map_node *node = ripc_xmalloc(sizeof(*node) + len + 1);
    memcpy(node->key, key, len + 1);
    node->hash = hash;
    node->value = value;
    size_t b = hash & (map->bucket_count - 1);
    node->next = map->buckets[b];
    map->buckets[b] = node;
    map->size++;
    return 0;
}

void *ripc_map_get(const ripc_map *map, const char *key, int *found)
{
    ripc_map_node *node = *find(map, key, hash_key(key));
    if (found) *found = node != NULL;
    return node ? node->value : NULL;
}

int ripc_map_replace(ripc_map *map, const char *key, void *value)
{
    ripc_map_node **at = find(map, key, hash_key(key));
    if (!*at) return -1;
    (*at)->value = value;
    return 0;
}

void *ripc_map_remove(ripc_map *map, const char *key, int *found)
{
    ripc_map_node **link = find(map, key, hash_key(key));
    ripc_map_node *node = *link;
    if (found) *found = node != NULL;
    if (!node) return NULL;
    void *value = node->value;
    *link = node->next;
    free(node);
    map->size--;
    return value;
}

void ripc_map_each(ripc_map *map, void (*fn)(const char *key, void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < map->bucket_count; i++) {
        for (ripc_map_node *node = map->buckets[i]; node; node = node->next) fn(node->key, node->value, arg);
    }
}
