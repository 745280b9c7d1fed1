/* The floor's requester: round trips to a responder, timed.
 * Usage: requester HOST PORT STREAM GROUP DESTINATION sequential ROUNDS
 *        requester HOST PORT STREAM GROUP DESTINATION in-flight K SECONDS
 * Prints one JSON line: p50/p99 of ROUNDS sequential round trips in µs, or
 * round trips/s with K requests outstanding for SECONDS.
 *
 * One loop, one connection: each turn sends, in one write, new requests
 * (XADD each) up to K outstanding, one XACK and one XDEL for the replies
 * of the last turn, and an XREADGROUP that waits for more. Sequential is
 * K = 1 with every round trip timed. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "floor.h"

#define READ_COUNT 256
#define MAX_IN_FLIGHT 256
#define WARMUP_ROUND_TRIPS 200
/* A reply slower than this means the responder is not there. */
#define BLOCK_MS 5000

typedef struct {
    const char *stream, *group, *destination;
    char instance_id[8];
    int in_flight_max;
    long rounds;       /* sequential: round trips timed after the warm-up */
    double seconds;    /* in-flight: how long to count */

    uint64_t *slot_id; /* request id outstanding in each slot */
    double *slot_sent;
    unsigned char *slot_used;
    int in_flight;
    uint64_t next_id;

    long completed;
    double *latencies; /* sequential only */
    long timed;
} requester;

static void append_request(redisContext *c, requester *rq) {
    int slot = 0;
    while (rq->slot_used[slot]) slot++;
    char id[32];
    snprintf(id, sizeof id, "%021" PRIx64, rq->next_id);
    floor_cmd cmd;
    floor_cmd_start(&cmd);
    const char *argv[] = {"XADD", rq->stream, "*", "id", id, "instance_id", rq->instance_id, "status", "pending",
                          "content", "1", "source_group", rq->group, "destination_group", rq->destination};
    for (size_t i = 0; i < sizeof argv / sizeof argv[0]; i++) floor_arg_str(&cmd, argv[i]);
    floor_append(c, &cmd);
    rq->slot_id[slot] = rq->next_id++;
    rq->slot_sent[slot] = floor_now();
    rq->slot_used[slot] = 1;
    rq->in_flight++;
}

/* The slot waiting for this reply, or -1 (another instance's, or late). */
static int slot_of(const requester *rq, const floor_entry *e) {
    if (!floor_str_is(e->instance_id, rq->instance_id) || e->id.len == 0 || e->id.len > 30) return -1;
    char text[32];
    memcpy(text, e->id.ptr, e->id.len);
    text[e->id.len] = '\0';
    char *end;
    uint64_t id = strtoull(text, &end, 16);
    if (*end != '\0') return -1;
    for (int s = 0; s < rq->in_flight_max; s++)
        if (rq->slot_used[s] && rq->slot_id[s] == id) return s;
    return -1;
}

static void complete(requester *rq, int slot, int timing) {
    if (timing && rq->latencies != NULL && rq->timed < rq->rounds)
        rq->latencies[rq->timed++] = floor_now() - rq->slot_sent[slot];
    rq->slot_used[slot] = 0;
    rq->in_flight--;
    rq->completed++;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The same percentile as bench/support.rb: sorted[ceil(n p) - 1]. */
static double percentile(const double *sorted, long n, double p) {
    long i = (long)ceil((double)n * p) - 1;
    return sorted[i < 0 ? 0 : i];
}

static void usage(const char *program) {
    fprintf(stderr,
            "usage: %s HOST PORT STREAM GROUP DESTINATION sequential ROUNDS\n"
            "       %s HOST PORT STREAM GROUP DESTINATION in-flight K SECONDS\n",
            program, program);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 8) usage(argv[0]);
    requester rq = {0};
    const char *host = argv[1];
    int port = atoi(argv[2]);
    rq.stream = argv[3];
    rq.group = argv[4];
    rq.destination = argv[5];
    int sequential = strcmp(argv[6], "sequential") == 0;
    if (sequential && argc == 8) {
        rq.in_flight_max = 1;
        rq.rounds = atol(argv[7]);
        if (rq.rounds <= 0) usage(argv[0]);
    } else if (strcmp(argv[6], "in-flight") == 0 && argc == 9) {
        rq.in_flight_max = atoi(argv[7]);
        rq.seconds = atof(argv[8]);
        if (rq.in_flight_max <= 0 || rq.in_flight_max > MAX_IN_FLIGHT || rq.seconds <= 0) usage(argv[0]);
    } else {
        usage(argv[0]);
    }
    /* 1.x instance ids are 6 hex chars; a new one per run so late replies of the last run are told apart */
    snprintf(rq.instance_id, sizeof rq.instance_id, "%06x",
             (unsigned)(((unsigned)getpid() * 2654435761u) ^ (unsigned)(floor_now() * 1e6)) & 0xffffffu);
    rq.slot_id = calloc((size_t)rq.in_flight_max, sizeof *rq.slot_id);
    rq.slot_sent = calloc((size_t)rq.in_flight_max, sizeof *rq.slot_sent);
    rq.slot_used = calloc((size_t)rq.in_flight_max, 1);
    if (sequential) rq.latencies = calloc((size_t)rq.rounds, sizeof *rq.latencies);
    if (!rq.slot_id || !rq.slot_sent || !rq.slot_used || (sequential && !rq.latencies)) floor_die("out of memory");

    redisContext *c = floor_connect(host, port);
    floor_create_group(c, rq.stream, rq.group);

    static floor_done done; /* 50 KB: not on the stack */
    double started = 0, ended = 0;
    long counted = 0;
    int measuring = 0, sending = 1;
    while (sending || rq.in_flight > 0) {
        int requests_queued = 0;
        while (sending && rq.in_flight < rq.in_flight_max) {
            if (sequential && (long)rq.next_id >= WARMUP_ROUND_TRIPS + rq.rounds) {
                sending = 0;
                break;
            }
            append_request(c, &rq);
            requests_queued++;
        }
        if (!sending && rq.in_flight == 0) break;
        int done_commands = floor_done_append(c, &done, rq.stream, rq.group, 0);
        floor_append_read(c, rq.stream, rq.group, READ_COUNT, BLOCK_MS);
        for (int i = 0; i < requests_queued; i++) floor_expect(c, REDIS_REPLY_STRING, "XADD");
        floor_done_expect(c, done_commands);

        redisReply *read = floor_reply_read(c);
        size_t count;
        redisReply **items = floor_read_entries(read, &count);
        if (read->type == REDIS_REPLY_NIL) floor_die("no reply within %d ms: is the responder running?", BLOCK_MS);
        for (size_t i = 0; i < count; i++) {
            floor_entry e;
            int valid = floor_parse_entry(items[i], &e) == 0;
            int for_us = valid && floor_str_is(e.destination_group, rq.group) && !floor_str_is(e.status, "pending");
            if (for_us) {
                int slot = slot_of(&rq, &e);
                if (slot >= 0) complete(&rq, slot, measuring);
            }
            /* our requests, read by our group too, are only acknowledged */
            floor_done_add(&done, e.entry_id, for_us);
        }
        freeReplyObject(read);

        if (!measuring && rq.completed >= WARMUP_ROUND_TRIPS) {
            measuring = 1;
            started = floor_now();
            counted = rq.completed;
        }
        if (!sequential && measuring && sending && floor_now() - started >= rq.seconds) {
            ended = floor_now();
            counted = rq.completed - counted;
            sending = 0; /* then wait for the requests still out */
        }
    }
    floor_done_expect(c, floor_done_append(c, &done, rq.stream, rq.group, 1));
    redisFree(c);

    if (sequential) {
        qsort(rq.latencies, (size_t)rq.timed, sizeof *rq.latencies, by_value);
        printf("{\"mode\":\"sequential\",\"round_trips\":%ld,\"p50_us\":%.1f,\"p99_us\":%.1f,\"round_trips_total\":%ld}\n",
               rq.timed, percentile(rq.latencies, rq.timed, 0.5) * 1e6, percentile(rq.latencies, rq.timed, 0.99) * 1e6,
               rq.completed);
    } else {
        double elapsed = ended - started;
        printf("{\"mode\":\"in_flight\",\"in_flight\":%d,\"seconds\":%.3f,\"round_trips\":%ld,\"round_trips_per_s\":%.1f,"
               "\"round_trips_total\":%ld}\n",
               rq.in_flight_max, elapsed, counted, (double)counted / elapsed, rq.completed);
    }
    free(rq.slot_id);
    free(rq.slot_sent);
    free(rq.slot_used);
    free(rq.latencies);
    return 0;
}
