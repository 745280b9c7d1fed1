/* Plumbing for a host with a global lock (the Ruby binding), kept out of
 * the public API (redis_ipc.h) and not exported by the C library: C
 * programs send with ripc_request_send / ripc_send and answer with
 * ripc_respond. */
#ifndef RIPC_HOST_H
#define RIPC_HOST_H

#include "redis_ipc.h"

/* ripc_request_send and ripc_respond in two halves. The first queues the write without any I/O and sets *flush when
 * no other thread is writing; only then must the caller run
 * ripc_stream_flush, which does the I/O (release the lock around it).
 * Under load another thread is nearly always writing already. */
enum { RIPC_WRITE_NOW = 0, RIPC_WRITE_DEFER = 1, RIPC_WRITE_QUEUE = 2 };
int ripc_request_send_queued(ripc_stream *s, const char *to, const char *content, size_t len,
                             double timeout, ripc_request **out, int *flush, ripc_error *err);
int ripc_respond_queued(ripc_stream *s, const ripc_entry *request, int fulfilled,
                        const char *content, size_t len, int *flush, ripc_error *err);
void ripc_stream_flush(ripc_stream *s);
/* Before ripc_request_send_queued, which never waits for Redis: 1 when the
 * stream has not asked lately which lane requests to group take
 * (ipc_routes.c). ripc_stream_learn_route asks now (one round trip: release
 * the lock around it), so that the first request takes the group's lane. */
int ripc_stream_route_unknown(ripc_stream *s, const char *group);
void ripc_stream_learn_route(ripc_stream *s, const char *group);
/* ripc_stream_flush after ripc_respond_queued asked for it: RIPC_COMMAND
 * (with Redis's message) when Redis refused that reply, RIPC_OK otherwise.
 * Only a reply this thread writes can be refused here; one that another
 * thread's flush took along is reported as RIPC_EVENT_COMMAND instead. */
int ripc_stream_flush_reply(ripc_stream *s, ripc_error *err);

/* Like ripc_request_send, but returns without writing: the engine's writer
 * thread writes it, batched with others. For keeping many requests in
 * flight from one thread. A failure to write ends the request with
 * RIPC_CONNECTION. */
int ripc_request_post(ripc_stream *s, const char *to, const char *content, size_t len,
                      double timeout, ripc_request **out, ripc_error *err);

#endif
