#include "floor.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const FIELD_NAMES[6] = {"id", "instance_id", "status", "content", "source_group", "destination_group"};

void floor_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("floor: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

double floor_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

redisContext *floor_connect(const char *host, int port) {
    redisContext *c = redisConnect(host, port);
    if (c == NULL) floor_die("cannot allocate a connection");
    if (c->err) floor_die("connect %s:%d: %s", host, port, c->errstr);
    return c;
}

void floor_create_group(redisContext *c, const char *stream, const char *group) {
    redisReply *r = redisCommand(c, "XGROUP CREATE %s %s $ MKSTREAM", stream, group);
    if (r == NULL) floor_die("XGROUP CREATE: %s", c->errstr);
    int ok = r->type == REDIS_REPLY_STATUS ||
             (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0);
    if (!ok) floor_die("XGROUP CREATE: unexpected reply (type %d)", r->type);
    freeReplyObject(r);
}

void floor_cmd_start(floor_cmd *cmd) { cmd->argc = 0; }

void floor_arg(floor_cmd *cmd, const char *ptr, size_t len) {
    if (cmd->argc == FLOOR_MAX_ARGS) floor_die("more than %d arguments in one command", FLOOR_MAX_ARGS);
    cmd->argv[cmd->argc] = ptr;
    cmd->len[cmd->argc] = len;
    cmd->argc++;
}

void floor_arg_str(floor_cmd *cmd, const char *s) { floor_arg(cmd, s, strlen(s)); }

void floor_append(redisContext *c, floor_cmd *cmd) {
    if (redisAppendCommandArgv(c, cmd->argc, cmd->argv, cmd->len) != REDIS_OK)
        floor_die("cannot queue %.*s: %s", (int)cmd->len[0], cmd->argv[0], c->errstr);
}

redisReply *floor_reply(redisContext *c, int type, const char *what) {
    void *reply = NULL;
    if (redisGetReply(c, &reply) != REDIS_OK || reply == NULL) floor_die("%s: %s", what, c->errstr);
    redisReply *r = reply;
    if (r->type != type) {
        if (r->type == REDIS_REPLY_ERROR) floor_die("%s: Redis said %s", what, r->str);
        floor_die("%s: reply of type %d, expected %d", what, r->type, type);
    }
    return r;
}

void floor_expect(redisContext *c, int type, const char *what) { freeReplyObject(floor_reply(c, type, what)); }

void floor_append_read(redisContext *c, const char *stream, const char *group, int count, int block_ms) {
    char count_arg[16], block_arg[16];
    snprintf(count_arg, sizeof count_arg, "%d", count);
    snprintf(block_arg, sizeof block_arg, "%d", block_ms);
    const char *argv[] = {"XREADGROUP", "GROUP", group, "floor", "COUNT", count_arg, "BLOCK", block_arg,
                          "STREAMS", stream, ">"};
    floor_cmd cmd;
    floor_cmd_start(&cmd);
    for (size_t i = 0; i < sizeof argv / sizeof argv[0]; i++) floor_arg_str(&cmd, argv[i]);
    floor_append(c, &cmd);
}

redisReply *floor_reply_read(redisContext *c) {
    void *reply = NULL;
    if (redisGetReply(c, &reply) != REDIS_OK || reply == NULL) floor_die("XREADGROUP: %s", c->errstr);
    redisReply *r = reply;
    if (r->type == REDIS_REPLY_ERROR) floor_die("XREADGROUP: Redis said %s", r->str);
    return r;
}

redisReply **floor_read_entries(redisReply *reply, size_t *count) {
    *count = 0;
    if (reply->type == REDIS_REPLY_NIL) return NULL;
    /* [[stream, [entry, ...]]]: one stream was asked for */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1) floor_die("XREADGROUP: not one stream in the reply");
    redisReply *stream = reply->element[0];
    if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2 || stream->element[1]->type != REDIS_REPLY_ARRAY)
        floor_die("XREADGROUP: malformed stream in the reply");
    *count = stream->element[1]->elements;
    return stream->element[1]->element;
}

static floor_str str_of(const redisReply *r) {
    floor_str s = {r->str, r->len};
    return s;
}

int floor_str_is(floor_str s, const char *text) { return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0; }

int floor_parse_entry(const redisReply *item, floor_entry *e) {
    if (item->type != REDIS_REPLY_ARRAY || item->elements != 2 || item->element[0]->type != REDIS_REPLY_STRING)
        floor_die("XREADGROUP: malformed entry in the reply");
    e->entry_id = str_of(item->element[0]);
    if (e->entry_id.len >= FLOOR_ENTRY_ID_MAX) floor_die("XREADGROUP: entry id of %zu bytes", e->entry_id.len);
    const redisReply *fields = item->element[1];
    /* a deleted entry still pending comes back with no fields */
    if (fields->type != REDIS_REPLY_ARRAY || fields->elements != 12) return -1;
    floor_str *slots[6] = {&e->id, &e->instance_id, &e->status, &e->content, &e->source_group, &e->destination_group};
    unsigned seen = 0;
    for (size_t i = 0; i < 12; i += 2) {
        const redisReply *name = fields->element[i], *value = fields->element[i + 1];
        if (name->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING) return -1;
        int slot = -1;
        for (int f = 0; f < 6; f++)
            if (floor_str_is(str_of(name), FIELD_NAMES[f])) slot = f;
        if (slot < 0 || (seen & (1u << slot))) return -1;
        seen |= 1u << slot;
        *slots[slot] = str_of(value);
    }
    return 0;
}

void floor_done_add(floor_done *done, floor_str entry_id, int own) {
    if (done->acks == FLOOR_ACK_MAX) floor_die("more than %d entries waiting for XACK", FLOOR_ACK_MAX);
    /* floor_parse_entry checked the length */
    memcpy(done->ack[done->acks], entry_id.ptr, entry_id.len);
    done->ack_len[done->acks] = entry_id.len;
    done->own[done->acks] = (unsigned char)own;
    done->acks++;
    done->owns += own != 0;
}

int floor_done_append(redisContext *c, floor_done *done, const char *stream, const char *group, int force) {
    if (done->acks == 0) return 0;
    if (!force && done->owns == 0 && done->acks < FLOOR_ACK_FLUSH) return 0;
    static floor_cmd cmd; /* 17 KB of pointers: not on the stack */
    int commands = 0;
    floor_cmd_start(&cmd);
    floor_arg_str(&cmd, "XACK");
    floor_arg_str(&cmd, stream);
    floor_arg_str(&cmd, group);
    for (int i = 0; i < done->acks; i++) floor_arg(&cmd, done->ack[i], done->ack_len[i]);
    floor_append(c, &cmd);
    commands++;
    if (done->owns > 0) {
        floor_cmd_start(&cmd);
        floor_arg_str(&cmd, "XDEL");
        floor_arg_str(&cmd, stream);
        for (int i = 0; i < done->acks; i++)
            if (done->own[i]) floor_arg(&cmd, done->ack[i], done->ack_len[i]);
        floor_append(c, &cmd);
        commands++;
    }
    done->acks = 0;
    done->owns = 0;
    return commands;
}

void floor_done_expect(redisContext *c, int commands) {
    for (int i = 0; i < commands; i++) floor_expect(c, REDIS_REPLY_INTEGER, i == 0 ? "XACK" : "XDEL");
}
