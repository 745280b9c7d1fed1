/* The entry codec: stream entries to ripc_entry and back (WIRE.md "Entries"). */
#ifndef RIPC_ENTRY_H
#define RIPC_ENTRY_H

#include <hiredis/hiredis.h>
#include "redis_ipc.h"

/* Builds an entry from one element of an XREADGROUP/XCLAIM reply: [id, [field, value, ...]]
 * (or [id, [...], bytes] for an entry too large to read: see ipc_scripts.h).
 * Returns NULL when the element has no id (not an entry at all); an entry that
 * was deleted or breaks the contract comes back with `problem` set. On a
 * signed stream the signed_at and signature fields are allowed too, and
 * kept in e->signature (ipc_signing.h checks them). */
ripc_entry *ripc_entry_from_reply(const redisReply *element, int signed_stream);

/* True when the element names a destination_group other than group: an
 * entry this group only acknowledges, whatever else it holds, so the
 * router need not decode it. */
int ripc_entry_element_for_other_group(const redisReply *element, const char *group);

/* Field accessors: "" when absent. */
static inline const char *ripc_entry_field(const ripc_entry *e, int field)
{
    return e->fields[field].ptr ? e->fields[field].ptr : "";
}
int ripc_entry_field_is(const ripc_entry *e, int field, const char *value);

/* Fills argv/lens (at most RIPC_XADD_ARGC_MAX slots) with XADD <key>
 * [NOMKSTREAM] * field value ..., and returns how many it filled. The
 * fields start at argv[ripc_xadd_fields_at(nomkstream)]. */
enum { RIPC_XADD_ARGC_MAX = 4 + 2 * RIPC_FIELD_COUNT };
static inline int ripc_xadd_fields_at(int nomkstream) { return nomkstream ? 4 : 3; }
int ripc_entry_xadd_argv(const char *key, int nomkstream, const char *const values[RIPC_FIELD_COUNT],
                         const size_t lens[RIPC_FIELD_COUNT], const char **argv, size_t *argvlen);

#endif
