/* TLS for ripc_conn_open (ipc_tls.c): an OpenSSL context made from a
 * config's TLS settings, and the handshake of one connection with it. A
 * server (ipc_server.c) owns one, which every connection to it shares.
 * Without RIPC_HAVE_TLS (an engine built on hiredis 0.14) every call fails
 * with RIPC_CONFIGURATION. */
#ifndef RIPC_TLS_H
#define RIPC_TLS_H

#include <hiredis/hiredis.h>
#include "redis_ipc.h"

typedef struct ripc_tls_context ripc_tls_context;

/* A context for cfg's TLS settings, the CA and client files loaded now;
 * NULL with err (RIPC_CONFIGURATION: a file that does not load, no TLS in
 * this build). */
ripc_tls_context *ripc_tls_context_new(const ripc_redis_config *cfg, ripc_error *err);
void ripc_tls_context_free(ripc_tls_context *t);

/* Runs the TLS handshake on c, freshly connected to cfg's server (`where`,
 * as messages name it), with t (made from cfg), and verifies the server's certificate and name.
 * Returns 0, or -1 with err (RIPC_CONNECTION naming what failed); c is
 * then unusable. */
int ripc_tls_handshake(redisContext *c, ripc_tls_context *t, const ripc_redis_config *cfg, const char *where,
                       ripc_error *err);

/* OpenSSL's work besides a connection's reads and writes (making a
 * context, a handshake and the session tickets that follow it, freeing)
 * takes process-wide locks. A fork while another thread holds one leaves
 * the child's copy locked for good (seen: a forked child stuck forever in
 * SSL_CTX_new, on the lock of OpenSSL's random generator, taken by a
 * parent thread's handshake). The engine runs such work between enter and
 * leave, and fork() waits (pthread_atfork) until none runs. Nests. No-ops
 * in a build without TLS. */
void ripc_tls_fork_guard_enter(void);
void ripc_tls_fork_guard_leave(void);

/* After a failed first command on a TLS connection: why the server ended
 * it when OpenSSL knows (e.g. "tlsv13 alert certificate required"), else NULL. */
const char *ripc_tls_last_alert(void);

#endif
