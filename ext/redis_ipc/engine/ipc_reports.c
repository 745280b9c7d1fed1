/* Reports: what a stream's background threads have to tell its on_error,
 * queued as events for the stream's reporter (ripc_stream_next_event).
 *
 * Background work retries, each thread at its own pace, and a cause lasts
 * until it ends or an operator fixes it: on_error must hear about it once,
 * not at every retry, and again only if it comes back after it cleared. A
 * lost connection is one outage for the whole stream. Refusals (Redis
 * answering with an error reply: OOM under maxmemory, READONLY on a
 * replica, NOPERM after an ACL change...) are kept per command and cause,
 * because several can be true at once (XADD refused for OOM while reads go
 * on). */
#include "ipc_reports.h"
#include "ipc_conn.h"
#include "ipc_stream.h"
#include "ipc_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ripc_event_free(ripc_event *event)
{
    if (!event) return;
    free(event->message);
    free(event);
}

void ripc_stream_emit(ripc_stream *s, int kind, const char *fmt, ...)
{
    ripc_metrics_event(&s->metrics, kind);
    if (ripc_queue_length(&s->events) >= RIPC_MAX_EVENTS) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ripc_event *e = ripc_xcalloc(1, sizeof(*e));
    e->kind = kind;
    e->message = ripc_strdup(buf);
    if (ripc_queue_push(&s->events, (ripc_qnode *)e) != 0) ripc_event_free(e);
}

void ripc_stream_outage(ripc_stream *s, const ripc_error *err)
{
    if (atomic_load(&s->stopping)) return;
    if (err->code == RIPC_COMMAND) {
        /* Redis answers, it refuses something (re-joining the group is
         * the only case): not an outage. The next join that works clears it. */
        const char *server_message = strstr(err->message, ": ");
        ripc_stream_refused(s, RIPC_REFUSAL_JOIN, server_message ? server_message + 2 : err->message, "%s", err->message);
        return;
    }
    if (atomic_exchange(&s->outage, 1) == 0) ripc_stream_emit(s, RIPC_EVENT_CONNECTION, "%s", err->message);
}

void ripc_stream_outage_over(ripc_stream *s) { atomic_store(&s->outage, 0); }

void ripc_refusals_init(ripc_refusals *r)
{
    memset(r->causes, 0, sizeof(r->causes));
    atomic_store(&r->count, 0);
    pthread_mutex_init(&r->mutex, NULL);
}

void ripc_refusals_destroy(ripc_refusals *r)
{
    pthread_mutex_destroy(&r->mutex);
}

void ripc_refusals_reset(ripc_refusals *r)
{
    pthread_mutex_lock(&r->mutex);
    atomic_store(&r->count, 0);
    pthread_mutex_unlock(&r->mutex);
}

/* Returns 1 when the cause is new (and now remembered). */
static int remember(ripc_refusals *r, const char *key)
{
    pthread_mutex_lock(&r->mutex);
    int n = atomic_load(&r->count), known = 0;
    for (int i = 0; i < n && !known; i++) known = strcmp(r->causes[i], key) == 0;
    /* A full table still reports: too many distinct causes is no reason to go quiet. */
    if (!known && n < RIPC_MAX_REFUSALS) {
        snprintf(r->causes[n], RIPC_REFUSAL_KEY_LEN, "%s", key);
        r->noted_at[n] = ripc_now();
        atomic_store(&r->count, n + 1);
    }
    pthread_mutex_unlock(&r->mutex);
    return !known;
}

void ripc_stream_refused(ripc_stream *s, const char *command, const char *server_message, const char *fmt, ...)
{
    char cause[32], key[RIPC_REFUSAL_KEY_LEN];
    ripc_error_cause(server_message ? server_message : "", cause, sizeof(cause));
    snprintf(key, sizeof(key), "%s|%s", command, cause);
    if (!remember(&s->refusals, key)) return;
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    ripc_stream_emit(s, RIPC_EVENT_COMMAND, "%s", message);
}

void ripc_stream_note_reply(ripc_stream *s, const char *command, const char *doing, const redisReply *r)
{
    if (!r) return;
    if (r->type != REDIS_REPLY_ERROR) ripc_stream_accepted(s, command);
    else if (!ripc_reply_error_starts(r, "NOGROUP"))
        ripc_stream_refused(s, command, r->str, "Redis refused %s on stream %s: %s", doing, s->stream, r->str);
}

void ripc_stream_accepted(ripc_stream *s, const char *command)
{
    ripc_stream_accepted_since(s, command, INFINITY);
}

void ripc_stream_accepted_since(ripc_stream *s, const char *command, double issued_at)
{
    ripc_refusals *r = &s->refusals;
    if (atomic_load(&r->count) == 0) return; /* the hot path: one atomic read */
    size_t len = strlen(command);
    pthread_mutex_lock(&r->mutex);
    int n = atomic_load(&r->count);
    for (int i = 0; i < n;) {
        if (strncmp(r->causes[i], command, len) == 0 && r->causes[i][len] == '|' && r->noted_at[i] < issued_at) {
            memmove(r->causes[i], r->causes[n - 1], RIPC_REFUSAL_KEY_LEN);
            r->noted_at[i] = r->noted_at[n - 1];
            n--;
        } else {
            i++;
        }
    }
    atomic_store(&r->count, n);
    pthread_mutex_unlock(&r->mutex);
}
