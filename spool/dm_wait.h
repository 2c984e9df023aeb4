/* dm_wait.h - WAIT for redis.wait_replicas replicas, coalesced per connection (docs/spool.md).
 *
 * WAIT N T confirms the writes made on the connection it is sent on, and blocks that connection
 * until it answers: Redis processes nothing else on it meanwhile. One WAIT per request would
 * make requests queue behind each other's WAITs (with a replica down, a WAIT timeout each)
 * until the command deadline tears the connection down. So a waiter keeps at most one WAIT in
 * flight per connection (per master on a cluster: dm_redis_route_conn): a caller whose writes
 * completed while one is in flight joins the next WAIT, sent as soon as that one answers, and
 * every caller a WAIT covered gets its answer. A command sent on the connection waits behind at
 * most one WAIT: with T at most half of redis.command_timeout_ms its deadline never fires just
 * because of the WAIT.
 *
 * Ownership: the owner of @p redis (a worker, the replayer) makes the waiter after it and frees
 * it after it: dm_redis_free completes the WAIT in flight (not confirmed), and the callers queued
 * behind it get "not confirmed" at once. One thread, like its dm_redis.
 */
#ifndef DM_SPOOL_DM_WAIT_H
#define DM_SPOOL_DM_WAIT_H

#include "dm_redis.h"

typedef struct dm_waiter dm_waiter;

/** A waiter sending WAIT @p replicas @p timeout_ms on @p redis (borrowed; outlives the
 *  waiter's last completion). */
dm_waiter *dm_waiter_new(dm_redis *redis, int replicas, int timeout_ms);

/** Free (NULL is fine; safe inside one of its completions). Every WAIT must be answered:
 *  free the dm_redis first. */
void dm_waiter_free(dm_waiter *w);

/** Completion: @p confirmed when at least the replicas asked for have every write the
 *  connection completed before the caller asked. */
typedef void (*dm_waiter_cb)(bool confirmed, void *arg);

/**
 * Confirm the writes already answered on the connection of @p route (a key of the shard that
 * was written). Returns DM_OK (@p cb runs once, never inside this call), or DM_EUNAVAIL when
 * Redis is not ready for that route (@p cb does not run).
 */
int dm_waiter_wait(dm_waiter *w, const char *route, dm_waiter_cb cb, void *arg);

/** WAITs sent so far (for tests and logs). */
long long dm_waiter_sent(const dm_waiter *w);

#endif
