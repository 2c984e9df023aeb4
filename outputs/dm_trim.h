/* dm_trim.h - keeps each output stream near outputs.stream_maxlen entries without removing one
 * that a protected consumer group has not acknowledged (trim.lua), unless that group is more
 * than outputs.max_group_lag entries behind; and caps each shard's dead-letter stream.
 *
 * Protected groups are the webhook sinks' (every "digestmap:<name>" group, configured here or
 * not, so instances whose outputs differ during a rolling change still agree) and
 * outputs.stream_groups.
 * While one lags, its stream grows past the limit: memory is traded for no loss, up to
 * max_group_lag. A group whose backlog passes DM_TRIM_WARN_PERCENT of the limit, or which
 * holds trimming back while Redis gives no lag figure for it (Redis 6.2; a group created at an
 * arbitrary id: the entries from its position on are logged then), is logged (msg="consumer group lagging", at
 * most once a minute per group and shard), and the largest known backlog is reported to the
 * caller for a gauge.
 *
 * A dead consumer cannot grow a stream without end: a group whose backlog passes
 * max_group_lag no longer holds trimming back, so the stream is cut to stream_maxlen past its
 * position and it loses the oldest records it had not acknowledged: counted
 * (digestmap_group_lag_dropped_total) and logged (msg="consumer group too far behind: records
 * trimmed", warn, at most once a minute per group and shard, with the count since the last
 * line). Once trimmed, its backlog is back under the limit and it holds trimming again, so the
 * stream stays within about max(stream_maxlen, max_group_lag) entries plus one interval's
 * records.
 *
 * The dead-letter stream <prefix>:{s}:dead (sink_dead.lua appends to it untrimmed) is cut to
 * its newest stream_maxlen entries on every tick: the entries removed are counted
 * (digestmap_sink_dead_dropped_total) and logged (msg="dead-letter stream capped: oldest
 * entries dropped", warn, at most once a minute per shard, with the count since the last line).
 *
 * Every instance may trim the same streams: the script is idempotent, so no lease is needed.
 * One tick at a time, one shard at a time, at most DM_TRIM_MAX_REMOVE entries per stream and
 * call (a large backlog is removed over several calls, never in one long script: 1000 entries
 * of 2 KB keep Redis busy ~15 ms).
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
 * them) are borrowed too. @p max_group_lag (>= 1; outputs.max_group_lag) is the backlog past
 * which a group no longer holds trimming back. @p cb (may be NULL) runs after each tick on the
 * loop's thread. The dropped-entry counters are added here, not by @p cb.
 */
dm_trimmer *dm_trimmer_new(struct event_base *base, dm_redis *redis, const dm_join_conf *conf,
                           int interval_ms, long long max_group_lag, const char *const *groups,
                           size_t ngroups, dm_trim_cb cb, void *arg);

/** Stop and free; a call in flight finishes harmlessly. NULL is fine. */
void dm_trimmer_free(dm_trimmer *t);

#endif
