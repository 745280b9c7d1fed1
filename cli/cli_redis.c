/* What the read-only subcommands (stats, peek) share: one connection made
 * the engine's way, Redis's refusals turned into exit statuses, the
 * server's clock, fields of XINFO replies, and JSON strings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ipc_conn.h"
#include "ipc_server.h"

redisContext *cli_redis_open(const cli_options *o, ripc_server **server, int *status)
{
    ripc_redis_config cfg = { 0 };
    cli_target_config(&o->target, &cfg);
    cfg.timeout = cfg.connect_timeout = 2.0;
    /* The engine's own way in: TLS, AUTH and SELECT as every connection does them. */
    ripc_error err;
    *server = ripc_server_acquire(&cfg, o->stream, &err);
    redisContext *c = *server ? ripc_server_connect(*server, 0, &err) : NULL;
    if (!c) {
        fprintf(stderr, "redis-ipc: %s\n", err.message);
        ripc_server_release(*server);
        *server = NULL;
        *status = err.code == RIPC_CONFIGURATION ? EXIT_USAGE : EXIT_CONNECTION;
    }
    return c;
}

void cli_redis_close(redisContext *c, ripc_server *server)
{
    if (c) ripc_conn_close(c);
    ripc_server_release(server);
}

int cli_redis_failed(redisContext *c, const redisReply *r, const char *command)
{
    if (!r) {
        fprintf(stderr, "redis-ipc: connection lost during %s: %s\n", command, c->errstr[0] ? c->errstr : "no reply");
        return 1;
    }
    /* NOAUTH, NOPERM, WRONGTYPE...: the server's words, as they came. */
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "redis-ipc: Redis refused %s: %s\n", command, r->str);
        return 1;
    }
    return 0;
}

long long cli_server_ms(redisContext *c)
{
    redisReply *now = redisCommand(c, "TIME");
    long long ms = now && now->type == REDIS_REPLY_ARRAY && now->elements == 2
        ? atoll(now->element[0]->str) * 1000 + atoll(now->element[1]->str) / 1000 : 0;
    if (now) freeReplyObject(now);
    return ms;
}

static const redisReply *field(const redisReply *row, const char *name)
{
    for (size_t j = 0; row->type == REDIS_REPLY_ARRAY && j + 1 < row->elements; j += 2)
        if (row->element[j]->type == REDIS_REPLY_STRING && !strcmp(row->element[j]->str, name)) return row->element[j + 1];
    return NULL;
}

long long cli_field_int(const redisReply *row, const char *name)
{
    const redisReply *v = field(row, name);
    return v && v->type == REDIS_REPLY_INTEGER ? v->integer : -1;
}

const char *cli_field_str(const redisReply *row, const char *name)
{
    const redisReply *v = field(row, name);
    return v && v->type == REDIS_REPLY_STRING ? v->str : "";
}

void cli_json_string(const char *s, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}
