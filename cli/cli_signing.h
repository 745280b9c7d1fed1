/* Signing keys for redis-ipc: --signing-key-file FILE, else the
 * REDIS_IPC_SIGNING_KEYS environment variable; one key per line, the first
 * signs, all verify (README "Signed streams"). Never printed. */
#ifndef CLI_SIGNING_H
#define CLI_SIGNING_H

#include <stddef.h>
#include "redis_ipc.h"

typedef struct cli_signing {
    char *text;                  /* the file's or variable's bytes; keys point into it */
    size_t text_len;
    const char *keys[RIPC_MAX_SIGNING_KEYS];
    size_t lens[RIPC_MAX_SIGNING_KEYS];
    int count;
} cli_signing;

/* Loads the keys (file may be NULL: then the variable, else none) and
 * points o at them. Returns 0, or -1 with a message in err. */
int cli_signing_load(cli_signing *k, const char *file, ripc_options *o, char *err, size_t errlen);
/* Wipes and frees the keys (once ripc_stream_new has copied them). */
void cli_signing_free(cli_signing *k);

#endif
