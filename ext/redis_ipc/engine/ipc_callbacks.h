/* Callback threads for C programs (ipc_callbacks.c): handler threads
 * that call ripc_request_fn, and a reporter that calls ripc_error_fn. */
#ifndef RIPC_CALLBACKS_H
#define RIPC_CALLBACKS_H

#include "redis_ipc.h"

struct ripc_stream;

int ripc_callbacks_start(struct ripc_stream *s, ripc_error *err);
/* lifecycle_held: the caller holds lifecycle_mutex (a failed connect). */
void ripc_callbacks_join(struct ripc_stream *s, int lifecycle_held);

#endif
