/* redis-ipc stats: a stream's length, its groups, their instances and
 * consumers, read with XINFO and the instances registry. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ipc_conn.h"
#include "ipc_server.h"
#include "redis_ipc.h"

static const char *const USAGE_STATS =
    "usage: redis-ipc stats --stream S [--json] [CONNECTION]\n"
    "  Prints the stream's length, its groups with their pending counts,\n"
    "  instances (alive or not) and consumers.\n";

static long long field_int(const redisReply *row, const char *name)
{
    for (size_t j = 0; row->type == REDIS_REPLY_ARRAY && j + 1 < row->elements; j += 2)
        if (row->element[j]->type == REDIS_REPLY_STRING && !strcmp(row->element[j]->str, name))
            return row->element[j + 1]->type == REDIS_REPLY_INTEGER ? row->element[j + 1]->integer : -1;
    return -1;
}

static const char *field_str(const redisReply *row, const char *name)
{
    for (size_t j = 0; row->type == REDIS_REPLY_ARRAY && j + 1 < row->elements; j += 2)
        if (row->element[j]->type == REDIS_REPLY_STRING && !strcmp(row->element[j]->str, name))
            return row->element[j + 1]->type == REDIS_REPLY_STRING ? row->element[j + 1]->str : "";
    return "";
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

int cmd_stats(int argc, char **argv)
{
    cli_options o = { 0 };
    int first = parse(argc, argv, &o, USAGE_STATS);
    if (first < 0) return EXIT_USAGE;
    if (!o.stream || first != argc) { usage(USAGE_STATS, 1); return EXIT_USAGE; }
    ripc_redis_config cfg = { 0 };
    cli_target_config(&o.target, &cfg);
    cfg.timeout = cfg.connect_timeout = 2.0;
    /* The engine's own way in: TLS, AUTH and SELECT as every connection does them. */
    ripc_error err;
    ripc_server *server = ripc_server_acquire(&cfg, &err);
    redisContext *c = server ? ripc_server_connect(server, 0, &err) : NULL;
    if (!c) {
        fprintf(stderr, "redis-ipc: %s\n", err.message);
        ripc_server_release(server);
        return err.code == RIPC_CONFIGURATION ? EXIT_USAGE : EXIT_CONNECTION;
    }
    redisReply *len = redisCommand(c, "XLEN %s", o.stream);
    redisReply *groups = redisCommand(c, "XINFO GROUPS %s", o.stream);
    if (!len || !groups) { fprintf(stderr, "redis-ipc: connection lost\n"); return EXIT_CONNECTION; }
    long long length = len->type == REDIS_REPLY_INTEGER ? len->integer : 0;
    size_t group_count = groups->type == REDIS_REPLY_ARRAY ? groups->elements : 0;
    if (o.json) printf("{\"stream\":"), json_string(o.stream), printf(",\"length\":%lld,\"groups\":[", length);
    else printf("stream %s: %lld entries, %zu groups\n", o.stream, length, group_count);
    for (size_t i = 0; i < group_count; i++) {
        const redisReply *g = groups->element[i];
        const char *name = field_str(g, "name");
        redisReply *consumers = redisCommand(c, "XINFO CONSUMERS %s %s", o.stream, name);
        redisReply *instances = redisCommand(c, "ZRANGE %s:%s:instances 0 -1 WITHSCORES", o.stream, name);
        redisReply *now = redisCommand(c, "TIME");
        long long now_ms = now && now->type == REDIS_REPLY_ARRAY && now->elements == 2
            ? atoll(now->element[0]->str) * 1000 + atoll(now->element[1]->str) / 1000 : 0;
        if (o.json) {
            printf("%s{\"name\":", i ? "," : ""), json_string(name);
            printf(",\"pending\":%lld,\"instances\":[", field_int(g, "pending"));
        } else {
            printf("\ngroup %s: %lld pending, last delivered %s\n", name, field_int(g, "pending"), field_str(g, "last-delivered-id"));
            printf("  %-10s %-8s %s\n", "instance", "alive", "last heartbeat");
        }
        for (size_t k = 0; instances && instances->type == REDIS_REPLY_ARRAY && k + 1 < instances->elements; k += 2) {
            long long beat = atoll(instances->element[k + 1]->str);
            double ago = (double)(now_ms - beat) / 1000.0;
            int alive = beat > 0 && ago < 5;
            if (o.json) {
                printf("%s{\"id\":", k ? "," : ""), json_string(instances->element[k]->str);
                printf(",\"alive\":%s,\"last_beat_ago\":%.3f}", alive ? "true" : "false", beat > 0 ? ago : -1.0);
            } else {
                printf("  %-10s %-8s %.1fs ago\n", instances->element[k]->str, alive ? "yes" : "no", beat > 0 ? ago : -1.0);
            }
        }
        if (o.json) printf("],\"consumers\":[");
        else printf("  %-28s %8s %10s\n", "consumer", "pending", "idle (ms)");
        for (size_t k = 0; consumers && consumers->type == REDIS_REPLY_ARRAY && k < consumers->elements; k++) {
            const redisReply *row = consumers->element[k];
            if (o.json) {
                printf("%s{\"name\":", k ? "," : ""), json_string(field_str(row, "name"));
                printf(",\"pending\":%lld,\"idle_ms\":%lld}", field_int(row, "pending"), field_int(row, "idle"));
            } else {
                printf("  %-28s %8lld %10lld\n", field_str(row, "name"), field_int(row, "pending"), field_int(row, "idle"));
            }
        }
        if (o.json) printf("]}");
        if (consumers) freeReplyObject(consumers);
        if (instances) freeReplyObject(instances);
        if (now) freeReplyObject(now);
    }
    if (o.json) printf("]}\n");
    freeReplyObject(len);
    freeReplyObject(groups);
    ripc_conn_close(c);
    ripc_server_release(server);
    return 0;
}

