#include "ipc_notifier.h"
#include "ipc_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

int ripc_notifier_open(ripc_notifier *n)
{
    n->read_fd = n->write_fd = -1;
#ifdef __linux__
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return -1;
    n->read_fd = n->write_fd = fd;
#else
    int fds[2];
    if (pipe(fds) != 0) return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    n->read_fd = fds[0];
    n->write_fd = fds[1];
#endif
    return 0;
}

void ripc_notifier_close(ripc_notifier *n)
{
    if (n->read_fd >= 0) close(n->read_fd);
    if (n->write_fd >= 0 && n->write_fd != n->read_fd) close(n->write_fd);
    n->read_fd = n->write_fd = -1;
}

void ripc_notifier_ring(ripc_notifier *n)
{
    uint64_t one = 1;
    ssize_t rc;
    /* EAGAIN means it is already readable, which is all a ring promises. */
    do rc = write(n->write_fd, &one, n->read_fd == n->write_fd ? sizeof(one) : 1);
    while (rc < 0 && errno == EINTR);
}

void ripc_notifier_drain(ripc_notifier *n)
{
    uint64_t buf[8];
    /* One read empties an eventfd; a pipe, a read that does not fill the
     * buffer (no second read to learn it is empty: a system call a wait). */
    size_t want = n->read_fd == n->write_fd ? sizeof(uint64_t) : sizeof(buf);
    ssize_t rc;
    do rc = read(n->read_fd, buf, want);
    while ((rc < 0 && errno == EINTR) || (rc == (ssize_t)want && n->read_fd != n->write_fd));
}

int ripc_notifier_wait(ripc_notifier *n, double deadline)
{
    struct pollfd p = { .fd = n->read_fd, .events = POLLIN, .revents = 0 };
    for (;;) {
        int timeout_ms = -1;
        if (deadline > 0) {
            double left = deadline - ripc_now();
            if (left <= 0) return 0;
            timeout_ms = (int)(left * 1000) + 1;
        }
        int rc = poll(&p, 1, timeout_ms);
        if (rc > 0) return 1;
        if (rc == 0 && deadline > 0 && ripc_now() >= deadline) return 0;
        /* EINTR or an early wake-up: wait for what is left. */
    }
}
