/* The outbox: every XADD this instance writes (requests and replies) and the
 * acknowledgements and deletes of answered requests go through it, so that
 * many threads' writes share round trips. Flat combining: a thread that
 * submits a command and finds no flush under way flushes everything queued,
 * its own command first among them, on a connection of the pool; a thread
 * that finds a flush under way leaves its command to it. A sequential
 * sender therefore writes as directly as before, and 64 concurrent ones
 * share a handful of pipelined round trips. A background writer picks up
 * whatever a flusher leaves behind when it stops after a bounded number of
 * rounds to go back to its own business. The XACK and XDEL of the requests
 * a batch answered go in the pipeline of the next write, which the writer
 * sends at once if no other comes: a handler's thread waits for one round
 * trip, not two, and under load acknowledgements cost no round trip of
 * their own. The shared stream's XACK also carries the lazy
 * acknowledgements waiting (ipc_lazy_acks.c). */
#include "ipc_outbox.h"
#include "ipc_ack_batch.h"
#include "ipc_conn.h"
#include "ipc_entry.h"
#include "ipc_reports.h"
#include "ipc_keys.h"
#include "ipc_responders.h"
#include "ipc_routes.h"
#include "ipc_service.h"
#include "ipc_stream.h"
#include "ipc_util.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROUNDS_PER_CALLER = 2 };
/* The writer ends after this long without work. */
static const double WRITER_IDLE = 2.0;
/* Unwritten replies are tried again every RETRY_PAUSE seconds, this many times. */
enum { RETRY_LIMIT = 100 };
static const double RETRY_PAUSE = 0.1;

/* The reply a thread writes itself, so that a refusal of it is returned to
 * that thread (which raises) instead of going to on_error. Only the thread
 * that flushes a command knows its outcome; a command another thread's
 * flush took along is that thread's to report. */
typedef struct own_reply {
    unsigned long long token;
    ripc_error *err;
    int refused;
} own_reply;

static atomic_ullong next_token = 1;
/* The reply this thread queued with RIPC_WRITE_QUEUE and must flush (see
 * ripc_outbox_flush_reply): a queued write and its flush are two calls. */
static _Thread_local unsigned long long queued_reply;

struct ripc_outbox_cmd {
    struct ripc_outbox_cmd *next;
    int is_reply;                       /* else a request */
    int lane;                           /* the lane it is written to (ipc_lanes.h) */
    int fields_at;                      /* where the fields start in argv: after XADD <key> [NOMKSTREAM] * */
    int argc;                           /* the XADD; 2 more for a request written again (MARKER), or 4 for a signature */
    int attempts;                       /* a reply: failed writes so far */
    int copy;                           /* a request that may be in the stream already, not yet marked (mark_copies) */
    unsigned long long token;           /* a reply: tells its writer it is the one (own_reply) */
    char request_id[RIPC_REQUEST_ID_LEN + 1]; /* a request: the ledger slot to fail if it cannot be written */
    char *answered_redis_id;            /* a reply: the request entry to acknowledge and delete */
    int answered_lane;                  /* and the lane it was read from */
    char *blob;                         /* one allocation holding every argument */
    const char *argv[RIPC_XADD_ARGC_MAX + RIPC_SIGNED_XADD_EXTRA]; /* room for either addition */
    size_t lens[RIPC_XADD_ARGC_MAX + RIPC_SIGNED_XADD_EXTRA];
};

/* The value of a field of the entry a command writes. */
static const char *cmd_value(const ripc_outbox_cmd *cmd, int field, size_t *len)
{
    *len = cmd->lens[cmd->fields_at + 1 + 2 * field];
    return cmd->argv[cmd->fields_at + 1 + 2 * field];
}

/* The six fields alone: unsigned, and not marked yet. */
static int is_plain(const ripc_outbox_cmd *cmd)
{
    return cmd->argc == cmd->fields_at + 2 * RIPC_FIELD_COUNT;
}

/* The answered request's name in the in-flight set. */
static const char *answered_slot(const ripc_outbox_cmd *cmd, char *buf, size_t size)
{
    return ripc_lane_slot(cmd->answered_lane, cmd->answered_redis_id, buf, size);
}

/* A request written again while it may already be in the stream carries
 * this field, so that its handler is told it may have run already
 * (ripc_entry.redelivered); only to groups without 1.x members, which drop
 * an entry with a field outside the six. Not on a signed stream: the copy
 * is judged by its replay marker there (ipc_signing.c). */
static const char MARKER_FIELD[] = "redelivered", MARKER_VALUE[] = "1";

/* The XADD of an entry to the lane whose key is given. */
static ripc_outbox_cmd *make_cmd(ripc_stream *s, int lane, const char *key, const char *const values[RIPC_FIELD_COUNT],
                                 const size_t lens[RIPC_FIELD_COUNT])
{
    ripc_outbox_cmd *cmd = ripc_xcalloc(1, sizeof(*cmd));
    const char *argv[RIPC_XADD_ARGC_MAX + RIPC_SIGNED_XADD_EXTRA];
    size_t argvlen[RIPC_XADD_ARGC_MAX + RIPC_SIGNED_XADD_EXTRA];
    int direct = lane != RIPC_LANE_SHARED;
    cmd->lane = lane;
    cmd->fields_at = ripc_xadd_fields_at(direct);
    cmd->argc = ripc_entry_xadd_argv(key, direct, values, lens, argv, argvlen);
    char signed_at[RIPC_SIGNED_AT_MAX], signature[RIPC_SIGNATURE_HEX + 1];
    if (ripc_signing_on(&s->signing)) {
        /* Signed when made, on our view of the server's clock (a retry keeps it). */
        ripc_signing_sign(&s->signing, s->stream, values, lens, ripc_server_clock_estimate_ms(&s->liveness.clock),
                          signed_at, signature);
        const char *extra[] = { RIPC_SIGNED_AT_FIELD, signed_at, RIPC_SIGNATURE_FIELD, signature };
        for (int i = 0; i < RIPC_SIGNED_XADD_EXTRA; i++) {
            argv[cmd->argc] = extra[i];
            argvlen[cmd->argc++] = strlen(extra[i]);
        }
    }
    size_t total = 0;
    for (int i = 0; i < cmd->argc; i++) total += argvlen[i];
    /* The caller's buffers may go away once submit returns: copy them. */
    cmd->blob = ripc_xmalloc(total ? total : 1);
    char *at = cmd->blob;
    for (int i = 0; i < cmd->argc; i++) {
        memcpy(at, argv[i], argvlen[i]);
        cmd->argv[i] = at;
        cmd->lens[i] = argvlen[i];
        at += argvlen[i];
    }
    return cmd;
}

static void free_cmd(ripc_outbox_cmd *cmd)
{
    free(cmd->answered_redis_id);
    free(cmd->blob);
    free(cmd);
}

static void free_written(void *cmd) { free_cmd(cmd); }

void ripc_outbox_init(ripc_outbox *o, struct ripc_stream *s)
{
    /* The ledger keeps requests written here while they wait (ripc_ledger_keep_written). */
    s->ledger.free_written = free_written;
    memset(o, 0, sizeof(*o));
    o->stream = s;
    pthread_mutex_init(&o->mutex, NULL);
    pthread_mutex_init(&o->write_lock, NULL);
    ripc_cond_init(&o->writer_cond);
    pthread_mutex_init(&o->writer_start, NULL);
}

/* Queues the XADDs of cmds[0..n) on c (written with the next read). */
static int append_xadds(redisContext *c, ripc_outbox_cmd **cmds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (redisAppendCommandArgv(c, cmds[i]->argc, cmds[i]->argv, cmds[i]->lens) != REDIS_OK) return -1;
    return 0;
}

/* Reads n replies into replies[]; returns how many: n unless the connection failed. */
static size_t read_replies(redisContext *c, size_t n, redisReply **replies)
{
    for (size_t i = 0; i < n; i++) {
        void *reply = NULL;
        if (redisGetReply(c, &reply) != REDIS_OK) return i;
        replies[i] = reply;
    }
    return n;
}

/* Pipelines the XADDs of cmds[0..n) and reads their replies into replies[].
 * Returns how many replies were read: n unless the connection failed. */
static size_t write_xadds(redisContext *c, ripc_outbox_cmd **cmds, size_t n, redisReply **replies)
{
    return append_xadds(c, cmds, n) == 0 ? read_replies(c, n, replies) : 0;
}

/* A request fails now (its sender sees ConnectionError), but on a server
 * that fails over it is tried again while its sender waits: the primary
 * is being replaced. A reply waits for the writer to try it again: its
 * handler ran, and a Redis stall or a cut connection must not make the
 * request run twice. Past RETRY_LIMIT, or while closing, it is given up:
 * the request stays pending in Redis and is reclaimed (ipc_liveness.c) and
 * answered again, marked redelivered. The caller's cmds[i] are taken (set
 * to NULL) when kept for a retry. */
static void wake_writer(ripc_outbox *o, int wanted);

static void retry_later(ripc_outbox *o, ripc_outbox_cmd **cmds, size_t i)
{
    ripc_outbox_cmd *cmd = cmds[i];
    pthread_mutex_lock(&o->mutex);
    cmd->next = o->retry;
    o->retry = cmd;
    pthread_mutex_unlock(&o->mutex);
    wake_writer(o, 0);
    cmds[i] = NULL;
}

/* A request that cannot be written now is tried again while its sender
 * waits on a server that fails over. */
static int may_retry_request(ripc_stream *s, const ripc_outbox_cmd *cmd)
{
    return !atomic_load(&s->closing) && ripc_server_fails_over(s->server) && ripc_ledger_waiting(&s->ledger, cmd->request_id);
}

/* cmds[from..n) were not written, or (sent: on a connection that failed
 * before their replies came) may have been. */
static void fail_unwritten(ripc_outbox *o, ripc_outbox_cmd **cmds, size_t from, size_t n, int sent, const ripc_error *err)
{
    ripc_stream *s = o->stream;
    ripc_stream_outage(s, err);
    int closing = atomic_load(&s->closing);
    for (size_t i = from; i < n; i++) {
        ripc_outbox_cmd *cmd = cmds[i];
        if (!cmd->is_reply) {
            if (may_retry_request(s, cmd)) {
                /* Redis may have carried it out, and a responder read it. */
                if (sent) cmd->copy = is_plain(cmd);
                retry_later(o, cmds, i);
            }
            else
                ripc_ledger_fail_id(&s->ledger, cmd->request_id, RIPC_CONNECTION);
        } else if (++cmd->attempts < RETRY_LIMIT && !closing) {
            retry_later(o, cmds, i);
        } else {
            char buf[RIPC_LANE_SLOT_MAX];
            ripc_inflight_remove(&s->inflight, answered_slot(cmd, buf, sizeof(buf)));
        }
    }
}

static void refuse_reply(ripc_stream *s, ripc_outbox_cmd *c, const char *server_message, own_reply *mine)
{
    char buf[RIPC_LANE_SLOT_MAX];
    ripc_inflight_remove(&s->inflight, answered_slot(c, buf, sizeof(buf)));
    size_t len;
    const char *id = cmd_value(c, RIPC_FIELD_ID, &len);
    int id_len = (int)len;
    if (mine && mine->token == c->token) {
        mine->refused = 1;
        ripc_error_set(mine->err, RIPC_COMMAND, "Redis refused the reply to request %.*s: %s", id_len, id, server_message);
        return;
    }
    ripc_stream_refused(s, "XADD", server_message,
                        "Redis refused the reply to request %.*s: %s (it stays pending and is answered again %gs after it was read)",
                        id_len, id, server_message, s->options.reclaim_idle);
}

/* Queues, per lane, XACK and XDEL of the requests that the replies of
 * acks[0..n) answered (ipc_ack_batch.c). Returns how many commands it
 * queued (their names in names[]), -1 when c failed. */
static int append_acks(redisContext *c, ripc_stream *s, ripc_outbox_cmd **acks, size_t n, const char *names[2 * RIPC_LANES])
{
    int commands = 0;
    for (int lane = 0; lane < RIPC_LANES; lane++) {
        ripc_ack_batch b;
        ripc_ack_batch_init(&b, lane);
        for (size_t i = 0; i < n; i++)
            if (acks[i]->answered_lane == lane) ripc_ack_batch_add(&b, acks[i]->answered_redis_id);
        int queued = b.count ? ripc_ack_batch_append(s, c, &b, 0, names + commands) : 0;
        if (queued < 0) return -1;
        commands += queued;
    }
    return commands;
}

/* Reads the replies of append_acks; when all came, the requests leave our
 * hands. If the XACK failed, each stays marked answered: the reclaim
 * acknowledges it later instead of running it again (ipc_liveness.c).
 * Refused (NOPERM after an ACL change...), they stay pending, are reclaimed
 * and answered again, a duplicate their senders ignore. */
static int read_acks(redisContext *c, ripc_stream *s, ripc_outbox_cmd **acks, size_t n, int commands,
                     const char *const names[2 * RIPC_LANES])
{
    if (ripc_ack_batch_read(s, c, commands, names) != RIPC_OK) return 0;
    for (size_t i = 0; i < n; i++) {
        char buf[RIPC_LANE_SLOT_MAX];
        ripc_inflight_acked(&s->inflight, answered_slot(acks[i], buf, sizeof(buf)));
    }
    return 1;
}

static int only_replies_from(ripc_outbox_cmd **cmds, size_t from, size_t n)
{
    for (size_t i = from; i < n; i++)
        if (!cmds[i]->is_reply) return 0;
    return 1;
}

/* The same request, for the shared stream (signed again there if signed). */
static ripc_outbox_cmd *to_shared_stream(ripc_stream *s, const ripc_outbox_cmd *cmd)
{
    const char *values[RIPC_FIELD_COUNT];
    size_t lens[RIPC_FIELD_COUNT];
    for (int f = 0; f < RIPC_FIELD_COUNT; f++) values[f] = cmd_value(cmd, f, &lens[f]);
    ripc_outbox_cmd *again = make_cmd(s, RIPC_LANE_SHARED, s->stream, values, lens);
    memcpy(again->request_id, cmd->request_id, sizeof(again->request_id));
    return again;
}

static void requeue(ripc_outbox *o, ripc_outbox_cmd *list);

/* A list's commands as an array (its count in *n). */
static ripc_outbox_cmd **as_array(ripc_outbox_cmd *list, size_t *n)
{
    *n = 0;
    for (ripc_outbox_cmd *c = list; c; c = c->next) (*n)++;
    ripc_outbox_cmd **array = ripc_xmalloc((*n ? *n : 1) * sizeof(*array));
    *n = 0;
    for (ripc_outbox_cmd *c = list; c; c = c->next) array[(*n)++] = c;
    return array;
}

static ripc_outbox_cmd *take_acks(ripc_outbox *o)
{
    pthread_mutex_lock(&o->mutex);
    ripc_outbox_cmd *acks = o->acks;
    o->acks = NULL;
    pthread_mutex_unlock(&o->mutex);
    return acks;
}

/* Replies Redis accepted: their requests are acknowledged with the next
 * write. What they wrote is no longer needed. */
static void keep_for_acks(ripc_outbox *o, ripc_outbox_cmd **answered, size_t n)
{
    pthread_mutex_lock(&o->mutex);
    for (size_t i = 0; i < n; i++) {
        free(answered[i]->blob);
        answered[i]->blob = NULL;
        answered[i]->next = o->acks;
        o->acks = answered[i];
    }
    pthread_mutex_unlock(&o->mutex);
}

/* Whether groups take the marker: every consumer of the group belongs to
 * an instance of this engine (the marker would make 1.x drop the entry).
 * Asked of Redis once per group and batch: 1, 0, or -1 when it could not
 * be asked (ripc_responders_only_ours). */
enum { MARKER_GROUPS = 16 };
typedef struct marker_answers {
    int count;
    struct { char name[256]; int takes; } group[MARKER_GROUPS];
} marker_answers;

static int group_takes_marker(ripc_stream *s, marker_answers *known, const char *group, size_t len)
{
    char name[256];
    if (len >= sizeof(name)) return 0;
    memcpy(name, group, len);
    name[len] = '\0';
    for (int i = 0; i < known->count; i++)
        if (strcmp(known->group[i].name, name) == 0) return known->group[i].takes;
    int takes = ripc_responders_only_ours(s, name);
    if (known->count < MARKER_GROUPS) {
        memcpy(known->group[known->count].name, name, len + 1);
        known->group[known->count++].takes = takes;
    }
    return takes;
}

/* Gives each copy among cmds[0..n) the marker when its group takes it.
 * A copy whose group could not be asked is not written now: unmarked, a
 * group of ours would run it again untold. It waits for a retry while its
 * sender waits, or fails. Returns how many commands stay in cmds, in order. */
static size_t mark_copies(ripc_outbox *o, ripc_outbox_cmd **cmds, size_t n)
{
    ripc_stream *s = o->stream;
    marker_answers *known = NULL;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        ripc_outbox_cmd *cmd = cmds[i];
        if (cmd->copy) {
            if (!known) known = ripc_xcalloc(1, sizeof(*known));
            /* A direct lane is read by instances of this engine alone. */
            size_t len;
            const char *group = cmd_value(cmd, RIPC_FIELD_DESTINATION_GROUP, &len);
            int takes = cmd->lane != RIPC_LANE_SHARED ? 1 : group_takes_marker(s, known, group, len);
            if (takes < 0) {
                if (may_retry_request(s, cmd)) {
                    retry_later(o, cmds, i);
                } else {
                    ripc_ledger_fail_id(&s->ledger, cmd->request_id, RIPC_CONNECTION);
                    free_cmd(cmd);
                }
                continue;
            }
            if (takes) {
                cmd->argv[cmd->argc] = MARKER_FIELD;
                cmd->lens[cmd->argc++] = sizeof(MARKER_FIELD) - 1;
                cmd->argv[cmd->argc] = MARKER_VALUE;
                cmd->lens[cmd->argc++] = sizeof(MARKER_VALUE) - 1;
            }
            cmd->copy = 0;
        }
        cmds[kept++] = cmd;
    }
    free(known);
    return kept;
}

/* Writes one batch. First every XADD, pipelined, in order, and behind them
 * the XACK and XDEL of the requests answered by replies an earlier batch
 * wrote: a request is never acknowledged unless its reply was written. The
 * replies this batch writes leave their requests to the next batch (the
 * writer's, at once, when no other comes). Called with write_lock held. */
static void flush_batch(ripc_outbox *o, ripc_outbox_cmd *batch, own_reply *mine)
{
    ripc_stream *s = o->stream;
    ripc_error err;
    size_t n, n_acks;
    ripc_outbox_cmd **cmds = as_array(batch, &n);
    ripc_outbox_cmd **acks = as_array(take_acks(o), &n_acks);
    redisReply **replies = ripc_xmalloc((n ? n : 1) * sizeof(*replies));
    n = mark_copies(o, cmds, n);

    /* A connection of the stream's pool (checked there: one that Redis
     * closed while idle is replaced before it fails a write). */
    redisContext *c = NULL;
    if (ripc_pool_checkout(&s->pool, 0, &c, &err) != RIPC_OK) c = NULL;
    size_t read = 0;
    const char *ack_names[2 * RIPC_LANES];
    int ack_commands = 0;
    if (c && append_xadds(c, cmds, n) == 0) {
        ack_commands = n_acks ? append_acks(c, s, acks, n_acks, ack_names) : 0;
        read = ack_commands < 0 ? 0 : read_replies(c, n, replies);
        /* Not acknowledged (the connection failed): the reclaim does it later. */
        if (read == n && ack_commands > 0 && !read_acks(c, s, acks, n_acks, ack_commands, ack_names)) {
            ripc_error_set(&err, RIPC_CONNECTION, "redis connection failed: %s", c->errstr);
            ripc_stream_outage(s, &err);
        }
    }
    for (size_t i = 0; i < n_acks; i++) free_cmd(acks[i]);
    free(acks);
    if (c && read < n) ripc_error_set(&err, RIPC_CONNECTION, "redis connection failed: %s", c->errstr);
    int fails_over = ripc_server_fails_over(s->server);
    unsigned long epoch = ripc_conn_epoch(c);
    if (read < n && only_replies_from(cmds, read, n)) {
        /* Writing a reply twice is harmless (its sender keeps the first), so
         * replies cut off by a broken connection get one more connection. */
        if (c) ripc_pool_checkin(&s->pool, c, 1);
        if (ripc_pool_checkout(&s->pool, 0, &c, &err) != RIPC_OK) c = NULL;
        if (c) read += write_xadds(c, cmds + read, n - read, replies + read);
        if (c && read < n) ripc_error_set(&err, RIPC_CONNECTION, "redis connection failed: %s", c->errstr);
    }

    /* answered[0..n_answered) are the replies Redis accepted, whose
     * requests are acknowledged with the next write. */
    size_t n_answered = 0;
    int accepted = 0;
    ripc_outbox_cmd **answered = ripc_xmalloc((n + 1) * sizeof(*answered));
    ripc_outbox_cmd *moved = NULL; /* requests whose direct lane is gone, to the shared stream */
    for (size_t i = 0; i < read; i++) {
        ripc_outbox_cmd *c = cmds[i];
        if (replies[i]->type == REDIS_REPLY_NIL) {
            /* NOMKSTREAM found no direct lane: its reader left (or Redis
             * lost it). A reply's sender is gone: nobody waits for it. A
             * request goes to the shared stream, which every member reads. */
            if (c->is_reply) {
                answered[n_answered++] = c;
                cmds[i] = NULL;
            } else {
                size_t len;
                const char *group = cmd_value(c, RIPC_FIELD_DESTINATION_GROUP, &len);
                ripc_routes_lost(&s->routes, group, len);
                ripc_outbox_cmd *again = to_shared_stream(s, c);
                again->next = moved;
                moved = again;
            }
        } else if (replies[i]->type == REDIS_REPLY_ERROR) {
            /* Refused (OOM, READONLY, NOPERM...): that one command fails,
             * the others stand. A request's sender gets Redis's words at
             * once. A reply's request stays pending in Redis (never
             * acknowledged without a reply): reclaimed after reclaim_idle,
             * it is handed out and answered again. */
            if (!c->is_reply) ripc_ledger_refuse_id(&s->ledger, c->request_id, replies[i]->str);
            else refuse_reply(s, c, replies[i]->str, mine);
        } else {
            accepted = 1;
            if (c->is_reply) answered[n_answered++] = c, cmds[i] = NULL;
            /* Kept while its sender waits, to be written again after a failover. */
            else if (fails_over && ripc_ledger_keep_written(&s->ledger, c->request_id, c, epoch)) cmds[i] = NULL;
        }
        freeReplyObject(replies[i]);
    }
    if (accepted) ripc_stream_accepted(s, "XADD");
    /* On a connection that failed, what it had sent may have been carried
     * out; not when a reply said the data is elsewhere (none was). */
    if (read < n) fail_unwritten(o, cmds, read, n, c && !ripc_conn_moved(c), &err);

    keep_for_acks(o, answered, n_answered);
    free(answered);
    if (moved) requeue(o, moved);
    if (c) ripc_pool_checkin(&s->pool, c, c->err != 0);
    free(replies);
    for (size_t i = 0; i < n; i++)
        if (cmds[i]) free_cmd(cmds[i]);
    free(cmds);
}

/* After a failover: the requests written before it, whose senders still
 * wait, are written again on the new primary under the same id (what the
 * old one had not yet passed to its replica is lost). Their senders keep
 * the first reply that comes. */
typedef struct resend_list {
    ripc_outbox_cmd *head;
} resend_list;

static void take_for_resend(void *written, void *arg)
{
    ripc_outbox_cmd *cmd = written;
    resend_list *list = arg;
    cmd->next = list->head;
    list->head = cmd;
}

void ripc_outbox_resend_lost(ripc_outbox *o)
{
    ripc_stream *s = o->stream;
    unsigned long epoch = ripc_server_epoch(s->server);
    if (!ripc_server_fails_over(s->server)) return;
    resend_list list = { NULL };
    ripc_ledger_take_written(&s->ledger, epoch, take_for_resend, &list);
    if (!list.head) return;
    /* Marked, when their groups take it, as they are written (mark_copies). */
    for (ripc_outbox_cmd *cmd = list.head; cmd; cmd = cmd->next) cmd->copy = is_plain(cmd);
    requeue(o, list.head);
}

/* Puts commands back at the end of the queue, for the writer. */
static void requeue(ripc_outbox *o, ripc_outbox_cmd *list)
{
    pthread_mutex_lock(&o->mutex);
    while (list) {
        ripc_outbox_cmd *cmd = list;
        list = cmd->next;
        cmd->next = NULL;
        if (o->tail) o->tail->next = cmd;
        else o->head = cmd;
        o->tail = cmd;
    }
    pthread_mutex_unlock(&o->mutex);
    wake_writer(o, 1);
}

static ripc_outbox_cmd *take_all(ripc_outbox *o)
{
    pthread_mutex_lock(&o->mutex);
    ripc_outbox_cmd *batch = o->head;
    o->head = o->tail = NULL;
    pthread_mutex_unlock(&o->mutex);
    return batch;
}

static int queue_empty(ripc_outbox *o)
{
    pthread_mutex_lock(&o->mutex);
    int empty = o->head == NULL;
    pthread_mutex_unlock(&o->mutex);
    return empty;
}

static int acks_waiting(ripc_outbox *o)
{
    pthread_mutex_lock(&o->mutex);
    int waiting = o->acks != NULL;
    pthread_mutex_unlock(&o->mutex);
    return waiting;
}

/* Flushes while there is work, at most `rounds` batches (0: no limit, the
 * writer). Returns LEFT_WORK when it left work behind, LEFT_ACKS when only
 * acknowledgements wait. Those are written alone only by the writer and
 * the service thread (acks_alone; ripc_outbox_flush_acks): a handler's
 * thread leaves them, and goes back to work one round trip sooner. */
enum { LEFT_NOTHING, LEFT_WORK, LEFT_ACKS };
static int combine(ripc_outbox *o, int rounds, int acks_alone, own_reply *mine)
{
    int done = 0;
    for (;;) {
        if (pthread_mutex_trylock(&o->write_lock) != 0) return LEFT_NOTHING; /* the flusher will see our work */
        ripc_outbox_cmd *batch;
        while ((rounds == 0 || done < rounds) && ((batch = take_all(o)) || (acks_alone && acks_waiting(o)))) {
            flush_batch(o, batch, mine);
            done++;
        }
        pthread_mutex_unlock(&o->write_lock);
        /* Work queued after our last take, while we still held the lock,
         * was left to us: take it, or hand it over. */
        if (queue_empty(o) && !(acks_alone && acks_waiting(o))) return acks_waiting(o) ? LEFT_ACKS : LEFT_NOTHING;
        if (rounds && done >= rounds) return LEFT_WORK;
    }
}


static void flush_own(ripc_outbox *o, own_reply *mine)
{
    int left = combine(o, ROUNDS_PER_CALLER, 0, mine);
    if (left == LEFT_WORK) wake_writer(o, 1);
    else if (left == LEFT_ACKS) ripc_service_nudge(o->stream, 0);
}

void ripc_outbox_flush_acks(ripc_outbox *o)
{
    if (acks_waiting(o) && combine(o, ROUNDS_PER_CALLER, 1, NULL) == LEFT_WORK) wake_writer(o, 1);
}

void ripc_outbox_flush(ripc_outbox *o)
{
    flush_own(o, NULL);
}

int ripc_outbox_flush_reply(ripc_outbox *o, ripc_error *err)
{
    own_reply mine = { queued_reply, err, 0 };
    queued_reply = 0;
    flush_own(o, mine.token ? &mine : NULL);
    return mine.refused ? RIPC_COMMAND : RIPC_OK;
}

static int submit(ripc_outbox *o, ripc_outbox_cmd *cmd, int mode, own_reply *mine)
{
    pthread_mutex_lock(&o->mutex);
    if (o->tail) o->tail->next = cmd;
    else o->head = cmd;
    o->tail = cmd;
    pthread_mutex_unlock(&o->mutex);
    switch (mode) {
    case RIPC_WRITE_DEFER:
        wake_writer(o, 1);
        return 0;
    case RIPC_WRITE_QUEUE:
        /* A flush under way takes our command (it checks the queue again
         * after unlocking); only with none must the caller flush. */
        if (pthread_mutex_trylock(&o->write_lock) != 0) return 0;
        pthread_mutex_unlock(&o->write_lock);
        return 1;
    default:
        flush_own(o, mine);
        return 0;
    }
}

int ripc_outbox_request(ripc_outbox *o, const char *request_id, const char *const values[RIPC_FIELD_COUNT],
                        const size_t lens[RIPC_FIELD_COUNT], int mode)
{
    ripc_stream *s = o->stream;
    const char *group = values[RIPC_FIELD_DESTINATION_GROUP];
    ripc_outbox_cmd *cmd;
    /* Only a caller that writes now may wait for Redis to say (a queued
     * write runs under the host's lock: ripc_stream_learn_route first). */
    if (ripc_routes_direct(s, group, mode == RIPC_WRITE_NOW)) {
        char *key = ripc_key_requests(s->stream, group);
        cmd = make_cmd(s, RIPC_LANE_REQUESTS, key, values, lens);
        free(key);
    } else {
        cmd = make_cmd(s, RIPC_LANE_SHARED, s->stream, values, lens);
    }
    snprintf(cmd->request_id, sizeof(cmd->request_id), "%s", request_id);
    return submit(o, cmd, mode, NULL);
}

/* A reply's XADD, and the answered request's XACK and XDEL (batched).
 * RIPC_COMMAND (err set) when this thread wrote it (RIPC_WRITE_NOW) and
 * Redis refused it; a refusal met by another thread's write goes to the
 * stream's events (RIPC_EVENT_COMMAND). A request read from a requests
 * lane is answered on its sender's replies lane, any other on the shared
 * stream. */
static int outbox_reply(ripc_outbox *o, const ripc_entry *request, const char *const values[RIPC_FIELD_COUNT],
                        const size_t lens[RIPC_FIELD_COUNT], int mode, ripc_error *err)
{
    ripc_stream *s = o->stream;
    ripc_outbox_cmd *cmd;
    if (request->lane == RIPC_LANE_REQUESTS) {
        char *key = ripc_key_replies(s->stream, ripc_entry_field(request, RIPC_FIELD_SOURCE_GROUP),
                                     ripc_entry_field(request, RIPC_FIELD_INSTANCE_ID));
        cmd = make_cmd(s, RIPC_LANE_REPLIES, key, values, lens);
        free(key);
    } else {
        cmd = make_cmd(s, RIPC_LANE_SHARED, s->stream, values, lens);
    }
    cmd->is_reply = 1;
    cmd->answered_redis_id = ripc_strdup(request->redis_id);
    cmd->answered_lane = request->lane;
    unsigned long long token = cmd->token = atomic_fetch_add(&next_token, 1);
    own_reply mine = { token, err, 0 };
    /* cmd may be written and freed by another thread once submitted. */
    int must_flush = submit(o, cmd, mode, &mine);
    if (mode == RIPC_WRITE_QUEUE) queued_reply = must_flush ? token : 0;
    return mine.refused ? RIPC_COMMAND : must_flush;
}

int ripc_outbox_answer(ripc_outbox *o, const ripc_entry *request, int fulfilled, const char *content, size_t len,
                       int mode, ripc_error *err)
{
    if (!content) { content = ""; len = 0; }
    const ripc_bytes *f = request->fields;
    const char *status = fulfilled ? "fulfilled" : "rejected";
    const char *values[RIPC_FIELD_COUNT] = {
        f[RIPC_FIELD_ID].ptr, f[RIPC_FIELD_INSTANCE_ID].ptr, status, content,
        f[RIPC_FIELD_DESTINATION_GROUP].ptr, f[RIPC_FIELD_SOURCE_GROUP].ptr,
    };
    size_t lens[RIPC_FIELD_COUNT] = {
        f[RIPC_FIELD_ID].len, f[RIPC_FIELD_INSTANCE_ID].len, strlen(status), len,
        f[RIPC_FIELD_DESTINATION_GROUP].len, f[RIPC_FIELD_SOURCE_GROUP].len,
    };
    return outbox_reply(o, request, values, lens, mode, err);
}

/* Puts the replies waiting for a retry back in the queue. Called with the mutex held. */
static void requeue_retries(ripc_outbox *o)
{
    while (o->retry) {
        ripc_outbox_cmd *cmd = o->retry;
        o->retry = cmd->next;
        cmd->next = o->head;
        o->head = cmd;
        if (!o->tail) o->tail = cmd;
    }
}

static void *writer_main(void *arg)
{
    ripc_outbox *o = arg;
    pthread_mutex_lock(&o->mutex);
    double idle_since = ripc_now();
    while (!o->writer_stop) {
        if (o->retry && !o->writer_wanted) {
            /* Replies to try again: after a pause, not in a busy loop while Redis is away. */
            ripc_cond_wait_until(&o->writer_cond, &o->mutex, ripc_now() + RETRY_PAUSE);
            if (o->writer_stop) break;
            requeue_retries(o);
            o->writer_wanted = 1;
        }
        if (!o->writer_wanted) {
            /* Idle long enough: end, and let the next deferred write start a writer again. */
            if (ripc_now() - idle_since >= WRITER_IDLE) break;
            ripc_cond_wait_until(&o->writer_cond, &o->mutex, idle_since + WRITER_IDLE);
            continue;
        }
        o->writer_wanted = 0;
        pthread_mutex_unlock(&o->mutex);
        /* Unbounded, but it may find the lock taken: then the holder flushes. */
        while (combine(o, 0, 1, NULL)) {}
        pthread_mutex_lock(&o->mutex);
        idle_since = ripc_now();
    }
    o->writer_running = 0;
    pthread_mutex_unlock(&o->mutex);
    return NULL;
}

/* Has the writer take the queue (deferred writes, what a flusher left, a
 * retry), starting it when it does not run. `wanted`: there is queued work
 * now (a retry waits for its pause instead). */
static void wake_writer(ripc_outbox *o, int wanted)
{
    pthread_mutex_lock(&o->mutex);
    if (wanted) o->writer_wanted = 1;
    int start = !o->writer_running && !o->writer_stop;
    if (start) o->writer_running = 1;
    else pthread_cond_signal(&o->writer_cond);
    pthread_mutex_unlock(&o->mutex);
    if (!start) return;
    pthread_mutex_lock(&o->writer_start);
    ripc_thread_join(&o->writer); /* the one that ended idle, if any */
    pthread_mutex_lock(&o->mutex);
    int stopped = o->writer_stop;
    pthread_mutex_unlock(&o->mutex);
    int started = !stopped && ripc_thread_start(&o->writer, "ripc writer", writer_main, o) == 0;
    pthread_mutex_unlock(&o->writer_start);
    if (!started) {
        pthread_mutex_lock(&o->mutex);
        o->writer_running = 0;
        pthread_mutex_unlock(&o->mutex);
        /* No thread (stopping, or none could be made): write it ourselves. */
        if (!stopped) while (combine(o, 0, 1, NULL)) {}
    }
}

void ripc_outbox_start(ripc_outbox *o)
{
    pthread_mutex_lock(&o->mutex);
    o->writer_stop = 0;
    pthread_mutex_unlock(&o->mutex);
}

void ripc_outbox_drain(ripc_outbox *o)
{
    /* Blocking, not trylock: everything queued must be written before
     * close, including what a submitter left while we held the lock, and
     * the replies waiting for a retry get a last try. */
    pthread_mutex_lock(&o->mutex);
    requeue_retries(o);
    pthread_mutex_unlock(&o->mutex);
    do {
        pthread_mutex_lock(&o->write_lock);
        ripc_outbox_cmd *batch;
        while ((batch = take_all(o)) || acks_waiting(o)) flush_batch(o, batch, NULL);
        pthread_mutex_unlock(&o->write_lock);
    } while (!queue_empty(o) || acks_waiting(o));
}

void ripc_outbox_stop(ripc_outbox *o)
{
    pthread_mutex_lock(&o->mutex);
    o->writer_stop = 1;
    pthread_cond_signal(&o->writer_cond);
    pthread_mutex_unlock(&o->mutex);
    pthread_mutex_lock(&o->writer_start);
    ripc_thread_join(&o->writer);
    pthread_mutex_unlock(&o->writer_start);
    ripc_outbox_drain(o);
}

void ripc_outbox_destroy(ripc_outbox *o)
{
    requeue_retries(o);
    ripc_outbox_cmd *lists[2] = { take_all(o), take_acks(o) };
    for (int k = 0; k < 2; k++) {
        while (lists[k]) {
            ripc_outbox_cmd *next = lists[k]->next;
            free_cmd(lists[k]);
            lists[k] = next;
        }
    }
    pthread_cond_destroy(&o->writer_cond);
    pthread_mutex_destroy(&o->writer_start);
    pthread_mutex_destroy(&o->write_lock);
    pthread_mutex_destroy(&o->mutex);
}
