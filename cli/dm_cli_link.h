/* dm_cli_link.h - a synchronous Redis connection of the command-line client that serves one
 * shard (one hash slot), on one Redis server or on a Redis Cluster (redis.cluster).
 *
 * On one server a link is just a connection: a lost connection is an error. On a Cluster the
 * link starts at the seed (the configured host:port) and follows the slot: a MOVED answer
 * connects it to the node named (a command refused with MOVED had no effect: it is sent again
 * there), an ASK sends that one command to the node named after ASKING, TRYAGAIN and
 * CLUSTERDOWN (a failover under way) are retried after a pause. A lost connection (a master
 * that died) is made again through the seed, then the other nodes seen so far, until
 * DM_CLI_LINK_RECOVER_MS have passed, and MOVED leads to the new master. Every pause waits
 * with @p wait_mask as the signal mask, so that SIGINT/SIGTERM end it (*stop then reads
 * true). docs/cluster-readers.md describes what `digestmap tail` does with it.
 *
 * A command whose connection was lost may have run: the caller learns it from `reconnects`
 * (it re-reads its pending entries: at least once).
 *
 * Ownership: the caller owns the dm_cli_link (dm_cli_link_close frees the connection) and the
 * dm_cli_nodes its links share; a link borrows the dm_cli, the nodes, the stop flag and mask.
 */
#ifndef DM_CLI_DM_CLI_LINK_H
#define DM_CLI_DM_CLI_LINK_H

#include "dm_cli_conf.h"
#include "dm_slot.h"

#include <signal.h>

/** How long a Cluster link tries to get a lost connection back (a failover takes about the
 *  node timeout plus an election). */
#define DM_CLI_LINK_RECOVER_MS 30000
/** Nodes remembered for reconnecting (the seed and those MOVED named). */
#define DM_CLI_NODES_MAX       64

/** dm_cli_link_recv: the command was not answered (redirected, or its connection was made
 *  again): send it again. */
#define DM_CLI_LINK_AGAIN 1

typedef struct dm_cli_node {
    char host[DM_SLOT_HOST_MAX];
    int port;
} dm_cli_node;

/** The Cluster nodes known to the links of one command: the seed first. */
typedef struct dm_cli_nodes {
    size_t n;
    dm_cli_node v[DM_CLI_NODES_MAX];
} dm_cli_nodes;

typedef struct dm_cli_link {
    const dm_cli *c;
    dm_cli_nodes *nodes;
    const volatile sig_atomic_t *stop;
    const sigset_t *wait_mask;
    int read_timeout_ms;
    redisContext *r;
    char where[DM_SLOT_HOST_MAX + 16]; /**< the server now, for messages */
    unsigned reconnects;               /**< connections lost and made again */
    long long trouble_ms;              /**< since when the slot has not been served (0: it is) */
} dm_cli_link;

/** Fill @p nodes with the seed of @p c (when it names a Cluster). */
void dm_cli_nodes_init(dm_cli_nodes *nodes, const dm_cli *c);

/** A link, not connected yet; its socket waits @p read_timeout_ms for a reply. */
void dm_cli_link_init(dm_cli_link *k, const dm_cli *c, dm_cli_nodes *nodes, int read_timeout_ms,
                      const volatile sig_atomic_t *stop, const sigset_t *wait_mask);

/** Connect if not connected. DM_OK, or DM_EUNAVAIL with @p err filled. */
int dm_cli_link_open(dm_cli_link *k, char *err, size_t errlen);

/**
 * Run a command (its keys in the link's slot) and return its reply, following redirects and
 * recovering a lost connection on a Cluster; the reply may be an error reply (not a redirect).
 * NULL with @p err filled when Redis cannot be reached (or *stop became true).
 */
redisReply *dm_cli_link_command(dm_cli_link *k, int argc, const char **argv, char *err,
                                size_t errlen);

/** Send a command (a blocking read) without waiting for its reply. DM_OK, or DM_EUNAVAIL with
 *  @p err filled. */
int dm_cli_link_send(dm_cli_link *k, int argc, const char **argv, char *err, size_t errlen);

/** The socket to poll for the reply of a command sent, or -1. */
int dm_cli_link_fd(const dm_cli_link *k);

/**
 * Read the reply of the command sent (the socket is readable). DM_OK with *out (maybe an error
 * reply); DM_CLI_LINK_AGAIN when it was redirected or its connection was made again (send it
 * again); DM_EUNAVAIL with @p err filled.
 */
int dm_cli_link_recv(dm_cli_link *k, redisReply **out, char *err, size_t errlen);

/**
 * The connection is no longer usable (a reply overdue): on a Cluster, make it again (DM_OK,
 * `reconnects` counts it); else DM_EUNAVAIL with @p err filled from @p why.
 */
int dm_cli_link_recover(dm_cli_link *k, const char *why, char *err, size_t errlen);

/** Drop the connection (a command sent is abandoned); the next use connects again. */
void dm_cli_link_reset(dm_cli_link *k);

/** Free the connection. */
void dm_cli_link_close(dm_cli_link *k);

#endif
