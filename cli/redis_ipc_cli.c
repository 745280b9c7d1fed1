/* redis-ipc: send to, serve and inspect RedisIPC streams from a shell.
 *
 *   redis-ipc send  --stream S --group G --to T [--timeout SEC] CONTENT
 *   redis-ipc serve --stream S --group G [--threads N] (--echo | -- COMMAND ARGS...)
 *   redis-ipc stats --stream S [--json | --prometheus] [--watch [--interval SEC]]
 *   redis-ipc peek  --stream S [--group G] [--count N] [--json]
 *
 * Exit status of send: 0 fulfilled, 1 rejected, 2 timeout, 3 connection
 * error; 64 for a usage error. */
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_command.h"
#include "cli_url.h"
#include "ipc_conn.h"
#include "ipc_server.h"
#include "redis_ipc.h"

static const char *const USAGE_SEND =
    "usage: redis-ipc send --stream S --group G --to T [--timeout SEC] [CONNECTION] CONTENT\n"
    "  Sends CONTENT (written as given: JSON text, or any text) to group T and\n"
    "  prints the reply's content. Exit: 0 fulfilled, 1 rejected, 2 timeout,\n"
    "  3 connection error.\n";
static const char *const USAGE_SERVE =
    "usage: redis-ipc serve --stream S --group G [--threads N] [CONNECTION] (--echo | -- COMMAND ARGS...)\n"
    "  Answers each request to group G by running COMMAND with the content on\n"
    "  stdin: exit 0 fulfils with its stdout, another status rejects with its\n"
    "  stderr. --echo fulfils with the content itself. Stops on SIGINT/SIGTERM.\n";
static const char *const USAGE_CONNECTION =
    "connection: --url URL (redis[s]://[user:pass@]host:port/db or unix:///path), -h/--host HOST,\n"
    "  -p/--port PORT, -s/--socket PATH, --user USER, --password PASS; default REDIS_URL,\n"
    "  else 127.0.0.1:6379.\n"
    "TLS: --tls (or rediss://), --cacert FILE, --cacertdir DIR (default: OpenSSL's CA store,\n"
    "  SSL_CERT_FILE/SSL_CERT_DIR), --cert FILE --key FILE (client certificate), --sni NAME,\n"
    "  --insecure (no server verification).\n";

void usage(const char *text, int to_stderr)
{
    FILE *f = to_stderr ? stderr : stdout;
    fputs(text, f);
    fputs(USAGE_CONNECTION, f);
}

/* Long options without a short letter. */
enum { OPT_TLS = 256, OPT_CACERT, OPT_CACERTDIR, OPT_CERT, OPT_KEY, OPT_SNI, OPT_INSECURE };

int parse(int argc, char **argv, cli_options *o, const char *help)
{
    static const struct option longs[] = {
        { "url", required_argument, NULL, 'u' }, { "host", required_argument, NULL, 'h' },
        { "port", required_argument, NULL, 'p' }, { "socket", required_argument, NULL, 's' },
        { "user", required_argument, NULL, 'U' }, { "password", required_argument, NULL, 'P' },
        { "stream", required_argument, NULL, 'S' }, { "group", required_argument, NULL, 'G' },
        { "to", required_argument, NULL, 'T' }, { "timeout", required_argument, NULL, 't' },
        { "threads", required_argument, NULL, 'n' }, { "echo", no_argument, NULL, 'e' },
        { "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'H' },
        { "tls", no_argument, NULL, OPT_TLS }, { "cacert", required_argument, NULL, OPT_CACERT },
        { "cacertdir", required_argument, NULL, OPT_CACERTDIR }, { "cert", required_argument, NULL, OPT_CERT },
        { "key", required_argument, NULL, OPT_KEY }, { "sni", required_argument, NULL, OPT_SNI },
        { "insecure", no_argument, NULL, OPT_INSECURE }, { NULL, 0, NULL, 0 },
    };
    char err[256];
    const char *env = getenv("REDIS_URL");
    cli_target_init(&o->target);
    if (env && *env && cli_target_parse_url(&o->target, env, err, sizeof(err)) != 0) {
        fprintf(stderr, "redis-ipc: REDIS_URL: %s\n", err);
        return -1;
    }
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "+h:p:s:", longs, NULL)) != -1) {
        switch (c) {
        case 'u':
            cli_target_init(&o->target);
            if (cli_target_parse_url(&o->target, optarg, err, sizeof(err)) != 0) {
                fprintf(stderr, "redis-ipc: %s\n", err);
                return -1;
            }
            break;
        case 'h': snprintf(o->target.host, sizeof(o->target.host), "%s", optarg); o->target.path[0] = '\0'; break;
        case 'p': o->target.port = atoi(optarg); o->target.path[0] = '\0'; break;
        case 's': snprintf(o->target.path, sizeof(o->target.path), "%s", optarg); break;
        case 'U': snprintf(o->target.username, sizeof(o->target.username), "%s", optarg); break;
        case 'P': snprintf(o->target.password, sizeof(o->target.password), "%s", optarg); break;
        case 'S': o->stream = optarg; break;
        case 'G': o->group = optarg; break;
        case 'T': o->to = optarg; break;
        case 't': o->timeout = atof(optarg);
            if (o->timeout <= 0) { fprintf(stderr, "redis-ipc: --timeout must be a positive number\n"); return -1; }
            break;
        case 'n': o->threads = atoi(optarg);
            if (o->threads < 1) { fprintf(stderr, "redis-ipc: --threads must be at least 1\n"); return -1; }
            break;
        case 'e': o->echo = 1; break;
        case 'j': o->json = 1; break;
        case OPT_TLS: o->target.tls = 1; break;
        case OPT_CACERT: snprintf(o->target.cacert, sizeof(o->target.cacert), "%s", optarg); break;
        case OPT_CACERTDIR: snprintf(o->target.cacertdir, sizeof(o->target.cacertdir), "%s", optarg); break;
        case OPT_CERT: snprintf(o->target.cert, sizeof(o->target.cert), "%s", optarg); break;
        case OPT_KEY: snprintf(o->target.key, sizeof(o->target.key), "%s", optarg); break;
        case OPT_SNI: snprintf(o->target.sni, sizeof(o->target.sni), "%s", optarg); break;
        case OPT_INSECURE: o->target.insecure = 1; break;
        case 'H': usage(help, 0); exit(0);
        default: usage(help, 1); return -1;
        }
    }
    if (o->target.port <= 0 || o->target.port > 65535) {
        fprintf(stderr, "redis-ipc: invalid port\n");
        return -1;
    }
    return optind;
}

static ripc_stream *open_stream(const cli_options *o, const char *group, ripc_error *err)
{
    ripc_options options;
    ripc_options_init(&options);
    cli_target_config(&o->target, &options.redis);
    if (o->timeout > 0) options.entry_timeout = o->timeout;
    options.dispatcher_count = 1;
    options.pool_size = 4;
    return ripc_stream_new(o->stream, group, &options, err);
}

/* --- send ---------------------------------------------------------------- */

static int cmd_send(int argc, char **argv)
{
    cli_options o = { 0 };
    int first = parse(argc, argv, &o, USAGE_SEND);
    if (first < 0) return EXIT_USAGE;
    if (!o.stream || !o.group || !o.to || first != argc - 1) {
        usage(USAGE_SEND, 1);
        return EXIT_USAGE;
    }
    const char *content = argv[first];
    if (!*content) {
        fprintf(stderr, "redis-ipc: CONTENT must not be empty (send '\"\"' for an empty string)\n");
        return EXIT_USAGE;
    }
    ripc_error err = { 0, "" };
    ripc_stream *s = open_stream(&o, o.group, &err);
    if (!s) { fprintf(stderr, "redis-ipc: %s\n", err.message); return EXIT_USAGE; }
    if (ripc_stream_connect(s, &err) != RIPC_OK) {
        fprintf(stderr, "redis-ipc: %s\n", err.message);
        ripc_stream_free(s);
        return EXIT_CONNECTION;
    }
    ripc_entry *reply = NULL;
    int rc = ripc_send(s, o.to, content, strlen(content), o.timeout, &reply, &err);
    int status;
    if (rc == RIPC_OK) {
        const ripc_bytes *body = &reply->fields[RIPC_FIELD_CONTENT];
        int fulfilled = strcmp(reply->fields[RIPC_FIELD_STATUS].ptr, "fulfilled") == 0;
        FILE *f = fulfilled ? stdout : stderr;
        fwrite(body->ptr, 1, body->len, f);
        fputc('\n', f);
        status = fulfilled ? EXIT_FULFILLED : EXIT_REJECTED;
        ripc_entry_free(reply);
    } else if (rc == RIPC_TIMEOUT) {
        fprintf(stderr, "redis-ipc: %s\n", err.message);
        status = EXIT_TIMEOUT;
    } else {
        fprintf(stderr, "redis-ipc: %s\n", err.message);
        status = EXIT_CONNECTION;
    }
    ripc_stream_free(s);
    return status;
}

/* --- serve --------------------------------------------------------------- */

/* Content is JSON text on the wire: command output that is empty becomes
 * the JSON empty string, anything else goes as written (trailing newline
 * dropped), which a peer reads as JSON or as a raw string. */
static void reply_with(ripc_stream *s, ripc_entry *request, int fulfilled, const char *text, size_t len)
{
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
    ripc_error err;
    if (len == 0) { text = "\"\""; len = 2; }
    if (ripc_respond(s, request, fulfilled, text, len, &err) != RIPC_OK)
        fprintf(stderr, "redis-ipc: could not answer %s: %s\n", request->fields[RIPC_FIELD_ID].ptr, err.message);
}

static void serve_request(ripc_stream *s, ripc_entry *request, void *userdata)
{
    const cli_options *o = userdata;
    const ripc_bytes *content = &request->fields[RIPC_FIELD_CONTENT];
    if (o->echo) {
        reply_with(s, request, 1, content->ptr, content->len);
    } else {
        cli_output out;
        if (cli_command_run(o->command, content->ptr, content->len, &out) != 0) {
            char msg[512];
            int n = snprintf(msg, sizeof(msg), "\"redis-ipc: cannot run %s: %s\"", o->command[0], strerror(errno));
            reply_with(s, request, 0, msg, (size_t)n);
        } else {
            if (out.status == 0) reply_with(s, request, 1, out.out, out.out_len);
            else reply_with(s, request, 0, out.err, out.err_len);
            cli_output_free(&out);
        }
    }
    ripc_entry_free(request);
}

static void serve_error(ripc_stream *s, int kind, const char *message, void *userdata)
{
    (void)s; (void)kind; (void)userdata;
    fprintf(stderr, "redis-ipc: %s\n", message);
}

static int cmd_serve(int argc, char **argv)
{
    cli_options o = { 0 };
    int first = parse(argc, argv, &o, USAGE_SERVE);
    if (first < 0) return EXIT_USAGE;
    if (!o.stream || !o.group || (o.echo == (first < argc))) {
        if (!o.echo && first >= argc) fprintf(stderr, "redis-ipc: serve needs --echo or -- COMMAND\n");
        usage(USAGE_SERVE, 1);
        return EXIT_USAGE;
    }
    o.command = argv + first;
    ripc_error err = { 0, "" };
    ripc_stream *s = open_stream(&o, o.group, &err);
    if (!s) { fprintf(stderr, "redis-ipc: %s\n", err.message); return EXIT_USAGE; }
    ripc_stream_on_request(s, serve_request, &o, o.threads ? o.threads : 4);
    ripc_stream_on_error(s, serve_error, NULL);
    /* SIGINT and SIGTERM are taken by sigwait below, never by a handler:
     * blocked from here on, they wait until this thread asks for them
     * (the engine's threads block them too), so none is lost in a race. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    if (ripc_stream_connect(s, &err) != RIPC_OK) {
        fprintf(stderr, "redis-ipc: %s\n", err.message);
        ripc_stream_free(s);
        return EXIT_CONNECTION;
    }
    fprintf(stderr, "redis-ipc: serving %s as group %s (instance %s)\n", o.stream, o.group, ripc_stream_instance_id(s));
    int sig;
    sigwait(&stop_signals, &sig);
    ripc_stream_disconnect(s);
    ripc_stream_free(s);
    return 0;
}

int main(int argc, char **argv)
{
    /* A peer or a command that goes away must not kill us with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    const char *top =
        "usage: redis-ipc (send | serve | stats | peek) [OPTIONS]\n"
        "  redis-ipc COMMAND --help for each command's options.\n";
    if (argc < 2) { fputs(top, stderr); return EXIT_USAGE; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "send")) return cmd_send(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "stats")) return cmd_stats(argc - 1, argv + 1);
    if (!strcmp(cmd, "peek")) return cmd_peek(argc - 1, argv + 1);
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "help")) { fputs(top, stdout); return 0; }
    fprintf(stderr, "redis-ipc: unknown command %s\n", cmd);
    fputs(top, stderr);
    return EXIT_USAGE;
}
