/* The floor's responder: answers every request for its group at once.
 * Usage: responder HOST PORT STREAM GROUP
 * Prints "ready" once its group exists; stops on SIGTERM or SIGINT.
 *
 * One loop, one connection: each turn sends, in one write, the replies to
 * the previous batch (XADD each), one XACK and one XDEL for all of them,
 * and the next XREADGROUP. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "floor.h"

#define READ_COUNT 256
/* How soon a stop request is noticed; an idle responder's only traffic. */
#define BLOCK_MS 1000

static volatile sig_atomic_t stop_requested;

static void on_stop(int signo) {
    (void)signo;
    stop_requested = 1;
}

/* XADD <stream> * with the request's id and instance_id, groups swapped. */
static void append_reply(redisContext *c, const char *stream, const char *group, const floor_entry *req) {
    floor_cmd cmd;
    floor_cmd_start(&cmd);
    floor_arg_str(&cmd, "XADD");
    floor_arg_str(&cmd, stream);
    floor_arg_str(&cmd, "*");
    floor_arg_str(&cmd, "id");
    floor_arg(&cmd, req->id.ptr, req->id.len);
    floor_arg_str(&cmd, "instance_id");
    floor_arg(&cmd, req->instance_id.ptr, req->instance_id.len);
    floor_arg_str(&cmd, "status");
    floor_arg_str(&cmd, "fulfilled");
    floor_arg_str(&cmd, "content");
    floor_arg(&cmd, req->content.ptr, req->content.len);
    floor_arg_str(&cmd, "source_group");
    floor_arg_str(&cmd, group);
    floor_arg_str(&cmd, "destination_group");
    floor_arg(&cmd, req->source_group.ptr, req->source_group.len);
    floor_append(c, &cmd);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s HOST PORT STREAM GROUP\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *stream = argv[3], *group = argv[4];
    int port = atoi(argv[2]);

    struct sigaction stop = {0};
    stop.sa_handler = on_stop;
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGINT, &stop, NULL);

    redisContext *c = floor_connect(host, port);
    floor_create_group(c, stream, group);
    printf("ready\n");
    fflush(stdout);

    static floor_done done; /* 50 KB: not on the stack */
    int replies_queued = 0, done_commands = 0;
    while (!stop_requested) {
        floor_append_read(c, stream, group, READ_COUNT, BLOCK_MS);
        for (int i = 0; i < replies_queued; i++) floor_expect(c, REDIS_REPLY_STRING, "XADD");
        floor_done_expect(c, done_commands);
        replies_queued = 0;

        redisReply *read = floor_reply_read(c);
        size_t count;
        redisReply **items = floor_read_entries(read, &count);
        for (size_t i = 0; i < count; i++) {
            floor_entry e;
            /* 1.x drops a malformed entry; it still leaves our group's pending list */
            int ours = floor_parse_entry(items[i], &e) == 0 && floor_str_is(e.destination_group, group) &&
                       floor_str_is(e.status, "pending");
            if (ours) {
                append_reply(c, stream, group, &e);
                replies_queued++;
            }
            floor_done_add(&done, e.entry_id, ours);
        }
        /* a quiet stream: acknowledge what was only watched now */
        done_commands = floor_done_append(c, &done, stream, group, count == 0);
        freeReplyObject(read);
    }
    done_commands += floor_done_append(c, &done, stream, group, 1);
    for (int i = 0; i < replies_queued; i++) floor_expect(c, REDIS_REPLY_STRING, "XADD");
    floor_done_expect(c, done_commands);
    redisFree(c);
    return 0;
}
