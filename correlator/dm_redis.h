/* dm_redis.h - the Redis client of one event_base (hiredis 0.14 + libevent): one server, or a
 * Redis Cluster router (docs/redis-cluster-router.md).
 *
 * Each connection (dm_rconn, internal) resolves a host name asynchronously (evdns, before
 * every attempt), connects, authenticates, selects the database and loads the Lua scripts, and
 * only then is "ready". It reconnects by itself with capped exponential backoff. Every command
 * has a deadline; when one expires while the command is on a connection, that connection is
 * torn down, which fails every command in flight on it (FIFO order means the ones behind it
 * could not be answered anyway), and a new connection is made.
 *
 * Without opts.cluster there is exactly one connection and every command goes to it. With it,
 * the url's node seeds the topology (CLUSTER SLOTS), every master gets a connection, each
 * command goes to the master of its route key's slot, and MOVED, ASK, TRYAGAIN, CLUSTERDOWN
 * and master failovers are followed inside the command's deadline; the caller sees the same
 * completions as with one server. A client that serves one shard only (opts.only_route) connects
 * to the master of that shard's slot alone.
 * Not thread-safe: use one dm_redis per thread, from that thread's event_base only.
 */
#ifndef DM_CORRELATOR_DM_REDIS_H
#define DM_CORRELATOR_DM_REDIS_H

#include "dm_common.h"

struct event_base;
struct redisReply;

typedef struct dm_redis_opts {
    const char *host; /**< IP literal or DNS name (resolved with evdns) for TCP, or NULL */
    int port;
    const char *unix_path; /**< unix socket path, or NULL */
    const char *username;  /**< ACL user for AUTH (Redis 6+), or NULL for the default user */
    const char *password;  /**< AUTH password, or NULL */
    int db;                /**< must be 0 with cluster (no SELECT is sent then) */
    bool cluster; /**< Redis Cluster: host:port is the seed node; unix_path is not allowed */
    /**
     * Cluster only, else ignored: a key (copied), or NULL. The client then serves that key's
     * slot alone (e.g. one shard's blocking reads): it keeps a connection to the master of that
     * slot only (following MOVED and failovers to the next one), not one per master; it is
     * ready when that master is; a command for another slot is refused with DM_EUNAVAIL.
     */
    const char *only_route;
    int connect_timeout_ms;
    int command_timeout_ms;
    int max_inflight; /**< commands in flight before dm_redis_* answers DM_EBUSY */
    const char *const
        *scripts; /**< Lua sources loaded at connect (borrowed for the client's life) */
    size_t nscripts;
    const char *name; /**< for log lines, e.g. "worker-1" */
    /** Called on the client's thread when it becomes ready (true) or stops being ready. */
    void (*on_ready)(bool ready, void *arg);
    void *on_ready_arg;
} dm_redis_opts;

typedef struct dm_redis dm_redis;

/**
 * Completion of one command, called exactly once and never from inside the call that queued
 * it. @p err is DM_OK with @p reply set (borrowed: valid only during the callback; it may be
 * a Redis error reply), or DM_EUNAVAIL / DM_ETIMEOUT with @p reply NULL.
 */
typedef void (*dm_redis_cb)(int err, struct redisReply *reply, void *arg);

/** Create the client and start connecting. @p opts strings are copied (the scripts are
 *  borrowed). NULL when a resolver for a host name cannot be set up. */
dm_redis *dm_redis_new(struct event_base *base, const dm_redis_opts *opts);

/**
 * Fail everything in flight (callbacks run with DM_EUNAVAIL) and free. NULL is fine. Safe from
 * inside one of this client's own callbacks (e.g. the last answer of a draining worker): the
 * commands queued behind then fail as soon as that callback returns, each callback still runs
 * once, and the memory goes after the last of them. Nothing new is accepted meanwhile.
 */
void dm_redis_free(dm_redis *r);

/** True when connected, authenticated and the scripts are loaded: on a cluster, when the
 *  topology is known and so is every connection to a master that serves slots (with
 *  opts.only_route: the connection to the master of that slot). */
bool dm_redis_ready(const dm_redis *r);

/**
 * Whether a command for @p route can be queued now: on a cluster, when the master of that key's
 * slot is connected and ready (whatever the other masters do; @p route NULL: any master);
 * without cluster, as dm_redis_ready. A caller that writes many shards uses this to send what
 * can go now and keep (spool) only what belongs to a master that is away.
 */
bool dm_redis_ready_for(const dm_redis *r, const char *route);

/**
 * Reconnect now every connection that is waiting out a backoff delay (e.g. another connection
 * to the same server just succeeded, so the server is back), and read a cluster's topology now
 * if a refresh is waiting. No effect otherwise.
 */
void dm_redis_kick(dm_redis *r);

/** Commands queued and not yet answered. */
size_t dm_redis_inflight(const dm_redis *r);

/** Commands that can be queued now (0 when not ready, on a cluster when any master is not),
 *  so a caller can refuse a batch whole. */
size_t dm_redis_room(const dm_redis *r);

/** As dm_redis_room, but 0 only when dm_redis_ready_for(@p route) is false: with @p route NULL,
 *  room as long as any master is ready (the commands for a master that is away are then refused
 *  one by one with DM_EUNAVAIL). */
size_t dm_redis_room_for(const dm_redis *r, const char *route);

/**
 * Queue a command (binary-safe argv). @p route is the key (NUL-terminated) whose hash slot
 * picks the server on Redis Cluster: the command's key, or for a keyless command that must go
 * where a key lives (WAIT after a write), that key; NULL for a command any node can answer
 * (PING). Every key of one command must be in one slot. Returns DM_OK (the callback will run),
 * DM_EUNAVAIL when not ready (or @p r is NULL; on a cluster: when the connection to the master
 * of that slot is not ready, or no master serves it), or DM_EBUSY when max_inflight is reached
 * (the callback will not run). On a cluster a command redirected too often (5 times), or still
 * refused with TRYAGAIN/CLUSTERDOWN at its deadline, completes with DM_EUNAVAIL.
 */
int dm_redis_command(dm_redis *r, const char *route, dm_redis_cb cb, void *arg, int argc,
                     const char **argv, const size_t *lens);

/**
 * Which connection the commands for @p route go to now: 0 without cluster; on a cluster the
 * number of the master that serves its slot (stable while the topology is), or -1 when none is
 * known. For a caller that keeps at most one blocking command (WAIT) per connection, since
 * Redis answers nothing else on a connection while one blocks it.
 */
int dm_redis_route_conn(const dm_redis *r, const char *route);

/**
 * EVALSHA of script number @p script (an index into opts.scripts) with @p nkeys keys followed
 * by the other arguments in @p argv, routed by its first key (any node when @p nkeys is 0). A NOSCRIPT answer (Redis restarted or flushed its script
 * cache) is retried once as EVAL with the script source, transparently. Returns as
 * dm_redis_command.
 */
int dm_redis_eval(dm_redis *r, size_t script, dm_redis_cb cb, void *arg, int nkeys, int argc,
                  const char **argv, const size_t *lens);

#endif
