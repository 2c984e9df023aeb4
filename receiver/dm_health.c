#include "dm_common.h"
#include "dm_health.h"
#include "dm_http.h"
#include "dm_metrics.h"
#include "dm_redis.h"

#include <event2/buffer.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>

void dm_health_healthz(dm_worker *w, struct evhttp_request *req, const dm_route_match *m)
{
    (void)w;
    dm_http_json(req, m->id, 200, "{\"status\":\"ok\"}");
}

/* One /readyz waiting for its PING. */
typedef struct ready_req {
    dm_worker *w;
    struct evhttp_request *req;
    size_t route;
} ready_req;

static void on_ping(int err, redisReply *rep, void *arg)
{
    ready_req *q = arg;
    if (err == DM_OK && rep->type == REDIS_REPLY_STATUS && dm_worker_all_ready(q->w))
        dm_http_json(q->req, q->route, 200, "{\"status\":\"ready\"}");
    else
        dm_http_error(q->req, q->route, 503, "redis unavailable");
    dm_worker_end(q->w);
    free(q);
}

void dm_health_readyz(dm_worker *w, struct evhttp_request *req, const dm_route_match *m)
{
    if (!dm_worker_begin(w)) {
        dm_http_error(req, m->id, 503, "too many requests in flight");
        return;
    }
    ready_req *q = dm_xmalloc(sizeof *q);
    q->w = w;
    q->req = req;
    q->route = m->id;
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    if (dm_redis_command(dm_worker_redis(w), NULL, on_ping, q, 1, argv, lens) != DM_OK) {
        free(q);
        dm_http_error(req, m->id, 503, "redis unavailable");
        dm_worker_end(w);
    }
}

void dm_health_metrics(dm_worker *w, struct evhttp_request *req, const dm_route_match *m)
{
    (void)w;
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    dm_metrics_render(b);
    dm_http_text(req, m->id, 200, "text/plain; version=0.0.4", b);
    evbuffer_free(b);
}
