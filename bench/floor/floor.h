/* The C floor of `rake bench`: what the gem's request/reply costs when
 * written directly against hiredis, one connection, no threads. Both
 * programs keep the 1.x wire (WIRE.md): six string fields per entry, a
 * consumer group per endpoint, and every group acknowledges every entry. */
#ifndef FLOOR_H
#define FLOOR_H

#include <stddef.h>
#include <hiredis/hiredis.h>

/* A stream entry id is "<ms>-<seq>": two 64-bit numbers at most. */
#define FLOOR_ENTRY_ID_MAX 48
/* A pipeline's arguments: XADD takes 15, XACK/XDEL one per id. */
#define FLOOR_MAX_ARGS 1100
/* Acknowledgements of entries only watched wait for the next XACK of our
 * own, as the gem's lazy acks do; this many force one out on their own. */
#define FLOOR_ACK_FLUSH 512
#define FLOOR_ACK_MAX 1024

typedef struct {
    const char *ptr;
    size_t len;
} floor_str;

/* Points into the redisReply it was parsed from. */
typedef struct {
    floor_str entry_id;
    floor_str id, instance_id, status, content, source_group, destination_group;
} floor_entry;

typedef struct {
    int argc;
    const char *argv[FLOOR_MAX_ARGS];
    size_t len[FLOOR_MAX_ARGS];
} floor_cmd;

/* Entry ids to XACK (all of them) and to XDEL (ours only), copied because
 * they outlive the reply they came in. */
typedef struct {
    char ack[FLOOR_ACK_MAX][FLOOR_ENTRY_ID_MAX];
    size_t ack_len[FLOOR_ACK_MAX];
    unsigned char own[FLOOR_ACK_MAX]; /* also XDELed */
    int acks;
    int owns;
} floor_done;

void floor_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
double floor_now(void);

redisContext *floor_connect(const char *host, int port);
/* XGROUP CREATE ... $ MKSTREAM; an existing group is fine. */
void floor_create_group(redisContext *c, const char *stream, const char *group);

void floor_cmd_start(floor_cmd *cmd);
void floor_arg(floor_cmd *cmd, const char *ptr, size_t len);
void floor_arg_str(floor_cmd *cmd, const char *s);
/* Queues the command in hiredis's output buffer (it copies the arguments). */
void floor_append(redisContext *c, floor_cmd *cmd);
/* The next pipelined reply, which must be of `type`; the caller frees it. */
redisReply *floor_reply(redisContext *c, int type, const char *what);
void floor_expect(redisContext *c, int type, const char *what);

/* XREADGROUP GROUP <group> <consumer> COUNT <count> BLOCK <block_ms> STREAMS <stream> > */
void floor_append_read(redisContext *c, const char *stream, const char *group, int count, int block_ms);
/* The reply to XREADGROUP: an array, or nil when BLOCK timed out. */
redisReply *floor_reply_read(redisContext *c);
/* The entries of an XREADGROUP reply (NULL and 0 when it timed out). */
redisReply **floor_read_entries(redisReply *reply, size_t *count);
/* 0, or -1 when the entry lacks one of the six fields or has another. */
int floor_parse_entry(const redisReply *item, floor_entry *e);
int floor_str_is(floor_str s, const char *text);

/* own: an entry of ours to XACK and XDEL; else only XACKed. */
void floor_done_add(floor_done *done, floor_str entry_id, int own);
/* Appends XDEL (if any) and XACK of what is done when something of ours is
 * in it or the watched ones pile up (force: always); returns how many
 * commands were appended, whose replies floor_done_expect reads. */
int floor_done_append(redisContext *c, floor_done *done, const char *stream, const char *group, int force);
void floor_done_expect(redisContext *c, int commands);

#endif
