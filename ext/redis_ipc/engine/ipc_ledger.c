#include "ipc_ledger.h"
#include "ipc_metrics.h"
#include "ipc_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { SLOT_WAITING, SLOT_REPLIED, SLOT_TAKEN, SLOT_FAILED };

void ripc_ledger_init(ripc_ledger *l)
{
    pthread_mutex_init(&l->mutex, NULL);
    ripc_map_init(&l->slots);
    ripc_recent_ids_init(&l->recent, RIPC_RECENT_IDS, RIPC_REQUEST_ID_LEN + 1);
    l->closed = 0;
    l->spare_count = 0;
    l->lent_bells = 0;
    l->wake_limit = 0;
    l->awake = 0;
    l->wake_head = l->wake_tail = NULL;
}

void ripc_ledger_destroy(ripc_ledger *l)
{
    /* Slots belong to their senders, who release them; only the index goes. */
    ripc_map_destroy(&l->slots);
    ripc_recent_ids_destroy(&l->recent);
    while (l->spare_count > 0) ripc_notifier_close(&l->spare_bells[--l->spare_count]);
    pthread_mutex_destroy(&l->mutex);
}

ripc_request *ripc_ledger_open(ripc_ledger *l, double deadline, const char *to)
{
    size_t to_len = strlen(to);
    ripc_request *r = ripc_xcalloc(1, sizeof(*r) + to_len + 1);
    memcpy(r + 1, to, to_len);
    r->to = (const char *)(r + 1);
    r->ledger = l;
    r->deadline = deadline;
    r->opened_at = ripc_now();
    r->state = SLOT_WAITING;
    r->bell.read_fd = r->bell.write_fd = -1;
    pthread_mutex_lock(&l->mutex);
    if (l->closed) {
        pthread_mutex_unlock(&l->mutex);
        free(r);
        return NULL;
    }
    do ripc_random_hex(r->id, RIPC_REQUEST_ID_LEN);
    while (ripc_map_put(&l->slots, r->id, r) != 0);
    pthread_mutex_unlock(&l->mutex);
    return r;
}

/* Wakes r's watcher, or queues it when the wake limit is reached. Mutex held. */
static void wake(ripc_ledger *l, ripc_request *r)
{
    if (l->wake_limit && l->awake >= l->wake_limit) {
        r->wake_next = NULL;
        if (l->wake_tail) l->wake_tail->wake_next = r;
        else l->wake_head = r;
        l->wake_tail = r;
        r->wake_queued = 1;
        return;
    }
    ripc_notifier_ring(&r->bell);
    if (l->wake_limit) {
        r->woken = 1;
        l->awake++;
    }
}

/* r's watcher stops watching (its outcome taken, or it gave up): it leaves
 * the wake queue, or, if it was woken, the next queued watcher is. Mutex held. */
static void wake_done(ripc_ledger *l, ripc_request *r)
{
    if (r->wake_queued) {
        ripc_request **p = &l->wake_head, *prev = NULL;
        while (*p != r) prev = *p, p = &(*p)->wake_next;
        *p = r->wake_next;
        if (l->wake_tail == r) l->wake_tail = prev;
        r->wake_queued = 0;
    }
    if (!r->woken) return;
    r->woken = 0;
    l->awake--;
    ripc_request *next = l->wake_head;
    if (!next) return;
    l->wake_head = next->wake_next;
    if (!l->wake_head) l->wake_tail = NULL;
    next->wake_queued = 0;
    wake(l, next);
}

/* Gives a waiting slot its outcome and wakes its watcher, if it has one.
 * Called with the mutex held. */
static void settle(ripc_request *r, int state, int code, ripc_entry *reply)
{
    r->state = state;
    r->error_code = code;
    r->reply = reply;
    ripc_metrics_outcome(r->ledger->metrics, code, reply, r->opened_at);
    if (r->bell.read_fd >= 0) wake(r->ledger, r);
}

void ripc_ledger_fail_id(ripc_ledger *l, const char *id, int code)
{
    int found;
    pthread_mutex_lock(&l->mutex);
    ripc_request *r = ripc_map_get(&l->slots, id, &found);
    if (found && r->state == SLOT_WAITING) settle(r, SLOT_FAILED, code, NULL);
    pthread_mutex_unlock(&l->mutex);
}

void ripc_ledger_refuse_id(ripc_ledger *l, const char *id, const char *message)
{
    int found;
    pthread_mutex_lock(&l->mutex);
    ripc_request *r = ripc_map_get(&l->slots, id, &found);
    if (found && r->state == SLOT_WAITING) {
        r->error_message = ripc_strdup(message);
        settle(r, SLOT_FAILED, RIPC_COMMAND, NULL);
    }
    pthread_mutex_unlock(&l->mutex);
}

int ripc_ledger_deliver(ripc_ledger *l, ripc_entry *reply)
{
    const char *id = reply->fields[RIPC_FIELD_ID].ptr ? reply->fields[RIPC_FIELD_ID].ptr : "";
    int found, result;
    pthread_mutex_lock(&l->mutex);
    ripc_request *r = ripc_map_get(&l->slots, id, &found);
    const char *from = reply->fields[RIPC_FIELD_SOURCE_GROUP].ptr;
    if (found && r->state == SLOT_WAITING && (!from || strcmp(from, r->to) != 0)) {
        result = RIPC_WRONG_GROUP;
    } else if (found && r->state == SLOT_WAITING) {
        settle(r, SLOT_REPLIED, RIPC_OK, reply);
        ripc_recent_ids_add(&l->recent, id);
        result = RIPC_DELIVERED;
    } else if (found && r->state != SLOT_FAILED) {
        result = RIPC_DUPLICATE;
    } else if (found) {
        result = RIPC_UNKNOWN; /* it came after the sender gave up */
    } else {
        result = ripc_recent_ids_has(&l->recent, id) ? RIPC_DUPLICATE : RIPC_UNKNOWN;
    }
    pthread_mutex_unlock(&l->mutex);
    return result;
}

int ripc_ledger_try(ripc_request *r, ripc_entry **reply)
{
    int rc;
    *reply = NULL;
    pthread_mutex_lock(&r->ledger->mutex);
    switch (r->state) {
    case SLOT_REPLIED:
        *reply = r->reply;
        r->reply = NULL;
        r->state = SLOT_TAKEN;
        rc = RIPC_OK;
        break;
    case SLOT_TAKEN: rc = RIPC_STATE; break;
    case SLOT_FAILED: rc = r->error_code; break;
    default:
        if (ripc_now() >= r->deadline) {
            r->state = SLOT_FAILED;
            r->error_code = rc = RIPC_TIMEOUT;
            ripc_metrics_outcome(r->ledger->metrics, rc, NULL, r->opened_at);
        } else {
            rc = RIPC_AGAIN;
        }
    }
    pthread_mutex_unlock(&r->ledger->mutex);
    return rc;
}

int ripc_ledger_ready(ripc_request *r)
{
    pthread_mutex_lock(&r->ledger->mutex);
    int ready = r->state != SLOT_WAITING || ripc_now() >= r->deadline;
    pthread_mutex_unlock(&r->ledger->mutex);
    return ready;
}

/* Both called with the mutex held. */
static int lend_bell(ripc_ledger *l, ripc_notifier *bell)
{
    if (l->spare_count > 0) {
        *bell = l->spare_bells[--l->spare_count];
        return 0;
    }
    return ripc_notifier_open(bell);
}

static void take_back_bell(ripc_ledger *l, ripc_notifier *bell)
{
    /* Drained, so the next waiter does not wake for this one's outcome. */
    ripc_notifier_drain(bell);
    if (l->spare_count < RIPC_SPARE_BELLS) l->spare_bells[l->spare_count++] = *bell;
    else ripc_notifier_close(bell);
    bell->read_fd = bell->write_fd = -1;
}

int ripc_ledger_watch(ripc_request *r, int *code)
{
    ripc_ledger *l = r->ledger;
    int fd = -1, why = 0;
    pthread_mutex_lock(&l->mutex);
    if (r->bell.read_fd >= 0) {
        *code = RIPC_STATE;
        why = EBUSY;
    } else if (lend_bell(l, &r->bell) != 0) {
        *code = RIPC_AGAIN;
        why = errno;
    } else {
        fd = r->bell.read_fd;
        l->lent_bells++;
        /* The outcome may have come before anyone listened: the watcher
         * is running, so this ring is outside the wake limit. */
        if (r->state != SLOT_WAITING) ripc_notifier_ring(&r->bell);
    }
    pthread_mutex_unlock(&l->mutex);
    if (fd < 0) errno = why;
    return fd;
}

/* Called with the mutex held. */
static void unwatch_locked(ripc_request *r)
{
    if (r->bell.read_fd < 0) return;
    wake_done(r->ledger, r);
    take_back_bell(r->ledger, &r->bell);
    r->ledger->lent_bells--;
}

void ripc_ledger_unwatch(ripc_request *r)
{
    pthread_mutex_lock(&r->ledger->mutex);
    unwatch_locked(r);
    pthread_mutex_unlock(&r->ledger->mutex);
}

int ripc_ledger_wait(ripc_request *r, ripc_entry **reply)
{
    int rc = ripc_ledger_try(r, reply);
    if (rc != RIPC_AGAIN) return rc;
    int code;
    if (ripc_ledger_watch(r, &code) < 0) return RIPC_STATE;
    while ((rc = ripc_ledger_try(r, reply)) == RIPC_AGAIN) ripc_notifier_wait(&r->bell, r->deadline);
    ripc_ledger_unwatch(r);
    return rc;
}

void ripc_ledger_release(ripc_request *r)
{
    if (!r) return;
    ripc_ledger *l = r->ledger;
    pthread_mutex_lock(&l->mutex);
    ripc_map_remove(&l->slots, r->id, NULL);
    unwatch_locked(r);
    pthread_mutex_unlock(&l->mutex);
    ripc_entry_free(r->reply);
    free(r->error_message);
    if (r->written) l->free_written(r->written);
    free(r);
}

int ripc_ledger_keep_written(ripc_ledger *l, const char *id, void *written, unsigned long epoch)
{
    int found;
    pthread_mutex_lock(&l->mutex);
    ripc_request *r = ripc_map_get(&l->slots, id, &found);
    int kept = found && r->state == SLOT_WAITING && !r->written;
    if (kept) {
        r->written = written;
        r->written_epoch = epoch;
    }
    pthread_mutex_unlock(&l->mutex);
    return kept;
}

int ripc_ledger_waiting(ripc_ledger *l, const char *id)
{
    int found;
    pthread_mutex_lock(&l->mutex);
    ripc_request *r = ripc_map_get(&l->slots, id, &found);
    int waiting = found && r->state == SLOT_WAITING;
    pthread_mutex_unlock(&l->mutex);
    return waiting;
}

typedef struct take_args {
    unsigned long epoch;
    void (*take)(void *written, void *arg);
    void *arg;
} take_args;

static void take_older(const char *key, void *value, void *arg)
{
    (void)key;
    ripc_request *r = value;
    take_args *a = arg;
    if (r->state != SLOT_WAITING || !r->written || r->written_epoch >= a->epoch) return;
    a->take(r->written, a->arg);
    r->written = NULL;
}

void ripc_ledger_take_written(ripc_ledger *l, unsigned long epoch, void (*take)(void *written, void *arg), void *arg)
{
    take_args a = { epoch, take, arg };
    pthread_mutex_lock(&l->mutex);
    ripc_map_each(&l->slots, take_older, &a);
    pthread_mutex_unlock(&l->mutex);
}

static void end_expired(const char *key, void *value, void *arg)
{
    (void)key;
    ripc_request *r = value;
    if (r->state == SLOT_WAITING && r->deadline <= *(double *)arg) settle(r, SLOT_FAILED, RIPC_TIMEOUT, NULL);
}

void ripc_ledger_sweep(ripc_ledger *l, double now)
{
    pthread_mutex_lock(&l->mutex);
    ripc_map_each(&l->slots, end_expired, &now);
    pthread_mutex_unlock(&l->mutex);
}

static void end_closed(const char *key, void *value, void *arg)
{
    (void)key; (void)arg;
    ripc_request *r = value;
    if (r->state == SLOT_WAITING) settle(r, SLOT_FAILED, RIPC_CLOSED, NULL);
}

void ripc_ledger_close(ripc_ledger *l)
{
    pthread_mutex_lock(&l->mutex);
    l->closed = 1;
    ripc_map_each(&l->slots, end_closed, NULL);
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

void ripc_ledger_bells(ripc_ledger *l, size_t *lent, size_t *spare)
{
    pthread_mutex_lock(&l->mutex);
    *lent = (size_t)l->lent_bells;
    *spare = (size_t)l->spare_count;
    pthread_mutex_unlock(&l->mutex);
}
