/* Runs a command with some bytes on its stdin and collects its stdout and
 * stderr: how `redis-ipc serve -- COMMAND` answers a request. */
#ifndef CLI_COMMAND_H
#define CLI_COMMAND_H

#include <stddef.h>

typedef struct cli_output {
    char *out, *err; /* NUL-terminated, malloc'd */
    size_t out_len, err_len;
    int status;      /* exit status, or 128 + signal */
} cli_output;

/* Returns 0 (see status), or -1 when the command could not be started (errno). */
int cli_command_run(char *const argv[], const char *input, size_t input_len, cli_output *result);
void cli_output_free(cli_output *result);

#endif
