/* What this group does with each entry it reads (WIRE.md "Flow in 1.x"):
 * entries for other groups are acknowledged (lazily: ipc_lazy_acks.c);
 * requests for us go to the consumers; replies go to the ledger when they
 * are ours, or are handed to the instance of our group that waits for them.
 * On the direct lanes (ipc_lanes.h) everything is for us: anything else
 * found there is reported and removed. On a signed stream, what is
 * addressed to us is checked first (ipc_signing.c). */
#include "ipc_router.h"
#include "ipc_ack_batch.h"
#include "ipc_conn.h"
#include "ipc_entry.h"
#include "ipc_failover_marks.h"
#include "ipc_keys.h"
#include "ipc_reports.h"
#include "ipc_scripts.h"
#include "ipc_server_clock.h"
#include "ipc_signing.h"
#include "ipc_stream.h"
#include "ipc_util.h"
#include "ipc_waker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An entry for another group: its XACK can wait for company. */
static void ack_lazily(ripc_stream *s, const char *redis_id)
{
    if (ripc_lazy_acks_add(&s->lazy_acks, redis_id)) ripc_service_nudge(s, RIPC_LAZY_ACKS_DELAY);
}

static int claim_to(ripc_stream *s, redisContext *c, const char *consumer, const char *redis_id)
{
    redisReply *claim = redisCommand(c, "XCLAIM %s %s %s 0 %s JUSTID", s->stream, s->group, consumer, redis_id);
    int ok = claim && claim->type == REDIS_REPLY_ARRAY;
    if (claim) freeReplyObject(claim);
    return ok;
}

/* The consumer to hand instance iid's replies to: one it lists, as 1.x
 * does; or, when the list is gone but iid is an instance of this engine
 * that still beats (another instance took it for dead a moment ago), its
 * inbox, whose name is fixed. NULL: drop the reply, as 1.x does. */
static char *consumer_for(ripc_stream *s, redisContext *c, const char *iid)
{
    char *name = NULL;
    char *key = ripc_key_consumers(s->stream, s->group, iid);
    redisReply *list = redisCommand(c, "LRANGE %s 0 -1", key);
    free(key);
    if (list && list->type == REDIS_REPLY_ARRAY && list->elements > 0) {
        const redisReply *pick = list->element[(size_t)rand() % list->elements];
        if (pick->type == REDIS_REPLY_STRING) name = ripc_strdup(pick->str);
    } else if (list && list->type == REDIS_REPLY_ARRAY) {
        redisReply *beat = redisCommand(c, "ZSCORE %s %s", s->instances_key, iid);
        if (beat && beat->type == REDIS_REPLY_STRING && atof(beat->str) > 0) name = ripc_name_inbox(iid);
        if (beat) freeReplyObject(beat);
    }
    if (list) freeReplyObject(list);
    return name;
}

/* A reply for another instance of our group: move it to that instance's
 * consumer and ring it (ipc_waker.c), or drop it when there is none. */
static void hand_over(ripc_stream *s, redisContext *c, ripc_entry *e, ripc_ack_batch *b)
{
    const char *iid = ripc_entry_field(e, RIPC_FIELD_INSTANCE_ID);
    char *consumer = consumer_for(s, c, iid);
    int claimed = consumer && claim_to(s, c, consumer, e->redis_id);
    free(consumer);
    if (claimed) ripc_waker_ring(s, c, iid); /* an instance of this engine sweeps at once */
    else ripc_ack_batch_add(b, e->redis_id);
}

/* Writes the JSON string "<text><escaped group>" into a new buffer
 * (quotes, backslashes and control characters escaped). */
static char *json_reason(const char *text, const char *group, size_t *len)
{
    size_t text_len = strlen(text), group_len = strlen(group);
    char *out = ripc_xmalloc(text_len + 6 * group_len + 3), *at = out;
    *at++ = '"';
    memcpy(at, text, text_len);
    at += text_len;
    for (size_t i = 0; i < group_len; i++) {
        unsigned char ch = (unsigned char)group[i];
        if (ch == '"' || ch == '\\') { *at++ = '\\'; *at++ = (char)ch; }
        else if (ch < 0x20) at += sprintf(at, "\\u%04x", ch);
        else *at++ = (char)ch;
    }
    *at++ = '"';
    *at = '\0';
    *len = (size_t)(at - out);
    return out;
}

/* A well-formed request for us whose content exceeds our max_content_bytes
 * (its sender allows more): rejected at once with the reason, so the sender
 * need not wait out its timeout, and reported. The reply goes the way every
 * answer goes (in flight, then the outbox writes it, acknowledges and
 * deletes the request). Returns as route_one does. */
static int refuse_oversized(ripc_stream *s, ripc_entry *e, size_t len)
{
    char buf[RIPC_LANE_SLOT_MAX];
    const char *slot = ripc_lane_slot(e->lane, e->redis_id, buf, sizeof(buf));
    int taken = ripc_inflight_take(&s->inflight, slot, 0);
    if (taken != RIPC_TAKE_OK && taken != RIPC_TAKE_FORGOTTEN) { /* a re-read while the answer is on its way */
        ripc_entry_free(e);
        return 0;
    }
    size_t max = s->options.max_content_bytes;
    ripc_stream_emit(s, RIPC_EVENT_MALFORMED_ENTRY,
                     "request %s on stream %s from group %s has %zu bytes of content, over max_content_bytes (%zu): rejected",
                     e->redis_id, s->stream, ripc_entry_field(e, RIPC_FIELD_SOURCE_GROUP), len, max);
    char text[128];
    snprintf(text, sizeof(text), "request content is %zu bytes, over max_content_bytes (%zu) of group ", len, max);
    size_t reason_len;
    char *reason = json_reason(text, s->group, &reason_len);
    ripc_error err;
    /* Not while connect or disconnect runs: the request stays pending, and
     * whoever reclaims it answers it. Otherwise as ripc_respond answers. */
    int writable = atomic_load(&s->connected) && !atomic_load(&s->closing);
    if (!writable || !ripc_inflight_mark_answered(&s->inflight, slot) ||
        ripc_outbox_answer(&s->outbox, e, 0, reason, reason_len, RIPC_WRITE_NOW, &err) < 0)
        ripc_inflight_remove(&s->inflight, slot);
    free(reason);
    ripc_entry_free(e);
    return 1;
}

/* Returns 0 for a request already handed out (re-read from the inbox or
 * reclaimed while its handler runs) or parked for lack of room (counted in
 * routed), 1 for anything else. */
static int route_one(ripc_stream *s, redisContext *c, ripc_entry *e, int redelivered, ripc_ack_batch *b, ripc_routed *routed)
{
    const ripc_bytes *dest = &e->fields[RIPC_FIELD_DESTINATION_GROUP];
    int for_us = dest->ptr && strcmp(dest->ptr, s->group) == 0;
    e->lane = b->lane;
    if (!e->problem && b->lane != RIPC_LANE_SHARED) {
        /* A direct lane holds requests to this group, or replies to this
         * instance, and nothing else: whatever else a peer wrote there is
         * nobody else's either. */
        int request = ripc_entry_field_is(e, RIPC_FIELD_STATUS, "pending");
        if (!for_us) e->problem = "the entry on a direct lane is addressed to another group";
        else if (b->lane == RIPC_LANE_REQUESTS && !request) e->problem = "the entry on a requests lane is not a request";
        else if (b->lane == RIPC_LANE_REPLIES && (request || !ripc_entry_field_is(e, RIPC_FIELD_INSTANCE_ID, s->instance_id)))
            e->problem = "the entry on a replies lane is not a reply to this instance";
        if (e->problem) for_us = 1; /* reported and removed below */
    }
    /* Too large (read, or measured and left in Redis: unread_bytes). Only
     * a request that is otherwise well-formed can be answered. */
    size_t bytes = e->unread_bytes ? e->unread_bytes : e->fields[RIPC_FIELD_CONTENT].len;
    if (!e->problem && (e->unread_bytes || bytes > s->options.max_content_bytes)) {
        if (for_us && ripc_entry_field_is(e, RIPC_FIELD_STATUS, "pending")) return refuse_oversized(s, e, bytes);
        e->problem = e->unread_bytes ? "the entry is too large to read" : "the entry's content is larger than max_content_bytes";
    }

    if (e->problem) {
        if (strcmp(e->problem, "the entry was deleted from the stream") == 0) {
            if (b->lane == RIPC_LANE_SHARED) ack_lazily(s, e->redis_id);
            else ripc_ack_batch_add(b, e->redis_id);
            ripc_entry_free(e);
            return 1;
        }
        /* Garbage addressed to us, or to nobody: report it and remove it so
         * it is never read again. Garbage for another group is that group's. */
        if (for_us || !dest->ptr) {
            if (b->lane == RIPC_LANE_SHARED)
                ripc_stream_emit(s, RIPC_EVENT_MALFORMED_ENTRY, "malformed entry %s on stream %s: %s",
                                 e->redis_id, s->stream, e->problem);
            else
                ripc_stream_emit(s, RIPC_EVENT_MALFORMED_ENTRY, "malformed entry %s on %s %s of stream %s: %s",
                                 e->redis_id, ripc_lane_name(b->lane), s->lanes[b->lane], s->stream, e->problem);
            ripc_ack_batch_add(b, e->redis_id);
        } else {
            ack_lazily(s, e->redis_id);
        }
        ripc_entry_free(e);
        return 1;
    }
    if (!for_us) {
        ack_lazily(s, e->redis_id);
        ripc_entry_free(e);
        return 1;
    }
    if (ripc_entry_field_is(e, RIPC_FIELD_STATUS, "pending")) {
        /* Already handed out (an inbox re-read or a reclaim of our own entry): skip. */
        char buf[RIPC_LANE_SLOT_MAX];
        int taken = ripc_inflight_take(&s->inflight, ripc_lane_slot(e->lane, e->redis_id, buf, sizeof(buf)), 1);
        if (routed) routed->requests++;
        /* Handled before, its reply given up: it ran once already. */
        if (taken == RIPC_TAKE_FORGOTTEN) e->redelivered = 1;
        if (taken != RIPC_TAKE_OK && taken != RIPC_TAKE_FORGOTTEN) {
            /* Handed out before, or no room: then it stays pending on the
             * consumer that read it, parked until a consumer is free. */
            if (taken == RIPC_TAKE_FULL && routed) routed->parked++;
            ripc_entry_free(e);
            return 0;
        }
        e->redelivered = ripc_failover_may_have_run(s, e) || e->redelivered || redelivered;
        if (ripc_queue_push(&s->requests, (ripc_qnode *)e) != 0) ripc_entry_free(e);
        return 1;
    }
    if (!ripc_entry_field_is(e, RIPC_FIELD_INSTANCE_ID, s->instance_id)) {
        hand_over(s, c, e, b);
        ripc_entry_free(e);
        return 1;
    }
    /* Queued for acknowledgement before the ledger may take the entry. */
    ripc_ack_batch_add(b, e->redis_id);
    int delivered = ripc_ledger_deliver(&s->ledger, e);
    if (delivered == RIPC_WRONG_GROUP)
        ripc_stream_emit(s, RIPC_EVENT_MALFORMED_ENTRY,
                         "reply %s on stream %s answers request %s from group %s, to which that request was not sent: ignored",
                         e->redis_id, s->stream, ripc_entry_field(e, RIPC_FIELD_ID), ripc_entry_field(e, RIPC_FIELD_SOURCE_GROUP));
    else if (delivered == RIPC_UNKNOWN)
        ripc_stream_emit(s, RIPC_EVENT_MALFORMED_ENTRY,
                         "reply %s on stream %s answers request %s, which is not waiting (late or unknown)",
                         e->redis_id, s->stream, ripc_entry_field(e, RIPC_FIELD_ID));
    if (delivered != RIPC_DELIVERED) ripc_entry_free(e);
    return 1;
}

/* A signed stream's entry that fails its check: reported and removed, never handled. */
static void refuse_unverified(ripc_stream *s, ripc_entry *e, const char *why, ripc_ack_batch *b)
{
    ripc_stream_emit(s, RIPC_EVENT_SIGNATURE, "entry %s on stream %s (id %s, from group %s) is refused: %s",
                     e->redis_id, s->stream, ripc_entry_field(e, RIPC_FIELD_ID),
                     ripc_entry_field(e, RIPC_FIELD_SOURCE_GROUP), why);
    ripc_ack_batch_add(b, e->redis_id);
    ripc_entry_free(e);
}

/* On a signed stream, the entries of one read addressed to us are checked
 * (ipc_signing.c) before any is routed: the signature and its age, then,
 * for requests, their replay markers in one round trip. Returns how many
 * entries it took; those it could not check (no clock, markers refused)
 * stay pending, read again later. */
static size_t route_signed(ripc_stream *s, redisContext *c, ripc_entry **read, size_t n, int redelivered,
                           ripc_ack_batch *b, ripc_routed *routed, ripc_error *err)
{
    size_t taken = 0, count = 0;
    long long now = ripc_server_clock_ms(&s->liveness.clock, c, RIPC_SERVER_CLOCK_MAX_AGE, err);
    ripc_entry **requests = ripc_xmalloc((n ? n : 1) * sizeof(*requests));
    size_t *at = ripc_xmalloc((n ? n : 1) * sizeof(*at));
    for (size_t i = 0; i < n && now >= 0; i++) {
        ripc_entry *e = read[i];
        if (e->problem || !ripc_entry_field_is(e, RIPC_FIELD_DESTINATION_GROUP, s->group)) continue; /* as unsigned */
        const char *why = ripc_signing_check(&s->signing, s->stream, e, now);
        if (why) {
            refuse_unverified(s, e, why, b);
            read[i] = NULL;
            taken++;
        } else if (ripc_entry_field_is(e, RIPC_FIELD_STATUS, "pending")) {
            at[count] = i;
            requests[count++] = e;
        }
    }
    int *verdicts = ripc_xmalloc((count ? count : 1) * sizeof(*verdicts));
    char refused[256];
    ripc_signing_mark_seen(&s->signing, c, s->stream, s->group, requests, count, now, verdicts, refused, sizeof(refused), err);
    if (refused[0])
        ripc_stream_refused(s, "SET", refused, "Redis refused the replay marker (SET on %s:%s:seen:*): %s "
                            "(the requests stay pending and are read again %gs later)", s->stream, s->group, refused,
                            s->options.reclaim_idle);
    else if (count && !c->err)
        ripc_stream_accepted(s, "SET");
    for (size_t k = 0; k < count; k++) {
        ripc_entry *e = requests[k];
        if (verdicts[k] == RIPC_SEEN_REPLAY) {
            refuse_unverified(s, e, "it copies a request already seen under the same id (a replay)", b);
            taken++;
        } else if (verdicts[k] == RIPC_SEEN_UNKNOWN) {
            ripc_entry_free(e); /* still pending on the consumer that read it: reclaimed, then checked again */
        } else {
            continue;
        }
        read[at[k]] = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!read[i]) continue;
        if (now < 0) ripc_entry_free(read[i]); /* no clock, so no check: left pending */
        else taken += (size_t)route_one(s, c, read[i], redelivered, b, routed);
    }
    free(verdicts);
    free(requests);
    free(at);
    return taken;
}

size_t ripc_route_and_ack(ripc_stream *s, redisContext *c, int lane, const redisReply *entries, int redelivered,
                          ripc_routed *routed, ripc_ack_batch *held, ripc_error *err)
{
    size_t taken = 0, count = 0;
    if (!entries || entries->type != REDIS_REPLY_ARRAY) return 0;
    int signed_stream = ripc_signing_on(&s->signing);
    ripc_entry **read = signed_stream ? ripc_xmalloc((entries->elements ? entries->elements : 1) * sizeof(*read)) : NULL;
    /* With held, the XACK and XDEL go with the caller's next command. */
    ripc_ack_batch batch;
    ripc_ack_batch_init(&batch, lane);
    ripc_ack_batch *b = held ? &held[lane] : &batch;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *element = entries->element[i];
        /* On the shared stream, much of what a group reads is meant for
         * others: acknowledged without being decoded. */
        if (lane == RIPC_LANE_SHARED && ripc_entry_element_for_other_group(element, s->group) &&
            element->element[0]->type == REDIS_REPLY_STRING) {
            ack_lazily(s, element->element[0]->str);
            taken++;
            continue;
        }
        ripc_entry *e = ripc_entry_from_reply(element, signed_stream);
        if (e && read) read[count++] = e;
        else if (e) taken += (size_t)route_one(s, c, e, redelivered, b, routed);
    }
    if (read) taken += route_signed(s, c, read, count, redelivered, b, routed, err);
    free(read);
    if (!held) ripc_ack_batch_flush(s, c, &batch, 0, err);
    return taken;
}

void ripc_send_lazy_acks(ripc_stream *s, redisContext *c, ripc_error *err)
{
    ripc_ack_batch batch;
    ripc_ack_batch_init(&batch, RIPC_LANE_SHARED);
    ripc_ack_batch_flush(s, c, &batch, 1, err);
}

/* An XREADGROUP reply: [[key, entries], ...], one pair per stream that had entries. */
int ripc_read_lanes(const ripc_stream *s, const redisReply *r, const redisReply *by_lane[RIPC_LANES])
{
    int found = 0;
    for (int lane = 0; lane < RIPC_LANES; lane++) by_lane[lane] = NULL;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *pair = r->element[i];
        if (pair->type != REDIS_REPLY_ARRAY || pair->elements != 2 || pair->element[0]->type != REDIS_REPLY_STRING) continue;
        for (int lane = 0; lane < RIPC_LANES; lane++) {
            if (s->lanes[lane] && strcmp(pair->element[0]->str, s->lanes[lane]) == 0) {
                by_lane[lane] = pair->element[1];
                found = 1;
            }
        }
    }
    return found;
}

size_t ripc_read_entry_limit(const ripc_stream *s)
{
    return s->options.max_content_bytes + RIPC_SCRIPT_KEPT_VALUE;
}

size_t ripc_read_budget(const ripc_stream *s)
{
    size_t budget = RIPC_READ_BUDGET * s->options.max_content_bytes, limit = ripc_read_entry_limit(s);
    return budget > limit ? budget : limit;
}

size_t ripc_route_history(ripc_stream *s, redisContext *c, int lane, const char *consumer, int count, int redelivered,
                          ripc_routed *routed, int *complete, ripc_error *err)
{
    char from[80] = "0";
    size_t taken = 0;
    *complete = 0;
    for (int page = 0; page < 64 && !c->err; page++) {
        /* Through a script that measures the entries first: the history may
         * hold entries a read of new ones abandoned for their size. */
        redisReply *r = ripc_script_history_page(c, s->lanes[lane], s->group, consumer, from, count, ripc_read_budget(s),
                                                 ripc_read_entry_limit(s), err);
        if (!r) return taken;
        /* Keyed apart from the dispatchers' reads of new entries, which clear their own. */
        ripc_stream_note_reply(s, "history XREADGROUP", "XREADGROUP of this instance's pending entries", r);
        const redisReply *by_lane[RIPC_LANES];
        ripc_read_lanes(s, r, by_lane);
        const redisReply *entries = by_lane[lane];
        const redisReply *last = entries && entries->type == REDIS_REPLY_ARRAY && entries->elements > 0
                                 ? entries->element[entries->elements - 1] : NULL;
        if (!last) *complete = 1; /* the end, or an error reply: nothing more to read */
        int paged = last && last->type == REDIS_REPLY_ARRAY && last->elements >= 1 && last->element[0]->type == REDIS_REPLY_STRING;
        if (paged) snprintf(from, sizeof(from), "%s", last->element[0]->str);
        size_t parked = routed->parked;
        if (last) taken += ripc_route_and_ack(s, c, lane, entries, redelivered, routed, NULL, err);
        freeReplyObject(r);
        /* No room left: what follows stays parked, read again later. */
        if (!paged || routed->parked > parked) return taken;
    }
    return taken;
}
