/* dm_trim.h - keeps each output stream near outputs.stream_maxlen entries without ever
 * removing one that a protected consumer group has not acknowledged (trim.lua).
 *
 * Protected groups are the webhook sinks' (every "digestmap:<name>" group, configured here or
 * not, so instances whose outputs differ during a rolling change still agree) and
 * outputs.stream_groups.
 * While one lags, its stream grows past the limit: memory is traded for no loss. A group
 * whose backlog passes DM_TRIM_WARN_PERCENT of the limit, or which holds trimming back while
 * Redis gives no lag figure for it (Redis 6.2; a group created at an arbitrary id: the stream
 * length is logged then), is logged (msg="consumer group lagging", at most once a minute per
 * group and shard), and the largest known backlog is reported to the caller for a gauge.
 *
 * Every instance may trim the same streams: the script is idempotent, so no lease is needed.
 * One tick at a time, one shard at a time, at most DM_TRIM_MAX_REMOVE entries per call (a
 * large backlog is removed over several calls, never in one long script: 1000 entries of 2 KB
 * keep Redis busy ~15 ms).
 */
#ifndef DM_OUTPUTS_DM_TRIM_H
#define DM_OUTPUTS_DM_TRIM_H

#include "dm_join.h"

struct event_base;

#define DM_TRIM_WARN_PERCENT 80
#define DM_TRIM_MAX_REMOVE   1000

typedef struct dm_trim_stats {
    long long trimmed;     /**< entries removed this tick, all shards */
    long long max_backlog; /**< largest backlog of a protected group (-1: none known) */
    bool complete;         /**< every shard answered */
} dm_trim_stats;

typedef void (*dm_trim_cb)(const dm_trim_stats *st, void *arg);

typedef struct dm_trimmer dm_trimmer;

/**
 * Trim every @p interval_ms through @p redis (borrowed, must outlive the trimmer). @p conf
 * (prefix, shards, stream_maxlen) and @p groups (the protected group names, @p ngroups of
 * them) are borrowed too. @p cb (may be NULL) runs after each tick on the loop's thread.
 */
dm_trimmer *dm_trimmer_new(struct event_base *base, dm_redis *redis, const dm_join_conf *conf,
                           int interval_ms, const char *const *groups, size_t ngroups,
                           dm_trim_cb cb, void *arg);

/** Stop and free; a call in flight finishes harmlessly. NULL is fine. */
void dm_trimmer_free(dm_trimmer *t);

#endif
