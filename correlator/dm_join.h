/* dm_join.h - the join: one atomic script call per event (lua/park.lua).
 *
 * An event is parked under its digest for the correlation window, the other side's parked
 * items are probed, and every pair within the window becomes an edge: a mapping record on the
 * shard's output stream, written once however often the event is delivered.
 */
#ifndef DM_CORRELATOR_DM_JOIN_H
#define DM_CORRELATOR_DM_JOIN_H

#include "dm_config.h"
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
    /** Findings routing after a confirmed edge (docs/findings.md): routing.min_severity (a
     *  dm_severity) and correlation.findings_ttl_seconds in ms; 0 ttl: no routing;
     *  limits.max_findings_per_digest, which bounds the routed set (0: unbounded). */
    int min_severity, max_findings;
    int64_t findings_ttl_ms;
} dm_join_conf;

/** @p j from the configuration @p c (whose strings it borrows). */
void dm_join_conf_init(dm_join_conf *j, const dm_config *c);

/**
 * The Lua sources (dm_scripts' list, DM_SCRIPT_COUNT of them) with park.lua made for @p j: its
 * configuration written into the script as constants (lua/park.lua says which), so that no
 * call passes it or parses it. For dm_redis_opts.scripts; static storage, one list per
 * distinct configuration, thread-safe.
 */
const char *const *dm_join_scripts(const dm_join_conf *j);

typedef struct dm_join_result {
    int edges;     /**< new mapping edges emitted to the stream */
    int duplicate; /**< 1 if the event was seen before and produced nothing new */
    int skewed;    /**< 1 if its event time was replaced by the arrival time */
    int deleted;   /**< 1 if a delete record was emitted */
    int evicted;   /**< items of the digest dropped by the bounds (already counted in
                        digestmap_items_evicted_total) */
    int oom;       /**< with DM_EREDIS: 1 when Redis refused the event over its maxmemory */
    /** With DM_EREDIS: 1 when Redis refused the event for now with an error reply that is not
     *  the script's own (over maxmemory, READONLY during a failover, LOADING, BUSY, MISCONF,
     *  NOPERM, CLUSTERDOWN, TRYAGAIN, MASTERDOWN, …): nothing of it was written. */
    int refused;
    int routed; /**< finding.routed records appended after the edges (already counted in
                     digestmap_findings_routed_records_total) */
} dm_join_result;

/**
 * Completion: @p err DM_OK with @p res, or DM_EUNAVAIL / DM_ETIMEOUT / DM_EREDIS. With
 * DM_EREDIS, @p res is NULL for park.lua's own runtime error ("ERR user_script:…", "Error
 * running script", or a command inside the script refused for good, such as WRONGTYPE), or
 * has @c refused set for every other error reply (and @c oom too when Redis was over its
 * maxmemory, counted in digestmap_redis_oom_total): nothing of it was written, and it may be
 * tried again later (dm_join_retryable). docs/spool.md says which is which.
 */
typedef void (*dm_join_cb)(int err, const dm_join_result *res, void *arg);

/**
 * Park @p ev and join it with the other side, as arrived now (this process's CLOCK_REALTIME,
 * dm_now_ms: park.lua does not read Redis's clock, docs/park-path.md "Whose clock"). The event
 * is serialized immediately (the caller may free it on return). Returns as dm_redis_eval: on
 * DM_OK the callback will run.
 */
int dm_join_submit(dm_redis *r, const dm_join_conf *conf, const dm_event *ev, dm_join_cb cb,
                   void *arg);

/**
 * dm_join_submit of an event that arrived at @p arrival_ms (ms since the epoch, dm_now_ms's
 * clock; 0 or later than now: now). The spool's replayer (spool/dm_replay.h) passes the
 * original arrival, so the window applies as if the event had arrived on time (park.lua,
 * ARGV 5 and 6).
 */
int dm_join_submit_at(dm_redis *r, const dm_join_conf *conf, const dm_event *ev, int64_t arrival_ms,
                      dm_join_cb cb, void *arg);

/**
 * Whether a completion says Redis could not take the event for now (down, timed out, or any
 * error reply but the script's own: over its maxmemory, a replica during a failover, loading,
 * …), so keeping it (the spool) and trying again later can succeed; a script error cannot.
 */
bool dm_join_retryable(int err, const dm_join_result *res);

/**
 * park.lua's reply decoded (its header: one integer, bit 1 duplicate, bit 2 delete recorded,
 * bits 3-4 finding.routed records, bits 5-25 items evicted, from bit 26 edges); `skewed` and
 * `refused` are not in it (false). A negative integer decodes as nothing at all.
 */
dm_join_result dm_join_park_result(long long v);

/** The key that routes commands to the shard of @p digest (its output stream, @p buf of
 *  DM_KEY_BUFLEN): a WAIT after a park goes where the park went. Returns @p buf. */
char *dm_join_route_key(char *buf, const dm_join_conf *conf, const char *digest);

#endif
