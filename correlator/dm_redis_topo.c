/* dm_redis_topo.c - a Redis Cluster's topology reads (CLUSTER SLOTS) and the node table that
 * follows from them (dm_redis_int.h, docs/redis-cluster-router.md): which nodes the router keeps
 * a connection to, the slot map, when to read again, and where to read when no master answers. */
#include "dm_common.h"
#include "dm_redis_int.h"
#include "dm_log.h"
#include "dm_metrics.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFRESH_MIN_MS  100   /**< first wait between topology reads while a master is away */
#define REFRESH_MAX_MS  1000  /**< a failover takes about node-timeout + 1 s: poll that often */
#define REFRESH_SLOW_MS 30000 /**< a complete map in use is read again this often anyway */

typedef dmr_node node;

/*---------------------------------------------------------------- the node table ---*/

/* Whether a command waiting for a retry is to be sent to @p n after ASKING. */
static bool ask_waits_for(const dm_redis *r, const node *n)
{
    for (const dmr_cmd *c = r->waiting; c; c = c->next)
        if (c->ask_host && c->ask_port == n->port && strcmp(c->ask_host, n->host) == 0)
            return true;
    return false;
}

/* A node that serves no slot is still needed while commands are in flight on it (a demoted
 * master, an ASK target, a MOVED target named by a stale view: closing it would fail commands
 * that may have run), an ASK waits to be sent there, or redirects went there since the last
 * read. */
static bool needed(const dm_redis *r, const node *n)
{
    return n->used || dm_rconn_inflight(n->conn) > 0 || ask_waits_for(r, n);
}

/* Keep the nodes @p keep marks (renumbering the slot map), close the others. */
static void compact(dm_redis *r, const bool *keep)
{
    uint16_t *renum = dm_xcalloc(r->nnodes + 1, sizeof *renum);
    node **gone = dm_xcalloc(r->nnodes + 1, sizeof *gone);
    size_t ngone = 0, j = 0;
    for (size_t i = 0; i < r->nnodes; i++) {
        renum[i] = keep[i] ? (uint16_t)j : DMR_NO_NODE;
        if (keep[i])
            r->nodes[j++] = r->nodes[i];
        else
            gone[ngone++] = r->nodes[i];
    }
    r->nnodes = j;
    for (size_t s = 0; s < DM_SLOTS; s++)
        if (r->slot_map[s] != DMR_NO_NODE)
            r->slot_map[s] = renum[r->slot_map[s]];
    free(renum);
    for (size_t i = 0; i < ngone; i++)
        dmr_node_close(gone[i]); /* idle: nothing fails */
    free(gone);
}

void dmr_prune(dm_redis *r)
{
    /* Only from the event loop (never under our own frames, which may hold node pointers), and
     * only once a master answers: until then the other nodes are where the map is read. */
    if (r->busy != 1 || r->free_pending || !r->topo_known || !dmr_any_ready(r))
        return;
    bool *keep = dm_xcalloc(r->nnodes + 1, sizeof *keep);
    bool drop = false;
    for (size_t i = 0; i < r->nnodes; i++) {
        keep[i] = r->nodes[i]->master || needed(r, r->nodes[i]);
        drop |= !keep[i];
    }
    if (drop)
        compact(r, keep);
    free(keep);
}

static bool serves(const dm_topology *t, size_t m, int slot)
{
    for (size_t k = 0; k < t->nranges; k++)
        if (t->ranges[k].master == m && (unsigned)slot >= t->ranges[k].first &&
            (unsigned)slot <= t->ranges[k].last)
            return true;
    return false;
}

/* Use @p t: a node per master (a connection each; with opts.only_route only the master of that
 * slot), the slot map, the replicas to fall back on, and the nodes that serve no slot now and
 * have nothing left to do closed (the others stay, no longer masters, until they are idle). */
static void apply_topology(dm_redis *r, const dm_topology *t)
{
    char hb[300];
    uint16_t *map = dm_xcalloc(DM_SLOTS, sizeof *map);
    for (size_t s = 0; s < DM_SLOTS; s++)
        map[s] = DMR_NO_NODE;
    bool *used = dm_xcalloc(t->nmasters + 1, sizeof *used);
    /* Node indices only grow until the table is compacted below, so both maps compare. */
    for (size_t m = 0; m < t->nmasters; m++) {
        if (r->only_slot >= 0 && !serves(t, m, r->only_slot))
            continue;
        size_t idx;
        node *n = dmr_node_get(r, t->masters[m].host, t->masters[m].port, &idx);
        if (!n)
            continue;
        used[m] = true;
        for (size_t k = 0; k < t->nranges; k++)
            if (t->ranges[k].master == m)
                for (unsigned s = t->ranges[k].first; s <= t->ranges[k].last; s++)
                    map[s] = (uint16_t)idx;
    }
    size_t moved = 0, changes = 0, masters = 0;
    for (size_t s = 0; s < DM_SLOTS; s++)
        moved += map[s] != r->slot_map[s];
    bool *serving = dm_xcalloc(r->nnodes + 1, sizeof *serving);
    for (size_t s = 0; s < DM_SLOTS; s++)
        if (map[s] != DMR_NO_NODE)
            serving[map[s]] = true;
    bool master_ready = false;
    for (size_t i = 0; i < r->nnodes; i++) {
        node *n = r->nodes[i];
        if (serving[i] != n->master) {
            changes++;
            dm_info("redis cluster master", "conn=%s node=%s:%d change=%s", r->name,
                    dm_log_quote_str(n->host, hb, sizeof hb), n->port,
                    serving[i] ? "added" : "removed");
        }
        n->master = serving[i];
        masters += serving[i];
        master_ready |= serving[i] && dm_rconn_ready(n->conn);
    }
    free(r->slot_map);
    r->slot_map = map;
    /* The replicas of the masters in use: where the map is read when none of them answers. */
    free(r->replicas);
    r->replicas = NULL;
    r->nreplicas = 0;
    for (size_t i = 0; i < t->nreplicas; i++)
        if (used[t->replicas[i].master]) {
            r->replicas = dm_xrealloc(r->replicas, (r->nreplicas + 1) * sizeof *r->replicas);
            r->replicas[r->nreplicas++] = t->replicas[i].node;
        }
    free(used);
    if (moved || changes || !r->topo_known) {
        dm_metrics_redis_event(DM_RE_TOPOLOGY_CHANGE);
        dm_info("redis cluster topology", "conn=%s masters=%zu slots=%zu slots_moved=%zu", r->name,
                masters, t->slots, moved);
    }
    r->topo_slots = t->slots;
    r->topo_known = true;
    /* While no master answers, every node stays: the others are where the map is read. */
    bool *keep = serving; /* reused: serving[i] || needed */
    for (size_t i = 0; i < r->nnodes; i++) {
        keep[i] = serving[i] || !master_ready || needed(r, r->nodes[i]);
        r->nodes[i]->used = false;
    }
    compact(r, keep);
    free(keep);
}

/*---------------------------------------------------------------- when to read ---*/

void dmr_request_refresh(dm_redis *r, bool now)
{
    if (r->free_pending || !r->cluster)
        return;
    if (r->refresh_req.conn) {
        r->refresh_wanted = true;
        return;
    }
    if (evtimer_pending(r->refresh_timer, NULL) && !now && !r->refresh_slow)
        return;
    int ms = now ? 0 : (r->refresh_ms ? r->refresh_ms : REFRESH_MIN_MS);
    struct timeval tv = dmr_ms_tv(ms);
    r->refresh_slow = false;
    evtimer_add(r->refresh_timer, &tv);
}

void dmr_refresh_soon(dm_redis *r)
{
    if (!r->refresh_req.conn) /* else the read on its way may name the slot already */
        dmr_request_refresh(r, false);
}

static void refresh_backoff(dm_redis *r)
{
    r->refresh_ms = r->refresh_ms
                        ? (r->refresh_ms * 2 > REFRESH_MAX_MS ? REFRESH_MAX_MS : r->refresh_ms * 2)
                        : REFRESH_MIN_MS;
    struct timeval tv = dmr_ms_tv(r->refresh_ms);
    r->refresh_slow = false;
    evtimer_add(r->refresh_timer, &tv);
}

/* Everything served and answering: read again anyway now and then, so a change that no command
 * runs into (a slot added, a node announced elsewhere) is seen. */
static void refresh_slow(dm_redis *r)
{
    r->refresh_ms = 0;
    struct timeval tv = dmr_ms_tv(REFRESH_SLOW_MS);
    r->refresh_slow = true;
    evtimer_add(r->refresh_timer, &tv);
}

/*---------------------------------------------------------------- the read ---*/

void dmr_on_refresh_done(dm_rconn_req *q, dm_rconn *conn, int err, redisReply *rep)
{
    (void)conn;
    dm_redis *r = (dm_redis *)((char *)q - offsetof(dm_redis, refresh_req));
    dmr_enter(r);
    r->internal--;
    evtimer_del(r->refresh_deadline);
    if (r->free_pending) {
        dmr_leave(r);
        return;
    }
    dm_metrics_redis_event(DM_RE_TOPOLOGY_REFRESH);
    dm_topology t;
    char why[128], rb[200];
    if (err != DM_OK) {
        dm_warn("redis cluster topology not read", "conn=%s node=%s reason=\"%s\"", r->name,
                dm_log_quote_str(r->refresh_host, rb, sizeof rb), dm_strerror(err));
    } else if (rep->type == REDIS_REPLY_ERROR) {
        dm_warn("redis cluster topology not read", "conn=%s reply=%s", r->name,
                dm_log_quote(rep->str, rep->len, rb, sizeof rb));
    } else if (dm_topology_parse(rep, r->refresh_host, &t, why, sizeof why) != 0) {
        dm_warn("redis cluster topology not read", "conn=%s reason=\"%s\"", r->name, why);
    } else {
        apply_topology(r, &t);
        dm_topology_clear(&t);
    }
    /* A master that is not connected may be back (restarted, its name moved): try it now
     * rather than after its own backoff, up to 5 s. */
    for (size_t i = 0; i < r->nnodes && !r->free_pending; i++)
        if (r->nodes[i]->master && !dm_rconn_ready(r->nodes[i]->conn))
            dm_rconn_kick(r->nodes[i]->conn);
    if (r->free_pending) {
        dmr_leave(r);
        return;
    }
    if (r->refresh_wanted) {
        r->refresh_wanted = false;
        dmr_request_refresh(r, true);
    } else if (!dmr_is_ready(r) || (r->only_slot < 0 && r->topo_slots < DM_SLOTS)) {
        /* A master is away (read until its replica took over), or slots are unserved (a
         * cluster still being built): read again soon. */
        refresh_backoff(r);
    } else {
        refresh_slow(r);
    }
    dmr_update_ready(r);
    dmr_leave(r);
}

void dmr_on_refresh_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_redis *r = arg;
    dmr_enter(r);
    if (r->refresh_req.conn)
        dm_rconn_timeout(r->refresh_req.conn);
    dmr_leave(r);
}

/* No node answers: connect to the replicas of the last map and to the url's node (its name
 * resolved again), any of which can tell where the slots went. */
static void seek(dm_redis *r)
{
    bool ready = false;
    for (size_t i = 0; i <= r->nreplicas && !r->free_pending; i++) {
        const char *host = i < r->nreplicas ? r->replicas[i].host : r->host;
        int port = i < r->nreplicas ? r->replicas[i].port : r->port;
        node *n = dmr_node_get(r, host, port, NULL);
        if (!n)
            continue;
        dm_rconn_kick(n->conn);
        ready |= dm_rconn_ready(n->conn); /* with nothing to load, at once and unreported */
    }
    if (ready)
        dmr_request_refresh(r, true);
}

void dmr_on_refresh_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_redis *r = arg;
    dmr_enter(r);
    r->refresh_slow = false;
    if (r->free_pending || r->refresh_req.conn) {
        dmr_leave(r);
        return;
    }
    /* Any reachable node knows the map: a master, taking turns so a node that lags is not the
     * only one asked; else any other (a replica, the url's node, a redirect's target). */
    node *n = NULL;
    for (int pass = 0; pass < 2 && !n; pass++)
        for (size_t k = 0; k < r->nnodes && !n; k++) {
            node *cand = r->nodes[(r->refresh_rr + k) % r->nnodes];
            if ((cand->master || pass == 1) && dm_rconn_ready(cand->conn))
                n = cand;
        }
    r->refresh_rr++;
    const char *argv[] = {"CLUSTER", "SLOTS"};
    const size_t lens[] = {7, 5};
    if (n && dm_rconn_send(n->conn, &r->refresh_req, false, -1, false, 2, argv, lens) == DM_OK) {
        r->internal++;
        snprintf(r->refresh_host, sizeof r->refresh_host, "%s", n->host);
        struct timeval tv = dmr_ms_tv(r->command_timeout_ms);
        evtimer_add(r->refresh_deadline, &tv);
    } else {
        refresh_backoff(r);
        seek(r);
    }
    dmr_leave(r);
}
