/* redis-ipc: send to, serve and inspect RedisIPC streams from a shell.
 *
 *   redis-ipc send  --stream S --group G --to T [--timeout SEC] [CONTENT | -]
 *   redis-ipc serve --stream S --group G [--threads T] [--timeout SEC] (--echo | -- COMMAND ARGS...)
 *   redis-ipc stats --stream S [--json | --prometheus] [--watch [--interval SEC]]
 *   redis-ipc peek  --stream S [--group G] [--count N] [--json]
 *
 * Exit status of send: 0 fulfilled, 1 rejected, 2 timeout, 3 connection
 * error; 64 for a usage error. */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_command.h"
#include "cli_numbers.h"
#include "cli_url.h"
#include "ipc_conn.h"
#include "ipc_server.h"
#include "ipc_util.h"
#include "redis_ipc.h"

static const char *const USAGE_SEND =
    "usage: redis-ipc send --stream S --group G --to T [--timeout SEC] [--max-content-bytes N] [CONNECTION] [CONTENT | -]\n"
    "  Sends CONTENT (written as given: JSON text, or any text) to group T and\n"
    "  prints the reply's content. Without CONTENT, or with -, the content is\n"
    "  read from standard input (trailing newlines dropped). It must be valid\n"
    "  UTF-8, not empty, and at most N bytes (default 4194304).\n"
    "  Exit: 0 fulfilled, 1 rejected, 2 timeout, 3 connection error, 64 usage error.\n";
static const char *const USAGE_SERVE =
    "usage: redis-ipc serve --stream S --group G [--threads T] [--timeout SEC] [--max-content-bytes N] [CONNECTION]\n"
    "                       (--echo | -- COMMAND ARGS...)\n"
    "  Answers each request to group G by running COMMAND with the content on\n"
    "  stdin: exit 0 fulfils with its stdout, another status rejects with its\n"
    "  stderr. --echo fulfils with the content itself. Each command runs in a\n"
    "  process group of its own. One still running after --timeout SEC (default:\n"
    "  what is left of the 5 s a sender waits by default) or writing more than\n"
    "  N bytes (default 4194304) is killed with its group and the request is\n"
    "  rejected with the reason; so is output that is not UTF-8. What a command\n"
    "  leaves running is killed when it exits. --threads T commands at a time\n"
    "  (default 4). SIGINT/SIGTERM stop serve, killing the commands that run.\n";
static const char *const USAGE_CONNECTION =
    "connection: --url URL (redis[s]://[user:pass@]host:port/db or unix:///path), -h/--host HOST,\n"
    "  -p/--port PORT, -s/--socket PATH, -n/--db N, --user USER, --password PASS; default REDIS_URL,\n"
    "  else 127.0.0.1:6379. Without a password given, REDISCLI_AUTH is the password (as for\n"
    "  redis-cli): it keeps it off the command line, which other users can see.\n"
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
enum {
    OPT_TLS = 256, OPT_CACERT, OPT_CACERTDIR, OPT_CERT, OPT_KEY, OPT_SNI, OPT_INSECURE, OPT_THREADS, OPT_MAX_CONTENT
};

/* Copies an option's text into a fixed buffer; -1 (after saying so) when
 * it does not fit, rather than cutting a password or a path short. */
static int copy_option(char *dst, size_t size, const char *value, const char *option)
{
    size_t len = strlen(value);
    if (len >= size) {
        fprintf(stderr, "redis-ipc: %s is too long (at most %zu bytes)\n", option, size - 1);
        return -1;
    }
    memcpy(dst, value, len + 1);
    return 0;
}

#define COPY_OPTION(field, name) \
    if (copy_option(o->target.field, sizeof(o->target.field), optarg, name) != 0) return -1

int parse(int argc, char **argv, cli_options *o, const char *help)
{
    static const struct option longs[] = {
        { "url", required_argument, NULL, 'u' }, { "host", required_argument, NULL, 'h' },
        { "port", required_argument, NULL, 'p' }, { "socket", required_argument, NULL, 's' },
        { "db", required_argument, NULL, 'n' },
        { "user", required_argument, NULL, 'U' }, { "password", required_argument, NULL, 'P' },
        { "stream", required_argument, NULL, 'S' }, { "group", required_argument, NULL, 'G' },
        { "to", required_argument, NULL, 'T' }, { "timeout", required_argument, NULL, 't' },
        { "threads", required_argument, NULL, OPT_THREADS }, { "echo", no_argument, NULL, 'e' },
        { "max-content-bytes", required_argument, NULL, OPT_MAX_CONTENT },
        { "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'H' },
        { "tls", no_argument, NULL, OPT_TLS }, { "cacert", required_argument, NULL, OPT_CACERT },
        { "cacertdir", required_argument, NULL, OPT_CACERTDIR }, { "cert", required_argument, NULL, OPT_CERT },
        { "key", required_argument, NULL, OPT_KEY }, { "sni", required_argument, NULL, OPT_SNI },
        { "insecure", no_argument, NULL, OPT_INSECURE }, { NULL, 0, NULL, 0 },
    };
    char err[768];
    const char *env = getenv("REDIS_URL");
    cli_target_init(&o->target);
    ripc_options defaults;
    ripc_options_init(&defaults);
    o->max_content = defaults.max_content_bytes;
    if (env && *env && cli_target_parse_url(&o->target, env, err, sizeof(err)) != 0) {
        fprintf(stderr, "redis-ipc: REDIS_URL: %s\n", err);
        return -1;
    }
    optind = 1;
    int c;
    long long number;
    while ((c = getopt_long(argc, argv, "+h:p:s:n:", longs, NULL)) != -1) {
        switch (c) {
        case 'u':
            cli_target_init(&o->target);
            if (cli_target_parse_url(&o->target, optarg, err, sizeof(err)) != 0) {
                fprintf(stderr, "redis-ipc: %s\n", err);
                return -1;
            }
            break;
        case 'h': COPY_OPTION(host, "--host"); o->target.path[0] = '\0'; break;
        case 'p':
            if (cli_option_integer("--port", optarg, 1, 65535, &number) != 0) return -1;
            o->target.port = (int)number;
            o->target.path[0] = '\0';
            break;
        case 's': COPY_OPTION(path, "--socket"); break;
        case 'n':
            if (cli_option_integer("--db", optarg, 0, RIPC_MAX_DB, &number) != 0) return -1;
            o->target.db = (int)number;
            break;
        case 'U': COPY_OPTION(username, "--user"); break;
        case 'P': COPY_OPTION(password, "--password"); break;
        case 'S': o->stream = optarg; break;
        case 'G': o->group = optarg; break;
        case 'T': o->to = optarg; break;
        case 't': if (cli_option_seconds("--timeout", optarg, RIPC_MAX_ENTRY_TIMEOUT, &o->timeout) != 0) return -1; break;
        case OPT_THREADS:
            if (cli_option_integer("--threads", optarg, 1, RIPC_MAX_CONSUMERS, &number) != 0) return -1;
            o->threads = (int)number;
            break;
        case OPT_MAX_CONTENT:
            if (cli_option_integer("--max-content-bytes", optarg, 1, RIPC_MAX_CONTENT_BYTES, &number) != 0) return -1;
            o->max_content = (size_t)number;
            break;
        case 'e': o->echo = 1; break;
        case 'j': o->json = 1; break;
        case OPT_TLS: o->target.tls = 1; break;
        case OPT_CACERT: COPY_OPTION(cacert, "--cacert"); break;
        case OPT_CACERTDIR: COPY_OPTION(cacertdir, "--cacertdir"); break;
        case OPT_CERT: COPY_OPTION(cert, "--cert"); break;
        case OPT_KEY: COPY_OPTION(key, "--key"); break;
        case OPT_SNI: COPY_OPTION(sni, "--sni"); break;
        case OPT_INSECURE: o->target.insecure = 1; break;
        case 'H': usage(help, 0); exit(0);
        default: usage(help, 1); return -1;
        }
    }
    const char *auth = getenv("REDISCLI_AUTH");
    if (!o->target.password[0] && auth && *auth &&
        copy_option(o->target.password, sizeof(o->target.password), auth, "REDISCLI_AUTH") != 0)
        return -1;
    return optind;
}

static ripc_stream *open_stream(const cli_options *o, double entry_timeout, ripc_error *err)
{
    ripc_options options;
    ripc_options_init(&options);
    cli_target_config(&o->target, &options.redis);
    if (entry_timeout > 0) options.entry_timeout = entry_timeout;
    options.max_content_bytes = o->max_content;
    options.dispatcher_count = 1;
    options.pool_size = 4;
    return ripc_stream_new(o->stream, o->group, &options, err);
}

/* --- send ---------------------------------------------------------------- */

/* Standard input, up to limit bytes and one more (which tells it is over);
 * NULL when it cannot be read. */
static char *read_input(size_t limit, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf && n <= limit) {
        if (n == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) break;
            buf = bigger;
            cap *= 2;
        }
        ssize_t got = read(0, buf + n, cap - n);
        if (got > 0) n += (size_t)got;
        else if (got == 0) { *len = n; return buf; }
        else if (errno != EINTR) break;
    }
    if (buf && n > limit) { *len = n; return buf; }
    free(buf);
    return NULL;
}

/* CONTENT from the command line, or from standard input when it is "-" or
 * missing: checked whole before anything reaches Redis. Returns 0, or -1
 * after saying what is wrong. *owned is what to free. */
static int send_content(const cli_options *o, const char *operand, const char **content, size_t *len, char **owned)
{
    *owned = NULL;
    const char *from = "CONTENT";
    if (operand && strcmp(operand, "-") != 0) {
        *content = operand;
        *len = strlen(operand);
    } else {
        from = "standard input";
        /* Room for a trailing "\r\n", which is dropped. */
        *owned = read_input(o->max_content + 2, len);
        if (!*owned) { fprintf(stderr, "redis-ipc: cannot read standard input: %s\n", strerror(errno)); return -1; }
        while (*len > 0 && ((*owned)[*len - 1] == '\n' || (*owned)[*len - 1] == '\r')) (*len)--;
        *content = *owned;
    }
    if (*len == 0) {
        fprintf(stderr, "redis-ipc: %s is empty (send '\"\"' for an empty string)\n", from);
        return -1;
    }
    if (*len > o->max_content) {
        fprintf(stderr, "redis-ipc: %s is over max_content_bytes (%zu; --max-content-bytes sets it)\n", from, o->max_content);
        return -1;
    }
    if (!ripc_utf8_valid(*content, *len)) {
        fprintf(stderr, "redis-ipc: %s is not valid UTF-8\n", from);
        return -1;
    }
    return 0;
}

static int cmd_send(int argc, char **argv)
{
    cli_options o = { 0 };
    int first = parse(argc, argv, &o, USAGE_SEND);
    if (first < 0) return EXIT_USAGE;
    if (!o.stream || !o.group || !o.to || first < argc - 1) {
        usage(USAGE_SEND, 1);
        return EXIT_USAGE;
    }
    const char *content;
    size_t len;
    char *owned;
    if (send_content(&o, first < argc ? argv[first] : NULL, &content, &len, &owned) != 0) {
        free(owned);
        return EXIT_USAGE;
    }
    ripc_error err = { 0, "" };
    ripc_stream *s = open_stream(&o, o.timeout, &err);
    if (!s) { fprintf(stderr, "redis-ipc: %s\n", err.message); free(owned); return EXIT_USAGE; }
    if (ripc_stream_connect(s, &err) != RIPC_OK) {
        fprintf(stderr, "redis-ipc: %s\n", err.message);
        ripc_stream_free(s);
        free(owned);
        return EXIT_CONNECTION;
    }
    ripc_entry *reply = NULL;
    int rc = ripc_send(s, o.to, content, len, o.timeout, &reply, &err);
    free(owned);
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

typedef struct serve_context {
    const cli_options *o;
    int stop_fd;               /* readable once serve stops */
    double sender_wait;        /* what senders wait by default (entry_timeout) */
    long long clock_offset_ms; /* Redis's clock minus ours */
} serve_context;

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

/* Rejects with "redis-ipc: <why>" as a JSON string, and says it on stderr. */
static void reject_because(ripc_stream *s, ripc_entry *request, const char *format, ...)
{
    char text[600], json[1200];
    va_list args;
    va_start(args, format);
    vsnprintf(text, sizeof(text), format, args);
    va_end(args);
    fprintf(stderr, "redis-ipc: request %s: %s\n", request->fields[RIPC_FIELD_ID].ptr, text);
    size_t n = (size_t)snprintf(json, sizeof(json), "\"redis-ipc: ");
    for (const char *p = text; *p && n + 8 < sizeof(json); p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\') json[n++] = '\\', json[n++] = (char)ch;
        else if (ch < 0x20) n += (size_t)snprintf(json + n, sizeof(json) - n, "\\u%04x", ch);
        else json[n++] = (char)ch;
    }
    json[n++] = '"';
    reply_with(s, request, 0, json, n);
}

/* How long the command may run for this request: --timeout, or what is
 * left of the senders' default wait since the request was written (its
 * stream id is Redis's time in ms then). */
static double run_time(const serve_context *c, const ripc_entry *request)
{
    if (c->o->timeout > 0) return c->o->timeout;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long now_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + c->clock_offset_ms;
    long long written_ms = request->redis_id ? atoll(request->redis_id) : 0;
    double age = written_ms > 0 && now_ms > written_ms ? (double)(now_ms - written_ms) / 1000.0 : 0;
    return c->sender_wait - age;
}

static void run_command(ripc_stream *s, ripc_entry *request, const serve_context *c)
{
    const cli_options *o = c->o;
    const ripc_bytes *content = &request->fields[RIPC_FIELD_CONTENT];
    const char *name = o->command[0];
    cli_limits limits = { run_time(c, request), o->max_content, c->stop_fd };
    if (limits.timeout <= 0) {
        reject_because(s, request, "not run: the request is older than the %g s a sender waits by default "
                       "(serve --timeout SEC runs it anyway)", c->sender_wait);
        return;
    }
    cli_output out;
    if (cli_command_run(o->command, content->ptr, content->len, &limits, &out) != 0) {
        reject_because(s, request, "cannot run %s: %s", name, strerror(errno));
        return;
    }
    const char *text = out.status == 0 ? out.out : out.err;
    size_t len = out.status == 0 ? out.out_len : out.err_len;
    switch (out.outcome) {
    case CLI_RUN_TIMED_OUT: reject_because(s, request, "%s ran longer than %g s and was killed", name, limits.timeout); break;
    case CLI_RUN_TOO_LARGE:
        reject_because(s, request, "%s wrote more than max_content_bytes (%zu) and was killed", name, o->max_content);
        break;
    case CLI_RUN_STOPPED: reject_because(s, request, "serve stopped while %s ran; it was killed", name); break;
    default:
        if (!ripc_utf8_valid(text, len)) reject_because(s, request, "%s wrote output that is not valid UTF-8", name);
        else reply_with(s, request, out.status == 0, text, len);
    }
    cli_output_free(&out);
}

static void serve_request(ripc_stream *s, ripc_entry *request, void *userdata)
{
    const serve_context *c = userdata;
    if (c->o->echo) {
        const ripc_bytes *content = &request->fields[RIPC_FIELD_CONTENT];
        reply_with(s, request, 1, content->ptr, content->len);
    } else {
        run_command(s, request, c);
    }
    ripc_entry_free(request);
}

static void serve_error(ripc_stream *s, int kind, const char *message, void *userdata)
{
    (void)s; (void)kind; (void)userdata;
    fprintf(stderr, "redis-ipc: %s\n", message);
}

/* Redis's clock minus ours, in ms, read once: request ids carry Redis's
 * time, and hosts' clocks may differ. 0 when TIME cannot be asked. */
static long long redis_clock_offset(const cli_options *o)
{
    ripc_redis_config cfg = { 0 };
    cli_target_config(&o->target, &cfg);
    cfg.timeout = cfg.connect_timeout = 2.0;
    ripc_error err;
    ripc_server *server = ripc_server_acquire(&cfg, o->stream, &err);
    redisContext *c = server ? ripc_server_connect(server, 0, &err) : NULL;
    long long offset = 0;
    redisReply *r = c ? redisCommand(c, "TIME") : NULL;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long redis_ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
        offset = redis_ms - ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    }
    if (r) freeReplyObject(r);
    if (c) ripc_conn_close(c);
    ripc_server_release(server);
    return offset;
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
    /* Written once when serve stops and never read: every running command
     * sees it readable and is killed, and so is one that starts after. */
    int stop[2];
    if (pipe2(stop, O_CLOEXEC) != 0) { perror("redis-ipc: pipe"); return EXIT_CONNECTION; }
    ripc_error err = { 0, "" };
    ripc_stream *s = open_stream(&o, 0, &err);
    if (!s) { fprintf(stderr, "redis-ipc: %s\n", err.message); close(stop[0]); close(stop[1]); return EXIT_USAGE; }
    ripc_options defaults;
    ripc_options_init(&defaults);
    serve_context context = { &o, stop[0], defaults.entry_timeout, 0 };
    ripc_stream_on_request(s, serve_request, &context, o.threads ? o.threads : 4);
    ripc_stream_on_error(s, serve_error, NULL);
    /* SIGINT and SIGTERM are taken by sigwait below, never by a handler:
     * blocked from here on, they wait until this thread asks for them
     * (the engine's threads block them too), so none is lost in a race. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    /* Before connect starts the handler threads that read it. */
    context.clock_offset_ms = o.echo || o.timeout > 0 ? 0 : redis_clock_offset(&o);
    if (ripc_stream_connect(s, &err) != RIPC_OK) {
        fprintf(stderr, "redis-ipc: %s\n", err.message);
        ripc_stream_free(s);
        close(stop[0]);
        close(stop[1]);
        return EXIT_CONNECTION;
    }
    fprintf(stderr, "redis-ipc: serving %s as group %s (instance %s)\n", o.stream, o.group, ripc_stream_instance_id(s));
    int sig;
    sigwait(&stop_signals, &sig);
    if (write(stop[1], "", 1) != 1) perror("redis-ipc: stopping the commands");
    ripc_stream_disconnect(s);
    ripc_stream_free(s);
    close(stop[0]);
    close(stop[1]);
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
