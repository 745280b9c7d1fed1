/* The outbox: every XADD this instance writes (requests and replies) and the
 * acknowledgements and deletes of answered requests go through it, so that
 * many threads' writes share round trips. Flat combining: a thread that
 * submits a command and finds no flush under way flushes everything queued,
 * its own command first among them, on the outbox's connection; a thread
 * that finds a flush under way leaves its command to it. A sequential
 * sender therefore writes as directly as before, and 64 concurrent ones
 * share a handful of pipelined round trips. A background writer picks up
 * whatever a flusher leaves behind when it stops after a bounded number of
 * rounds to go back to its own business. */
#include "ipc_outbox.h"
#include "ipc_conn.h"
#include "ipc_entry.h"
#include "ipc_stream_internal.h"
#include "ipc_util.h"

#include <stdlib.h>
#include <string.h>

enum { ROUNDS_PER_CALLER = 2 };

struct ripc_outbox_cmd {
    struct ripc_outbox_cmd *next;
    int is_reply;                       /* else a request */
    char request_id[RIPC_REQUEST_ID_LEN + 1]; /* a request: the ledger slot to fail if it cannot be written */
    char *answered_redis_id;            /* a reply: the request entry to acknowledge and delete */
    char *blob;                         /* one allocation holding every argument */
    const char *argv[RIPC_XADD_ARGC];
    size_t lens[RIPC_XADD_ARGC];
};

static ripc_outbox_cmd *make_cmd(const char *stream, const char *const values[RIPC_FIELD_COUNT],
                                 const size_t lens[RIPC_FIELD_COUNT])
{
    ripc_outbox_cmd *cmd = ripc_xcalloc(1, sizeof(*cmd));
    const char *argv[RIPC_XADD_ARGC];
    size_t argvlen[RIPC_XADD_ARGC];
    ripc_entry_xadd_argv(stream, values, lens, argv, argvlen);
    size_t total = 0;
    for (int i = 0; i < RIPC_XADD_ARGC; i++) total += argvlen[i];
    /* The caller's buffers may go away once submit returns: copy them. */
    cmd->blob = ripc_xmalloc(total ? total : 1);
    char *at = cmd->blob;
    for (int i = 0; i < RIPC_XADD_ARGC; i++) {
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

void ripc_outbox_init(ripc_outbox *o, struct ripc_stream *s)
{
    memset(o, 0, sizeof(*o));
    o->stream = s;
    pthread_mutex_init(&o->mutex, NULL);
    pthread_mutex_init(&o->write_lock, NULL);
    ripc_cond_init(&o->writer_cond);
}

/* Writes one batch: every XADD in order, then one XACK and one XDEL for all
 * the requests the batch answers. Called with write_lock held. */
static void flush_batch(ripc_outbox *o, ripc_outbox_cmd *batch)
{
    ripc_stream *s = o->stream;
    ripc_error err;
    size_t n = 0, answered = 0;
    for (ripc_outbox_cmd *c = batch; c; c = c->next) {
        n++;
        if (c->is_reply) answered++;
    }
    int ok = 1;
    if (!o->conn) {
        o->conn = ripc_conn_open(&s->options.redis, 0, &err);
        if (!o->conn) ok = 0;
    }
    if (ok) {
        for (ripc_outbox_cmd *c = batch; c && ok; c = c->next)
            ok = redisAppendCommandArgv(o->conn, RIPC_XADD_ARGC, c->argv, c->lens) == REDIS_OK;
        const char **ids = NULL;
        size_t *idlens = NULL;
        if (ok && answered) {
            ids = ripc_xmalloc((answered + 3) * sizeof(*ids));
            idlens = ripc_xmalloc((answered + 3) * sizeof(*idlens));
            size_t k = 3;
            for (ripc_outbox_cmd *c = batch; c; c = c->next) {
                if (!c->is_reply) continue;
                ids[k] = c->answered_redis_id;
                idlens[k++] = strlen(c->answered_redis_id);
            }
            ids[0] = "XACK"; ids[1] = s->stream; ids[2] = s->group;
            idlens[0] = 4; idlens[1] = strlen(s->stream); idlens[2] = strlen(s->group);
            ok = redisAppendCommandArgv(o->conn, (int)(answered + 3), ids, idlens) == REDIS_OK;
            /* XDEL <stream> ids...: the same ids, one slot further in. */
            ids[1] = "XDEL"; ids[2] = s->stream;
            idlens[1] = 4; idlens[2] = strlen(s->stream);
            if (ok) ok = redisAppendCommandArgv(o->conn, (int)(answered + 2), ids + 1, idlens + 1) == REDIS_OK;
        }
        free(ids);
        free(idlens);
        size_t replies = n + (answered ? 2 : 0);
        ripc_outbox_cmd *c = batch;
        for (size_t i = 0; i < replies && ok; i++) {
            void *reply = NULL;
            if (redisGetReply(o->conn, &reply) != REDIS_OK) {
                ok = 0;
                break;
            }
            redisReply *r = reply;
            if (i < n) {
                /* An XADD refused by Redis (e.g. OOM): fail that one command. */
                if (r->type == REDIS_REPLY_ERROR) {
                    if (!c->is_reply) ripc_ledger_fail_id(&s->ledger, c->request_id, RIPC_PROTOCOL);
                    else ripc_stream_emit(s, RIPC_EVENT_ERROR, "a reply could not be written: %s", r->str);
                }
                c = c->next;
            }
            freeReplyObject(r);
        }
        if (!ok) {
            ripc_error_set(&err, RIPC_CONNECTION, "redis connection failed: %s", o->conn->errstr);
            ripc_conn_close(o->conn);
            o->conn = NULL;
        }
    }
    if (!ok) {
        /* Nothing in the batch is known to be written: requests fail now
         * (their senders see ConnectionError); replies are reported, and
         * their requests, still pending in Redis, are reclaimed later. */
        ripc_stream_outage(s, &err);
        for (ripc_outbox_cmd *c = batch; c; c = c->next)
            if (!c->is_reply) ripc_ledger_fail_id(&s->ledger, c->request_id, RIPC_CONNECTION);
    }
    while (batch) {
        ripc_outbox_cmd *next = batch->next;
        free_cmd(batch);
        batch = next;
    }
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

/* Flushes while there is work, at most `rounds` batches (0: no limit).
 * Returns 1 when it left work behind. */
static int combine(ripc_outbox *o, int rounds)
{
    int done = 0;
    for (;;) {
        if (pthread_mutex_trylock(&o->write_lock) != 0) return 0; /* the flusher will see our work */
        ripc_outbox_cmd *batch;
        while ((rounds == 0 || done < rounds) && (batch = take_all(o))) {
            flush_batch(o, batch);
            done++;
        }
        pthread_mutex_unlock(&o->write_lock);
        /* Work queued after our last take, while we still held the lock,
         * was left to us: take it, or hand it over. */
        if (queue_empty(o)) return 0;
        if (rounds && done >= rounds) return 1;
    }
}

static void wake_writer(ripc_outbox *o)
{
    pthread_mutex_lock(&o->mutex);
    o->writer_wanted = 1;
    pthread_cond_signal(&o->writer_cond);
    pthread_mutex_unlock(&o->mutex);
}

static void submit(ripc_outbox *o, ripc_outbox_cmd *cmd, int defer)
{
    pthread_mutex_lock(&o->mutex);
    if (o->tail) o->tail->next = cmd;
    else o->head = cmd;
    o->tail = cmd;
    pthread_mutex_unlock(&o->mutex);
    if (defer || combine(o, ROUNDS_PER_CALLER)) wake_writer(o);
}

void ripc_outbox_request(ripc_outbox *o, const char *request_id, const char *const values[RIPC_FIELD_COUNT],
                         const size_t lens[RIPC_FIELD_COUNT], int defer)
{
    ripc_outbox_cmd *cmd = make_cmd(o->stream->stream, values, lens);
    snprintf(cmd->request_id, sizeof(cmd->request_id), "%s", request_id);
    submit(o, cmd, defer);
}

void ripc_outbox_reply(ripc_outbox *o, const char *answered_redis_id, const char *const values[RIPC_FIELD_COUNT],
                       const size_t lens[RIPC_FIELD_COUNT])
{
    ripc_outbox_cmd *cmd = make_cmd(o->stream->stream, values, lens);
    cmd->is_reply = 1;
    cmd->answered_redis_id = ripc_strdup(answered_redis_id);
    submit(o, cmd, 0);
}

static void *writer_main(void *arg)
{
    ripc_outbox *o = arg;
    pthread_mutex_lock(&o->mutex);
    while (!o->writer_stop) {
        if (!o->writer_wanted) {
            pthread_cond_wait(&o->writer_cond, &o->mutex);
            continue;
        }
        o->writer_wanted = 0;
        pthread_mutex_unlock(&o->mutex);
        /* Unbounded, but it may find the lock taken: then the holder flushes. */
        while (combine(o, 0)) {}
        pthread_mutex_lock(&o->mutex);
    }
    pthread_mutex_unlock(&o->mutex);
    return NULL;
}

int ripc_outbox_start(ripc_outbox *o)
{
    o->writer_stop = 0;
    if (pthread_create(&o->writer, NULL, writer_main, o) != 0) return -1;
    o->writer_started = 1;
    return 0;
}

void ripc_outbox_drain(ripc_outbox *o)
{
    /* Blocking, not trylock: everything queued must be written before close. */
    pthread_mutex_lock(&o->write_lock);
    ripc_outbox_cmd *batch;
    while ((batch = take_all(o))) flush_batch(o, batch);
    pthread_mutex_unlock(&o->write_lock);
}

void ripc_outbox_stop(ripc_outbox *o)
{
    if (o->writer_started) {
        pthread_mutex_lock(&o->mutex);
        o->writer_stop = 1;
        pthread_cond_signal(&o->writer_cond);
        pthread_mutex_unlock(&o->mutex);
        pthread_join(o->writer, NULL);
        o->writer_started = 0;
    }
    ripc_outbox_drain(o);
    pthread_mutex_lock(&o->write_lock);
    ripc_conn_close(o->conn);
    o->conn = NULL;
    pthread_mutex_unlock(&o->write_lock);
}

void ripc_outbox_destroy(ripc_outbox *o)
{
    ripc_outbox_cmd *batch = take_all(o);
    while (batch) {
        ripc_outbox_cmd *next = batch->next;
        free_cmd(batch);
        batch = next;
    }
    ripc_conn_close(o->conn);
    pthread_cond_destroy(&o->writer_cond);
    pthread_mutex_destroy(&o->write_lock);
    pthread_mutex_destroy(&o->mutex);
}
