/* Scripts: each runs by EVALSHA, its SHA1 learned from SCRIPT LOAD the
 * first time and kept for the process (the same text has the same SHA1 on
 * every server); a server that lost its script cache (a restart, SCRIPT
 * FLUSH) answers NOSCRIPT and gets the script loaded again. */
#include "ipc_scripts.h"
#include "ipc_conn.h"
#include "ipc_util.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* The SHA1 is written once by the first thread whose SCRIPT LOAD succeeds
 * and read by all; a flag rather than a mutex, so that a fork() cannot
 * leave the child a lock held by a thread it does not have. */
enum { SHA_UNSET, SHA_WRITING, SHA_SET };

typedef struct script {
    const char *text;
    atomic_int state; /* SHA_*: sha may be read once SHA_SET */
    char sha[41];
} script;

/* XREADGROUP with an id never blocks and only reads this consumer's
 * pending entries, so it may run in a script. The script measures each
 * entry before anything leaves Redis. Its errors (NOGROUP after the group
 * was deleted...) come back as XREADGROUP's own would (pcall: on Redis 6.2
 * too, where call would wrap them in a script error). */
static script history_page = {
    "local r = redis.pcall('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], ARGV[4])\n"
    "if type(r) == 'table' and r.err then return r end\n"
    "local budget, limit, kept = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])\n"
    "local page, total = {}, 0\n"
    "for _, e in ipairs(r and r[1] and r[1][2] or {}) do\n"
    "  local size = 0\n"
    "  if e[2] then for j = 2, #e[2], 2 do size = size + #e[2][j] end end\n"
    "  if size > limit then\n"
    "    local small, held = {}, 0\n"
    "    for j = 1, #e[2], 2 do\n"
    "      local v = e[2][j + 1]\n"
    "      if #v <= kept then small[#small + 1] = e[2][j]; small[#small + 1] = v; held = held + #v end\n"
    "    end\n"
    "    e = { e[1], small, size }\n"
    "    size = held\n"
    "  end\n"
    "  if #page > 0 and total + size > budget then break end\n"
    "  total = total + size\n"
    "  page[#page + 1] = e\n"
    "end\n"
    "return { { KEYS[1], page } }\n",
    SHA_UNSET, ""
};

/* SCRIPT LOAD: NULL once sha is set; else the error reply (refused: the
 * caller reports it as it would the script's own) or NULL with err set. */
static redisReply *load(redisContext *c, script *sc, char *sha, ripc_error *err)
{
    redisReply *r = redisCommand(c, "SCRIPT LOAD %s", sc->text);
    if (!r) {
        ripc_error_set(err, RIPC_CONNECTION, "redis connection failed: %s", c->errstr);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) return r;
    if (r->type == REDIS_REPLY_STRING && r->len == 40) {
        memcpy(sha, r->str, 40);
        sha[40] = '\0';
        int unset = SHA_UNSET;
        if (atomic_compare_exchange_strong(&sc->state, &unset, SHA_WRITING)) {
            memcpy(sc->sha, sha, sizeof(sc->sha));
            atomic_store(&sc->state, SHA_SET);
        }
    } else {
        ripc_error_set(err, RIPC_PROTOCOL, "unexpected reply of Redis to SCRIPT LOAD");
    }
    freeReplyObject(r);
    return NULL;
}

/* EVALSHA sha 1 key args... (argv[0..2] are filled here). */
static redisReply *run(redisContext *c, script *sc, int argc, const char **argv, size_t *lens, size_t max_bytes,
                       ripc_error *err)
{
    char sha[41] = "";
    if (atomic_load(&sc->state) == SHA_SET) memcpy(sha, sc->sha, sizeof(sha));
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!sha[0]) {
            redisReply *refused = load(c, sc, sha, err);
            if (refused || !sha[0]) return refused;
        }
        argv[0] = "EVALSHA"; lens[0] = 7;
        argv[1] = sha; lens[1] = 40;
        argv[2] = "1"; lens[2] = 1;
        redisReply *r = ripc_conn_run_bounded(c, argc, argv, lens, max_bytes, err);
        if (!r || !ripc_reply_error_starts(r, "NOSCRIPT")) return r;
        freeReplyObject(r);
        sha[0] = '\0';
    }
    ripc_error_set(err, RIPC_PROTOCOL, "Redis forgot the engine's script twice in a row");
    return NULL;
}

redisReply *ripc_script_history_page(redisContext *c, const char *stream, const char *group, const char *consumer,
                                     const char *from, int count, size_t budget, size_t entry_limit, ripc_error *err)
{
    char count_s[24], budget_s[24], limit_s[24], kept_s[24];
    snprintf(count_s, sizeof(count_s), "%d", count);
    snprintf(budget_s, sizeof(budget_s), "%zu", budget);
    snprintf(limit_s, sizeof(limit_s), "%zu", entry_limit);
    snprintf(kept_s, sizeof(kept_s), "%d", RIPC_SCRIPT_KEPT_VALUE);
    const char *argv[11] = { NULL, NULL, NULL, stream, group, consumer, count_s, from, budget_s, limit_s, kept_s };
    size_t lens[11];
    for (int i = 3; i < 11; i++) lens[i] = strlen(argv[i]);
    /* Values of at most budget bytes, or one entry of up to entry_limit,
     * plus ids, field names and framing. */
    size_t max_bytes = (budget > entry_limit ? budget : entry_limit) + (size_t)count * 1024;
    return run(c, &history_page, 11, argv, lens, max_bytes, err);
}
