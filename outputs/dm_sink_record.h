/* dm_sink_record.h - the records a webhook sink holds, from the moment a read or a claim hands
 * a stream entry over (dm_sink_take) until it leaves this instance: delivered and
 * acknowledged, dead-lettered, or abandoned to the instance that took it over. The rules
 * (what is retried, when a record is dead-lettered, the headers) are dm_sink.h's "Delivery".
 *
 * Ownership: a dm_sink_held (one per sink, in the sink's reader) owns its records. A record is
 * freed in exactly one place (drop, in dm_sink_record.c), always from the completion of its
 * last step (XACK or sink_dead.lua answered; the XACKs of the records delivered in one loop
 * turn go out together, one command per shard) or from a claim refresh that shows it is no
 * longer ours (dm_sink_abandon: at once when no Redis command of the record is in flight, else
 * from that command's completion). At most one asynchronous step of a record is outstanding
 * at any time (an HTTP attempt, a timer, or one Redis command), so a completion never finds
 * its record freed; claim refreshes refer to records by shard and id, not by pointer. Once
 * all->stopping is set the completions do nothing, so dm_sink_held_clear may run after the
 * Redis clients were freed (their callbacks ran then, with DM_EUNAVAIL).
 */
#ifndef DM_OUTPUTS_DM_SINK_RECORD_H
#define DM_OUTPUTS_DM_SINK_RECORD_H

#include "dm_sink_group.h"

#include <sys/queue.h>

struct event;
struct redisReply;

/** Largest response body read from a sink (a bigger one still counts by its status). */
#define DM_SINK_MAX_RESPONSE (64 * 1024)

/** How a delivery's answer is treated. */
typedef enum {
    DM_SINK_DELIVERED = 0, /**< 2xx */
    DM_SINK_RETRY,         /**< transport failure (status 0), 408, 425, 429, 5xx */
    DM_SINK_PERMANENT,     /**< anything else: dead-letter at once */
} dm_sink_outcome;

/** Classify an HTTP status (0: no response). */
dm_sink_outcome dm_sink_classify(int status);

/**
 * Delay before the retry that follows failed attempt number @p attempt (1-based):
 * d = min(backoff_max_ms, backoff_initial_ms * 2^(attempt-1)), then d/2 + (@p rnd mod
 * (d/2 + 1)) (jitter); a @p retry_after_ms >= 0 (from Retry-After) raises it to at least
 * min(retry_after_ms, backoff_max_ms). Pure.
 */
int64_t dm_sink_retry_delay_ms(int attempt, int backoff_initial_ms, int backoff_max_ms,
                               int64_t retry_after_ms, uint32_t rnd);

typedef struct dm_sink_rec dm_sink_rec;

/** The records one sink holds. */
typedef struct dm_sink_held {
    dm_sink_group *g;                     /**< the sink's group (borrowed) */
    LIST_HEAD(, dm_sink_rec) recs;        /**< owned */
    size_t n;                             /**< records in recs */
    void (*on_leave)(void *on_leave_arg); /**< a record left: there is room for another */
    void *on_leave_arg;
    struct evp_mac_ctx_st *mac;    /**< HMAC-SHA256 keyed with the sink's secret (owned), or NULL:
                                     dm_sign_body then */
    LIST_HEAD(, dm_sink_rec) acks; /**< delivered records whose XACK is not sent yet */
    struct event *ack_ev; /**< sends them, one XACK per shard and loop turn (owned; NULL: each
                               record sends its own) */
} dm_sink_held;

/** An empty set for group @p g; @p on_leave runs (with @p arg) each time a record leaves. */
void dm_sink_held_init(dm_sink_held *h, dm_sink_group *g, void (*on_leave)(void *arg), void *arg);

/** Free every record, without acknowledging anything (they stay pending in Redis), and the
 *  set's own state. For stop only: see "Ownership" above. */
void dm_sink_held_clear(dm_sink_held *h);

/**
 * Take over one stream entry [id, fields] of @p shard handed over by a read or (@p claimed) a
 * claim: deliver it; or acknowledge it at once when its type is filtered out or it was trimmed
 * meanwhile; or dead-letter it when it is not a record. An entry already held is ignored.
 */
void dm_sink_take(dm_sink_held *h, unsigned shard, const struct redisReply *entry, bool claimed);

/** The record of entry @p id of @p shard, or NULL. */
dm_sink_rec *dm_sink_find(const dm_sink_held *h, unsigned shard, const char *id);

/** Call @p fn with the shard and entry id of every record held. */
void dm_sink_held_each(const dm_sink_held *h, void (*fn)(unsigned shard, const char *id, void *arg),
                       void *arg);

/**
 * The record is no longer pending in our name (another instance took it over and delivers
 * it, or it was acknowledged or deleted): leave it without acknowledging it, and log @p why
 * and the new @p owner (NULL: none). When its XACK or sink_dead.lua is in flight, the answer
 * ends it.
 */
void dm_sink_abandon(dm_sink_rec *r, const char *why, const char *owner);

#endif
