/* Retention: handled entries are deleted as they are answered, but an entry
 * no group will ever handle (a request to a group that does not exist, a
 * reply nobody routes) would stay forever. Entries older than `retention`
 * are trimmed, never one that any group still holds pending. */
#include "ipc_stream_internal.h"
#include "ipc_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Parses "ms-seq" into its millisecond part. */
static long long id_ms(const char *id)
{
    return strtoll(id, NULL, 10);
}

void ripc_retention_trim(ripc_stream *s, redisContext *c)
{
    if (s->options.retention <= 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long limit = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - (long long)(s->options.retention * 1000);

    redisReply *groups = redisCommand(c, "XINFO GROUPS %s", s->stream);
    if (!groups || groups->type != REDIS_REPLY_ARRAY) {
        if (groups) freeReplyObject(groups);
        return;
    }
    /* The oldest entry any group holds pending bounds the trim. */
    for (size_t i = 0; i < groups->elements && limit > 0; i++) {
        const redisReply *g = groups->element[i];
        for (size_t j = 0; g->type == REDIS_REPLY_ARRAY && j + 1 < g->elements; j += 2) {
            if (g->element[j]->type != REDIS_REPLY_STRING || strcmp(g->element[j]->str, "name") != 0) continue;
            redisReply *summary = redisCommand(c, "XPENDING %s %s", s->stream, g->element[j + 1]->str);
            if (summary && summary->type == REDIS_REPLY_ARRAY && summary->elements >= 2 &&
                summary->element[1]->type == REDIS_REPLY_STRING) {
                long long oldest = id_ms(summary->element[1]->str);
                if (oldest < limit) limit = oldest;
            } else if (!summary || summary->type == REDIS_REPLY_ERROR) {
                limit = 0; /* unsure: trim nothing this time */
            }
            if (summary) freeReplyObject(summary);
        }
    }
    freeReplyObject(groups);
    if (limit <= 0) return;
    char minid[32];
    snprintf(minid, sizeof(minid), "%lld", limit);
    /* Exact trimming: it runs at most once a minute, and "~" would leave a
     * small stream untouched (it only drops whole internal nodes). */
    redisReply *r = redisCommand(c, "XTRIM %s MINID %s", s->stream, minid);
    if (r) freeReplyObject(r);
}
