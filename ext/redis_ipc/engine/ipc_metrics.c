/* Counting what a stream endpoint does (ipc_metrics.h), and writing the
 * figures out: the compact line published in Redis, and the Prometheus
 * text format. */
#include "ipc_metrics.h"
#include "ipc_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ripc_metrics_init(ripc_metrics_recorder *m)
{
    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->mutex, NULL);
}

void ripc_metrics_destroy(ripc_metrics_recorder *m)
{
    pthread_mutex_destroy(&m->mutex);
}

/* --- latency windows ---------------------------------------------------- */

/* Log-linear buckets on nanoseconds: values below 8 have a bucket each;
 * above, each power of two is cut into 8 equal buckets. */
static int bucket_of(double seconds)
{
    double ns_real = seconds * 1e9;
    if (!(ns_real >= 1)) return 0; /* also NaN */
    if (ns_real >= 9.2e18) return RIPC_METRICS_BUCKETS - 1;
    unsigned long long ns = (unsigned long long)ns_real;
    if (ns < 8) return (int)ns;
    int octave = 63 - __builtin_clzll(ns);
    int index = 8 + (octave - 3) * 8 + (int)((ns >> (octave - 3)) & 7);
    return index < RIPC_METRICS_BUCKETS ? index : RIPC_METRICS_BUCKETS - 1;
}

/* The middle of a bucket, in seconds. */
static double bucket_value(int index)
{
    if (index < 8) return index * 1e-9;
    int octave = 3 + (index - 8) / 8, sub = (index - 8) % 8;
    double width = (double)(1ULL << (octave - 3));
    return ((8 + sub) * width + width / 2) * 1e-9;
}

static long long epoch_of(double now) { return (long long)(now / RIPC_METRICS_SLICE); }

/* Mutex held. */
static void record(ripc_latency_window *w, double seconds, double now)
{
    long long epoch = epoch_of(now);
    int at = (int)(epoch % RIPC_METRICS_SLICES);
    if (w->slices[at].epoch != epoch) {
        memset(w->slices[at].counts, 0, sizeof(w->slices[at].counts));
        w->slices[at].epoch = epoch;
    }
    w->slices[at].counts[bucket_of(seconds)]++;
}

/* Mutex held. */
static void percentiles(const ripc_latency_window *w, double now, ripc_latency *out)
{
    long long epoch = epoch_of(now);
    unsigned long long merged[RIPC_METRICS_BUCKETS] = { 0 }, total = 0;
    for (int i = 0; i < RIPC_METRICS_SLICES; i++) {
        /* A slice of an old epoch holds nothing of the window. */
        if (w->slices[i].epoch <= epoch - RIPC_METRICS_SLICES || w->slices[i].epoch > epoch) continue;
        for (int b = 0; b < RIPC_METRICS_BUCKETS; b++) merged[b] += w->slices[i].counts[b];
    }
    for (int b = 0; b < RIPC_METRICS_BUCKETS; b++) total += merged[b];
    memset(out, 0, sizeof(*out));
    out->samples = total;
    if (total == 0) return;
    const double quantiles[3] = { 0.5, 0.9, 0.99 };
    double *values[3] = { &out->p50, &out->p90, &out->p99 };
    for (int q = 0; q < 3; q++) {
        /* The smallest value with at least that share of samples at or below it. */
        unsigned long long rank = (unsigned long long)(quantiles[q] * (double)total + 0.999999), seen = 0;
        if (rank < 1) rank = 1;
        for (int b = 0; b < RIPC_METRICS_BUCKETS; b++) {
            seen += merged[b];
            if (seen >= rank) { *values[q] = bucket_value(b); break; }
        }
    }
}

/* --- events ------------------------------------------------------------- */

void ripc_metrics_sent(ripc_metrics_recorder *m) { if (m) atomic_fetch_add(&m->sent, 1); }

void ripc_metrics_received(ripc_metrics_recorder *m, int redelivered)
{
    if (!m) return;
    atomic_fetch_add(&m->received, 1);
    if (redelivered) atomic_fetch_add(&m->redelivered, 1);
}

void ripc_metrics_answered(ripc_metrics_recorder *m, int fulfilled, double started)
{
    if (!m) return;
    atomic_fetch_add(fulfilled ? &m->fulfilled : &m->rejected, 1);
    if (started <= 0) return;
    double now = ripc_now();
    pthread_mutex_lock(&m->mutex);
    record(&m->handler, now - started, now);
    pthread_mutex_unlock(&m->mutex);
}

void ripc_metrics_outcome(ripc_metrics_recorder *m, int code, const ripc_entry *reply, double sent_at)
{
    if (!m) return;
    if (code == RIPC_TIMEOUT) {
        atomic_fetch_add(&m->timed_out, 1);
    } else if (code == RIPC_CLOSED) {
        /* A disconnect ended the wait: nobody's fault. */
    } else if (code != RIPC_OK || !reply) {
        ripc_metrics_note_error(m, code == RIPC_COMMAND ? "command" : code == RIPC_CONNECTION ? "connection" : "error");
    } else {
        const char *status = reply->fields[RIPC_FIELD_STATUS].ptr;
        atomic_fetch_add(status && !strcmp(status, "fulfilled") ? &m->replies_fulfilled : &m->replies_rejected, 1);
        double now = ripc_now();
        pthread_mutex_lock(&m->mutex);
        record(&m->round_trip, now - sent_at, now);
        pthread_mutex_unlock(&m->mutex);
    }
}

/* What may appear in a class name: enough for Ruby's and C's, and nothing
 * that breaks the published line or a Prometheus label. */
static void clean_class(const char *in, char *out, size_t size)
{
    size_t n = 0;
    for (; in && *in && n + 1 < size; in++) {
        char ch = *in;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == ':' || ch == '.';
        out[n++] = ok ? ch : '_';
    }
    if (n == 0) out[n++] = '_';
    out[n] = '\0';
}

static int find_error(const ripc_metrics_error *errors, int count, const char *name)
{
    for (int i = 0; i < count; i++)
        if (!strcmp(errors[i].name, name)) return i;
    return -1;
}

/* Mutex held. */
static void add_error(ripc_metrics_error *errors, int *count, const char *name, unsigned long long n)
{
    int i = find_error(errors, *count, name);
    /* The last slot is kept for "other": the table never grows past its size. */
    if (i < 0 && *count >= RIPC_METRICS_ERROR_CLASSES - 1) i = find_error(errors, *count, name = "other");
    if (i < 0) {
        if (*count >= RIPC_METRICS_ERROR_CLASSES) return; /* not reached: "other" is always found by then */
        i = (*count)++;
        snprintf(errors[i].name, sizeof(errors[i].name), "%s", name);
        errors[i].count = 0;
    }
    errors[i].count += n;
}

void ripc_metrics_note_error(ripc_metrics_recorder *m, const char *class_name)
{
    if (!m) return;
    char name[RIPC_METRICS_CLASS_LEN];
    clean_class(class_name, name, sizeof(name));
    pthread_mutex_lock(&m->mutex);
    add_error(m->errors, &m->error_count, name, 1);
    pthread_mutex_unlock(&m->mutex);
}

void ripc_metrics_event(ripc_metrics_recorder *m, int kind)
{
    ripc_metrics_note_error(m, kind == RIPC_EVENT_MALFORMED_ENTRY ? "malformed"
                             : kind == RIPC_EVENT_CONNECTION ? "connection"
                             : kind == RIPC_EVENT_COMMAND ? "command" : "error");
}

void ripc_metrics_read(ripc_metrics_recorder *m, ripc_metrics *out)
{
    double now = ripc_now();
    out->at = now;
    out->sent = atomic_load(&m->sent);
    out->received = atomic_load(&m->received);
    out->fulfilled = atomic_load(&m->fulfilled);
    out->rejected = atomic_load(&m->rejected);
    out->replies_fulfilled = atomic_load(&m->replies_fulfilled);
    out->replies_rejected = atomic_load(&m->replies_rejected);
    out->timed_out = atomic_load(&m->timed_out);
    out->redelivered = atomic_load(&m->redelivered);
    pthread_mutex_lock(&m->mutex);
    out->error_count = m->error_count;
    memcpy(out->errors, m->errors, sizeof(out->errors));
    percentiles(&m->round_trip, now, &out->round_trip);
    percentiles(&m->handler, now, &out->handler);
    pthread_mutex_unlock(&m->mutex);
}

/* --- the published line ------------------------------------------------- */

/* Appends like snprintf, keeping the total length needed. */
typedef struct text {
    char *buf;
    size_t size, len;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = t->len < t->size ? t->size - t->len : 0;
    int n = vsnprintf(room ? t->buf + t->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) t->len += (size_t)n;
}

/* Version first: a reader of another version leaves the line alone. */
static const char *const LINE_VERSION = "ripc-metrics/1";

size_t ripc_metrics_encode(const ripc_metrics *m, char *buf, size_t size)
{
    text t = { buf, size, 0 };
    if (size) buf[0] = '\0';
    put(&t, "%s at=%.3f sent=%llu received=%llu fulfilled=%llu rejected=%llu replies_fulfilled=%llu "
            "replies_rejected=%llu timed_out=%llu redelivered=%llu in_flight=%zu queued=%zu consumers_busy=%zu",
        LINE_VERSION, m->at, m->sent, m->received, m->fulfilled, m->rejected, m->replies_fulfilled,
        m->replies_rejected, m->timed_out, m->redelivered, m->in_flight, m->queued, m->consumers_busy);
    put(&t, " round_trip=%.9g,%.9g,%.9g,%llu handler=%.9g,%.9g,%.9g,%llu", m->round_trip.p50, m->round_trip.p90,
        m->round_trip.p99, m->round_trip.samples, m->handler.p50, m->handler.p90, m->handler.p99, m->handler.samples);
    for (int i = 0; i < m->error_count && i < RIPC_METRICS_ERROR_CLASSES; i++)
        put(&t, " error.%s=%llu", m->errors[i].name, m->errors[i].count);
    return t.len;
}

static int decode_latency(const char *value, ripc_latency *out)
{
    return sscanf(value, "%lf,%lf,%lf,%llu", &out->p50, &out->p90, &out->p99, &out->samples) == 4 ? 0 : -1;
}

int ripc_metrics_decode(const char *line, ripc_metrics *out)
{
    memset(out, 0, sizeof(*out));
    size_t vlen = strlen(LINE_VERSION);
    if (strncmp(line, LINE_VERSION, vlen) != 0 || (line[vlen] != ' ' && line[vlen] != '\0')) return -1;
    struct { const char *name; unsigned long long *value; } counters[] = {
        { "sent", &out->sent }, { "received", &out->received }, { "fulfilled", &out->fulfilled },
        { "rejected", &out->rejected }, { "replies_fulfilled", &out->replies_fulfilled },
        { "replies_rejected", &out->replies_rejected }, { "timed_out", &out->timed_out },
        { "redelivered", &out->redelivered },
    };
    struct { const char *name; size_t *value; } gauges[] = {
        { "in_flight", &out->in_flight }, { "queued", &out->queued }, { "consumers_busy", &out->consumers_busy },
    };
    char token[256];
    for (const char *at = line + vlen; *at;) {
        while (*at == ' ') at++;
        size_t n = strcspn(at, " ");
        if (n == 0) break;
        if (n >= sizeof(token)) return -1;
        memcpy(token, at, n);
        token[n] = '\0';
        at += n;
        char *eq = strchr(token, '=');
        if (!eq) return -1;
        *eq = '\0';
        const char *name = token, *value = eq + 1;
        char *end;
        if (!strcmp(name, "at")) { out->at = strtod(value, &end); continue; }
        if (!strcmp(name, "round_trip")) { if (decode_latency(value, &out->round_trip)) return -1; continue; }
        if (!strcmp(name, "handler")) { if (decode_latency(value, &out->handler)) return -1; continue; }
        if (!strncmp(name, "error.", 6)) {
            char clean[RIPC_METRICS_CLASS_LEN];
            clean_class(name + 6, clean, sizeof(clean));
            add_error(out->errors, &out->error_count, clean, strtoull(value, &end, 10));
            continue;
        }
        for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
            if (!strcmp(name, counters[i].name)) *counters[i].value = strtoull(value, &end, 10);
        for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++)
            if (!strcmp(name, gauges[i].name)) *gauges[i].value = (size_t)strtoull(value, &end, 10);
        /* Names this version does not know are skipped: a newer writer may add some. */
    }
    return 0;
}

/* --- Prometheus --------------------------------------------------------- */

static void put_label(text *t, const char *name, const char *value)
{
    put(t, "%s=\"", name);
    for (const char *c = value ? value : ""; *c; c++) {
        if (*c == '\\' || *c == '"') put(t, "\\%c", *c);
        else if (*c == '\n') put(t, "\\n");
        else put(t, "%c", *c);
    }
    put(t, "\"");
}

static void put_labels(text *t, const ripc_metrics_source *src, const char *extra, const char *extra_value)
{
    put(t, "{");
    put_label(t, "stream", src->stream);
    put(t, ",");
    put_label(t, "group", src->group);
    put(t, ",");
    put_label(t, "instance", src->instance);
    if (extra) {
        put(t, ",");
        put_label(t, extra, extra_value);
    }
    put(t, "}");
}

typedef enum { COUNTER, GAUGE } family_type;

static void family(text *t, const char *name, family_type type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type == COUNTER ? "counter" : "gauge");
}

static void sample(text *t, const char *name, const ripc_metrics_source *src, const char *extra,
                   const char *extra_value, double value, int integral)
{
    put(t, "%s", name);
    put_labels(t, src, extra, extra_value);
    if (integral) put(t, " %.0f\n", value);
    else put(t, " %.9g\n", value);
}

static double latency_at(const ripc_latency *l, int q) { return q == 0 ? l->p50 : q == 1 ? l->p90 : l->p99; }

size_t ripc_metrics_prometheus(const ripc_metrics_source *sources, size_t count, char *buf, size_t size)
{
    text t = { buf, size, 0 };
    if (size) buf[0] = '\0';
    enum { F_SENT, F_RECEIVED, F_REDELIVERED, F_TIMED_OUT, F_IN_FLIGHT, F_QUEUED, F_BUSY, SIMPLE };
    static const struct { const char *name; family_type type; const char *help; } simple[SIMPLE] = {
        { "redis_ipc_requests_sent_total", COUNTER, "Requests this instance wrote." },
        { "redis_ipc_requests_received_total", COUNTER, "Requests handed to this instance's handlers." },
        { "redis_ipc_requests_redelivered_total", COUNTER, "Received requests that another instance may have handled already." },
        { "redis_ipc_requests_timed_out_total", COUNTER, "Requests of this instance that got no reply in time." },
        { "redis_ipc_requests_in_flight", GAUGE, "Requests of this instance waiting for a reply." },
        { "redis_ipc_requests_queued", GAUGE, "Requests read and waiting for a handler." },
        { "redis_ipc_consumers_busy", GAUGE, "Requests held by a handler and not yet answered." },
    };
    for (int f = 0; f < SIMPLE; f++) {
        family(&t, simple[f].name, simple[f].type, simple[f].help);
        for (size_t i = 0; i < count; i++) {
            const ripc_metrics *m = sources[i].metrics;
            double v = f == F_SENT ? (double)m->sent : f == F_RECEIVED ? (double)m->received
                     : f == F_REDELIVERED ? (double)m->redelivered : f == F_TIMED_OUT ? (double)m->timed_out
                     : f == F_IN_FLIGHT ? (double)m->in_flight : f == F_QUEUED ? (double)m->queued
                     : (double)m->consumers_busy;
            sample(&t, simple[f].name, &sources[i], NULL, NULL, v, 1);
        }
    }
    family(&t, "redis_ipc_requests_answered_total", COUNTER, "Requests this instance answered, by outcome.");
    for (size_t i = 0; i < count; i++) {
        sample(&t, "redis_ipc_requests_answered_total", &sources[i], "status", "fulfilled", (double)sources[i].metrics->fulfilled, 1);
        sample(&t, "redis_ipc_requests_answered_total", &sources[i], "status", "rejected", (double)sources[i].metrics->rejected, 1);
    }
    family(&t, "redis_ipc_replies_total", COUNTER, "Replies this instance's requests got, by outcome.");
    for (size_t i = 0; i < count; i++) {
        sample(&t, "redis_ipc_replies_total", &sources[i], "status", "fulfilled", (double)sources[i].metrics->replies_fulfilled, 1);
        sample(&t, "redis_ipc_replies_total", &sources[i], "status", "rejected", (double)sources[i].metrics->replies_rejected, 1);
    }
    family(&t, "redis_ipc_errors_total", COUNTER, "Errors, by class.");
    for (size_t i = 0; i < count; i++) {
        const ripc_metrics *m = sources[i].metrics;
        for (int e = 0; e < m->error_count && e < RIPC_METRICS_ERROR_CLASSES; e++)
            sample(&t, "redis_ipc_errors_total", &sources[i], "class", m->errors[e].name, (double)m->errors[e].count, 1);
    }
    static const char *const quantile_labels[3] = { "0.5", "0.9", "0.99" };
    static const struct { const char *name, *help; } latencies[2] = {
        { "redis_ipc_round_trip_seconds", "Time from writing a request to reading its reply, over the last minute." },
        { "redis_ipc_handler_seconds", "Time from a handler taking a request to its answer, over the last minute." },
    };
    for (int l = 0; l < 2; l++) {
        family(&t, latencies[l].name, GAUGE, latencies[l].help);
        for (size_t i = 0; i < count; i++) {
            const ripc_latency *lat = l == 0 ? &sources[i].metrics->round_trip : &sources[i].metrics->handler;
            if (lat->samples == 0) continue; /* nothing measured: no sample rather than a made-up 0 */
            for (int q = 0; q < 3; q++)
                sample(&t, latencies[l].name, &sources[i], "quantile", quantile_labels[q], latency_at(lat, q), 0);
        }
    }
    return t.len;
}
