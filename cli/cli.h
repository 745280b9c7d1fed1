/* What the redis-ipc subcommands share: the parsed options, the exit
 * statuses, and the option parser and usage printer of redis_ipc_cli.c. */
#ifndef CLI_H
#define CLI_H

#include "cli_url.h"

enum { EXIT_FULFILLED = 0, EXIT_REJECTED = 1, EXIT_TIMEOUT = 2, EXIT_CONNECTION = 3, EXIT_USAGE = 64 };

typedef struct cli_options {
    cli_target target;
    const char *stream, *group, *to;
    double timeout;
    int threads, echo, json;
    char **command; /* after -- */
} cli_options;

/* Parses the options common to every subcommand; returns the index of the
 * first operand, or -1 after printing what is wrong. */
int parse(int argc, char **argv, cli_options *o, const char *help);
/* Prints a subcommand's usage and the connection options. */
void usage(const char *text, int to_stderr);

/* Subcommands living in files of their own. */
int cmd_stats(int argc, char **argv);

#endif
