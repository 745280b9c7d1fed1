#include "ipc_ledger.h"
#include "ipc_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { SLOT_WAITING, SLOT_REPLIED, SLOT_TAKEN, SLOT_FAILED };

void ripc_ledger_init(ripc_ledger *l)
{
    pthread_mutex_init(&l->mutex, NULL);
    ripc_map_init(&l->slots);
    ripc_map_init(&l->recent);
    memset(l->recent_ring, 0, sizeof(l->recent_ring));
    l->recent_next = 0;
    l->closed = 0;
}

void ripc_ledger_destroy(ripc_ledger *l)
{
    /* Slots belong to their senders, who release them; only the index goes. */
    ripc_map_destroy(&l->slots);
    ripc_map_destroy(&l->recent);
    pthread_mutex_destroy(&l->mutex);
}

ripc_request *ripc_ledger_open(ripc_ledger *l, double deadline)
{
    ripc_request *r = ripc_xcalloc(1, sizeof(*r));
    r->ledger = l;
    r->deadline = deadline;
    r->state = SLOT_WAITING;
    ripc_cond_init(&r->cond);
    pthread_mutex_lock(&l->mutex);
    if (l->closed) {
        pthread_mutex_unlock(&l->mutex);
        pthread_cond_destroy(&r->cond);
        free(r);
        return NULL;
    }
    do ripc_random_hex(r->id, RIPC_REQUEST_ID_LEN);
    while (ripc_map_put(&l->slots, r->id, r) != 0);
    pthread_mutex_unlock(&l->mutex);
    return r;
}

void ripc_ledger_fail(ripc_request *r, int code)
{
    pthread_mutex_lock(&r->ledger->mutex);
    if (r->state == SLOT_WAITING) {
        r->state = SLOT_FAILED;
        r->error_code = code;
        pthread_cond_signal(&r->cond);
    }
    pthread_mutex_unlock(&r->ledger->mutex);
}

static void remember(ripc_ledger *l, const char *id)
{
    char *slot = l->recent_ring[l->recent_next];
    if (slot[0]) ripc_map_remove(&l->recent, slot, NULL);
    strncpy(slot, id, RIPC_REQUEST_ID_LEN);
    slot[RIPC_REQUEST_ID_LEN] = '\0';
    if (ripc_map_put(&l->recent, slot, NULL) != 0) slot[0] = '\0';
    l->recent_next = (l->recent_next + 1) % RIPC_RECENT_IDS;
}

int ripc_ledger_deliver(ripc_ledger *l, ripc_entry *reply)
{
    const char *id = reply->fields[RIPC_FIELD_ID].ptr ? reply->fields[RIPC_FIELD_ID].ptr : "";
    int found, result;
    pthread_mutex_lock(&l->mutex);
    ripc_request *r = ripc_map_get(&l->slots, id, &found);
    if (found && r->state == SLOT_WAITING) {
        r->reply = reply;
        r->state = SLOT_REPLIED;
        remember(l, id);
        pthread_cond_signal(&r->cond);
        result = RIPC_DELIVERED;
    } else if (found) {
        result = RIPC_DUPLICATE;
    } else {
        ripc_map_get(&l->recent, id, &found);
        result = found ? RIPC_DUPLICATE : RIPC_UNKNOWN;
    }
    pthread_mutex_unlock(&l->mutex);
    return result;
}

int ripc_ledger_wait(ripc_request *r, ripc_entry **reply)
{
    ripc_ledger *l = r->ledger;
    int rc;
    *reply = NULL;
    pthread_mutex_lock(&l->mutex);
    for (;;) {
        if (r->state == SLOT_REPLIED) {
            *reply = r->reply;
            r->reply = NULL;
            r->state = SLOT_TAKEN;
            rc = RIPC_OK;
            break;
        }
        if (r->state == SLOT_TAKEN) { rc = RIPC_STATE; break; }
        if (r->state == SLOT_FAILED) { rc = r->error_code; break; }
        if (r->woken) { r->woken = 0; rc = RIPC_WOKEN; break; }
        if (ripc_now() >= r->deadline) { rc = RIPC_TIMEOUT; break; }
        ripc_cond_wait_until(&r->cond, &l->mutex, r->deadline);
    }
    pthread_mutex_unlock(&l->mutex);
    return rc;
}

void ripc_ledger_wake(ripc_request *r)
{
    pthread_mutex_lock(&r->ledger->mutex);
    r->woken = 1;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->ledger->mutex);
}

void ripc_ledger_release(ripc_request *r)
{
    if (!r) return;
    ripc_ledger *l = r->ledger;
    pthread_mutex_lock(&l->mutex);
    ripc_map_remove(&l->slots, r->id, NULL);
    pthread_mutex_unlock(&l->mutex);
    ripc_entry_free(r->reply);
    pthread_cond_destroy(&r->cond);
    free(r);
}

static void wake_expired(const char *key, void *value, void *arg)
{
    (void)key;
    ripc_request *r = value;
    if (r->state == SLOT_WAITING && r->deadline <= *(double *)arg) pthread_cond_signal(&r->cond);
}

void ripc_ledger_sweep(ripc_ledger *l, double now)
{
    pthread_mutex_lock(&l->mutex);
    ripc_map_each(&l->slots, wake_expired, &now);
    pthread_mutex_unlock(&l->mutex);
}

static void fail_closed(const char *key, void *value, void *arg)
{
    (void)key; (void)arg;
    ripc_request *r = value;
    if (r->state == SLOT_WAITING) {
        r->state = SLOT_FAILED;
        r->error_code = RIPC_CLOSED;
        pthread_cond_signal(&r->cond);
    }
}

void ripc_ledger_close(ripc_ledger *l)
{
    pthread_mutex_lock(&l->mutex);
    l->closed = 1;
    ripc_map_each(&l->slots, fail_closed, NULL);
    pthread_mutex_unlock(&l->mutex);
}

void ripc_ledger_reopen(ripc_ledger *l)
{
    pthread_mutex_lock(&l->mutex);
    l->closed = 0;
    pthread_mutex_unlock(&l->mutex);
}

size_t ripc_ledger_size(ripc_ledger *l)
{
    pthread_mutex_lock(&l->mutex);
    size_t n = l->slots.size;
    pthread_mutex_unlock(&l->mutex);
    return n;
}
