/* Metrics: what one stream endpoint did (counters), and how long round
 * trips and handlers took (latency over a sliding window). Files where an
 * event happens call in with one line; nothing here calls back, so any
 * engine file may count. The gauges and the snapshot published at each
 * heartbeat are gathered in ipc_telemetry.c, which sees the whole stream.
 *
 * Memory is fixed: a latency window is RIPC_METRICS_SLICES slices of
 * RIPC_METRICS_SLICE seconds, each a histogram of RIPC_METRICS_BUCKETS
 * log-linear buckets (8 per power of two: an estimate is within 6 % of
 * the true value), so a percentile costs no allocation and no sort. */
#ifndef RIPC_METRICS_H
#define RIPC_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "redis_ipc.h"

enum {
    RIPC_METRICS_SLICES = 6,
    RIPC_METRICS_SLICE = 10,    /* seconds: the window is the last 50 to 60 s */
    RIPC_METRICS_BUCKETS = 296  /* 1 ns to ~137 s; longer goes to the last bucket */
};

typedef struct ripc_latency_window {
    struct {
        long long epoch; /* which RIPC_METRICS_SLICE-second slice of the monotonic clock */
        uint32_t counts[RIPC_METRICS_BUCKETS];
    } slices[RIPC_METRICS_SLICES];
} ripc_latency_window;

typedef struct ripc_metrics_recorder {
    atomic_ullong sent, received, fulfilled, rejected, replies_fulfilled, replies_rejected, timed_out, redelivered;
    pthread_mutex_t mutex; /* the error table and the windows */
    ripc_metrics_error errors[RIPC_METRICS_ERROR_CLASSES];
    int error_count;
    ripc_latency_window round_trip, handler;
} ripc_metrics_recorder;

void ripc_metrics_init(ripc_metrics_recorder *m);
void ripc_metrics_destroy(ripc_metrics_recorder *m);

/* Events. Each may be called from any thread. */
/* A background error reported to the stream's events (RIPC_EVENT_*), counted by its kind. */
void ripc_metrics_event(ripc_metrics_recorder *m, int kind);
void ripc_metrics_sent(ripc_metrics_recorder *m);
/* A request handed to a handler (redelivered counts it as such too). */
void ripc_metrics_received(ripc_metrics_recorder *m, int redelivered);
/* This instance answered a request; started: when a handler took it (ripc_now(), 0 unknown). */
void ripc_metrics_answered(ripc_metrics_recorder *m, int fulfilled, double started);
/* A request this instance sent got its outcome: a reply (RIPC_OK, with
 * it), a timeout, or an error code (counted as an error of its class). */
void ripc_metrics_outcome(ripc_metrics_recorder *m, int code, const ripc_entry *reply, double sent_at);
/* One error of a class (a short name; longer ones are cut, characters other
 * than letters, digits, '_', ':' and '.' become '_'). Past
 * RIPC_METRICS_ERROR_CLASSES classes, errors count as "other". */
void ripc_metrics_note_error(ripc_metrics_recorder *m, const char *class_name);

/* The counters and latencies (gauges are left as they are in out). */
void ripc_metrics_read(ripc_metrics_recorder *m, ripc_metrics *out);

/* The compact text a snapshot is published as (one line of name=value
 * pairs, under RIPC_METRICS_TEXT_MAX bytes), and back. */
enum { RIPC_METRICS_TEXT_MAX = 2048 };
size_t ripc_metrics_encode(const ripc_metrics *m, char *buf, size_t size);
/* Returns 0, or -1 when text is not a snapshot of this version. */
int ripc_metrics_decode(const char *text, ripc_metrics *out);

#endif
