/* Runs a command with some bytes on its stdin and collects its stdout and
 * stderr: how `redis-ipc serve -- COMMAND` answers a request. The command
 * runs in a process group of its own, which is killed (SIGKILL) when the
 * command outlives its time, writes more than it may, or serve stops, and
 * once its first process has exited: nothing it started outlives the run. */
#ifndef CLI_COMMAND_H
#define CLI_COMMAND_H

#include <stddef.h>

enum {
    CLI_RUN_EXITED,    /* status is the command's */
    CLI_RUN_TIMED_OUT, /* still running after timeout seconds */
    CLI_RUN_TOO_LARGE, /* wrote more than max_output bytes to stdout or to stderr */
    CLI_RUN_STOPPED    /* stop_fd became readable */
};

typedef struct cli_limits {
    double timeout;    /* seconds, > 0 */
    size_t max_output; /* bytes, per output */
    int stop_fd;       /* readable once serve stops (never read here), or -1 */
} cli_limits;

typedef struct cli_output {
    char *out, *err; /* NUL-terminated, malloc'd */
    size_t out_len, err_len;
    int outcome;     /* CLI_RUN_* */
    int status;      /* exit status, or 128 + signal */
} cli_output;

/* Returns 0 (see outcome), or -1 when the command could not be started
 * or watched (errno). */
int cli_command_run(char *const argv[], const char *input, size_t input_len, const cli_limits *limits,
                    cli_output *result);
void cli_output_free(cli_output *result);

#endif
