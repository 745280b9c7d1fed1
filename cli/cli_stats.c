/* redis-ipc stats: a stream's length, its groups, their instances and
 * consumers (XINFO and the instances registry), and each live instance's
 * metrics as it published them at its last heartbeat
 * (<stream>:<group>:<instance>:metrics, ipc_telemetry.c). Read-only.
 * --watch redraws every --interval seconds with counters as rates;
 * --prometheus prints the Prometheus text format. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_numbers.h"
#include "ipc_keys.h"
#include "ipc_metrics.h"
#include "redis_ipc.h"

static const char *const USAGE_STATS =
    "usage: redis-ipc stats --stream S [--json | --prometheus] [--watch [--interval SEC]] [--dead-after SEC] [CONNECTION]\n"
    "  Prints the stream's length, its groups with their pending counts,\n"
    "  instances (alive: a heartbeat within --dead-after seconds, default\n"
    "  1.3, the engine's takeover.dead_after), their metrics (counters, in\n"
    "  flight, queued, busy, round-trip and handler latency p50/p90/p99 over\n"
    "  the last minute, errors) and consumers. --prometheus: the metrics in the Prometheus text\n"
    "  format. --watch: again every --interval seconds (default 1), counters\n"
    "  as rates per second, until SIGINT/SIGTERM. Exit 3 when Redis cannot be\n"
    "  reached or refuses (wrong password...).\n";

/* Bounds: a stream with more is shown in part, never read whole. */
enum { MAX_GROUPS = 256, MAX_INSTANCES = 512 };

typedef struct instance {
    char group[128], id[64];
    double beat_ago; /* seconds; < 0 when never */
    int alive, has_metrics, has_base;
    ripc_metrics m;
    ripc_metrics base; /* the last earlier snapshot of the instance (--watch): rates are measured from it */
} instance;

typedef struct frame {
    long long length;
    instance instances[MAX_INSTANCES];
    int count;
} frame;

typedef struct stats_mode {
    int json, prometheus, watch;
    double interval;
    double dead_after; /* seconds without a heartbeat after which an instance is shown dead */
} stats_mode;

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig) { (void)sig; stop_requested = 1; }

static void format_seconds(double s, char *buf, size_t size)
{
    if (s <= 0) snprintf(buf, size, "-");
    else if (s < 1e-3) snprintf(buf, size, "%.0fus", s * 1e6);
    else if (s < 1) snprintf(buf, size, "%.1fms", s * 1e3);
    else snprintf(buf, size, "%.2fs", s);
}

/* Finds the snapshot rates are measured from: the previous frame's, or,
 * when the instance has not published since (it does at each heartbeat),
 * the one that frame measured from. */
static void find_base(instance *in, const frame *prev)
{
    for (int i = 0; prev && in->has_metrics && i < prev->count; i++) {
        const instance *p = &prev->instances[i];
        if (!p->has_metrics || strcmp(p->id, in->id) != 0 || strcmp(p->group, in->group) != 0) continue;
        if (p->m.at < in->m.at) { in->base = p->m; in->has_base = 1; }
        else if (p->has_base) { in->base = p->base; in->has_base = 1; }
        return;
    }
}

/* Counter per second since the previous snapshot of that instance; -1 when unknown. */
static double rate(unsigned long long now, unsigned long long before, double seconds)
{
    return seconds > 0 && now >= before ? (double)(now - before) / seconds : -1;
}

static unsigned long long error_total(const ripc_metrics *m)
{
    unsigned long long n = 0;
    for (int i = 0; i < m->error_count; i++) n += m->errors[i].count;
    return n;
}

/* The figures an instance published, if it did (and in this version). */
static void read_metrics(redisContext *c, const char *stream, instance *in)
{
    char *key = ripc_key_metrics(stream, in->group, in->id);
    redisReply *r = redisCommand(c, "GET %s", key);
    free(key);
    in->has_metrics = r && r->type == REDIS_REPLY_STRING && ripc_metrics_decode(r->str, &in->m) == 0;
    if (r) freeReplyObject(r);
}

/* --- text ----------------------------------------------------------------- */

static void print_instance_text(const instance *in, int watch)
{
    printf("  %-10s %-6s %9.1fs", in->id, in->alive ? "yes" : "no", in->beat_ago);
    if (!in->has_metrics) { printf("  (no metrics published)\n"); return; }
    const ripc_metrics *m = &in->m;
    if (watch) {
        const ripc_metrics *b = in->has_base ? &in->base : NULL;
        double dt = b ? m->at - b->at : 0;
        double rates[6] = {
            b ? rate(m->sent, b->sent, dt) : -1, b ? rate(m->received, b->received, dt) : -1,
            b ? rate(m->fulfilled, b->fulfilled, dt) : -1, b ? rate(m->rejected, b->rejected, dt) : -1,
            b ? rate(m->timed_out, b->timed_out, dt) : -1, b ? rate(error_total(m), error_total(b), dt) : -1,
        };
        for (int i = 0; i < 6; i++) {
            if (rates[i] < 0) printf(" %8s", "-");
            else printf(" %8.1f", rates[i]);
        }
    } else {
        printf(" %8llu %8llu %8llu %8llu %8llu %8llu", m->sent, m->received, m->fulfilled, m->rejected, m->timed_out, error_total(m));
    }
    char rt50[16], rt99[16], h50[16], h99[16];
    format_seconds(m->round_trip.p50, rt50, sizeof(rt50));
    format_seconds(m->round_trip.p99, rt99, sizeof(rt99));
    format_seconds(m->handler.p50, h50, sizeof(h50));
    format_seconds(m->handler.p99, h99, sizeof(h99));
    printf(" %6zu %6zu %6zu  %8s %8s  %8s %8s", m->in_flight, m->queued, m->consumers_busy, rt50, rt99, h50, h99);
    for (int i = 0; i < m->error_count; i++) printf("%s%s=%llu", i ? "," : "  ", m->errors[i].name, m->errors[i].count);
    putchar('\n');
}

static void print_header_text(int watch)
{
    printf("  %-10s %-6s %10s", "instance", "alive", "beat");
    if (watch) printf(" %8s %8s %8s %8s %8s %8s", "sent/s", "recv/s", "ok/s", "rej/s", "t/o/s", "err/s");
    else printf(" %8s %8s %8s %8s %8s %8s", "sent", "received", "fulfil", "reject", "timeout", "errors");
    printf(" %6s %6s %6s  %8s %8s  %8s %8s\n", "flight", "queued", "busy", "rt p50", "rt p99", "hdl p50", "hdl p99");
}

/* --- JSON ----------------------------------------------------------------- */

static void print_latency_json(const char *name, const ripc_latency *l)
{
    printf("\"%s\":", name);
    if (!l->samples) printf("{\"p50\":null,\"p90\":null,\"p99\":null,\"samples\":0}");
    else printf("{\"p50\":%.9g,\"p90\":%.9g,\"p99\":%.9g,\"samples\":%llu}", l->p50, l->p90, l->p99, l->samples);
}

static void print_metrics_json(const instance *in, int watch)
{
    const ripc_metrics *m = &in->m;
    printf(",\"metrics\":{\"sent\":%llu,\"received\":%llu,\"fulfilled\":%llu,\"rejected\":%llu,"
           "\"replies_fulfilled\":%llu,\"replies_rejected\":%llu,\"timed_out\":%llu,\"redelivered\":%llu,"
           "\"in_flight\":%zu,\"queued\":%zu,\"consumers_busy\":%zu,\"errors\":{",
           m->sent, m->received, m->fulfilled, m->rejected, m->replies_fulfilled, m->replies_rejected, m->timed_out,
           m->redelivered, m->in_flight, m->queued, m->consumers_busy);
    for (int i = 0; i < m->error_count; i++) {
        if (i) putchar(',');
        cli_json_string(m->errors[i].name, strlen(m->errors[i].name));
        printf(":%llu", m->errors[i].count);
    }
    printf("},\"latency\":{");
    print_latency_json("round_trip", &m->round_trip);
    putchar(',');
    print_latency_json("handler", &m->handler);
    printf("}");
    if (watch && in->has_base) {
        const ripc_metrics *b = &in->base;
        double dt = m->at - b->at;
        printf(",\"rates\":{\"sent\":%.3f,\"received\":%.3f,\"fulfilled\":%.3f,\"rejected\":%.3f,\"timed_out\":%.3f,\"errors\":%.3f}",
               rate(m->sent, b->sent, dt), rate(m->received, b->received, dt), rate(m->fulfilled, b->fulfilled, dt),
               rate(m->rejected, b->rejected, dt), rate(m->timed_out, b->timed_out, dt), rate(error_total(m), error_total(b), dt));
    }
    printf("}");
}

/* --- one frame -------------------------------------------------------------- */

/* Reads the stream, prints what is not per instance as it goes, and fills
 * f with the instances. Returns 0, or an exit status. */
static int collect_and_print(redisContext *c, const cli_options *o, const stats_mode *mode, frame *f, const frame *prev)
{
    redisReply *len = redisCommand(c, "XLEN %s", o->stream);
    if (cli_redis_failed(c, len, "XLEN")) {
        if (len) freeReplyObject(len);
        return EXIT_CONNECTION;
    }
    f->length = len->type == REDIS_REPLY_INTEGER ? len->integer : 0;
    freeReplyObject(len);
    redisReply *groups = redisCommand(c, "XINFO GROUPS %s", o->stream);
    /* A stream that does not exist has no groups ("ERR no such key"). */
    int missing = groups && groups->type == REDIS_REPLY_ERROR && strstr(groups->str, "no such key");
    if (!missing && cli_redis_failed(c, groups, "XINFO GROUPS")) {
        if (groups) freeReplyObject(groups);
        return EXIT_CONNECTION;
    }
    size_t group_count = groups->type == REDIS_REPLY_ARRAY ? groups->elements : 0;
    if (group_count > MAX_GROUPS) group_count = MAX_GROUPS;
    long long now_ms = cli_server_ms(c);
    int text = !mode->json && !mode->prometheus;
    f->count = 0;
    if (mode->json) printf("{\"stream\":"), cli_json_string(o->stream, strlen(o->stream)), printf(",\"length\":%lld,\"groups\":[", f->length);
    else if (text) printf("stream %s: %lld entries, %zu groups\n", o->stream, f->length, group_count);
    int status = 0;
    for (size_t i = 0; i < group_count && !status; i++) {
        const redisReply *g = groups->element[i];
        const char *name = cli_field_str(g, "name");
        redisReply *consumers = redisCommand(c, "XINFO CONSUMERS %s %s", o->stream, name);
        char *instances_key = ripc_key_instances(o->stream, name);
        redisReply *instances = redisCommand(c, "ZRANGE %s 0 -1 WITHSCORES", instances_key);
        free(instances_key);
        if (cli_redis_failed(c, consumers, "XINFO CONSUMERS") || cli_redis_failed(c, instances, "ZRANGE")) {
            status = EXIT_CONNECTION;
        } else {
            if (mode->json) {
                printf("%s{\"name\":", i ? "," : ""), cli_json_string(name, strlen(name));
                printf(",\"pending\":%lld,\"instances\":[", cli_field_int(g, "pending"));
            } else if (text) {
                printf("\ngroup %s: %lld pending, last delivered %s\n", name, cli_field_int(g, "pending"), cli_field_str(g, "last-delivered-id"));
                print_header_text(mode->watch);
            }
            int shown = 0;
            for (size_t k = 0; instances->type == REDIS_REPLY_ARRAY && k + 1 < instances->elements && f->count < MAX_INSTANCES; k += 2) {
                instance *in = &f->instances[f->count++];
                memset(in, 0, sizeof(*in));
                snprintf(in->group, sizeof(in->group), "%s", name);
                snprintf(in->id, sizeof(in->id), "%s", instances->element[k]->str);
                long long beat = atoll(instances->element[k + 1]->str);
                in->beat_ago = beat > 0 ? (double)(now_ms - beat) / 1000.0 : -1.0;
                /* As the engine judges: dead once silent longer than dead_after. */
                in->alive = beat > 0 && now_ms - beat <= (long long)(mode->dead_after * 1000);
                read_metrics(c, o->stream, in);
                find_base(in, prev);
                if (mode->json) {
                    printf("%s{\"id\":", shown++ ? "," : ""), cli_json_string(in->id, strlen(in->id));
                    printf(",\"alive\":%s,\"last_beat_ago\":%.3f", in->alive ? "true" : "false", in->beat_ago);
                    if (in->has_metrics) print_metrics_json(in, mode->watch);
                    else printf(",\"metrics\":null");
                    printf("}");
                } else if (text) {
                    print_instance_text(in, mode->watch);
                }
            }
            if (mode->json) printf("],\"consumers\":[");
            else if (text) printf("  %-28s %8s %10s\n", "consumer", "pending", "idle (ms)");
            for (size_t k = 0; consumers->type == REDIS_REPLY_ARRAY && k < consumers->elements; k++) {
                const redisReply *row = consumers->element[k];
                const char *cname = cli_field_str(row, "name");
                if (mode->json) {
                    printf("%s{\"name\":", k ? "," : ""), cli_json_string(cname, strlen(cname));
                    printf(",\"pending\":%lld,\"idle_ms\":%lld}", cli_field_int(row, "pending"), cli_field_int(row, "idle"));
                } else if (text) {
                    printf("  %-28s %8lld %10lld\n", cname, cli_field_int(row, "pending"), cli_field_int(row, "idle"));
                }
            }
            if (mode->json) printf("]}");
        }
        if (consumers) freeReplyObject(consumers);
        if (instances) freeReplyObject(instances);
    }
    if (mode->json && !status) printf("]}\n");
    freeReplyObject(groups);
    return status;
}

/* The live instances' published metrics, family by family. */
static void print_prometheus(const char *stream, const frame *f)
{
    ripc_metrics_source sources[MAX_INSTANCES];
    size_t n = 0;
    for (int i = 0; i < f->count; i++)
        if (f->instances[i].has_metrics && f->instances[i].alive)
            sources[n++] = (ripc_metrics_source){ stream, f->instances[i].group, f->instances[i].id, &f->instances[i].m };
    size_t len = ripc_metrics_prometheus(sources, n, NULL, 0);
    char *text = malloc(len + 1);
    if (!text) { fprintf(stderr, "redis-ipc: out of memory\n"); return; }
    ripc_metrics_prometheus(sources, n, text, len + 1);
    fputs(text, stdout);
    free(text);
}

static void sleep_seconds(double seconds)
{
    struct timespec ts = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };
    while (!stop_requested && nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

int cmd_stats(int argc, char **argv)
{
    /* Alive means what it means to the engine's takeovers: by default, a
     * heartbeat within the engine's default dead_after. */
    ripc_options defaults;
    ripc_options_init(&defaults);
    stats_mode mode = { 0, 0, 0, 1.0, defaults.dead_after };
    const char *interval = NULL, *dead_after = NULL;
    mode.watch = cli_take_option(&argc, argv, "--watch", 0, NULL) > 0;
    mode.prometheus = cli_take_option(&argc, argv, "--prometheus", 0, NULL) > 0;
    int has_interval = cli_take_option(&argc, argv, "--interval", 1, &interval);
    if (has_interval < 0) { fprintf(stderr, "redis-ipc: --interval needs a value\n"); return EXIT_USAGE; }
    if (has_interval && cli_option_seconds("--interval", interval, 3600, &mode.interval) != 0) return EXIT_USAGE;
    int has_dead_after = cli_take_option(&argc, argv, "--dead-after", 1, &dead_after);
    if (has_dead_after < 0) { fprintf(stderr, "redis-ipc: --dead-after needs a value\n"); return EXIT_USAGE; }
    if (has_dead_after && cli_option_seconds("--dead-after", dead_after, RIPC_MAX_INTERVAL, &mode.dead_after) != 0)
        return EXIT_USAGE;
    cli_options o = { 0 };
    int first = parse(argc, argv, &o, USAGE_STATS);
    if (first < 0) return EXIT_USAGE;
    mode.json = o.json;
    if (!o.stream || first != argc || (mode.json && mode.prometheus)) { usage(USAGE_STATS, 1); return EXIT_USAGE; }
    ripc_server *server;
    int status = 0;
    redisContext *c = cli_redis_open(&o, &server, &status);
    if (!c) return status;
    if (mode.watch) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop; /* no SA_RESTART: the sleep ends at once */
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    /* Two frames, the current and the one rates are measured against. */
    frame *frames = calloc(2, sizeof(frame));
    if (!frames) { cli_redis_close(c, server); fprintf(stderr, "redis-ipc: out of memory\n"); return EXIT_CONNECTION; }
    int tty = isatty(STDOUT_FILENO);
    for (int n = 0; !status && !stop_requested; n++) {
        frame *f = &frames[n % 2];
        const frame *prev = n > 0 ? &frames[(n + 1) % 2] : NULL;
        if (mode.watch && tty && !mode.json) fputs("\033[H\033[2J", stdout);
        else if (mode.watch && n > 0 && !mode.json) putchar('\n');
        status = collect_and_print(c, &o, &mode, f, prev);
        if (!status && mode.prometheus) print_prometheus(o.stream, f);
        fflush(stdout);
        if (!mode.watch) break;
        sleep_seconds(mode.interval);
    }
    free(frames);
    cli_redis_close(c, server);
    return status;
}
