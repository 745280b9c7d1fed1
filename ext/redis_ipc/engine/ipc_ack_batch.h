/* A batch of acknowledgements (ipc_ack_batch.c). */
#ifndef RIPC_ACK_BATCH_H
#define RIPC_ACK_BATCH_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include "redis_ipc.h"

struct ripc_stream;

/* Entries of one lane this group is done with, to acknowledge and delete
 * together: by the router at the end of a read, by a dispatcher with its
 * next read, by the outbox behind the replies that answered them. */
typedef struct ripc_ack_batch {
    int lane;   /* the lane they were read from */
    char **ids; /* copies */
    size_t count, capacity;
} ripc_ack_batch;
void ripc_ack_batch_init(ripc_ack_batch *b, int lane);
void ripc_ack_batch_free(ripc_ack_batch *b);
/* Adds a copy of redis_id. */
void ripc_ack_batch_add(ripc_ack_batch *b, const char *redis_id);
/* Queues the batch's XACK (the lazy acknowledgements waiting too, on the
 * shared stream, when take_lazy or it sends one anyway) and XDEL on c,
 * names[] getting their names, and empties it. Returns how many commands
 * it queued (0 to 2), -1 when c failed. ripc_ack_batch_read reads their
 * replies (the caller may have queued commands before them). */
int ripc_ack_batch_append(struct ripc_stream *s, redisContext *c, ripc_ack_batch *b, int take_lazy, const char *names[2]);
int ripc_ack_batch_read(struct ripc_stream *s, redisContext *c, int commands, const char *const names[2]);
/* Both in one round trip; RIPC_CONNECTION (err set) when c failed. */
int ripc_ack_batch_flush(struct ripc_stream *s, redisContext *c, ripc_ack_batch *b, int take_lazy, ripc_error *err);

#endif
