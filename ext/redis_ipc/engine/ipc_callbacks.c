/* Handler and reporter threads for C programs that set callbacks: they take
 * requests and errors from the same queues the Ruby binding reads. */
#include "ipc_callbacks.h"
#include "ipc_conn.h"
#include "ipc_stream.h"
#include "ipc_telemetry.h"
#include "ipc_util.h"

#include <stdlib.h>

int ripc_stream_on_request(ripc_stream *s, ripc_request_fn fn, void *userdata, int threads)
{
    if (atomic_load(&s->connected)) return RIPC_STATE;
    if (threads > RIPC_MAX_CONSUMERS) return RIPC_ARGUMENT;
    s->request_fn = fn;
    s->request_userdata = userdata;
    s->handler_count = threads > 0 ? threads : 3;
    return RIPC_OK;
}

int ripc_stream_on_error(ripc_stream *s, ripc_error_fn fn, void *userdata)
{
    if (atomic_load(&s->connected)) return RIPC_STATE;
    s->error_fn = fn;
    s->error_userdata = userdata;
    return RIPC_OK;
}

static void *handler_main(void *arg)
{
    ripc_stream *s = arg;
    ripc_entry *request;
    /* Returns RIPC_CLOSED once the stream stops and the queue is empty. */
    while (ripc_queue_pop(&s->requests, 0, (ripc_qnode **)&request) == RIPC_OK) {
        ripc_telemetry_taken(s, request);
        s->request_fn(s, request, s->request_userdata);
    }
    return NULL;
}

static void *reporter_main(void *arg)
{
    ripc_stream *s = arg;
    ripc_event *event;
    while (ripc_queue_pop(&s->events, 0, (ripc_qnode **)&event) == RIPC_OK) {
        s->error_fn(s, event->kind, event->message, s->error_userdata);
        ripc_event_free(event);
    }
    return NULL;
}

int ripc_callbacks_start(ripc_stream *s, ripc_error *err)
{
    if (s->request_fn) {
        s->handlers = ripc_xcalloc((size_t)s->handler_count, sizeof(*s->handlers));
        for (int i = 0; i < s->handler_count; i++) {
            if (ripc_pthread_create(&s->handlers[i], "ripc handler", handler_main, s) != 0) {
                s->handler_count = i;
                ripc_error_set(err, RIPC_STATE, "could not start a handler thread");
                return RIPC_STATE;
            }
        }
    }
    if (s->error_fn) {
        if (ripc_pthread_create(&s->reporter, "ripc reporter", reporter_main, s) != 0) {
            ripc_error_set(err, RIPC_STATE, "could not start the error reporter thread");
            return RIPC_STATE;
        }
        s->reporter_started = 1;
    }
    return RIPC_OK;
}

void ripc_callbacks_join(ripc_stream *s, int lifecycle_held)
{
    /* Take the threads under the lock, join them outside it (a callback may
     * itself stop the stream); a second closer finds nothing left to join,
     * and a callback that disconnects never joins its own thread. */
    if (!lifecycle_held) pthread_mutex_lock(&s->lifecycle_mutex);
    pthread_t *handlers = s->handlers;
    int count = s->handler_count;
    int reporter = s->reporter_started;
    s->handlers = NULL;
    s->reporter_started = 0;
    if (!lifecycle_held) pthread_mutex_unlock(&s->lifecycle_mutex);
    pthread_t self = pthread_self();
    for (int i = 0; handlers && i < count; i++)
        if (pthread_equal(handlers[i], self)) pthread_detach(handlers[i]);
        else pthread_join(handlers[i], NULL);
    free(handlers);
    if (reporter) {
        if (pthread_equal(s->reporter, self)) pthread_detach(s->reporter);
        else pthread_join(s->reporter, NULL);
    }
}
