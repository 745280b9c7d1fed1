#include "cli_signing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_signing_free(cli_signing *k)
{
    if (k->text) {
        volatile char *p = k->text; /* volatile: a wipe the compiler keeps before free */
        for (size_t i = 0; i < k->text_len; i++) p[i] = 0;
        free(k->text);
    }
    memset(k, 0, sizeof(*k));
}

/* The whole file, at most a little more than the keys it may hold. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    enum { LIMIT = RIPC_MAX_SIGNING_KEYS * (RIPC_MAX_SIGNING_KEY_BYTES + 2) };
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "--signing-key-file %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(LIMIT + 1);
    size_t n = buf ? fread(buf, 1, LIMIT + 1, f) : 0;
    int failed = !buf || ferror(f);
    fclose(f);
    if (failed || n > LIMIT) {
        snprintf(err, errlen, "--signing-key-file %s: %s", path, failed ? "cannot be read" : "is too large for signing keys");
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int cli_signing_load(cli_signing *k, const char *file, ripc_options *o, char *err, size_t errlen)
{
    memset(k, 0, sizeof(*k));
    const char *env = getenv("REDIS_IPC_SIGNING_KEYS");
    const char *source = file ? "--signing-key-file" : "REDIS_IPC_SIGNING_KEYS";
    if (file) {
        if (!(k->text = read_file(file, &k->text_len, err, errlen))) return -1;
    } else if (env && *env) {
        k->text_len = strlen(env);
        k->text = malloc(k->text_len + 1);
        if (!k->text) { snprintf(err, errlen, "out of memory"); return -1; }
        memcpy(k->text, env, k->text_len);
    } else {
        return 0;
    }
    /* One key per line; \r\n endings and blank lines are allowed. */
    char *at = k->text, *end = k->text + k->text_len;
    while (at < end) {
        char *nl = memchr(at, '\n', (size_t)(end - at));
        char *line_end = nl ? nl : end;
        size_t len = (size_t)(line_end - at);
        if (len && at[len - 1] == '\r') len--;
        if (len) {
            if (k->count == RIPC_MAX_SIGNING_KEYS) {
                snprintf(err, errlen, "%s holds more than %d keys", source, RIPC_MAX_SIGNING_KEYS);
                cli_signing_free(k);
                return -1;
            }
            k->keys[k->count] = at;
            k->lens[k->count++] = len;
        }
        at = line_end + 1;
    }
    if (k->count == 0) {
        snprintf(err, errlen, "%s holds no key", source);
        cli_signing_free(k);
        return -1;
    }
    o->signing_keys = k->keys;
    o->signing_key_lens = k->lens;
    o->signing_key_count = k->count;
    return 0;
}
