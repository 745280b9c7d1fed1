/* A stream's metrics with its gauges, and their publication (ipc_telemetry.h). */
#include "ipc_telemetry.h"
#include "ipc_stream.h"

#include <stdio.h>
#include <string.h>

void ripc_stream_metrics(ripc_stream *s, ripc_metrics *out)
{
    memset(out, 0, sizeof(*out));
    ripc_metrics_read(&s->metrics, out);
    out->in_flight = ripc_ledger_size(&s->ledger);
    out->queued = ripc_queue_length(&s->requests);
    /* Read one after the other: clamp what a request moving between them skews. */
    size_t unanswered = ripc_inflight_unanswered(&s->inflight);
    out->consumers_busy = unanswered > out->queued ? unanswered - out->queued : 0;
}

void ripc_stream_note_error(ripc_stream *s, const char *class_name)
{
    ripc_metrics_note_error(&s->metrics, class_name);
}

void ripc_telemetry_taken(ripc_stream *s, const ripc_entry *request)
{
    char buf[RIPC_LANE_SLOT_MAX];
    if (request->redis_id) ripc_inflight_begin(&s->inflight, ripc_lane_slot(request->lane, request->redis_id, buf, sizeof(buf)));
    ripc_metrics_received(&s->metrics, request->redelivered);
}

void ripc_telemetry_publish(ripc_stream *s, redisContext *c)
{
    if (!s->metrics_key || c->err) return;
    ripc_metrics m;
    ripc_stream_metrics(s, &m);
    char line[RIPC_METRICS_TEXT_MAX];
    size_t len = ripc_metrics_encode(&m, line, sizeof(line));
    if (len >= sizeof(line)) len = sizeof(line) - 1; /* cannot happen: the error table is bounded */
    /* Kept a few beats past dead_after: peers judge the instance dead by then. */
    double ttl_s = 2 * s->options.dead_after + 2 * s->options.heartbeat_interval;
    char ttl[32];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(ttl_s * 1000));
    /* The figures are what follows the clock reading ("... at=<s> <figures>"). */
    const char *figures = strchr(line, ' ');
    figures = figures ? strchr(figures + 1, ' ') : NULL;
    if (!figures) figures = line;
    ripc_published *last = &s->published;
    double now = ripc_now();
    if (last->at > 0 && now - last->at < ttl_s / 2 && strcmp(last->figures, figures) == 0) return;
    const char *key = s->metrics_key;
    redisReply *r = redisCommand(c, "SET %b %b PX %s", key, strlen(key), line, len, ttl);
    if (r) ripc_stream_note_reply(s, "SET", "publishing this instance's metrics (SET)", r);
    if (r && r->type != REDIS_REPLY_ERROR) {
        snprintf(last->figures, sizeof(last->figures), "%s", figures);
        last->at = now;
    }
    if (r) freeReplyObject(r);
}
