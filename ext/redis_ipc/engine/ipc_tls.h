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

/* After a failed first command on a TLS connection: why the server ended
 * it when OpenSSL knows (e.g. "tlsv13 alert certificate required"), else NULL. */
const char *ripc_tls_last_alert(void);

#endif
