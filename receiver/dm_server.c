#include "dm_common.h"
#include "dm_server.h"
#include "dm_build.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_redis.h"
#include "dm_redis_conf.h"
#include "dm_routes.h"
#include "dm_sse.h"
#include "dm_sweep.h"
#include "dm_trim.h"
#include "dm_worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
    dm_server *server;
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    int fd; /**< listening socket, owned until evhttp takes it */
    dm_redis *redis;
    dm_redis *sweep_redis; /**< worker 1 only: the sweeper's own connection, so a backlog of
                                  reports never delays or times out request traffic */
    dm_sweeper *sweeper;   /**< worker 1 only: one sweeper per process is enough */
    dm_trimmer *trimmer;   /**< worker 1 only, on the sweeper's connection */
    dm_sse_hub *sse;       /**< open /v1/events/stream answers of this worker */
    bool finishing;        /**< finish_drain ran: Redis is closed, the loop is ending */
    struct event *stop_ev; /**< activated from the main thread to begin draining */
    struct event *kick_ev; /**< activated by another worker whose Redis came back */
    struct event *drain_timer;
    worker_state state;
    int inflight, max_inflight;
};

struct dm_server {
    dm_app app;
    dm_worker *workers;
    int nworkers;
    atomic_int ready_workers; /**< workers whose Redis connection is ready */
    char **protected_groups;  /**< consumer groups trimming waits for (sinks', stream_groups) */
    size_t nprotected;
};

/*---------------------------------------------------------------- worker API ---*/

const dm_app *dm_worker_app(const dm_worker *w)
{
    return &w->server->app;
}

dm_redis *dm_worker_redis(const dm_worker *w)
{
    return w->redis;
}

dm_sse_hub *dm_worker_sse(const dm_worker *w)
{
    return w->sse;
}

bool dm_worker_all_ready(const dm_worker *w)
{
    return atomic_load(&w->server->ready_workers) == w->server->nworkers;
}

/* Runs on the worker whose connection changed. When Redis comes back for one worker, the
 * others skip the rest of their backoff: until they reconnect they would answer 503. */
static void on_redis_ready(bool ready, void *arg)
{
    dm_worker *w = arg;
    dm_server *s = w->server;
    atomic_fetch_add(&s->ready_workers, ready ? 1 : -1);
    if (!ready)
        return;
    for (int i = 0; i < s->nworkers; i++) {
        if (&s->workers[i] != w && s->workers[i].kick_ev)
            event_active(s->workers[i].kick_ev, EV_TIMEOUT, 0);
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

void dm_worker_end(dm_worker *w)
{
    w->inflight--;
    dm_metrics_inflight(-1);
    if (w->state == W_DRAINING && w->inflight == 0)
        finish_drain(w);
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

/* Every request goes to the route table: evhttp's own per-path callbacks cannot match a
 * prefix, answer 405 or count a 404. */
static void on_request(struct evhttp_request *req, void *arg)
{
    dm_worker *w = arg;
    dm_routes_dispatch(w, w->server->app.conf, req);
}

/*---------------------------------------------------------------- lifecycle ---*/

/* Close Redis while the loop still runs, so every request still waiting gets its 503 and
 * every answer is written out before the loop ends. */
static void finish_drain(dm_worker *w)
{
    if (w->finishing)
        return;
    w->finishing = true;
    evtimer_del(w->drain_timer);
    dm_redis *r = w->redis, *sr = w->sweep_redis;
    w->redis = NULL; /* requests on open connections now get 503 */
    w->sweep_redis = NULL;
    dm_redis_free(r);  /* runs the pending callbacks: each answers and ends its request */
    dm_redis_free(sr); /* before the sweeper: its callbacks use it */
    dm_sweeper_free(w->sweeper);
    w->sweeper = NULL;
    dm_trimmer_free(w->trimmer);
    w->trimmer = NULL;
    struct timeval tv = {0, FLUSH_MS * 1000};
    event_base_loopexit(w->base, &tv);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_worker *w = arg;
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

static void *worker_main(void *arg)
{
    dm_worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

static int listen_socket(const char *host, int port, bool reuseport, int *fd_out, char *err,
                         size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sslen = sizeof *s4;
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sslen = sizeof *s6;
    } else {
        snprintf(err, errlen, "listen: \"%s\" is not an IP address", host);
        return DM_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errlen, "listen on %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return DM_EIO;
    }
    *fd_out = fd;
    return DM_OK;
}

static int bound_port(int fd);

/* Bind (and listen) once without SO_REUSEPORT: fails if anyone listens on the port. Resolves
 * port 0 to the port the kernel picked. */
static int probe_port(const char *host, int *port, char *err, size_t errlen)
{
    int fd;
    int rc = listen_socket(host, *port, false, &fd, err, errlen);
    if (rc != DM_OK)
        return rc;
    *port = bound_port(fd);
    close(fd);
    return DM_OK;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* The worker's event loop and HTTP server, on its listening socket. */
static int worker_http(dm_worker *w, const dm_config *c, char *err, size_t errlen)
{
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
    /* libevent answers bodies over its limit itself (an HTML 413 we cannot log or count), so
     * its limit is a hard cap at twice ours and dm_ingest enforces max_body_bytes with a JSON
     * 413, a log line and a counter. Only bodies past the hard cap get libevent's answer. */
    evhttp_set_max_body_size(w->http, (ev_ssize_t)c->limits.max_body_bytes * 2);
    evhttp_set_max_headers_size(w->http, (ev_ssize_t)c->limits.max_header_bytes);
    evhttp_set_timeout(w->http, c->limits.idle_timeout_seconds);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    /* Drain a too-large body before answering 413, so the sender reads the answer. */
    evhttp_set_flags(w->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_default_content_type(w->http, "application/json");
    evhttp_set_gencb(w->http, on_request, w);

    struct evconnlistener *lev = evconnlistener_new(
        w->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, w->fd);
    if (!lev) {
        snprintf(err, errlen, "worker %d: cannot create listener", w->id);
        return DM_ENOMEM;
    }
    w->fd = -1; /* the listener owns it now */
    w->bound = evhttp_bind_listener(w->http, lev);
    return DM_OK;
}

/* Worker 1 only: the sweeper and the trimmer, on their own Redis connection (@p ro's options
 * under another name). */
static void worker_background(dm_server *s, dm_worker *w, const dm_redis_opts *ro)
{
    const dm_config *cc = s->app.conf;
    dm_redis_opts so = *ro;
    so.name = "sweeper";
    so.on_ready = NULL;
    so.on_ready_arg = NULL;
    w->sweep_redis = dm_redis_new(w->base, &so);
    w->sweeper = w->sweep_redis ? dm_sweeper_new(w->base, w->sweep_redis, &s->app.join,
                                                 cc->correlation.sweep_interval_ms,
                                                 cc->correlation.sweep_batch, on_sweep, NULL)
                                : NULL;
    w->trimmer =
        w->sweep_redis
            ? dm_trimmer_new(w->base, w->sweep_redis, &s->app.join, cc->outputs.trim_interval_ms,
                             (const char *const *)s->protected_groups, s->nprotected, on_trim, NULL)
            : NULL;
}

static int worker_init(dm_server *s, dm_worker *w, int id, char *err, size_t errlen)
{
    const dm_config *c = s->app.conf;
    w->id = id;
    w->server = s;
    w->max_inflight = c->limits.max_inflight / s->nworkers;
    if (w->max_inflight < 1)
        w->max_inflight = 1;
    int rc = worker_http(w, c, err, errlen);
    if (rc != DM_OK)
        return rc;

    char name[32];
    snprintf(name, sizeof name, "worker-%d", id);
    int per_conn = c->limits.max_inflight / s->nworkers;
    dm_redis_opts ro = dm_redis_conf_opts(c, s->app.redis_socket, name);
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
    w->drain_timer = evtimer_new(w->base, on_drain_timeout, w);
    w->sse = dm_sse_hub_new(&(dm_sse_hub_conf){.base = w->base,
                                               .conf = c,
                                               .redis_socket = s->app.redis_socket,
                                               .join = &s->app.join,
                                               .admit = sse_admit,
                                               .done = sse_done,
                                               .arg = w});
    if (id == 1)
        worker_background(s, w, &ro);
    if (!w->redis || !w->stop_ev || !w->drain_timer || !w->kick_ev ||
        (id == 1 && (!w->sweeper || !w->trimmer))) {
        snprintf(err, errlen, "worker %d: out of memory", id);
        return DM_ENOMEM;
    }
    return DM_OK;
}

static void worker_dispose(dm_worker *w)
{
    dm_sse_hub_free(w->sse);
    dm_redis_free(w->redis);
    dm_redis_free(w->sweep_redis); /* before the sweeper: it runs the sweeper's callbacks */
    dm_sweeper_free(w->sweeper);
    dm_trimmer_free(w->trimmer);
    if (w->stop_ev)
        event_free(w->stop_ev);
    if (w->kick_ev)
        event_free(w->kick_ev);
    if (w->drain_timer)
        event_free(w->drain_timer);
    if (w->http)
        evhttp_free(w->http);
    if (w->base)
        event_base_free(w->base);
    if (w->fd >= 0)
        close(w->fd);
}

/* Stop the first @p started workers (their threads run), then free every worker and @p s. */
static void stop_workers(dm_server *s, int started)
{
    /* event_active from another thread is safe: evthread_use_pthreads() ran at startup. */
    for (int i = 0; i < started; i++)
        event_active(s->workers[i].stop_ev, EV_TIMEOUT, 0);
    for (int i = 0; i < started; i++)
        pthread_join(s->workers[i].thread, NULL);
    for (int i = 0; i < s->nworkers; i++)
        worker_dispose(&s->workers[i]);
    free(s->workers);
    for (size_t i = 0; i < s->nprotected; i++)
        free(s->protected_groups[i]);
    free(s->protected_groups);
    free(s);
    dm_metrics_shutdown();
}

int dm_server_start(const dm_config *conf, const dm_trust *trust, const char *redis_socket,
                    dm_server **out, int *port_out, char *err, size_t errlen)
{
    dm_server *s = dm_xcalloc(1, sizeof *s);
    s->app.conf = conf;
    s->app.trust = trust;
    s->app.redis_socket = redis_socket;
    s->app.join = (dm_join_conf){
        .prefix = conf->redis.prefix,
        .shards = (unsigned)conf->redis.shards,
        .window_ms = conf->correlation.window_seconds * 1000,
        .grace_ms = conf->correlation.grace_seconds * 1000,
        .max_skew_ms = conf->correlation.max_clock_skew_seconds * 1000,
        .mapping_ttl_ms = conf->correlation.mapping_ttl_seconds * 1000,
        .stream_maxlen = conf->outputs.stream_maxlen,
        .report_untagged = conf->correlation.report_untagged,
    };
    s->nworkers = conf->workers;
    s->workers = dm_xcalloc((size_t)s->nworkers, sizeof *s->workers);
    /* Trimming must spare what the sinks (dm_sink.h names their groups) and the listed
     * external consumers have not acknowledged yet. */
    s->nprotected = conf->outputs.nwebhooks + conf->outputs.nstream_groups;
    s->protected_groups = dm_xcalloc(s->nprotected + 1, sizeof *s->protected_groups);
    for (size_t i = 0; i < conf->outputs.nwebhooks; i++) {
        const char *name = conf->outputs.webhooks[i].name;
        s->protected_groups[i] = dm_xmalloc(strlen("digestmap:") + strlen(name) + 1);
        strcpy(s->protected_groups[i], "digestmap:");
        strcat(s->protected_groups[i], name);
    }
    for (size_t i = 0; i < conf->outputs.nstream_groups; i++)
        s->protected_groups[conf->outputs.nwebhooks + i] =
            dm_xstrdup(conf->outputs.stream_groups[i]);
    for (int i = 0; i < s->nworkers; i++)
        s->workers[i].fd = -1;

    /* Bind every socket before any thread starts, so a port in use is a startup error and
     * port 0 resolves once: the first bind picks the port, the others join it. SO_REUSEPORT
     * would also let us join another process's group on that port and split its traffic, so
     * the port is first bound once without it. */
    int port = conf->listen_port;
    int rc = probe_port(conf->listen_host, &port, err, errlen);
    for (int i = 0; i < s->nworkers && rc == DM_OK; i++)
        rc = listen_socket(conf->listen_host, port, true, &s->workers[i].fd, err, errlen);

    dm_routes_init_metrics(conf);

    int started = 0;
    for (int i = 0; i < s->nworkers && rc == DM_OK; i++)
        rc = worker_init(s, &s->workers[i], i + 1, err, errlen);
    for (int i = 0; i < s->nworkers && rc == DM_OK; i++) {
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
            snprintf(err, errlen, "cannot start worker thread: %s", strerror(errno));
            rc = DM_EIO;
            break;
        }
        started++;
    }
    if (rc != DM_OK) {
        stop_workers(s, started);
        return rc;
    }
    dm_info("listening", "addr=%s%s%s:%d workers=%d", strchr(conf->listen_host, ':') ? "[" : "",
            conf->listen_host, strchr(conf->listen_host, ':') ? "]" : "", port, s->nworkers);
    if (port_out)
        *port_out = port;
    *out = s;
    return DM_OK;
}

void dm_server_stop(dm_server *s)
{
    if (s)
        stop_workers(s, s->nworkers);
}
