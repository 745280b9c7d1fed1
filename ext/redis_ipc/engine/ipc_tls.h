/* TLS for ripc_conn_open (ipc_tls.c): one OpenSSL context per distinct set
 * of TLS settings in the process, shared by every connection that uses
 * them, and the handshake of one connection. Without RIPC_HAVE_TLS (an
 * engine built on hiredis 0.14) every call fails with RIPC_CONFIGURATION. */
#ifndef RIPC_TLS_H
#define RIPC_TLS_H

#include <hiredis/hiredis.h>
#include "redis_ipc.h"

typedef struct ripc_tls_context ripc_tls_context;

/* Finds or creates the context for cfg's TLS settings (loading the CA and
 * client files once) and holds it until ripc_tls_release, so connections
 * opened meanwhile share it. A stream holds one for its lifetime. NULL with
 * err (RIPC_CONFIGURATION: a file that does not load, no TLS in this build). */
ripc_tls_context *ripc_tls_hold(const ripc_redis_config *cfg, ripc_error *err);
void ripc_tls_release(ripc_tls_context *ctx);

/* Runs the TLS handshake on c, freshly connected to cfg's server (`where`,
 * as messages name it), and verifies the server's certificate and name.
 * Returns 0, or -1 with err (RIPC_CONNECTION naming what failed); c is
 * then unusable. */
int ripc_tls_handshake(redisContext *c, const ripc_redis_config *cfg, const char *where, ripc_error *err);

/* After a failed first command on a TLS connection: why the server ended
 * it when OpenSSL knows (e.g. "tlsv13 alert certificate required"), else NULL. */
const char *ripc_tls_last_alert(void);

#endif
