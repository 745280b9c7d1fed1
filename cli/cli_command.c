#define _GNU_SOURCE /* pipe2 */
#include "cli_command.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* Linux 5.3, the same number on every architecture; older headers lack it */
#endif

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

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int readable_now(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return fd >= 0 && poll(&p, 1, 0) == 1;
}

static void close_if_open(int fd)
{
    if (fd >= 0) close(fd);
}

/* The child starts in a new process group (its pid) with no signal blocked
 * (the handler thread that spawns it blocks them all, as every engine
 * thread does) and default dispositions. */
static int spawn(char *const argv[], int in, int out, int err, pid_t *pid)
{
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in, 0);
    posix_spawn_file_actions_adddup2(&actions, out, 1);
    posix_spawn_file_actions_adddup2(&actions, err, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    int rc = posix_spawnp(pid, argv[0], &actions, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int cli_command_run(char *const argv[], const char *input, size_t input_len, const cli_limits *limits,
                    cli_output *result)
{
    memset(result, 0, sizeof(*result));
    if (readable_now(limits->stop_fd)) {
        result->outcome = CLI_RUN_STOPPED;
        return 0;
    }
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
        int saved = errno;
        for (int i = 0; i < 2; i++) close_if_open(in[i]), close_if_open(out[i]), close_if_open(err[i]);
        errno = saved;
        return -1;
    }
    pid_t pid;
    int rc = spawn(argv, in[0], out[1], err[1], &pid);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    /* A descriptor readable when the child exits, which leaves it unreaped:
     * its pid, and so its process group id, stays ours to signal. */
    int exit_fd = rc == 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    if (rc == 0 && exit_fd < 0) {
        rc = errno;
        kill(-pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    }
    if (rc != 0) {
        close(in[1]);
        close(out[0]);
        close(err[0]);
        errno = rc;
        return -1;
    }
    /* Feed stdin and drain both outputs together, so neither side blocks
     * the other however much it writes, until the command has exited and
     * closed both outputs, or one of the limits ends it. */
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    size_t written = 0, out_cap = 0, err_cap = 0;
    int in_fd = in[1];
    if (input_len == 0) { close(in_fd); in_fd = -1; }
    int open_outputs = 2, exited = 0, outcome = CLI_RUN_EXITED;
    double deadline = now() + limits->timeout;
    char buf[65536];
    while (outcome == CLI_RUN_EXITED && (open_outputs > 0 || !exited)) {
        double left = deadline - now();
        if (left <= 0) { outcome = CLI_RUN_TIMED_OUT; break; }
        struct pollfd fds[5] = {
            { .fd = out[0], .events = POLLIN }, { .fd = err[0], .events = POLLIN },
            { .fd = in_fd, .events = POLLOUT }, { .fd = exited ? -1 : exit_fd, .events = POLLIN },
            { .fd = limits->stop_fd, .events = POLLIN },
        };
        int ms = left > 86400 ? 86400000 : (int)(left * 1000) + 1; /* rounded up: no spin before the deadline */
        if (poll(fds, 5, ms) < 0) {
            if (errno == EINTR) continue;
            outcome = CLI_RUN_STOPPED; /* cannot wait any more: end it like a stop */
            break;
        }
        if (fds[4].revents) { outcome = CLI_RUN_STOPPED; break; }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = read(fds[i].fd, buf, sizeof(buf));
            if (n > 0) {
                if (i == 0) append(&result->out, &result->out_len, &out_cap, buf, (size_t)n);
                else append(&result->err, &result->err_len, &err_cap, buf, (size_t)n);
                if ((i == 0 ? result->out_len : result->err_len) > limits->max_output) outcome = CLI_RUN_TOO_LARGE;
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
        if (fds[3].revents) {
            exited = 1;
            /* What it left running in the background ends with it (and
             * lets go of the output pipes; what they hold is still read). */
            kill(-pid, SIGKILL);
        }
    }
    kill(-pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    close(exit_fd);
    close_if_open(in_fd);
    close_if_open(out[0]);
    close_if_open(err[0]);
    result->outcome = outcome;
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
