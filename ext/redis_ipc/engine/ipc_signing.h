/* Signed streams (ipc_signing.c): the HMAC-SHA256 every entry carries on
 * a stream connected with signing keys, the replay markers of requests,
 * and the one fact a takeover trusts there. README "Signed streams" has the
 * design and the threat model. */
#ifndef RIPC_SIGNING_H
#define RIPC_SIGNING_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include "redis_ipc.h"

/* On the wire, after the six fields of WIRE.md. */
#define RIPC_SIGNED_AT_FIELD "signed_at"
#define RIPC_SIGNATURE_FIELD "signature"
enum {
    RIPC_SIGNED_AT_MAX = 24,   /* room for a decimal time in ms and its NUL */
    RIPC_SIGNATURE_HEX = 64,   /* hex digits of an HMAC-SHA256 */
    RIPC_SIGNED_XADD_EXTRA = 4 /* the two fields above add this many XADD arguments */
};

typedef struct ripc_signing {
    int key_count;            /* 0: an unsigned stream */
    long long max_age_ms;
    void *macs[RIPC_MAX_SIGNING_KEYS]; /* per key, an HMAC context with the key absorbed, copied for each use */
} ripc_signing;

/* Takes the keys of o (the caller's copies may go away); RIPC_ARGUMENT for
 * a bad key or max_age, RIPC_CONFIGURATION in a build without libcrypto. */
int ripc_signing_init(ripc_signing *g, const ripc_options *o, ripc_error *err);
/* Frees the contexts (OpenSSL wipes the keys they hold). */
void ripc_signing_destroy(ripc_signing *g);
static inline int ripc_signing_on(const ripc_signing *g) { return g->key_count > 0; }

/* The signed_at and signature values of an entry of `stream` with these six
 * values (WIRE.md order), signed now_ms on the server's clock with the
 * first key. */
void ripc_signing_sign(const ripc_signing *g, const char *stream, const char *const values[RIPC_FIELD_COUNT],
                       const size_t lens[RIPC_FIELD_COUNT], long long now_ms, char signed_at[RIPC_SIGNED_AT_MAX],
                       char signature[RIPC_SIGNATURE_HEX + 1]);
/* NULL when e (read from `stream`) is signed by one of the keys within
 * max_age of now_ms (the server's clock); else why not, as static text. */
const char *ripc_signing_check(const ripc_signing *g, const char *stream, const ripc_entry *e, long long now_ms);

/* What the replay markers say of each request. */
enum {
    RIPC_SEEN_FIRST,   /* its id was never seen: handle it */
    RIPC_SEEN_AGAIN,   /* this very entry was seen before (a re-read, a takeover): handle it as such */
    RIPC_SEEN_REPLAY,  /* its id was seen in another entry: a replay, never handled */
    RIPC_SEEN_UNKNOWN  /* Redis refused or failed: leave it pending, to be read again */
};
/* Sets a marker <stream>:<group>:seen:<request id> holding the entry's
 * redis id, for as long as an entry signed when it was may still be
 * accepted, for each of requests[0..n) (signed, checked requests for
 * group), in one round trip, and fills verdicts[]. An error reply's text
 * goes into refused (first one only; "" when none). */
void ripc_signing_mark_seen(const ripc_signing *g, redisContext *c, const char *stream, const char *group,
                            ripc_entry *const *requests, size_t n, long long now_ms, int *verdicts,
                            char *refused, size_t refused_len, ripc_error *err);

/* Whether a connection is subscribed to channel (PUBSUB NUMSUB, or
 * SHARDNUMSUB for a shard channel on a cluster): a fact only the server
 * keeps, which no write to a key can fake. 1 yes, 0 no, -1 could not tell. */
int ripc_signing_subscribed(redisContext *c, const char *channel, int shard, ripc_error *err);

#endif
