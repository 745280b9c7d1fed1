/* Signed streams. On a stream connected with keys, every entry this engine
 * writes carries two fields after the six of WIRE.md: signed_at (the
 * server's time in ms when it was made, ipc_server_clock.h) and signature
 * (HMAC-SHA256, hex, with the first key, over a domain string, the stream's
 * name, the six values and signed_at, each preceded by its length: no two
 * different entries give the same input). A reader accepts an entry signed
 * with any of its keys (so keys rotate without downtime) within max_age of
 * its own view of the server's clock.
 *
 * A copy of a signed entry written again within max_age has a valid
 * signature too. Replies need nothing more: a reply counts once, for the
 * request that waits for it (ipc_ledger.c). A request is marked seen in
 * Redis, for the group, under its id and holding its redis id, for as long
 * as its signature is accepted: every instance of the group then knows a
 * copy (another redis id) from a re-read of the same entry (the same one).
 *
 * Takeovers on a signed stream do not trust the heartbeat scores, which
 * anyone who can write to Redis can lower or remove, and which a signature
 * cannot defend (an older beat, genuinely signed, written again, looks just
 * as dead). They ask the server instead whether the instance's waker is
 * still subscribed to its channel: a fact only the server keeps, and one a
 * write cannot make false. A process that dies drops that subscription
 * with its connection. */
#include "ipc_signing.h"
#include "ipc_conn.h"
#include "ipc_entry.h"
#include "ipc_keys.h"
#include "ipc_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef RIPC_HAVE_CRYPTO
#include <openssl/crypto.h>
#include <openssl/evp.h>
#endif

#ifdef RIPC_HAVE_CRYPTO
/* Changing what is signed changes this string. */
static const char DOMAIN[] = "redis_ipc signed entry 1";
#endif
/* Markers outlive the window by this much: the reader's clock estimate may trail the server's. */
static const long long MARKER_SLACK_MS = 2000;

int ripc_signing_available(void)
{
#ifdef RIPC_HAVE_CRYPTO
    return 1;
#else
    return 0;
#endif
}

static int check_config(const ripc_options *o, ripc_error *err)
{
    if (o->signing_key_count < 1 || o->signing_key_count > RIPC_MAX_SIGNING_KEYS || !o->signing_keys) {
        ripc_error_set(err, RIPC_ARGUMENT, "signing keys: give 1 to %d keys", RIPC_MAX_SIGNING_KEYS);
        return 0;
    }
    for (int i = 0; i < o->signing_key_count; i++) {
        size_t len = !o->signing_keys[i] ? 0 : o->signing_key_lens ? o->signing_key_lens[i] : strlen(o->signing_keys[i]);
        /* Never the key itself in a message: only where it is and how long. */
        if (len == 0 || len > RIPC_MAX_SIGNING_KEY_BYTES) {
            ripc_error_set(err, RIPC_ARGUMENT, "signing key %d must be 1 to %d bytes, got %zu", i + 1,
                           RIPC_MAX_SIGNING_KEY_BYTES, len);
            return 0;
        }
    }
    double age = o->signing_max_age;
    if (!(age > 0 && age <= RIPC_MAX_SIGNING_AGE)) {
        ripc_error_set(err, RIPC_ARGUMENT, "signing max_age must be above 0 and at most %g seconds, got %g",
                       RIPC_MAX_SIGNING_AGE, age);
        return 0;
    }
    return 1;
}

void ripc_signing_destroy(ripc_signing *g)
{
#ifdef RIPC_HAVE_CRYPTO
    for (int i = 0; i < g->key_count; i++) EVP_MD_CTX_free(g->macs[i]);
#endif
    memset(g, 0, sizeof(*g));
}

int ripc_signing_init(ripc_signing *g, const ripc_options *o, ripc_error *err)
{
    memset(g, 0, sizeof(*g));
    if (o->signing_key_count == 0 && !o->signing_keys) return RIPC_OK;
    if (!check_config(o, err)) return RIPC_ARGUMENT;
#ifdef RIPC_HAVE_CRYPTO
    g->max_age_ms = (long long)(o->signing_max_age * 1000);
    for (int i = 0; i < o->signing_key_count; i++) {
        size_t len = o->signing_key_lens ? o->signing_key_lens[i] : strlen(o->signing_keys[i]);
        EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, NULL, (const unsigned char *)o->signing_keys[i], len);
        EVP_MD_CTX *mac = EVP_MD_CTX_new();
        int ok = key && mac && EVP_DigestSignInit(mac, NULL, EVP_sha256(), NULL, key) == 1;
        EVP_PKEY_free(key); /* the context holds its own reference */
        if (!ok) {
            EVP_MD_CTX_free(mac);
            ripc_signing_destroy(g);
            ripc_error_set(err, RIPC_CONFIGURATION, "OpenSSL could not make an HMAC-SHA256 context");
            return RIPC_CONFIGURATION;
        }
        g->macs[g->key_count++] = mac;
    }
    return RIPC_OK;
#else
    ripc_error_set(err, RIPC_CONFIGURATION, "signed streams need the engine built with OpenSSL's libcrypto "
                   "(Debian/Ubuntu: apt-get install libssl-dev, then rebuild)");
    return RIPC_CONFIGURATION;
#endif
}

#ifdef RIPC_HAVE_CRYPTO
static void update_piece(EVP_MD_CTX *ctx, const void *data, size_t len)
{
    unsigned char prefix[8];
    uint64_t n = len;
    for (int i = 7; i >= 0; i--, n >>= 8) prefix[i] = (unsigned char)(n & 0xff);
    EVP_DigestSignUpdate(ctx, prefix, sizeof(prefix));
    if (len) EVP_DigestSignUpdate(ctx, data, len);
}

/* The HMAC of key k over the signed input; 0 when OpenSSL failed (out of memory). */
static int mac(const ripc_signing *g, int k, const char *stream, const char *const values[RIPC_FIELD_COUNT],
               const size_t lens[RIPC_FIELD_COUNT], const char *signed_at, size_t signed_at_len, unsigned char out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t out_len = 32;
    int ok = ctx && EVP_MD_CTX_copy_ex(ctx, g->macs[k]) == 1;
    if (ok) {
        update_piece(ctx, DOMAIN, sizeof(DOMAIN) - 1);
        update_piece(ctx, stream, strlen(stream));
        for (int i = 0; i < RIPC_FIELD_COUNT; i++) update_piece(ctx, values[i], lens[i]);
        update_piece(ctx, signed_at, signed_at_len);
        ok = EVP_DigestSignFinal(ctx, out, &out_len) == 1 && out_len == 32;
    }
    EVP_MD_CTX_free(ctx);
    return ok;
}
#endif

void ripc_signing_sign(const ripc_signing *g, const char *stream, const char *const values[RIPC_FIELD_COUNT],
                       const size_t lens[RIPC_FIELD_COUNT], long long now_ms, char signed_at[RIPC_SIGNED_AT_MAX],
                       char signature[RIPC_SIGNATURE_HEX + 1])
{
    snprintf(signed_at, RIPC_SIGNED_AT_MAX, "%lld", now_ms);
    /* A signature no key matches, should OpenSSL fail: readers refuse the entry. */
    memset(signature, '0', RIPC_SIGNATURE_HEX);
    signature[RIPC_SIGNATURE_HEX] = '\0';
#ifdef RIPC_HAVE_CRYPTO
    unsigned char digest[32];
    if (!mac(g, 0, stream, values, lens, signed_at, strlen(signed_at), digest)) return;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        signature[2 * i] = hex[digest[i] >> 4];
        signature[2 * i + 1] = hex[digest[i] & 15];
    }
#endif
}

#ifdef RIPC_HAVE_CRYPTO
static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}
#endif

/* A time in ms as signed_at holds it: 1 to 18 decimal digits. */
static int parse_ms(const ripc_bytes *b, long long *out)
{
    if (!b->ptr || b->len == 0 || b->len > 18) return 0;
    long long v = 0;
    for (size_t i = 0; i < b->len; i++) {
        if (b->ptr[i] < '0' || b->ptr[i] > '9') return 0;
        v = v * 10 + (b->ptr[i] - '0');
    }
    *out = v;
    return 1;
}

const char *ripc_signing_check(const ripc_signing *g, const char *stream, const ripc_entry *e, long long now_ms)
{
#ifdef RIPC_HAVE_CRYPTO
    const ripc_bytes *at = &e->signature[RIPC_SIGNED_AT], *sig = &e->signature[RIPC_SIGNATURE];
    if (!at->ptr && !sig->ptr) return "the entry is not signed, and this stream is signed";
    if (e->unread_bytes) return "the entry is too large to read, so its signature cannot be checked";
    long long signed_ms;
    if (!parse_ms(at, &signed_ms)) return "the entry's signed_at is not a time in milliseconds";
    unsigned char given[32];
    if (!sig->ptr || sig->len != RIPC_SIGNATURE_HEX) return "the entry's signature is not 64 hex digits";
    for (int i = 0; i < 32; i++) {
        int hi = hex_value(sig->ptr[2 * i]), lo = hex_value(sig->ptr[2 * i + 1]);
        if (hi < 0 || lo < 0) return "the entry's signature is not 64 hex digits";
        given[i] = (unsigned char)(hi << 4 | lo);
    }
    const char *values[RIPC_FIELD_COUNT];
    size_t lens[RIPC_FIELD_COUNT];
    for (int i = 0; i < RIPC_FIELD_COUNT; i++) {
        values[i] = e->fields[i].ptr ? e->fields[i].ptr : "";
        lens[i] = e->fields[i].len;
    }
    int valid = 0;
    for (int k = 0; k < g->key_count && !valid; k++) {
        unsigned char expected[32];
        valid = mac(g, k, stream, values, lens, at->ptr, at->len, expected) && CRYPTO_memcmp(expected, given, 32) == 0;
    }
    if (!valid) return "the entry's signature matches none of the signing keys (forged, altered, or another key)";
    /* Judged only once the signature holds, so signed_at is the signer's. */
    if (now_ms - signed_ms > g->max_age_ms) return "the entry was signed longer than signing max_age ago (replayed, or read too late)";
    if (signed_ms - now_ms > g->max_age_ms) return "the entry was signed more than signing max_age ahead of the server's clock";
    return NULL;
#else
    return "this engine cannot check signatures (built without libcrypto)"; /* never: ripc_signing_init refuses keys */
#endif
}

void ripc_signing_mark_seen(const ripc_signing *g, redisContext *c, const char *stream, const char *group,
                            ripc_entry *const *requests, size_t n, long long now_ms, int *verdicts,
                            char *refused, size_t refused_len, ripc_error *err)
{
    if (refused_len) refused[0] = '\0';
    if (n == 0) return;
    /* SET key redis_id NX PX ttl per request; then GET for those already
     * marked, to tell a re-read of the entry from a copy of it. */
    char **keys = ripc_xcalloc(n, sizeof(*keys));
    char (*ttls)[24] = ripc_xcalloc(n, sizeof(*ttls));
    const char ***argvs = ripc_xcalloc(n, sizeof(*argvs));
    size_t **lens = ripc_xcalloc(n, sizeof(*lens));
    int *argcs = ripc_xcalloc(n, sizeof(*argcs));
    redisReply **replies = ripc_xcalloc(n, sizeof(*replies));
    size_t *again = ripc_xcalloc(n, sizeof(*again));
    for (size_t i = 0; i < n; i++) {
        const ripc_entry *e = requests[i];
        long long signed_ms = 0;
        parse_ms(&e->signature[RIPC_SIGNED_AT], &signed_ms); /* checked before */
        long long ttl = signed_ms + g->max_age_ms - now_ms + MARKER_SLACK_MS;
        snprintf(ttls[i], sizeof(ttls[i]), "%lld", ttl > MARKER_SLACK_MS ? ttl : MARKER_SLACK_MS);
        keys[i] = ripc_key_seen(stream, group, ripc_entry_field(e, RIPC_FIELD_ID));
        const char **argv = ripc_xcalloc(7, sizeof(*argv));
        size_t *len = ripc_xcalloc(7, sizeof(*len));
        const char *a[] = { "SET", keys[i], e->redis_id, "NX", "PX", ttls[i] };
        for (int j = 0; j < 6; j++) { argv[j] = a[j]; len[j] = strlen(a[j]); }
        argvs[i] = argv; lens[i] = len; argcs[i] = 6;
        verdicts[i] = RIPC_SEEN_UNKNOWN;
    }
    size_t seen = 0;
    if (ripc_conn_pipeline(c, (int)n, argcs, (const char ***)argvs, (const size_t **)lens, replies, err) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (replies[i]->type == REDIS_REPLY_STATUS) verdicts[i] = RIPC_SEEN_FIRST;
            else if (replies[i]->type == REDIS_REPLY_NIL) again[seen++] = i;
            else if (replies[i]->type == REDIS_REPLY_ERROR && refused_len && !refused[0])
                snprintf(refused, refused_len, "%s", replies[i]->str);
            freeReplyObject(replies[i]);
        }
    }
    if (seen) {
        for (size_t k = 0; k < seen; k++) {
            size_t i = again[k];
            argvs[k][0] = "GET"; lens[k][0] = 3;
            argvs[k][1] = keys[i]; lens[k][1] = strlen(keys[i]);
            argcs[k] = 2;
        }
        if (ripc_conn_pipeline(c, (int)seen, argcs, (const char ***)argvs, (const size_t **)lens, replies, err) == 0) {
            for (size_t k = 0; k < seen; k++) {
                size_t i = again[k];
                const redisReply *r = replies[k];
                if (r->type == REDIS_REPLY_STRING)
                    verdicts[i] = strcmp(r->str, requests[i]->redis_id) == 0 ? RIPC_SEEN_AGAIN : RIPC_SEEN_REPLAY;
                else if (r->type == REDIS_REPLY_NIL)
                    verdicts[i] = RIPC_SEEN_REPLAY; /* expired meanwhile: its window is over */
                else if (r->type == REDIS_REPLY_ERROR && refused_len && !refused[0])
                    snprintf(refused, refused_len, "%s", r->str);
                freeReplyObject(replies[k]);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
        free(argvs[i]);
        free(lens[i]);
    }
    free(keys); free(ttls); free(argvs); free(lens); free(argcs); free(replies); free(again);
}

int ripc_signing_subscribed(redisContext *c, const char *channel, int shard, ripc_error *err)
{
    const char *argv[] = { "PUBSUB", shard ? "SHARDNUMSUB" : "NUMSUB", channel };
    size_t lens[] = { 6, strlen(argv[1]), strlen(channel) };
    redisReply *r = ripc_conn_run(c, 3, argv, lens, err);
    int out = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == REDIS_REPLY_INTEGER)
        out = r->element[1]->integer > 0;
    if (r) freeReplyObject(r);
    return out;
}
