#include "cli_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_numbers.h"

void cli_target_init(cli_target *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->host, sizeof(t->host), "127.0.0.1");
    t->port = 6379;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes the %XX escapes of a URL part into out; -1 for a broken escape,
 * an escaped NUL (it would cut the value short) or a part too long. */
static int decode(const char *in, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (o + 1 >= outlen) return -1;
        if (in[i] != '%') { out[o++] = in[i]; continue; }
        int hi = i + 2 < len ? hex_digit(in[i + 1]) : -1, lo = i + 2 < len ? hex_digit(in[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return -1;
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return 0;
}

void cli_redact_url(const char *url, char *out, size_t outlen)
{
    const char *at = strrchr(url, '@'), *scheme = strstr(url, "://");
    if (!at) { snprintf(out, outlen, "%s", url); return; }
    const char *user = scheme && scheme < at ? scheme + 3 : url;
    const char *colon = memchr(user, ':', (size_t)(at - user));
    /* The user name stays (it is no secret); whatever follows it goes. */
    int keep = colon ? (int)(colon - url) + 1 : (int)(user - url);
    snprintf(out, outlen, "%.*s" CLI_REDACTED "%s", keep, url, at);
}

/* The message for a URL that cannot be used, naming it without its password. */
static int bad_url(const char *url, const char *why, char *err, size_t errlen)
{
    char shown[512];
    cli_redact_url(url, shown, sizeof(shown));
    snprintf(err, errlen, "invalid Redis url %s: %s", shown, why);
    return -1;
}

static int parse_db(const char *text, size_t len, cli_target *t)
{
    long long db;
    if (cli_parse_integer(text, len, 0, RIPC_MAX_DB, &db) != 0) return -1;
    t->db = (int)db;
    return 0;
}

int cli_target_parse_url(cli_target *t, const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7, *query = strchr(path, '?');
        size_t len = query ? (size_t)(query - path) : strlen(path);
        if (!len || decode(path, len, t->path, sizeof(t->path)) != 0) return bad_url(url, "no usable socket path", err, errlen);
        if (query && (strncmp(query, "?db=", 4) != 0 || parse_db(query + 4, (size_t)-1, t) != 0))
            return bad_url(url, "the only query it takes is ?db=N, N from 0 to 65535", err, errlen);
        return 0;
    }
    int tls = strncmp(url, "rediss://", 9) == 0;
    if (!tls && strncmp(url, "redis://", 8) != 0)
        return bad_url(url, "it must start with redis://, rediss:// or unix://", err, errlen);
    t->tls = tls;
    const char *rest = url + (tls ? 9 : 8), *at = strrchr(rest, '@');
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        int bad = colon
            ? decode(rest, (size_t)(colon - rest), t->username, sizeof(t->username)) != 0 ||
              decode(colon + 1, (size_t)(at - colon - 1), t->password, sizeof(t->password)) != 0
            : decode(rest, (size_t)(at - rest), t->password, sizeof(t->password)) != 0;
        if (bad) return bad_url(url, "bad %-escape, or a user name or password too long", err, errlen);
        rest = at + 1;
    }
    const char *slash = strchr(rest, '/');
    size_t hostport = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *colon = memchr(rest, ':', hostport);
    size_t hostlen = colon ? (size_t)(colon - rest) : hostport;
    if (hostlen >= sizeof(t->host)) return bad_url(url, "the host name is too long", err, errlen);
    if (hostlen) {
        memcpy(t->host, rest, hostlen);
        t->host[hostlen] = '\0';
    }
    if (colon) {
        long long port;
        if (cli_parse_integer(colon + 1, hostport - hostlen - 1, 1, 65535, &port) != 0)
            return bad_url(url, "the port must be a number from 1 to 65535", err, errlen);
        t->port = (int)port;
    }
    if (slash && slash[1] && parse_db(slash + 1, (size_t)-1, t) != 0)
        return bad_url(url, "the db must be a number from 0 to 65535", err, errlen);
    return 0;
}

void cli_target_config(const cli_target *t, ripc_redis_config *out)
{
    out->host = t->host;
    out->port = t->port;
    out->path = t->path[0] ? t->path : NULL;
    out->username = t->username[0] ? t->username : NULL;
    out->password = t->password[0] ? t->password : NULL;
    out->db = t->db;
    out->tls = t->tls;
    out->tls_skip_verify = t->insecure;
    out->tls_ca_file = t->cacert[0] ? t->cacert : NULL;
    out->tls_ca_path = t->cacertdir[0] ? t->cacertdir : NULL;
    out->tls_cert = t->cert[0] ? t->cert : NULL;
    out->tls_key = t->key[0] ? t->key : NULL;
    out->tls_sni = t->sni[0] ? t->sni : NULL;
}
