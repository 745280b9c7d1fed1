/* Where redis-ipc connects: --url, -h/--host, -p/--port, -s/--socket,
 * --user, --password, or REDIS_URL; TLS with rediss:// or --tls and the
 * files redis-cli takes (--cacert, --cacertdir, --cert, --key, --sni). */
#ifndef CLI_URL_H
#define CLI_URL_H

#include "redis_ipc.h"

typedef struct cli_target {
    char host[256];
    int port;
    char path[512];
    char username[128];
    char password[256];
    int db;
    int tls, insecure;
    char cacert[512], cacertdir[512], cert[512], key[512], sni[256];
} cli_target;

/* What stands for a password in every URL redis-ipc shows. */
#define CLI_REDACTED "REDACTED"

void cli_target_init(cli_target *t);
/* url with its password (whatever follows the user name up to the last
 * '@') replaced by CLI_REDACTED; the url need not be valid. */
void cli_redact_url(const char *url, char *out, size_t outlen);
/* Parses redis[s]://[user:pass@]host[:port][/db] or unix:///path[?db=N].
 * Returns 0, or -1 with a message in err. */
int cli_target_parse_url(cli_target *t, const char *url, char *err, size_t errlen);
void cli_target_config(const cli_target *t, ripc_redis_config *out);

#endif
