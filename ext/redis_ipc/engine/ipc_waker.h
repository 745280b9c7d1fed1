/* The waker (ipc_waker.c): a reply handed to our inbox wakes our inbox
 * sweep at once, through pub/sub. */
#ifndef RIPC_WAKER_H
#define RIPC_WAKER_H

#include <hiredis/hiredis.h>

struct ripc_stream;

/* One subscriber connection per Redis server, read by the service thread
 * (ipc_service.c: these are its hooks, given by ipc_stream.c). */
struct pollfd;

/* At register/unregister in the service: subscribes the stream's wake channel. */
void ripc_waker_attach(struct ripc_stream *s);
void ripc_waker_detach(struct ripc_stream *s);
/* Service thread only: connects and subscribes what waits, frees the
 * subscribers no stream uses, and lists their sockets for poll(). */
int ripc_waker_prepare(struct pollfd *fds, int max);
/* When a disconnected subscriber tries again (0: none waits). */
double ripc_waker_next_retry(void);
/* Service thread only: reads a subscriber's socket and rings the streams named. */
void ripc_waker_read(int fd);
/* Closes the subscribers no stream uses (the service thread, as it ends). */
void ripc_waker_shutdown(void);
/* Tells the instance instance_id of our group that a reply waits in its inbox. */
void ripc_waker_ring(struct ripc_stream *s, redisContext *c, const char *instance_id);

#endif
