/* A doorbell a thread can wait on with poll(): an eventfd on Linux, a pipe
 * elsewhere. Waits are fd-based so that a host runtime can wait with its own
 * interruptible I/O wait (Ruby: rb_wait_for_single_fd), which is how Ctrl-C,
 * Thread#kill and Timeout reach a thread blocked in the engine. */
#ifndef RIPC_NOTIFIER_H
#define RIPC_NOTIFIER_H

typedef struct ripc_notifier {
    int read_fd;
    int write_fd;
} ripc_notifier;

/* Returns 0, or -1 when no descriptor could be made. */
int ripc_notifier_open(ripc_notifier *n);
void ripc_notifier_close(ripc_notifier *n);
/* Makes read_fd readable (async-signal-safe: one write). */
void ripc_notifier_ring(ripc_notifier *n);
/* Makes read_fd unreadable again. */
void ripc_notifier_drain(ripc_notifier *n);
/* Waits until readable or the monotonic deadline passes (0: no deadline).
 * Returns 1 when readable, 0 on timeout. */
int ripc_notifier_wait(ripc_notifier *n, double deadline);

#endif
