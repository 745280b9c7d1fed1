/* The housekeeper (ipc_housekeeper.c): a stream's chores, run by the
 * service thread (ipc_service.c). */
#ifndef RIPC_HOUSEKEEPER_H
#define RIPC_HOUSEKEEPER_H

struct ripc_stream;

/* When each of the housekeeper's chores is next due (ripc_now()). */
typedef struct ripc_chores {
    double ledger, inbox, reclaim, trim, routes;
    int inbox_all_lanes;  /* the next inbox sweep looks at the direct lanes too */
} ripc_chores;

/* reset: every chore due afresh (connect); tick: runs what is due (the
 * service thread), returns when to run again. */
void ripc_housekeeper_reset(struct ripc_stream *s);
double ripc_housekeeper_tick(struct ripc_stream *s);
/* ripc_service_nudge (ipc_service.h) makes the chores run sooner. */
/* While a sender waits, replies handed to our inbox must be seen this quickly. */
#define RIPC_INBOX_BUSY 0.02

#endif
