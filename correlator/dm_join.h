/* dm_join.h - the join: one atomic script call per event (DESIGN §4, §5).
 *
 * Key names carry the shard's hash tag "{s}" even with one shard, so every key one script
 * touches lives in one hash slot (Redis Cluster ready) and the layout never changes shape.
 */
#ifndef DM_CORRELATOR_DM_JOIN_H
#define DM_CORRELATOR_DM_JOIN_H

#include "dm_event.h"
#include "dm_redis.h"

/** Script numbers in dm_join_scripts(); pass the array to dm_redis_opts.scripts. */
enum {
    DM_SCRIPT_PARK = 0,
    DM_SCRIPT_QUERY,
    DM_SCRIPT_SWEEP_CLAIM,
    DM_SCRIPT_SWEEP_REPORT,
    DM_SCRIPT_MAPPINGS,   /**< mappings.lua: one page of an index (GET /v1/mappings) */
    DM_SCRIPT_TRIM,       /**< trim.lua: trim an output stream, sparing protected groups */
    DM_SCRIPT_SINK_DEAD,  /**< sink_dead.lua: dead-letter a record and acknowledge it */
    DM_SCRIPT_SINK_PRUNE, /**< sink_prune.lua: remove a sink group's stale consumers */
    DM_SCRIPT_COUNT
};

/** The Lua sources, indexed by DM_SCRIPT_* (static storage). */
const char *const *dm_join_scripts(void);

typedef struct dm_join_conf {
    const char *prefix; /**< borrowed; e.g. "dm" */
    unsigned shards;
    int64_t window_ms, grace_ms, max_skew_ms, mapping_ttl_ms;
    long long stream_maxlen;
    bool report_untagged; /**< report unmatched untagged platform manifests too */
} dm_join_conf;

/** Largest key name dm_join_key() writes. */
#define DM_KEY_BUFLEN 160

/**
 * Write "<prefix>:{<shard>}:<kind>:<digest>" (or "<prefix>:{<shard>}:<kind>" when @p digest
 * is NULL) into @p buf. kind: "r", "b", "m", "d" (per digest), "due", "out", "stats".
 */
void dm_join_key(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard, const char *kind,
                 const char *digest);

typedef struct dm_join_result {
    int edges;     /**< new mapping edges emitted to the stream */
    int duplicate; /**< 1 if the event was seen before and produced nothing new */
    int skewed;    /**< 1 if its event time was replaced by the arrival time */
    int deleted;   /**< 1 if a delete record was emitted */
} dm_join_result;

/** Completion: @p err DM_OK with @p res, or DM_EUNAVAIL / DM_ETIMEOUT / DM_EREDIS (res NULL). */
typedef void (*dm_join_cb)(int err, const dm_join_result *res, void *arg);

/**
 * Park @p ev and join it with the other side. The event is serialized immediately (the
 * caller may free it on return). Returns as dm_redis_eval: on DM_OK the callback will run.
 */
int dm_join_submit(dm_redis *r, const dm_join_conf *conf, const dm_event *ev, dm_join_cb cb,
                   void *arg);

#endif
