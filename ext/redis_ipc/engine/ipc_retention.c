/* Retention: handled entries are deleted as they are answered, but an entry
 * no group will ever handle (a request to a group that does not exist, a
 * reply nobody routes) would stay forever. Entries older than `retention`
 * are trimmed, never one that any group still holds pending. The same on
 * the group's requests lane (ipc_lanes.h), where requests wait while the
 * group has no reader; a replies lane goes with its instance. */
#include "ipc_retention.h"
#include "ipc_conn.h"
#include "ipc_stream.h"
#include "ipc_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct stream_id {
    unsigned long long ms, seq;
} stream_id;

static stream_id parse_id(const char *text)
{
    stream_id id = { 0, 0 };
    char *end;
    id.ms = strtoull(text, &end, 10);
    if (*end == '-') id.seq = strtoull(end + 1, NULL, 10);
    return id;
}

static int id_less(stream_id a, stream_id b)
{
    return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq);
}

static void trim_lane(redisContext *c, const char *key, long long cutoff)
{
    stream_id limit = { (unsigned long long)cutoff, 0 };
    redisReply *groups = redisCommand(c, "XINFO GROUPS %b", key, strlen(key));
    if (!groups || groups->type != REDIS_REPLY_ARRAY) {
        if (groups) freeReplyObject(groups);
        return;
    }
    /* The oldest entry any group holds pending bounds the trim (MINID keeps
     * the entry it names, so that one stays too). */
    int unsure = 0;
    for (size_t i = 0; i < groups->elements && !unsure; i++) {
        const redisReply *name = ripc_reply_field(groups->element[i], "name");
        const redisReply *pending = ripc_reply_field(groups->element[i], "pending");
        if (!name || name->type != REDIS_REPLY_STRING) continue;
        /* A group that holds nothing bounds nothing: asked only of the
         * others, so an idle instance's cost does not grow with the groups. */
        if (pending && pending->type == REDIS_REPLY_INTEGER && pending->integer == 0) continue;
        redisReply *summary = redisCommand(c, "XPENDING %b %b", key, strlen(key), name->str, (size_t)name->len);
        if (!summary || summary->type != REDIS_REPLY_ARRAY) unsure = 1;
        else if (summary->elements >= 2 && summary->element[1]->type == REDIS_REPLY_STRING) {
            stream_id oldest = parse_id(summary->element[1]->str);
            if (id_less(oldest, limit)) limit = oldest;
        }
        if (summary) freeReplyObject(summary);
    }
    freeReplyObject(groups);
    if (unsure) return;
    char minid[64];
    snprintf(minid, sizeof(minid), "%llu-%llu", limit.ms, limit.seq);
    /* Exact trimming: it runs at least once a minute, and "~" would leave a
     * small stream untouched (it only drops whole internal nodes). */
    redisReply *r = redisCommand(c, "XTRIM %b MINID %s", key, strlen(key), minid);
    if (r) freeReplyObject(r);
}

void ripc_retention_trim(ripc_stream *s, redisContext *c)
{
    if (s->options.retention <= 0) return;
    /* Entry ids carry the server's clock, so the cut-off does too. */
    ripc_error err;
    long long now = ripc_liveness_server_ms(s, c, &err);
    if (now < 0) return;
    long long cutoff = now - (long long)(s->options.retention * 1000);
    if (cutoff <= 0) return;
    trim_lane(c, s->stream, cutoff);
    trim_lane(c, s->lanes[RIPC_LANE_REQUESTS], cutoff);
}
