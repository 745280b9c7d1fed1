/* Lua scripts the engine runs in Redis (ipc_scripts.c): where a command
 * alone would send more than a reader may hold. */
#ifndef RIPC_SCRIPTS_H
#define RIPC_SCRIPTS_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include "redis_ipc.h"

/* One page of a consumer's pending entries, never more than budget bytes
 * of values (but at least one entry), read as XREADGROUP GROUP <group>
 * <consumer> COUNT <count> STREAMS <stream> <from> reads them, and shaped
 * like its reply: [[stream, [[id, [field, value, ...]], ...]]]. An entry
 * whose values add up to more than entry_limit comes back as
 * [id, [field, value, ...], bytes]: its values over RIPC_SCRIPT_KEPT_VALUE
 * bytes are left out (never sent), bytes is the size of them all. Pass a
 * budget of at least entry_limit.
 * Returns Redis's reply (an error reply when Redis refused the script),
 * or NULL with err set (after a connection failure or a reply over the
 * bound, c->err is set and c unusable). */
enum { RIPC_SCRIPT_KEPT_VALUE = 65536 };
redisReply *ripc_script_history_page(redisContext *c, const char *stream, const char *group, const char *consumer,
                                     const char *from, int count, size_t budget, size_t entry_limit, ripc_error *err);

#endif
