#include "cli_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_target_init(cli_target *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->host, sizeof(t->host), "127.0.0.1");
    t->port = 6379;
}

/* Decodes %XX escapes of a URL part into out. */
static void decode(const char *in, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < outlen; i++) {
        if (in[i] == '%' && i + 2 < len) {
            char hex[3] = { in[i + 1], in[i + 2], 0 };
            out[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
}

int cli_target_parse_url(cli_target *t, const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7, *query = strchr(path, '?');
        size_t len = query ? (size_t)(query - path) : strlen(path);
        if (!len) goto bad;
        decode(path, len, t->path, sizeof(t->path));
        if (query && strncmp(query, "?db=", 4) == 0) t->db = atoi(query + 4);
        return 0;
    }
    int tls = strncmp(url, "rediss://", 9) == 0;
    if (!tls && strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "a Redis url starts with redis://, rediss:// or unix://: %s", url);
        return -1;
    }
    t->tls = tls;
    const char *rest = url + (tls ? 9 : 8), *at = strrchr(rest, '@'), *slash;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (colon) {
            decode(rest, (size_t)(colon - rest), t->username, sizeof(t->username));
            decode(colon + 1, (size_t)(at - colon - 1), t->password, sizeof(t->password));
        } else {
            decode(rest, (size_t)(at - rest), t->password, sizeof(t->password));
        }
        rest = at + 1;
    }
    slash = strchr(rest, '/');
    size_t hostport = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *colon = memchr(rest, ':', hostport);
    size_t hostlen = colon ? (size_t)(colon - rest) : hostport;
    if (hostlen >= sizeof(t->host)) goto bad;
    if (hostlen) {
        memcpy(t->host, rest, hostlen);
        t->host[hostlen] = '\0';
    }
    if (colon) {
        t->port = atoi(colon + 1);
        if (t->port <= 0 || t->port > 65535) goto bad;
    }
    if (slash && slash[1]) t->db = atoi(slash + 1);
    return 0;
bad:
    snprintf(err, errlen, "invalid Redis url: %s", url);
    return -1;
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
