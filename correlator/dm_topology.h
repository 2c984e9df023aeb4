/* dm_topology.h - a Redis Cluster's slot map from its CLUSTER SLOTS reply, as a pure function.
 *
 * CLUSTER SLOTS answers one entry per slot range: [first, last, master, replica...], each node
 * [host, port, id, {metadata}] (Redis 7; older servers stop after the id or the port). Commands
 * go to a slot's master; the replicas are where the router reads the map when no master answers
 * (a single-shard cluster, or the seed was the master that died). The host is what the node
 * announces (an IP by default, or its name with cluster-preferred-endpoint-type hostname); NULL
 * or "" mean "the host you asked, on this port" (unknown-endpoint, e.g. behind a load
 * balancer), and "?" a node with no hostname announced (those slots are left unserved).
 */
#ifndef DM_CORRELATOR_DM_TOPOLOGY_H
#define DM_CORRELATOR_DM_TOPOLOGY_H

#include "dm_slot.h"

#include <stddef.h>

struct redisReply;

typedef struct dm_topo_node {
    char host[DM_SLOT_HOST_MAX]; /**< IP literal or DNS name, no brackets */
    int port;                    /**< 1..65535 */
} dm_topo_node;

typedef struct dm_topo_range {
    unsigned first, last; /**< first <= last < DM_SLOTS */
    size_t master;        /**< index into dm_topology.masters */
} dm_topo_range;

/** A replica of a master, as named in the entry of one of its ranges. */
typedef struct dm_topo_replica {
    dm_topo_node node;
    size_t master; /**< index into dm_topology.masters */
} dm_topo_replica;

/** The parse's result; every array owned (dm_topology_clear). */
typedef struct dm_topology {
    dm_topo_node *masters; /**< distinct host:port, in order of first appearance */
    size_t nmasters;
    /** Distinct (replica, master) pairs; a replica whose host or port is unusable (or "?") is
     *  left out rather than failing the parse: replicas are only a fallback. */
    dm_topo_replica *replicas;
    size_t nreplicas;
    dm_topo_range *ranges; /**< in reply order, never overlapping */
    size_t nranges;
    size_t slots; /**< slots served (16384 when the cluster covers them all) */
} dm_topology;

/**
 * Parse the CLUSTER SLOTS reply @p rep, which came from a node whose host is @p asked_host
 * (for the "" endpoint). Returns 0 with @p out filled, or -1 with @p out empty and a short
 * reason (never echoing reply bytes) in @p err: not an array, an entry of the wrong shape, a
 * slot out of range or served twice, a bad host or port. An empty array parses (no slots).
 */
int dm_topology_parse(const struct redisReply *rep, const char *asked_host, dm_topology *out,
                      char *err, size_t errlen);

/** Free what @p t holds and zero it. */
void dm_topology_clear(dm_topology *t);

/** Whether @p host (@p len bytes) is an acceptable node host: [A-Za-z0-9.:_-], 1..253. */
bool dm_topology_host_ok(const char *host, size_t len);

#endif
