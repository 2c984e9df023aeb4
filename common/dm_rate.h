/* dm_rate.h - token buckets: the arithmetic of one bucket, and a bounded table of buckets
 * named by strings that forgets the least recently used one when it is full.
 *
 * Nothing here reads a clock or takes a lock: every call gets the time (milliseconds of a
 * monotonic clock) from its caller, so unit tests drive it with a test clock, and a table is
 * protected by whoever owns it (the request quotas, dm_quota.h; the SNS certificate fetches,
 * dm_keyring.h).
 */
#ifndef DM_COMMON_DM_RATE_H
#define DM_COMMON_DM_RATE_H

#include "dm_common.h"

/** A token bucket: @p per_second tokens a second, at most @p burst. Zeroed = not yet used. */
typedef struct dm_bucket {
    double tokens;   /**< tokens left as of last_ms */
    int64_t last_ms; /**< when tokens was last brought up to date */
    bool started;    /**< false: the bucket is full (a new bucket starts with burst tokens) */
} dm_bucket;

/**
 * Bring @p b up to @p now_ms (a time earlier than the last one counts as no time passed) and
 * return the milliseconds until it holds one whole token: 0 when it holds one now.
 */
int64_t dm_bucket_wait_ms(dm_bucket *b, double per_second, double burst, int64_t now_ms);

/** Take one token from @p b, which dm_bucket_wait_ms just found holding one. */
void dm_bucket_take(dm_bucket *b);

/**
 * dm_bucket_wait_ms, then take a token if there is one. Returns true when taken; otherwise
 * false and *@p wait_ms (may be NULL) is the time until one is available.
 */
bool dm_bucket_try(dm_bucket *b, double per_second, double burst, int64_t now_ms, int64_t *wait_ms);

/** Whole seconds for a Retry-After header: @p wait_ms rounded up, at least 1. */
int64_t dm_rate_retry_after_s(int64_t wait_ms);

/** A bounded table of buckets named by strings. Not thread-safe: its owner locks. */
typedef struct dm_rate_table dm_rate_table;

/** A table holding at most @p max buckets (at least 1). */
dm_rate_table *dm_rate_table_new(size_t max);

/** Free @p t and its buckets (NULL is fine). */
void dm_rate_table_free(dm_rate_table *t);

/**
 * The bucket named @p key (@p len bytes, any bytes), marked as the most recently used; created
 * full when absent, and then, if the table was full, the least recently used bucket is forgotten
 * (*@p evicted, may be NULL, is set to whether one was). The pointer is valid until the next
 * call on @p t.
 */
dm_bucket *dm_rate_table_get(dm_rate_table *t, const char *key, size_t len, bool *evicted);

/** Buckets held. */
size_t dm_rate_table_count(const dm_rate_table *t);

#endif
