/* dm_replay.h - the spool's replayer: parks spooled events in Redis once it takes them again
 * (docs/spool.md).
 *
 * It reads the oldest segment (dm_spool_load_oldest), parks its events in order through
 * park.lua with their original arrival time (read back with dm_event_from_json, parked with
 * dm_join_submit_at), so the window applies as if they had arrived on time, and removes the
 * segment (dm_spool_remove) only when every event of it is parked, and, with
 * redis.wait_replicas, confirmed by that many replicas. Anything that fails for now (Redis gone
 * again, a timeout, or any error reply but the join script's own: over its
 * maxmemory, READONLY during a failover, LOADING, …) leaves the segment in place, and it is
 * replayed again after a backoff: parking is idempotent, so events parked twice produce nothing
 * twice. A record the join script itself fails on, or that cannot be read, would fail every
 * time: it goes to the spool's dead-letter file (dm_spool_dead_letter), logged and counted
 * (digestmap_spool_dead_letter_total), never just deleted. A request's OIDC token (its jti) is checked again at replay: a token
 * that another request used while Redis was away is refused then, logged and counted
 * (digestmap_spool_replay_refused_total), instead of joining twice.
 *
 * It has a Redis connection of its own, so live requests never queue behind a backlog, and at
 * most a few commands in flight on it. One replayer per process: worker 1 (receiver/dm_worker.c)
 * owns it and frees it on its own thread before its event_base; the spool's directory lock
 * (dm_spool.h) keeps a second process off the same spool.
 */
#ifndef DM_SPOOL_DM_REPLAY_H
#define DM_SPOOL_DM_REPLAY_H

#include "dm_join.h"
#include "dm_redis.h"
#include "dm_spool.h"

typedef struct dm_replay_conf {
    struct event_base *base;
    dm_spool *spool;            /**< borrowed; outlives the replayer */
    const dm_redis_opts *redis; /**< its connection's settings (copied; on_ready and
                                           max_inflight are the replayer's own) */
    const dm_join_conf *join;   /**< borrowed for the replayer's life */
    int wait_replicas;          /**< redis.wait_replicas */
    int wait_timeout_ms;        /**< WAIT's timeout */
} dm_replay_conf;

typedef struct dm_replay dm_replay;

/** Start replaying whenever the spool holds events and Redis is ready. NULL when out of
 *  memory. */
dm_replay *dm_replay_new(const dm_replay_conf *c);

/** Stop (a segment being replayed stays in the spool) and free. NULL is fine. */
void dm_replay_free(dm_replay *r);

#endif
