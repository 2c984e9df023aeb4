/* dm_join.h - the join: one atomic script call per event (lua/park.lua).
 *
 * An event is parked under its digest for the correlation window, the other side's parked
 * items are probed, and every pair within the window becomes an edge: a mapping record on the
 * shard's output stream, written once however often the event is delivered.
 */
#ifndef DM_CORRELATOR_DM_JOIN_H
#define DM_CORRELATOR_DM_JOIN_H

#include "dm_event.h"
#include "dm_redis.h"

typedef struct dm_join_conf {
    const char *prefix; /**< borrowed; e.g. "dm" */
    unsigned shards;
    int64_t window_ms, grace_ms, max_skew_ms, mapping_ttl_ms;
    long long stream_maxlen;
    bool report_untagged; /**< report unmatched untagged platform manifests too */
    /** Per-digest bounds (limits.*, configs/README.md), each >= 1: parked builds, parked
     * registry locations (and delete records), tags per location, build and mapping. */
    int max_builds, max_locations, max_tags;
} dm_join_conf;

typedef struct dm_join_result {
    int edges;     /**< new mapping edges emitted to the stream */
    int duplicate; /**< 1 if the event was seen before and produced nothing new */
    int skewed;    /**< 1 if its event time was replaced by the arrival time */
    int deleted;   /**< 1 if a delete record was emitted */
    int evicted;   /**< items of the digest dropped by the bounds (already counted in
                        digestmap_items_evicted_total) */
} dm_join_result;

/**
 * Completion: @p err DM_OK with @p res, or DM_EUNAVAIL / DM_ETIMEOUT / DM_EREDIS (res NULL).
 * A Redis over its maxmemory refuses the event (DM_EREDIS, counted in
 * digestmap_redis_oom_total): nothing of it was written.
 */
typedef void (*dm_join_cb)(int err, const dm_join_result *res, void *arg);

/**
 * Park @p ev and join it with the other side. The event is serialized immediately (the
 * caller may free it on return). Returns as dm_redis_eval: on DM_OK the callback will run.
 */
int dm_join_submit(dm_redis *r, const dm_join_conf *conf, const dm_event *ev, dm_join_cb cb,
                   void *arg);

#endif
