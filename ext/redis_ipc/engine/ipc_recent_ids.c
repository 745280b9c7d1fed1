/* A ring of the ids in the order they came, and a map of the same ids for
 * lookups: the slot that the next id takes holds the oldest, which leaves
 * the map then. The ring is allocated at the first id, so that sets which
 * are never used (on servers that do not fail over...) cost nothing. */
#include "ipc_recent_ids.h"
#include "ipc_util.h"

#include <stdlib.h>
#include <string.h>

void ripc_recent_ids_init(ripc_recent_ids *r, size_t capacity, size_t width)
{
    ripc_map_init(&r->index);
    r->ring = NULL;
    r->capacity = capacity > 0 ? capacity : 1;
    r->width = width;
    r->next = 0;
}

void ripc_recent_ids_destroy(ripc_recent_ids *r)
{
    ripc_map_destroy(&r->index);
    free(r->ring);
    r->ring = NULL;
}

void ripc_recent_ids_clear(ripc_recent_ids *r)
{
    ripc_map_destroy(&r->index);
    ripc_map_init(&r->index);
    if (r->ring) memset(r->ring, 0, r->capacity * r->width);
    r->next = 0;
}

int ripc_recent_ids_has(const ripc_recent_ids *r, const char *id)
{
    int found = 0;
    ripc_map_get(&r->index, id, &found);
    return found;
}

int ripc_recent_ids_add(ripc_recent_ids *r, const char *id)
{
    size_t len = strlen(id);
    /* An empty slot is an empty string: "" would never leave. */
    if (len == 0 || len >= r->width) return 0;
    if (ripc_recent_ids_has(r, id)) return 1;
    if (!r->ring) r->ring = ripc_xcalloc(r->capacity, r->width);
    char *slot = r->ring + r->next * r->width;
    if (slot[0]) ripc_map_remove(&r->index, slot, NULL);
    memcpy(slot, id, len + 1);
    ripc_map_put(&r->index, slot, NULL);
    r->next = (r->next + 1) % r->capacity;
    return 0;
}
