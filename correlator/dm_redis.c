/* dm_redis.c - see dm_redis.h. The connections are dm_rconn; this file routes commands to
 * them, follows a cluster's redirects and keeps its slot map (docs/redis-cluster-router.md). */
#include "dm_common.h"
#include "dm_redis.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_redis_int.h"
#include "dm_rconn.h"
#include "dm_slot.h"
#include "dm_topology.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REDIRECTS 5  /**< MOVED/ASK followed per command before giving up */
#define RETRY_MIN_MS  20 /**< first wait of a command that must be sent again */
#define RETRY_MAX_MS  500

typedef dmr_node node;
typedef dmr_cmd cmd;

static void destroy(dm_redis *r);
static void dispatch(cmd *c);

void dmr_enter(dm_redis *r)
{
    r->busy++;
}

void dmr_leave(dm_redis *r)
{
    if (--r->busy == 0 && r->free_pending && r->inflight == 0 && r->internal == 0)
        destroy(r);
}

struct timeval dmr_ms_tv(int ms)
{
    return (struct timeval){ms / 1000, (ms % 1000) * 1000};
}

/*---------------------------------------------------------------- nodes ---*/

/* The node serving @p slot when its connection is ready (on a cluster), else NULL. */
static node *slot_node(const dm_redis *r, int slot)
{
    if (!r->topo_known || slot < 0 || r->slot_map[slot] == DMR_NO_NODE)
        return NULL;
    node *n = r->nodes[r->slot_map[slot]];
    return dm_rconn_ready(n->conn) ? n : NULL;
}

bool dmr_is_ready(const dm_redis *r)
{
    if (!r->cluster)
        return r->nnodes == 1 && dm_rconn_ready(r->nodes[0]->conn);
    if (r->only_slot >= 0)
        return slot_node(r, r->only_slot) != NULL;
    if (!r->topo_known || r->topo_slots == 0)
        return false;
    for (size_t i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->master && !dm_rconn_ready(r->nodes[i]->conn))
            return false;
    return true;
}

void dmr_update_ready(dm_redis *r)
{
    bool ready = !r->free_pending && dmr_is_ready(r);
    if (ready == r->reported_ready)
        return;
    r->reported_ready = ready;
    if (r->cluster)
        dm_info(ready ? "redis cluster ready" : "redis cluster not ready", "conn=%s", r->name);
    if (r->on_ready)
        r->on_ready(ready, r->on_ready_arg);
}

static void on_conn_state(dm_rconn *conn, bool ready, void *arg)
{
    node *n = arg;
    dm_redis *r = n->r;
    dmr_enter(r);
    n->conn = conn; /* the first report can come from inside dm_rconn_new */
    if (r->creating) {
        dmr_leave(r);
        return;
    }
    if (r->cluster) {
        bool master_ready = dmr_any_ready(r) != NULL;
        if (ready && (!r->topo_known || !master_ready))
            dmr_request_refresh(r, true); /* a node to read the map from (the seed, a replica) */
        else if (!ready && n->master)
            dmr_request_refresh(r, false); /* follow a failover from another node */
        else if (ready && n->master)
            dmr_prune(r); /* the nodes that stood in for it have nothing left to do */
    }
    dmr_update_ready(r);
    dmr_leave(r);
}

static node *node_find(const dm_redis *r, const char *host, int port, size_t *idx)
{
    for (size_t i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->port == port && strcmp(r->nodes[i]->host, host) == 0) {
            if (idx)
                *idx = i;
            return r->nodes[i];
        }
    return NULL;
}

node *dmr_node_get(dm_redis *r, const char *host, int port, size_t *idx)
{
    node *n = node_find(r, host, port, idx);
    if (n)
        return n;
    if (r->nnodes >= DMR_MAX_NODES) {
        if (!r->cap_logged) {
            char hb[300];
            dm_warn("redis node limit reached", "conn=%s limit=%d node=%s:%d", r->name,
                    DMR_MAX_NODES, dm_log_quote_str(host ? host : "", hb, sizeof hb), port);
            r->cap_logged = true;
        }
        return NULL;
    }
    if (host && dm_rconn_is_name(host) && !r->dns && !(r->dns = dm_rconn_dns_new(r->base)))
        return NULL;
    n = dm_xcalloc(1, sizeof *n);
    n->r = r;
    n->host = dm_xstrdup(host ? host : "");
    n->port = port;
    char name[400];
    if (r->cluster)
        snprintf(name, sizeof name, "%s@%s:%d", r->name, host, port);
    else
        snprintf(name, sizeof name, "%s", r->name);
    r->nodes = dm_xrealloc(r->nodes, (r->nnodes + 1) * sizeof *r->nodes);
    if (idx)
        *idx = r->nnodes;
    r->nodes[r->nnodes++] = n;
    dm_rconn_opts o = {.host = host,
                       .port = port,
                       .unix_path = r->unix_path,
                       .username = r->username,
                       .password = r->password,
                       .db = r->cluster ? 0 : r->db,
                       .connect_timeout_ms = r->connect_timeout_ms,
                       .scripts = r->scripts,
                       .nscripts = r->nscripts,
                       .name = name,
                       .dns = r->dns,
                       .on_state = on_conn_state,
                       .arg = n};
    r->creating = true;
    dm_rconn *conn = dm_rconn_new(r->base, &o);
    r->creating = false;
    n->conn = conn; /* NULL only when libevent is out of memory: never ready */
    return n;
}

void dmr_node_close(node *n)
{
    dm_rconn *conn = n->conn;
    free(n->host);
    free(n);
    dm_rconn_free(conn); /* its commands fail now */
}

/*---------------------------------------------------------------- commands ---*/

static void cmd_free(cmd *c)
{
    event_del(c->deadline); /* in the command's own allocation (submit) */
    if (c->retry)
        event_free(c->retry);
    free(c->ask_host);
    free(c); /* its argv copy too */
}

static void unlink_waiting(cmd *c)
{
    dm_redis *r = c->r;
    if (c->prev)
        c->prev->next = c->next;
    else if (r->waiting == c)
        r->waiting = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void finish(cmd *c, int err, redisReply *reply)
{
    dm_redis *r = c->r;
    unlink_waiting(c);
    r->inflight--;
    dm_redis_cb cb = c->cb;
    void *arg = c->arg;
    cmd_free(c);
    cb(err, reply, arg);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    cmd *c = arg;
    dm_redis *r = c->r;
    dmr_enter(r);
    if (c->req.conn)
        dm_rconn_timeout(c->req.conn); /* finishes c (DM_ETIMEOUT) and what is behind it */
    else
        finish(c, DM_EUNAVAIL, NULL); /* still refused (TRYAGAIN, a master away) at its end */
    dmr_leave(r);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    cmd *c = arg;
    dm_redis *r = c->r;
    dmr_enter(r);
    unlink_waiting(c);
    dispatch(c);
    dmr_leave(r);
}

/* Send @p c again after a delay that doubles each time; its deadline ends the waiting. */
static void wait_retry(cmd *c)
{
    dm_redis *r = c->r;
    if (!c->retry && !(c->retry = evtimer_new(r->base, on_retry, c))) {
        finish(c, DM_EUNAVAIL, NULL);
        return;
    }
    c->retry_ms = c->retry_ms ? (c->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : c->retry_ms * 2)
                              : RETRY_MIN_MS;
    struct timeval tv = dmr_ms_tv(c->retry_ms);
    evtimer_add(c->retry, &tv);
    c->next = r->waiting;
    if (r->waiting)
        r->waiting->prev = c;
    r->waiting = c;
}

node *dmr_any_ready(const dm_redis *r)
{
    for (size_t k = 0; k < r->nnodes; k++) {
        node *n = r->nodes[(r->refresh_rr + k) % r->nnodes];
        if ((n->master || !r->cluster) && dm_rconn_ready(n->conn))
            return n;
    }
    return NULL;
}

/* Where @p c goes now: its ASK target, its slot's master, or any master. */
static node *target(cmd *c)
{
    dm_redis *r = c->r;
    if (!r->cluster)
        return r->nodes[0];
    if (c->ask_host)
        return dmr_node_get(r, c->ask_host, c->ask_port, NULL);
    if (c->slot < 0)
        return dmr_any_ready(r);
    uint16_t i = r->slot_map[c->slot];
    return i == DMR_NO_NODE ? NULL : r->nodes[i];
}

static int send_to(cmd *c, node *n)
{
    if (!n || !dm_rconn_ready(n->conn))
        return DM_EUNAVAIL;
    n->used |= !n->master; /* an ASK or MOVED target: kept while the redirects go there */
    const char **argv = (const char **)c->argv;
    return dm_rconn_send(n->conn, &c->req, c->ask_host != NULL, c->script, c->eval_source, c->argc,
                         argv, c->lens);
}

/* Send @p c (from a callback or a timer, never from the caller's call): now, or after a wait. */
static void dispatch(cmd *c)
{
    if (c->r->free_pending) {
        finish(c, DM_EUNAVAIL, NULL);
        return;
    }
    if (send_to(c, target(c)) == DM_OK)
        return;
    if (!c->r->cluster) {
        finish(c, DM_EUNAVAIL, NULL);
        return;
    }
    wait_retry(c);
}

/* MOVED or ASK: send @p c where the redirect says, within its redirect budget. */
static void follow(cmd *c, const dm_redirect *rd, const char *text, size_t len)
{
    dm_redis *r = c->r;
    char hb[300], tb[300];
    dm_metrics_redis_event(rd->ask ? DM_RE_ASK : DM_RE_MOVED);
    if (++c->redirects > MAX_REDIRECTS || !dm_topology_host_ok(rd->host, strlen(rd->host))) {
        dm_warn("redis redirect not followed", "conn=%s reply=%s reason=\"%s\"", r->name,
                dm_log_quote(text, len, tb, sizeof tb),
                c->redirects > MAX_REDIRECTS ? "too many redirects" : "bad host");
        finish(c, DM_EUNAVAIL, NULL);
        return;
    }
    free(c->ask_host);
    c->ask_host = NULL;
    if (rd->ask) {
        c->ask_host = dm_xstrdup(rd->host);
        c->ask_port = rd->port;
    } else {
        size_t idx;
        node *n = dmr_node_get(r, rd->host, rd->port, &idx);
        if (n && c->slot >= 0 && (unsigned)c->slot == rd->slot) {
            if (r->slot_map[rd->slot] != idx)
                dm_info("redis cluster slot moved", "conn=%s slot=%u node=%s:%d", r->name, rd->slot,
                        dm_log_quote_str(rd->host, hb, sizeof hb), rd->port);
            r->slot_map[rd->slot] = (uint16_t)idx;
        }
        dmr_request_refresh(r, true); /* a slot moved: the others may have too */
    }
    c->retry_ms = 0;
    dispatch(c);
}

static bool has_prefix(const redisReply *rep, const char *p)
{
    size_t n = strlen(p);
    return rep->len >= n && memcmp(rep->str, p, n) == 0 && (rep->len == n || rep->str[n] == ' ');
}

/* MOVED/ASK; with an empty host ("MOVED 3999 :6381", cluster-preferred-endpoint-type
 * unknown-endpoint) the target is the host that answered, on the port given. */
static bool redirect_parse(const redisReply *rep, dm_rconn *conn, dm_redirect *rd)
{
    if (dm_redirect_parse(rep->str, rep->len, rd))
        return true;
    const char *sp = rep->len < 300 ? memchr(rep->str, ' ', rep->len) : NULL;
    const char *colon = sp ? memchr(sp, ':', rep->len - (size_t)(sp - rep->str)) : NULL;
    const char *host = dm_rconn_host(conn);
    if (!colon || !host || (!has_prefix(rep, "MOVED") && !has_prefix(rep, "ASK")))
        return false;
    sp = memchr(sp + 1, ' ', rep->len - (size_t)(sp + 1 - rep->str));
    if (!sp || sp + 1 != colon)
        return false;
    char text[600];
    int n = snprintf(text, sizeof text, "%.*s%s%.*s", (int)(colon - rep->str), rep->str, host,
                     (int)(rep->len - (size_t)(colon - rep->str)), colon);
    return n > 0 && (size_t)n < sizeof text && dm_redirect_parse(text, (size_t)n, rd);
}

static void on_cmd_done(dm_rconn_req *q, dm_rconn *conn, int err, redisReply *rep)
{
    cmd *c = (cmd *)q;
    dm_redis *r = c->r;
    dmr_enter(r);
    if (err != DM_OK || rep->type != REDIS_REPLY_ERROR) {
        finish(c, err, rep);
    } else if (c->script >= 0 && !c->eval_source && has_prefix(rep, "NOSCRIPT")) {
        /* That server lost its script cache (restart, SCRIPT FLUSH): EVAL loads it again. */
        c->eval_source = true;
        if (dm_rconn_send(conn, &c->req, c->ask_host != NULL, c->script, true, c->argc,
                          (const char **)c->argv, c->lens) != DM_OK)
            finish(c, DM_EUNAVAIL, NULL);
    } else if (!r->cluster) {
        finish(c, DM_OK, rep);
    } else {
        dm_redirect rd;
        if (redirect_parse(rep, conn, &rd)) {
            follow(c, &rd, rep->str, rep->len);
        } else if (has_prefix(rep, "TRYAGAIN") || has_prefix(rep, "CLUSTERDOWN")) {
            /* A migration's keys are split between two nodes, or a failover is under way:
             * the same command succeeds a little later. */
            dm_metrics_redis_event(has_prefix(rep, "TRYAGAIN") ? DM_RE_TRYAGAIN
                                                               : DM_RE_CLUSTERDOWN);
            if (has_prefix(rep, "CLUSTERDOWN"))
                dmr_request_refresh(r, false);
            wait_retry(c);
        } else {
            finish(c, DM_OK, rep);
        }
    }
    dmr_leave(r);
}

/* @p n rounded up to 16 bytes: the parts of a command's one allocation stay aligned. */
static size_t align16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* A new command for @p route; the arguments are copied when it may have to be sent again. */
static int submit(dm_redis *r, const char *route, dm_redis_cb cb, void *arg, long script, int argc,
                  const char **argv, const size_t *lens)
{
    if (!r || r->free_pending || r->nnodes == 0)
        return DM_EUNAVAIL;
    node *n;
    int slot = route ? (int)dm_slot_of(route, strlen(route)) : -1;
    if (!r->cluster) {
        n = r->nodes[0];
    } else if (!r->topo_known || (r->only_slot >= 0 && slot >= 0 && slot != r->only_slot)) {
        n = NULL; /* a client of one slot (opts.only_route) has no connection for the others */
    } else if (slot < 0) {
        n = dmr_any_ready(r);
    } else if (r->slot_map[slot] == DMR_NO_NODE) {
        dmr_refresh_soon(r); /* e.g. a cluster still being built: its map may have grown */
        n = NULL;
    } else {
        n = r->nodes[r->slot_map[slot]];
    }
    if (!n || !dm_rconn_ready(n->conn))
        return DM_EUNAVAIL;
    if (r->inflight >= (size_t)r->max_inflight)
        return DM_EBUSY;
    /* One allocation: the command, its deadline's event (event_assign: no allocation of its own
     * per command, docs/hot-path.md), then (when it may be sent again) its arguments' copy. */
    bool copy = r->cluster || script >= 0;
    size_t head = align16(sizeof(cmd)), evsize = align16(event_get_struct_event_size());
    size_t size = head + evsize;
    if (copy) {
        size += (size_t)argc * (sizeof(char *) + sizeof(size_t));
        for (int i = 0; i < argc; i++)
            size += lens[i] + 1;
    }
    cmd *c = dm_xcalloc(1, size);
    c->req.cb = on_cmd_done;
    c->r = r;
    c->cb = cb;
    c->arg = arg;
    c->script = script;
    c->slot = slot;
    c->argc = argc;
    c->deadline = (struct event *)((char *)c + head);
    if (evtimer_assign(c->deadline, r->base, on_deadline, c) != 0) {
        free(c);
        return DM_ENOMEM;
    }
    if (copy) {
        c->argv = (char **)((char *)c + head + evsize);
        c->lens = (size_t *)(c->argv + argc);
        char *p = (char *)(c->lens + argc);
        for (int i = 0; i < argc; i++) {
            c->argv[i] = p;
            c->lens[i] = lens[i];
            memcpy(p, argv[i], lens[i]);
            p[lens[i]] = '\0';
            p += lens[i] + 1;
        }
    }
    int rc = dm_rconn_send(n->conn, &c->req, false, script, false, argc,
                           c->argv ? (const char **)c->argv : argv, c->argv ? c->lens : lens);
    if (rc != DM_OK) {
        cmd_free(c);
        return rc;
    }
    evtimer_add(c->deadline, r->cmd_timeout);
    r->inflight++;
    return DM_OK;
}

int dm_redis_route_conn(const dm_redis *r, const char *route)
{
    if (!r || r->nnodes == 0)
        return -1;
    if (!r->cluster)
        return 0;
    if (!r->topo_known || !route)
        return -1;
    uint16_t i = r->slot_map[dm_slot_of(route, strlen(route))];
    return i == DMR_NO_NODE ? -1 : (int)i;
}

int dm_redis_command(dm_redis *r, const char *route, dm_redis_cb cb, void *arg, int argc,
                     const char **argv, const size_t *lens)
{
    return submit(r, route, cb, arg, -1, argc, argv, lens);
}

int dm_redis_eval(dm_redis *r, size_t script, dm_redis_cb cb, void *arg, int nkeys, int argc,
                  const char **argv, const size_t *lens)
{
    if (r && (script >= r->nscripts || nkeys < 0 || nkeys > argc))
        return DM_EINVAL;
    /* nkeys in decimal, written by hand: this runs for every push, and snprintf's format
     * interpretation cost more than the digits (docs/hot-path.md). */
    char nk[20];
    size_t nkl = (size_t)(dm_put_uint(nk, (unsigned)nkeys) - nk);
    const char *sv[32],
        **av = (size_t)argc + 1 <= DM_ARRAY_LEN(sv) ? sv : dm_xcalloc((size_t)argc + 1, sizeof *av);
    size_t sl[32],
        *al = (size_t)argc + 1 <= DM_ARRAY_LEN(sl) ? sl : dm_xcalloc((size_t)argc + 1, sizeof *al);
    av[0] = nk;
    al[0] = nkl;
    for (int i = 0; i < argc; i++) {
        av[i + 1] = argv[i];
        al[i + 1] = lens[i];
    }
    /* The first key names the slot; it is copied to a string (keys are binary-safe). */
    char small[256], *route = NULL;
    if (nkeys > 0 && lens[0] < sizeof small) {
        memcpy(small, argv[0], lens[0]);
        small[lens[0]] = '\0';
        route = small;
    } else if (nkeys > 0) {
        route = dm_xstrndup(argv[0], lens[0]);
    }
    int rc = submit(r, route, cb, arg, (long)script, argc + 1, av, al);
    if (route != small)
        free(route);
    if (av != sv)
        free(av);
    if (al != sl)
        free(al);
    return rc;
}

/*---------------------------------------------------------------- lifecycle ---*/

dm_redis *dm_redis_new(struct event_base *base, const dm_redis_opts *opts)
{
    dm_redis *r = dm_xcalloc(1, sizeof *r);
    r->base = base;
    r->host = opts->host ? dm_xstrdup(opts->host) : NULL;
    r->unix_path = opts->unix_path ? dm_xstrdup(opts->unix_path) : NULL;
    r->username = opts->username ? dm_xstrdup(opts->username) : NULL;
    r->password = opts->password ? dm_xstrdup(opts->password) : NULL;
    r->name = dm_xstrdup(opts->name ? opts->name : "redis");
    r->port = opts->port;
    r->db = opts->db;
    r->cluster = opts->cluster && !opts->unix_path;
    r->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 2000;
    r->command_timeout_ms = opts->command_timeout_ms > 0 ? opts->command_timeout_ms : 2000;
    r->max_inflight = opts->max_inflight > 0 ? opts->max_inflight : 1000;
    r->scripts = opts->scripts;
    r->nscripts = opts->nscripts;
    r->on_ready = opts->on_ready;
    r->on_ready_arg = opts->on_ready_arg;
    r->only_slot = r->cluster && opts->only_route
                       ? (int)dm_slot_of(opts->only_route, strlen(opts->only_route))
                       : -1;
    r->refresh_req.cb = dmr_on_refresh_done;
    r->cmd_tv = dmr_ms_tv(r->command_timeout_ms);
    r->cmd_timeout = event_base_init_common_timeout(base, &r->cmd_tv);
    if (!r->cmd_timeout)
        r->cmd_timeout = &r->cmd_tv; /* a plain timeout then */
    r->refresh_timer = evtimer_new(base, dmr_on_refresh_timer, r);
    r->refresh_deadline = evtimer_new(base, dmr_on_refresh_deadline, r);
    if (r->cluster) {
        r->slot_map = dm_xcalloc(DM_SLOTS, sizeof *r->slot_map);
        for (size_t s = 0; s < DM_SLOTS; s++)
            r->slot_map[s] = DMR_NO_NODE;
    }
    if (!r->refresh_timer || !r->refresh_deadline || !dmr_node_get(r, r->host, r->port, NULL)) {
        dm_redis_free(r);
        return NULL;
    }
    /* With nothing to load a connection is ready at once; the seed's readiness also starts
     * the first topology read. */
    if (r->cluster && dm_rconn_ready(r->nodes[0]->conn))
        dmr_request_refresh(r, true);
    dmr_enter(r);
    dmr_update_ready(r);
    dmr_leave(r);
    return r;
}

static void destroy(dm_redis *r)
{
    if (r->refresh_timer)
        event_free(r->refresh_timer);
    if (r->refresh_deadline)
        event_free(r->refresh_deadline);
    dm_rconn_dns_release(r->dns);
    if (r->password)
        memset(r->password, 0, strlen(r->password));
    free(r->host);
    free(r->unix_path);
    free(r->password);
    free(r->username);
    free(r->name);
    free(r->nodes);
    free(r->slot_map);
    free(r->replicas);
    free(r);
}

void dm_redis_free(dm_redis *r)
{
    if (!r || r->free_pending)
        return;
    r->free_pending = true;
    dmr_enter(r);
    if (r->refresh_timer)
        evtimer_del(r->refresh_timer);
    if (r->refresh_deadline)
        evtimer_del(r->refresh_deadline);
    /* Commands waiting out a retry fail now; those on a connection fail as it closes. */
    while (r->waiting)
        finish(r->waiting, DM_EUNAVAIL, NULL);
    node **nodes = r->nodes;
    size_t nnodes = r->nnodes;
    r->nodes = NULL;
    r->nnodes = 0;
    for (size_t i = 0; i < nnodes; i++)
        dmr_node_close(nodes[i]);
    free(nodes);
    dmr_leave(r);
}

void dm_redis_kick(dm_redis *r)
{
    if (!r || r->free_pending)
        return;
    dmr_enter(r);
    for (size_t i = 0; i < r->nnodes; i++)
        dm_rconn_kick(r->nodes[i]->conn);
    if (r->cluster && !r->refresh_slow && evtimer_pending(r->refresh_timer, NULL))
        dmr_request_refresh(r, true);
    dmr_leave(r);
}

bool dm_redis_ready(const dm_redis *r)
{
    return r && !r->free_pending && dmr_is_ready(r);
}

size_t dm_redis_inflight(const dm_redis *r)
{
    return r ? r->inflight : 0;
}

bool dm_redis_ready_for(const dm_redis *r, const char *route)
{
    if (!r || r->free_pending)
        return false;
    if (!r->cluster)
        return dmr_is_ready(r);
    if (!route)
        return r->topo_known && dmr_any_ready(r) != NULL;
    int slot = (int)dm_slot_of(route, strlen(route));
    return (r->only_slot < 0 || slot == r->only_slot) && slot_node(r, slot) != NULL;
}

size_t dm_redis_room(const dm_redis *r)
{
    if (!dm_redis_ready(r) || r->inflight >= (size_t)r->max_inflight)
        return 0;
    return (size_t)r->max_inflight - r->inflight;
}

size_t dm_redis_room_for(const dm_redis *r, const char *route)
{
    if (!dm_redis_ready_for(r, route) || r->inflight >= (size_t)r->max_inflight)
        return 0;
    return (size_t)r->max_inflight - r->inflight;
}
