/* dm_redis_int.h - what the two halves of the Redis client share: dm_redis.c (nodes, commands,
 * readiness, lifecycle) and dm_redis_topo.c (a cluster's topology reads and the node table that
 * follows from them). Internal: every other module uses dm_redis.h
 * (docs/redis-cluster-router.md). */
#ifndef DM_CORRELATOR_DM_REDIS_INT_H
#define DM_CORRELATOR_DM_REDIS_INT_H

#include "dm_common.h"
#include "dm_rconn.h"
#include "dm_slot.h"
#include "dm_topology.h"

#include <event2/util.h>
#include <sys/time.h>

struct event_base;
struct redisReply;
/* As in dm_redis.h (C11 allows the same typedef twice), which this header does not include:
 * dm_redis.c includes both, and a module may not include its own includer. */
typedef struct dm_redis dm_redis;
typedef void (*dm_redis_cb)(int err, struct redisReply *reply, void *arg);

#define DMR_NO_NODE   0xFFFFu
/** Nodes (masters, replicas asked for the map, redirect targets) one client talks to: a broken
 *  or hostile server cannot make it open (and AUTH to) more. */
#define DMR_MAX_NODES 64

/* A server the router talks to: the one server, a cluster node, or a redirect's target. */
typedef struct dmr_node {
    dm_redis *r;
    char *host; /**< as named (an IP or a DNS name) */
    int port;
    dm_rconn *conn;
    bool master; /**< serves slots in the topology in use */
    bool used;   /**< a command was sent here as a non-master since the last topology read */
} dmr_node;

/* One command from accept to completion. */
typedef struct dmr_cmd {
    dm_rconn_req req; /**< req.conn: the connection it is in flight on, or NULL */
    dm_redis *r;
    dm_redis_cb cb;
    void *arg;
    struct event *deadline, *retry;
    long script; /**< -1 unless EVALSHA */
    bool eval_source;
    int argc;
    char **argv; /**< copy to send again (in the command's own allocation); NULL for a plain
                      command on one server */
    size_t *lens;
    int slot; /**< -1: any node */
    int redirects;
    int retry_ms;
    char *ask_host; /**< ASK target for the next send, or NULL */
    int ask_port;
    struct dmr_cmd *prev, *next; /**< in r->waiting while a retry is pending */
} dmr_cmd;

struct dm_redis {
    struct event_base *base;
    char *host, *unix_path, *username, *password, *name;
    int port, db, connect_timeout_ms, command_timeout_ms, max_inflight;
    const char *const *scripts;
    size_t nscripts;
    bool cluster;
    int only_slot;     /**< opts.only_route's slot, or -1 */
    dm_rconn_dns *dns; /**< created at the first host name */
    dmr_node **nodes;
    size_t nnodes;
    bool cap_logged;    /**< DMR_MAX_NODES was reached once (logged) */
    uint16_t *slot_map; /**< cluster: node index per slot, DMR_NO_NODE when unserved */
    bool topo_known;
    size_t topo_slots;
    dm_topo_node *replicas; /**< of the masters in use, from the last topology read */
    size_t nreplicas;
    /* Topology refresh: one CLUSTER SLOTS at a time, with its own deadline. */
    struct event *refresh_timer, *refresh_deadline;
    dm_rconn_req refresh_req;
    char refresh_host[DM_SLOT_HOST_MAX];
    bool refresh_wanted; /**< another refresh was asked for while one was in flight */
    bool refresh_slow;   /**< the pending refresh is the slow periodic one */
    int refresh_ms;
    size_t refresh_rr;                 /**< round-robin start for picking the node to ask */
    dmr_cmd *waiting;                  /**< commands waiting out a retry delay */
    struct timeval cmd_tv;             /**< command_timeout_ms */
    const struct timeval *cmd_timeout; /**< the same as a libevent common timeout (every
                                            command's deadline: a queue, not a heap) */
    size_t inflight;                   /**< commands accepted and not completed */
    size_t internal;                   /**< router-internal requests in flight (the refresh) */
    void (*on_ready)(bool ready, void *arg);
    void *on_ready_arg;
    bool reported_ready;
    /* As in dm_rconn: dm_redis_free may run inside one of the client's callbacks; the memory
     * stays until the outermost entry point returns and every command has completed. */
    int busy;
    bool free_pending;
    bool creating; /**< inside dm_rconn_new: its first report waits for the caller's update */
};

/* dm_redis.c */
void dmr_enter(dm_redis *r);
void dmr_leave(dm_redis *r);
struct timeval dmr_ms_tv(int ms);
/** The node for host:port, with a connection on its way; NULL when the resolver or the node
 *  table is exhausted. */
dmr_node *dmr_node_get(dm_redis *r, const char *host, int port, size_t *idx);
/** Close @p n (not in r->nodes any more): its commands fail now. */
void dmr_node_close(dmr_node *n);
/** A ready master (any ready node on one server), taking turns; NULL if none. */
dmr_node *dmr_any_ready(const dm_redis *r);
bool dmr_is_ready(const dm_redis *r);
void dmr_update_ready(dm_redis *r);

/* dm_redis_topo.c */
/** Read the topology now (@p now) or after the refresh backoff, unless a read is on its way. */
void dmr_request_refresh(dm_redis *r, bool now);
/** A command found its slot unserved: read again soon, without adding to a read on its way. */
void dmr_refresh_soon(dm_redis *r);
/** Close the nodes that serve no slot and have nothing to do, once a master is ready. */
void dmr_prune(dm_redis *r);
void dmr_on_refresh_timer(evutil_socket_t fd, short what, void *arg);
void dmr_on_refresh_deadline(evutil_socket_t fd, short what, void *arg);
void dmr_on_refresh_done(dm_rconn_req *q, dm_rconn *conn, int err, struct redisReply *rep);

#endif
