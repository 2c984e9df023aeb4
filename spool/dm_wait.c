#include "dm_common.h"
#include "dm_wait.h"
#include "dm_keys.h"
#include "dm_log.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct waiter_req {
    dm_waiter_cb cb;
    void *arg;
    struct waiter_req *next;
} waiter_req;

/* The callers of one connection: those the WAIT in flight covers, and those for the next. */
typedef struct group {
    dm_waiter *w;
    int conn;
    char route[DM_KEY_BUFLEN]; /**< a key routed to the connection (the latest asked for) */
    bool inflight;
    waiter_req *covered;
    waiter_req *next, *next_tail;
} group;

struct dm_waiter {
    dm_redis *redis;
    char n[16], timeout[16];
    int replicas;
    group **groups;
    size_t ngroups;
    long long sent;
    int busy; /**< inside a completion: dm_waiter_free waits for it to return */
    bool free_pending;
};

dm_waiter *dm_waiter_new(dm_redis *redis, int replicas, int timeout_ms)
{
    dm_waiter *w = dm_xcalloc(1, sizeof *w);
    w->redis = redis;
    w->replicas = replicas;
    snprintf(w->n, sizeof w->n, "%d", replicas);
    snprintf(w->timeout, sizeof w->timeout, "%d", timeout_ms > 0 ? timeout_ms : 1);
    return w;
}

static void destroy(dm_waiter *w)
{
    for (size_t i = 0; i < w->ngroups; i++) {
        group *g = w->groups[i];
        for (waiter_req *q = g->covered, *nx; q; q = nx) {
            nx = q->next;
            free(q);
        }
        for (waiter_req *q = g->next, *nx; q; q = nx) {
            nx = q->next;
            free(q);
        }
        free(g);
    }
    free(w->groups);
    free(w);
}

void dm_waiter_free(dm_waiter *w)
{
    if (!w)
        return;
    if (w->busy) {
        w->free_pending = true;
        return;
    }
    destroy(w);
}

long long dm_waiter_sent(const dm_waiter *w)
{
    return w ? w->sent : 0;
}

static void on_wait(int err, redisReply *rep, void *arg);

/* Send the WAIT for the callers queued for the next one. DM_OK, or an error (nothing sent). */
static int send_wait(group *g)
{
    dm_waiter *w = g->w;
    const char *argv[] = {"WAIT", w->n, w->timeout};
    size_t lens[] = {4, strlen(w->n), strlen(w->timeout)};
    int rc = dm_redis_command(w->redis, g->route, on_wait, g, 3, argv, lens);
    if (rc != DM_OK)
        return rc;
    w->sent++;
    g->inflight = true;
    g->covered = g->next;
    g->next = g->next_tail = NULL;
    return DM_OK;
}

static void complete(waiter_req *list, bool confirmed)
{
    for (waiter_req *q = list, *nx; q; q = nx) {
        nx = q->next;
        q->cb(confirmed, q->arg);
        free(q);
    }
}

static void on_wait(int err, redisReply *rep, void *arg)
{
    group *g = arg;
    dm_waiter *w = g->w;
    w->busy++;
    bool confirmed =
        err == DM_OK && rep->type == REDIS_REPLY_INTEGER && rep->integer >= w->replicas;
    waiter_req *covered = g->covered, *failed = NULL;
    g->covered = NULL;
    g->inflight = false;
    /* Those that joined meanwhile get their own WAIT now: it covers their writes. */
    if (g->next && send_wait(g) != DM_OK) {
        failed = g->next;
        g->next = g->next_tail = NULL;
    }
    complete(covered, confirmed);
    complete(failed, false);
    if (--w->busy == 0 && w->free_pending)
        destroy(w);
}

static group *group_of(dm_waiter *w, int conn)
{
    for (size_t i = 0; i < w->ngroups; i++)
        if (w->groups[i]->conn == conn)
            return w->groups[i];
    group **gs = realloc(w->groups, (w->ngroups + 1) * sizeof *gs);
    if (!gs)
        abort();
    w->groups = gs;
    group *g = dm_xcalloc(1, sizeof *g);
    g->w = w;
    g->conn = conn;
    w->groups[w->ngroups++] = g;
    return g;
}

int dm_waiter_wait(dm_waiter *w, const char *route, dm_waiter_cb cb, void *arg)
{
    if (!w)
        return DM_EUNAVAIL;
    int conn = dm_redis_route_conn(w->redis, route);
    if (conn < 0 || !dm_redis_ready(w->redis))
        return DM_EUNAVAIL;
    group *g = group_of(w, conn);
    snprintf(g->route, sizeof g->route, "%s", route);
    waiter_req *q = dm_xcalloc(1, sizeof *q);
    q->cb = cb;
    q->arg = arg;
    if (g->next_tail)
        g->next_tail->next = q;
    else
        g->next = q;
    g->next_tail = q;
    if (g->inflight)
        return DM_OK; /* joins the next WAIT */
    int rc = send_wait(g);
    if (rc != DM_OK) {
        g->next = g->next_tail = NULL;
        free(q);
    }
    return rc;
}
