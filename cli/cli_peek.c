/* redis-ipc peek: the stream's latest entries with their fields, their age
 * and, for an entry still pending, which consumer holds it, how long and
 * how often it was delivered. Read-only (XREVRANGE, XPENDING, TIME):
 * nothing is consumed, acknowledged or claimed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_numbers.h"
#include "redis_ipc.h"

static const char *const USAGE_PEEK =
    "usage: redis-ipc peek --stream S [--group G] [--count N] [--json] [CONNECTION]\n"
    "  Prints the N latest entries (default 10, at most 1000), newest first:\n"
    "  their fields, their age and, while one is pending, the consumer of its\n"
    "  destination group that holds it. --group G: only entries to or from G.\n"
    "  Consumes nothing.\n";

/* Entries looked at, at most, to find N to or from a group. */
enum { MAX_COUNT = 1000, PAGE = 200, MAX_SCANNED = 20000, SHOWN_CONTENT = 400 };

static const redisReply *entry_field(const redisReply *fields, const char *name)
{
    for (size_t j = 0; fields->type == REDIS_REPLY_ARRAY && j + 1 < fields->elements; j += 2)
        if (fields->element[j]->type == REDIS_REPLY_STRING && !strcmp(fields->element[j]->str, name) &&
            fields->element[j + 1]->type == REDIS_REPLY_STRING)
            return fields->element[j + 1];
    return NULL;
}

static int concerns(const redisReply *fields, const char *group)
{
    const redisReply *to = entry_field(fields, "destination_group"), *from = entry_field(fields, "source_group");
    return !group || (to && !strcmp(to->str, group)) || (from && !strcmp(from->str, group));
}

/* Who holds id pending in the group it is meant for: [consumer, idle ms,
 * deliveries], or NULL (acknowledged, no such group, or not for a group). */
static redisReply *pending_owner(redisContext *c, const char *stream, const redisReply *fields, const char *id)
{
    const redisReply *to = entry_field(fields, "destination_group");
    if (!to) return NULL;
    redisReply *r = redisCommand(c, "XPENDING %s %s %s %s 1", stream, to->str, id, id);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements >= 4)
        return r;
    if (r) freeReplyObject(r);
    return NULL;
}

static void print_entry(const cli_options *o, const char *id, const redisReply *fields, const redisReply *owner,
                        double age, int *printed)
{
    const redisReply *row = owner ? owner->element[0] : NULL;
    if (o->json) {
        printf("%s{\"id\":", (*printed)++ ? "," : ""), cli_json_string(id, strlen(id));
        printf(",\"age\":%.3f,\"fields\":{", age);
        for (size_t j = 0; fields->type == REDIS_REPLY_ARRAY && j + 1 < fields->elements; j += 2) {
            printf("%s", j ? "," : "");
            cli_json_string(fields->element[j]->str, fields->element[j]->len);
            putchar(':');
            cli_json_string(fields->element[j + 1]->str, fields->element[j + 1]->len);
        }
        printf("},\"pending\":");
        if (row) {
            printf("{\"consumer\":"), cli_json_string(row->element[1]->str, row->element[1]->len);
            printf(",\"idle_ms\":%lld,\"deliveries\":%lld}", row->element[2]->integer, row->element[3]->integer);
        } else {
            printf("null");
        }
        printf("}");
        return;
    }
    (*printed)++;
    const redisReply *status = entry_field(fields, "status"), *from = entry_field(fields, "source_group"),
                     *to = entry_field(fields, "destination_group");
    printf("%s  %.1fs ago  %s  %s -> %s", id, age, status ? status->str : "?", from ? from->str : "?", to ? to->str : "?");
    if (row) printf("  pending on %s (idle %.1fs, delivered %lld times)", row->element[1]->str,
                    (double)row->element[2]->integer / 1000.0, row->element[3]->integer);
    putchar('\n');
    for (size_t j = 0; fields->type == REDIS_REPLY_ARRAY && j + 1 < fields->elements; j += 2) {
        const redisReply *v = fields->element[j + 1];
        int cut = v->len > SHOWN_CONTENT;
        printf("    %-18s %.*s%s\n", fields->element[j]->str, (int)(cut ? SHOWN_CONTENT : v->len), v->str,
               cut ? "... (cut)" : "");
    }
}

int cmd_peek(int argc, char **argv)
{
    const char *count_text = NULL;
    long long count = 10;
    int has_count = cli_take_option(&argc, argv, "--count", 1, &count_text);
    if (has_count < 0) { fprintf(stderr, "redis-ipc: --count needs a value\n"); return EXIT_USAGE; }
    if (has_count && cli_option_integer("--count", count_text, 1, MAX_COUNT, &count) != 0) return EXIT_USAGE;
    cli_options o = { 0 };
    int first = parse(argc, argv, &o, USAGE_PEEK);
    if (first < 0) return EXIT_USAGE;
    if (!o.stream || first != argc) { usage(USAGE_PEEK, 1); return EXIT_USAGE; }
    ripc_server *server;
    int status = 0;
    redisContext *c = cli_redis_open(&o, &server, &status);
    if (!c) return status;
    long long now_ms = cli_server_ms(c);
    if (o.json) printf("[");
    int printed = 0, scanned = 0;
    char end[64] = "+";
    while (printed < count && scanned < MAX_SCANNED && !status) {
        redisReply *page = redisCommand(c, "XREVRANGE %s %s - COUNT %d", o.stream, end, o.group ? PAGE : (int)count);
        if (cli_redis_failed(c, page, "XREVRANGE")) { status = EXIT_CONNECTION; if (page) freeReplyObject(page); break; }
        size_t n = page->type == REDIS_REPLY_ARRAY ? page->elements : 0;
        for (size_t i = 0; i < n && printed < count; i++) {
            const redisReply *e = page->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING) continue;
            const char *id = e->element[0]->str;
            const redisReply *fields = e->element[1];
            if (!concerns(fields, o.group)) continue;
            redisReply *owner = pending_owner(c, o.stream, fields, id);
            double age = now_ms > 0 ? (double)(now_ms - atoll(id)) / 1000.0 : 0;
            print_entry(&o, id, fields, owner, age, &printed);
            if (owner) freeReplyObject(owner);
        }
        scanned += (int)n;
        /* The next page ends just before this one's oldest entry. */
        const redisReply *last = n ? page->element[n - 1] : NULL;
        int more = o.group && n == PAGE && last->type == REDIS_REPLY_ARRAY && last->element[0]->type == REDIS_REPLY_STRING;
        if (more) snprintf(end, sizeof(end), "(%s", last->element[0]->str);
        freeReplyObject(page);
        if (!more) break;
    }
    if (o.json && !status) printf("]\n");
    else if (!o.json && !status && printed == 0) printf("no entries%s%s on stream %s\n", o.group ? " to or from group " : "", o.group ? o.group : "", o.stream);
    cli_redis_close(c, server);
    return status;
}
