#include "dm_common.h"
#include "dm_worker.h"
#include "dm_build.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_redis.h"
#include "dm_redis_conf.h"
#include "dm_replay.h"
#include "dm_spool.h"
#include "dm_sse.h"
#include "dm_sweep.h"
#include "dm_trim.h"
#include "dm_wait.h"

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define DRAIN_TIMEOUT_S 10
/* After the last answer, keep the loop running this long so evhttp writes it out. */
#define FLUSH_MS        200

typedef enum {
    W_RUNNING = 0, /**< accepting and serving */
    W_DRAINING,    /**< not accepting; waiting for in-flight requests to be answered */
} worker_state;

struct dm_worker {
    int id;
    const dm_app *app;
    dm_worker_siblings *siblings;
    dm_worker_request_fn *on_request;
    void *on_request_arg;
    dm_worker_direct_fn *on_direct;
    void *on_direct_arg;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    dm_conns *conns; /**< every client connection's guard (dm_conn.h) */
    int fd;          /**< listening socket, owned until evhttp takes it */
    dm_redis *redis;
    dm_redis *sweep_redis;  /**< worker 1 only: the sweeper's own connection, so a backlog of
                                  reports never delays or times out request traffic */
    dm_sweeper *sweeper;    /**< worker 1 only: one sweeper per process is enough */
    dm_trimmer *trimmer;    /**< worker 1 only, on the sweeper's connection */
    dm_replay *replay;      /**< worker 1 only: the spool's replayer, on its own connection */
    dm_spool_client *spool; /**< this worker's spool client, or NULL without a spool */
    dm_waiter *waiter;      /**< redis.wait_replicas: one WAIT per connection at a time */
    dm_sse_hub *sse;        /**< open /v1/events/stream answers of this worker */
    bool finishing;         /**< finish_drain ran: Redis is closed, the loop is ending */
    struct event *stop_ev;  /**< activated from the main thread to begin draining */
    struct event *kick_ev;  /**< activated by another worker whose Redis came back */
    struct event *drain_timer;
    worker_state state;
    int inflight, max_inflight;
};

/*---------------------------------------------------------------- handler API ---*/

const dm_app *dm_worker_app(const dm_worker *w)
{
    return w->app;
}

dm_redis *dm_worker_redis(const dm_worker *w)
{
    return w->redis;
}

dm_spool_client *dm_worker_spool(const dm_worker *w)
{
    return w->spool;
}

dm_waiter *dm_worker_waiter(const dm_worker *w)
{
    return w->waiter;
}

dm_sse_hub *dm_worker_sse(const dm_worker *w)
{
    return w->sse;
}

bool dm_worker_all_ready(const dm_worker *w)
{
    return atomic_load(&w->siblings->ready) == w->siblings->n;
}

/* Runs on the worker whose connection changed. When Redis comes back for one worker, the
 * others skip the rest of their backoff: until they reconnect they would answer 503. */
static void on_redis_ready(bool ready, void *arg)
{
    dm_worker *w = arg;
    dm_worker_siblings *sib = w->siblings;
    atomic_fetch_add(&sib->ready, ready ? 1 : -1);
    if (!ready)
        return;
    for (int i = 0; i < sib->n; i++) {
        dm_worker *o = sib->all[i];
        if (o && o != w && o->kick_ev)
            event_active(o->kick_ev, EV_TIMEOUT, 0);
    }
}

static void on_sweep(const dm_sweep_stats *st, void *arg)
{
    (void)arg;
    dm_metrics_add(DM_M_UNMATCHED_REGISTRY, (uint64_t)st->unmatched_registry);
    dm_metrics_add(DM_M_UNMATCHED_BUILD, (uint64_t)st->unmatched_build);
    if (!st->complete)
        return; /* partial figures would make the gauges jump */
    dm_metrics_set(DM_G_SWEEP_LAG_MS, st->lag_ms);
    dm_metrics_set(DM_G_PARKED_REGISTRY, st->parked_registry);
    dm_metrics_set(DM_G_PARKED_BUILD, st->parked_build);
}

static void on_trim(const dm_trim_stats *st, void *arg)
{
    (void)arg;
    dm_metrics_add(DM_M_STREAM_TRIMMED, (uint64_t)st->trimmed);
    if (st->complete)
        dm_metrics_set(DM_G_STREAM_GROUP_LAG, st->max_backlog < 0 ? 0 : st->max_backlog);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_worker *w = arg;
    dm_redis_kick(w->redis);
}

bool dm_worker_begin(dm_worker *w)
{
    if (w->inflight >= w->max_inflight)
        return false;
    w->inflight++;
    dm_metrics_inflight(1);
    return true;
}

static void finish_drain(dm_worker *w);

static void end_loop(dm_worker *w);

void dm_worker_end(dm_worker *w)
{
    w->inflight--;
    dm_metrics_inflight(-1);
    if (w->state == W_DRAINING && w->inflight == 0) {
        if (w->finishing)
            end_loop(w); /* the last spool write it waited for was answered */
        else
            finish_drain(w);
    }
}

/* Event streams are admitted like requests until their 200 is sent (dm_sse.h). */
static bool sse_admit(void *arg)
{
    return dm_worker_begin(arg);
}

static void sse_done(void *arg)
{
    dm_worker_end(arg);
}

/* Every request goes to the function the server gave (its route table): evhttp's own per-path
 * callbacks cannot match a prefix, answer 405 or count a 404. */
static void on_request(struct evhttp_request *req, void *arg)
{
    dm_worker *w = arg;
    dm_conns_dispatch(w->conns, req);
    w->on_request(w, req, w->on_request_arg);
}

static void on_direct(dm_req *req, void *arg)
{
    dm_worker *w = arg;
    w->on_direct(w, req, w->on_direct_arg);
}

/*---------------------------------------------------------------- draining ---*/

/* Let evhttp write the last answers out, then end the loop. */
static void end_loop(dm_worker *w)
{
    evtimer_del(w->drain_timer);
    struct timeval tv = {0, FLUSH_MS * 1000};
    event_base_loopexit(w->base, &tv);
}

/* Close Redis while the loop still runs, so every request still waiting gets its answer and
 * every answer is written out before the loop ends. Requests that Redis failed go to the spool
 * (docs/spool.md): the loop runs on until their writes are answered too (the spool's
 * completions run on this loop; after it they would never run, and the requests would be left
 * unanswered), DRAIN_TIMEOUT_S at most. */
static void finish_drain(dm_worker *w)
{
    if (w->finishing)
        return;
    w->finishing = true;
    evtimer_del(w->drain_timer);
    dm_redis *r = w->redis, *sr = w->sweep_redis;
    w->redis = NULL; /* requests on open connections now get 503 */
    w->sweep_redis = NULL;
    dm_redis_free(r);          /* runs the pending callbacks: each answers and ends its request */
    dm_waiter_free(w->waiter); /* after its Redis: the WAITs in flight were answered */
    w->waiter = NULL;
    dm_redis_free(sr); /* before the sweeper: its callbacks use it */
    dm_sweeper_free(w->sweeper);
    w->sweeper = NULL;
    dm_trimmer_free(w->trimmer);
    w->trimmer = NULL;
    dm_replay_free(w->replay);
    w->replay = NULL;
    if (w->inflight == 0) {
        end_loop(w);
        return;
    }
    struct timeval tv = {DRAIN_TIMEOUT_S, 0};
    evtimer_add(w->drain_timer, &tv);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_worker *w = arg;
    if (w->finishing) {
        dm_error("drain timeout; spool writes still unanswered", "worker=%d inflight=%d", w->id,
                 w->inflight);
        end_loop(w);
        return;
    }
    dm_warn("drain timeout; failing requests still in flight", "worker=%d inflight=%d", w->id,
            w->inflight);
    finish_drain(w);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_worker *w = arg;
    if (w->state == W_DRAINING)
        return;
    w->state = W_DRAINING;
    dm_conns_unlisten(w->conns);
    if (w->bound) {
        evhttp_del_accept_socket(w->http, w->bound); /* closes the listening socket */
        w->bound = NULL;
    }
    dm_sse_hub_close(w->sse); /* event streams never end by themselves */
    if (w->inflight == 0) {
        finish_drain(w);
        return;
    }
    struct timeval tv = {DRAIN_TIMEOUT_S, 0};
    evtimer_add(w->drain_timer, &tv);
}

void dm_worker_drain(dm_worker *w)
{
    /* event_active from another thread is safe: evthread_use_pthreads() ran at startup. */
    event_active(w->stop_ev, EV_TIMEOUT, 0);
}

void dm_worker_run(dm_worker *w)
{
    event_base_dispatch(w->base);
}

/*---------------------------------------------------------------- lifecycle ---*/

/* The worker's event loop and HTTP server, on its listening socket. */
static int worker_http(dm_worker *w, const dm_worker_conf *wc, char *err, size_t errlen)
{
    const dm_config *c = w->app->conf;
    /* The changelist merges the several epoll_ctl calls a request makes per loop iteration
     * (bench/: ~10% less CPU per request). Safe here: no fd is dup'ed across events. */
    struct event_config *cfg = event_config_new();
    if (cfg)
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = cfg ? event_base_new_with_config(cfg) : NULL;
    if (cfg)
        event_config_free(cfg);
    w->http = w->base ? evhttp_new(w->base) : NULL;
    if (!w->http) {
        snprintf(err, errlen, "worker %d: cannot create event loop", w->id);
        return DM_ENOMEM;
    }
    /* The connection layer (dm_conn.h) enforces both limits first, with JSON answers; evhttp's
     * own (an HTML page) are set so that they never fire: evhttp sees only what passed, in a
     * canonical head a little longer than the original. */
    w->conns = dm_conns_new(&(dm_conn_conf){.base = w->base,
                                            .conf = c,
                                            .worker = w->id,
                                            .max_connections = wc->max_connections,
                                            .bodies = &w->siblings->bodies,
                                            .on_head = wc->on_head,
                                            .on_head_arg = wc->on_head_arg,
                                            .on_direct = wc->on_direct ? on_direct : NULL,
                                            .on_direct_arg = w,
                                            .make_bev = wc->make_bev,
                                            .make_bev_arg = wc->make_bev_arg});
    evhttp_set_bevcb(w->http, dm_conns_bevcb, w->conns);
    evhttp_set_max_body_size(w->http, (ev_ssize_t)c->limits.max_body_bytes);
    evhttp_set_max_headers_size(w->http, (ev_ssize_t)c->limits.max_header_bytes * 2 + 4096);
    evhttp_set_timeout(w->http, c->limits.idle_timeout_seconds);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(w->http, "application/json");
    evhttp_set_gencb(w->http, on_request, w);

    /* Backlog 0: the socket already listens with the server's backlog (a negative one would
     * make libevent listen again with 128). */
    struct evconnlistener *lev = evconnlistener_new(
        w->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, w->fd);
    if (!lev) {
        snprintf(err, errlen, "worker %d: cannot create listener", w->id);
        return DM_ENOMEM;
    }
    w->fd = -1; /* the listener owns it now */
    w->bound = evhttp_bind_listener(w->http, lev);
    if (!w->bound) {
        snprintf(err, errlen, "worker %d: cannot bind listener", w->id);
        return DM_ENOMEM;
    }
    dm_conns_listen(w->conns, lev);
    return DM_OK;
}

/* Worker 1 only: the sweeper and the trimmer, on their own Redis connection (@p ro's options
 * under another name). */
static void worker_background(dm_worker *w, const dm_worker_conf *wc, const dm_redis_opts *ro)
{
    const dm_config *cc = w->app->conf;
    dm_redis_opts so = *ro;
    so.name = "sweeper";
    so.on_ready = NULL;
    so.on_ready_arg = NULL;
    w->sweep_redis = dm_redis_new(w->base, &so);
    w->sweeper = w->sweep_redis ? dm_sweeper_new(w->base, w->sweep_redis, &w->app->join,
                                                 cc->correlation.sweep_interval_ms,
                                                 cc->correlation.sweep_batch, on_sweep, NULL)
                                : NULL;
    w->trimmer = w->sweep_redis
                     ? dm_trimmer_new(w->base, w->sweep_redis, &w->app->join,
                                      cc->outputs.trim_interval_ms, cc->outputs.max_group_lag,
                                      wc->protected_groups, wc->nprotected, on_trim, NULL)
                     : NULL;
    if (w->app->spool)
        w->replay = dm_replay_new(&(dm_replay_conf){
            .base = w->base,
            .spool = w->app->spool,
            .redis = ro,
            .join = &w->app->join,
            .wait_replicas = cc->redis.wait_replicas,
            .wait_timeout_ms = cc->redis.command_timeout_ms / 2,
        });
}

static int worker_init(dm_worker *w, const dm_worker_conf *wc, char *err, size_t errlen)
{
    const dm_config *c = w->app->conf;
    int id = w->id, nworkers = w->siblings->n;
    w->max_inflight = c->limits.max_inflight / nworkers;
    if (w->max_inflight < 1)
        w->max_inflight = 1;
    int rc = worker_http(w, wc, err, errlen);
    if (rc != DM_OK)
        return rc;

    char name[32];
    snprintf(name, sizeof name, "worker-%d", id);
    int per_conn = c->limits.max_inflight / nworkers;
    dm_redis_opts ro = dm_redis_conf_opts(c, w->app->redis_socket, name);
    /* Room for the largest build event (one command per digest), which is refused whole when
     * it does not fit (dm_ingest), never parked in part. */
    ro.max_inflight =
        per_conn * 4 > DM_MAX_EVENTS_PER_REQUEST * 2 ? per_conn * 4 : DM_MAX_EVENTS_PER_REQUEST * 2;
    ro.on_ready = on_redis_ready;
    ro.on_ready_arg = w;
    /* Events first: the Redis client may report readiness to the other workers at once. */
    w->kick_ev = event_new(w->base, -1, 0, on_kick, w);
    w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
    w->redis = dm_redis_new(w->base, &ro);
    if (w->redis && c->redis.wait_replicas > 0)
        w->waiter =
            dm_waiter_new(w->redis, c->redis.wait_replicas, c->redis.command_timeout_ms / 2);
    if (w->app->spool)
        w->spool = dm_spool_client_new(w->app->spool, w->base);
    w->drain_timer = evtimer_new(w->base, on_drain_timeout, w);
    w->sse = dm_sse_hub_new(&(dm_sse_hub_conf){.base = w->base,
                                               .conf = c,
                                               .redis_socket = w->app->redis_socket,
                                               .join = &w->app->join,
                                               .admit = sse_admit,
                                               .done = sse_done,
                                               .arg = w});
    if (id == 1)
        worker_background(w, wc, &ro);
    if (!w->redis || !w->stop_ev || !w->drain_timer || !w->kick_ev ||
        (id == 1 && (!w->sweeper || !w->trimmer)) ||
        (w->app->spool && (!w->spool || (id == 1 && !w->replay)))) {
        snprintf(err, errlen, "worker %d: out of memory", id);
        return DM_ENOMEM;
    }
    return DM_OK;
}

int dm_worker_new(const dm_worker_conf *wc, dm_worker **out, char *err, size_t errlen)
{
    dm_worker *w = dm_xcalloc(1, sizeof *w);
    w->id = wc->id;
    w->app = wc->app;
    w->siblings = wc->siblings;
    w->on_request = wc->on_request;
    w->on_request_arg = wc->on_request_arg;
    w->on_direct = wc->on_direct;
    w->on_direct_arg = wc->on_direct_arg;
    w->fd = wc->fd;
    int rc = worker_init(w, wc, err, errlen);
    if (rc != DM_OK) {
        dm_worker_free(w);
        w = NULL;
    }
    *out = w;
    return rc;
}

void dm_worker_free(dm_worker *w)
{
    if (!w)
        return;
    dm_sse_hub_free(w->sse);
    dm_redis_free(w->redis);
    dm_waiter_free(w->waiter);     /* after its Redis */
    dm_redis_free(w->sweep_redis); /* before the sweeper: it runs the sweeper's callbacks */
    dm_sweeper_free(w->sweeper);
    dm_trimmer_free(w->trimmer);
    dm_replay_free(w->replay);
    dm_spool_client_free(w->spool); /* before the event_base its completions run on */
    if (w->stop_ev)
        event_free(w->stop_ev);
    if (w->kick_ev)
        event_free(w->kick_ev);
    if (w->drain_timer)
        event_free(w->drain_timer);
    dm_conns_free(w->conns); /* before evhttp frees the connections */
    if (w->http)
        evhttp_free(w->http);
    if (w->base)
        event_base_free(w->base);
    if (w->fd >= 0)
        close(w->fd);
    free(w);
}
