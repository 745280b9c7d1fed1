/* What a stream reports in the background (ipc_reports.c): errors for its
 * on_error, each outage once, each refusal once per cause. */
#ifndef RIPC_REPORTS_H
#define RIPC_REPORTS_H

#include "redis_ipc.h"

#include <pthread.h>
#include <stdatomic.h>

/* Events wait in the stream's events queue for its reporter; past
 * RIPC_MAX_EVENTS unread, new ones are dropped (memory stays bounded). */
enum { RIPC_MAX_EVENTS = 1000, RIPC_MAX_REFUSALS = 16, RIPC_REFUSAL_KEY_LEN = 80 };

/* The causes reported and not cleared yet: "<command>|<error code>". */
typedef struct ripc_refusals {
    pthread_mutex_t mutex;
    atomic_int count;       /* read without the lock: the common case is none */
    char causes[RIPC_MAX_REFUSALS][RIPC_REFUSAL_KEY_LEN];
    double noted_at[RIPC_MAX_REFUSALS]; /* ripc_now() when each was reported */
} ripc_refusals;

/* The key of refusals met while (re-)joining the group (ripc_stream_outage). */
#define RIPC_REFUSAL_JOIN "group join"

void ripc_refusals_init(ripc_refusals *r);
void ripc_refusals_destroy(ripc_refusals *r);
/* Forgets every cause (a new connect). */
void ripc_refusals_reset(ripc_refusals *r);

struct ripc_stream;
/* Pushes a background error for the reporter (dropped past RIPC_MAX_EVENTS). */
void ripc_stream_emit(struct ripc_stream *s, int kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Connection trouble in a background thread: reported once per outage
 * (an err of RIPC_COMMAND, a refusal while re-joining, once per cause). */
void ripc_stream_outage(struct ripc_stream *s, const ripc_error *err);
void ripc_stream_outage_over(struct ripc_stream *s);

/* `command` names the cause's source for the dedupe (a command, or what
 * it was used for when one command has several uses). */
/* Redis refused `command` with server_message: reports the message that fmt
 * makes as RIPC_EVENT_COMMAND, unless the same command was refused for the
 * same cause (OOM, NOPERM...) and has not been accepted since. A retry loop
 * therefore reports once, not once per retry. */
void ripc_stream_refused(struct ripc_stream *s, const char *command, const char *server_message, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Redis accepted `command` again: its next refusal is news. */
void ripc_stream_accepted(struct ripc_stream *s, const char *command);
/* The same for a command sent at issued_at (ripc_now()): it only clears
 * refusals noted before then. A read that blocked for seconds says
 * nothing about a refusal another thread met meanwhile. */
void ripc_stream_accepted_since(struct ripc_stream *s, const char *command, double issued_at);
/* Either of the above for a reply r of Redis to `command` (the key), with
 * "Redis refused <doing> on stream <stream>: <error>" as the message.
 * NOGROUP is not reported: the group is gone and the dispatchers re-join. */
struct redisReply;
void ripc_stream_note_reply(struct ripc_stream *s, const char *command, const char *doing, const struct redisReply *r);

#endif
