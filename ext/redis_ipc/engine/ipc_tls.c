/* TLS contexts and handshakes (ipc_tls.h).
 *
 * The engine keeps its own OpenSSL context rather than hiredis's
 * redisSSLContext: hiredis 1.0 neither verifies the server's host name nor
 * falls back to the system's CA store, and a client that trusts every
 * public CA without checking names accepts any certificate anyone can buy.
 * hiredis still runs the connection (redisInitiateSSL takes our SSL object). */
#include "ipc_tls.h"
#include "ipc_util.h"

#ifdef RIPC_HAVE_TLS

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ripc_tls_context {
    SSL_CTX *ssl_ctx;
    int skip_verify;
    char *ca_file, *ca_path, *cert, *key; /* the settings it was made from */
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Readers: threads in OpenSSL's locking work; the writer: fork(). glibc's
 * default lock prefers readers, so a nested enter never waits on a fork. */
static pthread_rwlock_t fork_guard = PTHREAD_RWLOCK_INITIALIZER;

static void fork_prepare(void) { pthread_rwlock_wrlock(&fork_guard); }
static void fork_parent(void) { pthread_rwlock_unlock(&fork_guard); }
static void fork_child(void) { pthread_rwlock_init(&fork_guard, NULL); }

static void init_openssl(void)
{
    redisInitOpenSSL();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Every guarded piece of work needs a context first, which runs init_openssl. */
void ripc_tls_fork_guard_enter(void) { pthread_rwlock_rdlock(&fork_guard); }
void ripc_tls_fork_guard_leave(void) { pthread_rwlock_unlock(&fork_guard); }

int ripc_tls_available(void) { return 1; }

static const char *key_file(const ripc_redis_config *cfg)
{
    return cfg->tls_key && *cfg->tls_key ? cfg->tls_key : cfg->tls_cert;
}

static const char *nonempty(const char *s) { return s && *s ? s : NULL; }

/* OpenSSL's reason for the last failure on this thread, and a clean queue. */
static const char *openssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return reason ? reason : "unknown error";
}

void ripc_tls_context_free(ripc_tls_context *t)
{
    if (!t) return;
    ripc_tls_fork_guard_enter();
    SSL_CTX_free(t->ssl_ctx);
    ripc_tls_fork_guard_leave();
    free(t->ca_file); free(t->ca_path); free(t->cert); free(t->key);
    free(t);
}

/* OpenSSL 3 says only "system lib" for a file it cannot open: name the cause. */
static int readable(const char *what, const char *path, ripc_error *err)
{
    if (!path || access(path, R_OK) == 0) return 1;
    ripc_error_set(err, RIPC_CONFIGURATION, "TLS: cannot read the %s %s: %s", what, path, strerror(errno));
    return 0;
}

static ripc_tls_context *context_new(const ripc_redis_config *cfg, ripc_error *err)
{
    ripc_tls_context *t = ripc_xcalloc(1, sizeof(*t));
    t->skip_verify = cfg->tls_skip_verify != 0;
    t->ca_file = ripc_strdup(nonempty(cfg->tls_ca_file));
    t->ca_path = ripc_strdup(nonempty(cfg->tls_ca_path));
    t->cert = ripc_strdup(nonempty(cfg->tls_cert));
    t->key = ripc_strdup(nonempty(key_file(cfg)));
    if (!readable("CA file", t->ca_file, err) || !readable("CA folder", t->ca_path, err) ||
        !readable("client certificate", t->cert, err) || !readable("private key", t->key, err))
        goto fail;
    ERR_clear_error();
    t->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ssl_ctx) {
        ripc_error_set(err, RIPC_CONFIGURATION, "TLS: could not create an OpenSSL context: %s", openssl_reason());
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(t->ssl_ctx, t->skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    if (t->ca_file || t->ca_path) {
        if (!SSL_CTX_load_verify_locations(t->ssl_ctx, t->ca_file, t->ca_path)) {
            ripc_error_set(err, RIPC_CONFIGURATION, "TLS: could not load the CA certificates of %s: %s",
                           t->ca_file ? t->ca_file : t->ca_path, openssl_reason());
            goto fail;
        }
    } else if (!SSL_CTX_set_default_verify_paths(t->ssl_ctx)) {
        ripc_error_set(err, RIPC_CONFIGURATION, "TLS: could not load the default CA certificates: %s", openssl_reason());
        goto fail;
    }
    if (t->cert) {
        if (!SSL_CTX_use_certificate_chain_file(t->ssl_ctx, t->cert)) {
            ripc_error_set(err, RIPC_CONFIGURATION, "TLS: could not load the client certificate %s: %s", t->cert,
                           openssl_reason());
            goto fail;
        }
        if (!SSL_CTX_use_PrivateKey_file(t->ssl_ctx, t->key, SSL_FILETYPE_PEM) || !SSL_CTX_check_private_key(t->ssl_ctx)) {
            ripc_error_set(err, RIPC_CONFIGURATION, "TLS: could not use the private key %s: %s", t->key, openssl_reason());
            goto fail;
        }
    } else if (t->key) {
        ripc_error_set(err, RIPC_CONFIGURATION, "TLS: a private key was given without its certificate");
        goto fail;
    }
    ERR_clear_error();
    return t;
fail:
    ripc_tls_context_free(t);
    return NULL;
}

ripc_tls_context *ripc_tls_context_new(const ripc_redis_config *cfg, ripc_error *err)
{
    pthread_once(&init_once, init_openssl);
    ripc_tls_fork_guard_enter();
    ripc_tls_context *t = context_new(cfg, err);
    ripc_tls_fork_guard_leave();
    return t;
}

static int is_ip_address(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* SNI carries host names only (RFC 6066); an address is still verified. */
static int set_server_name(SSL *ssl, const char *name, int verify)
{
    int ip = is_ip_address(name);
    if (!ip && !SSL_set_tlsext_host_name(ssl, name)) return 0;
    if (!verify) return 1;
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    return ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name) : X509_VERIFY_PARAM_set1_host(param, name, 0);
}

int ripc_tls_handshake(redisContext *c, ripc_tls_context *t, const ripc_redis_config *cfg, const char *where,
                       ripc_error *err)
{
    const char *name = nonempty(cfg->tls_sni) ? cfg->tls_sni : (cfg->host ? cfg->host : "127.0.0.1");
    ERR_clear_error();
    SSL *ssl = SSL_new(t->ssl_ctx);
    if (!ssl || !set_server_name(ssl, name, !t->skip_verify)) {
        ripc_error_set(err, RIPC_CONNECTION, "TLS: could not prepare the connection to %s: %s", where, openssl_reason());
        if (ssl) SSL_free(ssl);
        return -1;
    }
    double started = ripc_now();
    int rc = 0;
    if (redisInitiateSSL(c, ssl) != REDIS_OK) {
        /* hiredis gives the SSL object back to us when the handshake fails. */
        long verdict = SSL_get_verify_result(ssl);
        double limit = cfg->connect_timeout > 0 ? cfg->connect_timeout : 1.0;
        if (verdict == X509_V_ERR_HOSTNAME_MISMATCH || verdict == X509_V_ERR_IP_ADDRESS_MISMATCH)
            ripc_error_set(err, RIPC_CONNECTION, "TLS: the certificate of %s is not for %s", where, name);
        else if (verdict != X509_V_OK)
            ripc_error_set(err, RIPC_CONNECTION, "TLS: the certificate of %s is not trusted: %s", where,
                           X509_verify_cert_error_string(verdict));
        else if (ripc_now() - started >= limit * 0.9)
            ripc_error_set(err, RIPC_CONNECTION, "TLS: no handshake with %s within %gs (a plain-text port?)", where,
                           limit);
        else
            ripc_error_set(err, RIPC_CONNECTION, "TLS handshake with %s failed: %s (is it a TLS port?)", where,
                           ERR_peek_last_error() ? openssl_reason() : c->errstr);
        SSL_free(ssl);
        rc = -1;
    }
    ERR_clear_error();
    return rc;
}

const char *ripc_tls_last_alert(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return reason;
}

#else /* no TLS in this build */

static const char NO_TLS[] =
    "TLS needs redis_ipc built on hiredis >= 1.0 with hiredis_ssl; this one has hiredis %d.%d. "
    "Install OpenSSL's headers (Debian/Ubuntu: libssl-dev) and the hiredis-client gem, or a hiredis "
    ">= 1.0 with hiredis_ssl, then reinstall redis_ipc";

int ripc_tls_available(void) { return 0; }

ripc_tls_context *ripc_tls_context_new(const ripc_redis_config *cfg, ripc_error *err)
{
    ripc_error_set(err, RIPC_CONFIGURATION, NO_TLS, HIREDIS_MAJOR, HIREDIS_MINOR);
    return NULL;
}

void ripc_tls_context_free(ripc_tls_context *t) { (void)t; }

void ripc_tls_fork_guard_enter(void) {}
void ripc_tls_fork_guard_leave(void) {}

int ripc_tls_handshake(redisContext *c, ripc_tls_context *t, const ripc_redis_config *cfg, const char *where,
                       ripc_error *err)
{
    (void)t;
    (void)where;
    ripc_error_set(err, RIPC_CONFIGURATION, NO_TLS, HIREDIS_MAJOR, HIREDIS_MINOR);
    return -1;
}

const char *ripc_tls_last_alert(void) { return NULL; }

#endif
