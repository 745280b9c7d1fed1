/* Retention (ipc_retention.c): how long entries stay in the stream. */
#ifndef RIPC_RETENTION_H
#define RIPC_RETENTION_H

#include <hiredis/hiredis.h>

struct ripc_stream;

/* Trims entries no group will ever handle. */
void ripc_retention_trim(struct ripc_stream *s, redisContext *c);

#endif
