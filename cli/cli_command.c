#define _GNU_SOURCE /* pipe2 */
#include "cli_command.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = realloc(*buf, *cap);
        if (!*buf) abort();
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
}

int cli_command_run(char *const argv[], const char *input, size_t input_len, cli_output *result)
{
    int in[2], out[2], err[2];
    memset(result, 0, sizeof(*result));
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) return -1;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    /* The handler thread that runs this blocks every signal (the engine's
     * threads do); the command starts with none blocked and default dispositions. */
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &actions, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (rc != 0) {
        close(in[1]);
        close(out[0]);
        close(err[0]);
        errno = rc;
        return -1;
    }
    /* Feed stdin and drain both outputs together, so neither side blocks
     * the other however much it writes. */
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    size_t written = 0, out_cap = 0, err_cap = 0;
    int in_fd = in[1];
    if (input_len == 0) { close(in_fd); in_fd = -1; }
    struct pollfd fds[3];
    int open_outputs = 2;
    char buf[65536];
    while (open_outputs > 0 || in_fd >= 0) {
        fds[0] = (struct pollfd){ .fd = out[0], .events = POLLIN };
        fds[1] = (struct pollfd){ .fd = err[0], .events = POLLIN };
        fds[2] = (struct pollfd){ .fd = in_fd, .events = POLLOUT };
        if (poll(fds, 3, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = read(fds[i].fd, buf, sizeof(buf));
            if (n > 0) {
                if (i == 0) append(&result->out, &result->out_len, &out_cap, buf, (size_t)n);
                else append(&result->err, &result->err_len, &err_cap, buf, (size_t)n);
            } else if (n == 0 || errno != EINTR) {
                close(fds[i].fd);
                if (i == 0) out[0] = -1; else err[0] = -1;
                open_outputs--;
            }
        }
        if (in_fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = write(in_fd, input + written, input_len - written);
            if (n > 0) written += (size_t)n;
            if (written == input_len || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                close(in_fd);
                in_fd = -1;
            }
        }
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    result->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (!result->out) append(&result->out, &result->out_len, &out_cap, "", 0);
    if (!result->err) append(&result->err, &result->err_len, &err_cap, "", 0);
    return 0;
}

void cli_output_free(cli_output *result)
{
    free(result->out);
    free(result->err);
    memset(result, 0, sizeof(*result));
}
