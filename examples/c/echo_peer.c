/* A C program on a RedisIPC stream, next to Ruby processes.
 *
 *   echo_peer STREAM GROUP [TO CONTENT]
 *
 * Joins STREAM as GROUP and answers every request with {"c_says": <content>}
 * (rejecting the content "fail"). With TO and CONTENT it first sends CONTENT
 * to group TO and prints the reply. It prints "ready" once connected and
 * serves until its stdin closes. Connects to REDIS_URL's unix socket or
 * host:port, else 127.0.0.1:6379. Build: make (see the README). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_ipc.h"

static void answer(ripc_stream *s, ripc_entry *request, void *userdata)
{
    (void)userdata;
    const ripc_bytes *content = &request->fields[RIPC_FIELD_CONTENT];
    ripc_error err;
    int rc;
    if (strcmp(content->ptr, "\"fail\"") == 0) {
        rc = ripc_respond(s, request, 0, "\"the C peer refuses\"", 20, &err);
    } else {
        /* Content is JSON text: wrap the request's content in an object. */
        size_t len = content->len + 16;
        char *reply = malloc(len);
        int n = snprintf(reply, len, "{\"c_says\":%s}", content->ptr);
        rc = ripc_respond(s, request, 1, reply, (size_t)n, &err);
        free(reply);
    }
    if (rc != RIPC_OK) fprintf(stderr, "echo_peer: %s\n", err.message);
    ripc_entry_free(request);
}

static void report(ripc_stream *s, int kind, const char *message, void *userdata)
{
    (void)s; (void)kind; (void)userdata;
    fprintf(stderr, "echo_peer: background error: %s\n", message);
}

/* REDIS_URL as redis://host:port, rediss://host:port (TLS, trusting
 * OpenSSL's CA store: SSL_CERT_FILE) or unix:///path, without credentials. */
static void configure(ripc_options *o, char *buf, size_t len)
{
    const char *url = getenv("REDIS_URL");
    if (!url) return;
    if (strncmp(url, "unix://", 7) == 0) {
        snprintf(buf, len, "%s", url + 7);
        o->redis.path = buf;
    } else if (strncmp(url, "redis://", 8) == 0 || strncmp(url, "rediss://", 9) == 0) {
        o->redis.tls = url[5] == 's';
        snprintf(buf, len, "%s", url + (o->redis.tls ? 9 : 8));
        char *slash = strchr(buf, '/');
        if (slash) *slash = '\0';
        char *colon = strchr(buf, ':');
        if (colon) { *colon = '\0'; o->redis.port = atoi(colon + 1); }
        o->redis.host = buf;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 5) {
        fprintf(stderr, "usage: echo_peer STREAM GROUP [TO CONTENT]\n");
        return 64;
    }
    signal(SIGPIPE, SIG_IGN); /* hiredis writes to sockets that may close */
    char where[512];
    ripc_options options;
    ripc_options_init(&options);
    configure(&options, where, sizeof(where));

    ripc_error err;
    ripc_stream *s = ripc_stream_new(argv[1], argv[2], &options, &err);
    if (!s) { fprintf(stderr, "echo_peer: %s\n", err.message); return 1; }
    ripc_stream_on_request(s, answer, NULL, 2);
    ripc_stream_on_error(s, report, NULL);
    if (ripc_stream_connect(s, &err) != RIPC_OK) {
        fprintf(stderr, "echo_peer: %s\n", err.message);
        ripc_stream_free(s);
        return 3;
    }
    printf("ready %s\n", ripc_stream_instance_id(s));
    fflush(stdout);

    int status = 0;
    if (argc == 5) {
        ripc_entry *reply;
        int rc = ripc_send(s, argv[3], argv[4], strlen(argv[4]), 5.0, &reply, &err);
        if (rc == RIPC_OK) {
            printf("reply %s %s\n", reply->fields[RIPC_FIELD_STATUS].ptr, reply->fields[RIPC_FIELD_CONTENT].ptr);
            ripc_entry_free(reply);
        } else {
            printf("error %s\n", err.message);
            status = 2;
        }
        fflush(stdout);
    }
    /* Serve until stdin closes. */
    while (getchar() != EOF) {}
    ripc_stream_disconnect(s);
    ripc_stream_free(s);
    return status;
}
