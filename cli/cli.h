/* What the redis-ipc subcommands share: the parsed options, the exit
 * statuses, and the option parser and usage printer of redis_ipc_cli.c. */
#ifndef CLI_H
#define CLI_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "cli_url.h"
#include "ipc_server.h"

enum { EXIT_FULFILLED = 0, EXIT_REJECTED = 1, EXIT_TIMEOUT = 2, EXIT_CONNECTION = 3, EXIT_USAGE = 64 };

typedef struct cli_options {
    cli_target target;
    const char *stream, *group, *to;
    double timeout;
    int threads, echo, json;
    size_t max_content; /* --max-content-bytes, default the engine's */
    char **command;     /* after -- */
} cli_options;

/* Parses the options common to every subcommand; returns the index of the
 * first operand, or -1 after printing what is wrong. */
int parse(int argc, char **argv, cli_options *o, const char *help);
/* Prints a subcommand's usage and the connection options. */
void usage(const char *text, int to_stderr);

/* Takes --name (or --name VALUE, --name=VALUE with has_value) out of
 * argv, before any "--": 1 when found (the last value wins), 0 when not,
 * -1 when its value is missing. */
int cli_take_option(int *argc, char **argv, const char *name, int has_value, const char **value);

/* cli_redis.c: one connection for a read-only subcommand, or NULL after
 * printing why, with the exit status in *status. */
redisContext *cli_redis_open(const cli_options *o, ripc_server **server, int *status);
void cli_redis_close(redisContext *c, ripc_server *server);
/* 1 after printing Redis's refusal (or the lost connection) of command. */
int cli_redis_failed(redisContext *c, const redisReply *r, const char *command);
long long cli_server_ms(redisContext *c); /* the server's clock (TIME), 0 when unknown */
/* A field of an XINFO row: -1 or "" when absent or of another type. */
long long cli_field_int(const redisReply *row, const char *name);
const char *cli_field_str(const redisReply *row, const char *name);
/* Writes len bytes as a JSON string to stdout. */
void cli_json_string(const char *s, size_t len);

/* Subcommands living in files of their own. */
int cmd_stats(int argc, char **argv);
int cmd_peek(int argc, char **argv);

#endif
