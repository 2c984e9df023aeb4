/* dm_sweep.h - the sweeper: reports parked items whose retention ended without an edge.
 *
 * Every instance may sweep the same Redis: items are claimed atomically with a lease
 * (sweep_claim.lua) and reported by the lease holder only (sweep_report.lua), so each item
 * is reported exactly once. Work per tick is bounded (batch items per shard), and one tick
 * is in flight at a time, so a backlog never stalls the event loop: it drains over ticks.
 */
#ifndef DM_CORRELATOR_DM_SWEEP_H
#define DM_CORRELATOR_DM_SWEEP_H

#include "dm_join.h"

struct event_base;

/** Outcome of one tick, for metrics. */
typedef struct dm_sweep_stats {
    int unmatched_registry, unmatched_build; /**< records emitted this tick */
    int64_t lag_ms; /**< now − oldest expiry claimed this tick (0 if none) */
    int64_t parked_registry, parked_build; /**< parked items across shards (Redis counters) */
    bool complete; /**< every shard answered (else the figures are partial) */
} dm_sweep_stats;

typedef void (*dm_sweep_cb)(const dm_sweep_stats *stats, void *arg);

typedef struct dm_sweeper dm_sweeper;

/**
 * Start sweeping every @p interval_ms through @p redis (borrowed; must outlive the sweeper),
 * claiming at most @p batch items per shard per tick. @p conf is borrowed. @p cb (may be
 * NULL) runs after each tick on the loop's thread.
 */
dm_sweeper *dm_sweeper_new(struct event_base *base, struct dm_redis *redis,
                           const dm_join_conf *conf, int interval_ms, int batch, dm_sweep_cb cb,
                           void *arg);

/**
 * Stop and free. NULL is fine. Commands still in flight finish harmlessly: the sweeper stays
 * (inert: nothing more is sent, @c cb no longer runs) until the last of them completes, so
 * it may be freed before its connection, or from inside @c cb.
 */
void dm_sweeper_free(dm_sweeper *s);

#endif
