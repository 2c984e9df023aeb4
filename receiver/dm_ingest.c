#include "dm_common.h"
#include "dm_ingest.h"
#include "dm_acr.h"
#include "dm_auth.h"
#include "dm_build.h"
#include "dm_http.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_query.h"
#include "dm_redis.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One webhook being parked: owns nothing of the request but the right to answer it once. */
typedef struct ingest {
    dm_worker *w;
    struct evhttp_request *req;
    size_t route;
    char source[16];
    size_t events, pending;
    int first_err;
    int edges, duplicates, skewed, deletes;
} ingest;

static const char *find_header(void *ctx, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(ctx), name);
}

/* Returns true when the request may proceed; otherwise it has been answered 401. */
static bool authenticate(struct evhttp_request *req, size_t route, const char *path,
                         const dm_auth_list *auth, const unsigned char *body, size_t len)
{
    const char *why = NULL;
    dm_auth_result r = dm_auth_check(auth, find_header, req, body, len, &why);
    if (r == DM_AUTH_OK)
        return true;
    char peer[64];
    dm_metrics_inc(DM_M_AUTH_FAILED);
    dm_warn("request refused", "status=401 route=%s reason=\"%s\" peer=%s", path,
            why ? why : "", dm_http_peer(req, peer));
    dm_http_error(req, route, 401, r == DM_AUTH_MISSING ? "missing credentials" : "bad credentials");
    return false;
}

static void unavailable(struct evhttp_request *req, size_t route, int err)
{
    char peer[64];
    dm_metric m = err == DM_EBUSY      ? DM_M_OVERLOADED
                  : err == DM_ETIMEOUT ? DM_M_REDIS_TIMEOUT
                  : err == DM_EREDIS   ? DM_M_REDIS_ERROR
                                       : DM_M_REDIS_UNAVAILABLE;
    dm_metrics_inc(m);
    dm_warn("request refused", "status=503 reason=\"%s\" peer=%s", dm_strerror(err),
            dm_http_peer(req, peer));
    dm_http_error(req, route, 503, "%s; retry later",
                  err == DM_EBUSY ? "too many requests in flight" : "storage unavailable");
}

static void ingest_done(ingest *in)
{
    if (in->first_err != DM_OK) {
        unavailable(in->req, in->route, in->first_err);
    } else {
        char body[128];
        snprintf(body, sizeof body, "{\"status\":\"accepted\",\"events\":%zu,\"edges\":%d}",
                 in->events, in->edges);
        dm_metrics_parked(in->source, in->events);
        dm_metrics_add(DM_M_EDGES, (uint64_t)in->edges);
        dm_metrics_add(DM_M_DELETES, (uint64_t)in->deletes);
        dm_metrics_add(DM_M_DUPLICATES, (uint64_t)in->duplicates);
        dm_metrics_add(DM_M_SKEW_REPLACED, (uint64_t)in->skewed);
        dm_debug("events parked", "source=%s events=%zu edges=%d duplicates=%d", in->source,
                 in->events, in->edges, in->duplicates);
        dm_http_json(in->req, in->route, 202, body);
    }
    dm_worker_end(in->w);
    free(in);
}

static void on_parked(int err, const dm_join_result *res, void *arg)
{
    ingest *in = arg;
    if (err != DM_OK) {
        if (in->first_err == DM_OK)
            in->first_err = err;
    } else {
        in->edges += res->edges;
        in->duplicates += res->duplicate;
        in->skewed += res->skewed;
        in->deletes += res->deleted;
    }
    if (--in->pending == 0)
        ingest_done(in);
}

void dm_ingest_handle(dm_worker *w, struct evhttp_request *req, const dm_source_conf *src,
                      size_t route)
{
    struct evbuffer *buf = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(buf);
    if (len > dm_worker_app(w)->conf->limits.max_body_bytes) {
        char peer[64];
        dm_metrics_inc(DM_M_TOO_LARGE);
        dm_warn("request refused", "status=413 route=%s bytes=%zu limit=%zu peer=%s", src->path,
                len, dm_worker_app(w)->conf->limits.max_body_bytes, dm_http_peer(req, peer));
        dm_http_error(req, route, 413, "body of %zu bytes exceeds limits.max_body_bytes (%zu)", len,
                      dm_worker_app(w)->conf->limits.max_body_bytes);
        return;
    }
    const char *body = len ? (const char *)evbuffer_pullup(buf, -1) : "";
    if (!authenticate(req, route, src->path, &src->auth, (const unsigned char *)body, len))
        return;

    dm_event_list events = {0};
    dm_error err = {0};
    int rc = src->type == DM_SRC_ACR ? dm_acr_parse(body, len, &events, &err)
                                     : dm_build_parse(body, len, NULL, &events, &err);
    if (rc != DM_OK) {
        char peer[64];
        dm_metrics_inc(DM_M_INVALID);
        dm_warn("request refused", "status=%d route=%s field=\"%s\" reason=\"%s\" peer=%s",
                err.status ? err.status : 400, src->path, err.field, err.text,
                dm_http_peer(req, peer));
        if (err.field[0])
            dm_http_error(req, route, err.status ? err.status : 400, "%s: %s", err.field, err.text);
        else
            dm_http_error(req, route, err.status ? err.status : 400, "%s", err.text);
        return;
    }
    if (events.ignored || events.n == 0) {
        char out[160];
        const char *why = events.ignored ? events.ignored : "no events";
        dm_metrics_inc(DM_M_IGNORED);
        dm_info("request ignored", "route=%s reason=\"%s\"", src->path, why);
        snprintf(out, sizeof out, "{\"status\":\"ignored\",\"reason\":\"%s\"}", why);
        dm_http_json(req, route, 200, out);
        dm_event_list_dispose(&events);
        return;
    }
    /* All or nothing: a request whose events do not all fit is refused before any is parked
     * (a partial write would be retried forever at the same point). */
    if (dm_redis_room(dm_worker_redis(w)) < events.n) {
        int why = dm_redis_ready(dm_worker_redis(w)) ? DM_EBUSY : DM_EUNAVAIL;
        dm_event_list_dispose(&events);
        unavailable(req, route, why);
        return;
    }
    if (!dm_worker_begin(w)) {
        dm_event_list_dispose(&events);
        unavailable(req, route, DM_EBUSY);
        return;
    }
    ingest *in = dm_xcalloc(1, sizeof *in);
    in->w = w;
    in->req = req;
    in->route = route;
    in->events = events.n;
    snprintf(in->source, sizeof in->source, "%s", events.v[0].source);
    const dm_app *app = dm_worker_app(w);
    /* Callbacks never run inside dm_join_submit, so counting while submitting is safe. */
    for (size_t i = 0; i < events.n; i++) {
        rc = dm_join_submit(dm_worker_redis(w), &app->join, &events.v[i], on_parked, in);
        if (rc == DM_OK) {
            in->pending++;
        } else {
            in->first_err = rc;
            break; /* the sender retries the whole request; parking is idempotent */
        }
    }
    dm_event_list_dispose(&events);
    if (in->pending == 0)
        ingest_done(in);
}

/*---------------------------------------------------------------- query ---*/

typedef struct query_req {
    dm_worker *w;
    struct evhttp_request *req;
} query_req;

static void on_query(int err, int status, char *body, void *arg)
{
    query_req *q = arg;
    if (err != DM_OK)
        unavailable(q->req, DM_ROUTE_IMAGES, err);
    else
        dm_http_json(q->req, DM_ROUTE_IMAGES, status, body);
    free(body);
    dm_worker_end(q->w);
    free(q);
}

void dm_ingest_query_image(dm_worker *w, struct evhttp_request *req, const char *digest)
{
    const dm_app *app = dm_worker_app(w);
    if (!app->conf->api_configured) {
        dm_metrics_inc(DM_M_AUTH_FAILED);
        dm_warn("request refused", "status=401 route=/v1/images reason=\"%s\"",
                "no api.auth configured");
        dm_http_error(req, DM_ROUTE_IMAGES, 401, "query API disabled: configure api.auth");
        return;
    }
    if (!authenticate(req, DM_ROUTE_IMAGES, "/v1/images", &app->conf->api_auth, NULL, 0))
        return;
    if (!dm_digest_valid(digest, strlen(digest))) {
        dm_metrics_inc(DM_M_INVALID);
        dm_info("request refused", "status=400 route=/v1/images reason=\"bad digest\"");
        dm_http_error(req, DM_ROUTE_IMAGES, 400,
                      "digest: must be sha256: followed by 64 lowercase hex digits");
        return;
    }
    if (!dm_worker_begin(w)) {
        unavailable(req, DM_ROUTE_IMAGES, DM_EBUSY);
        return;
    }
    query_req *q = dm_xmalloc(sizeof *q);
    q->w = w;
    q->req = req;
    int rc = dm_query_image(dm_worker_redis(w), &app->join, digest, on_query, q);
    if (rc != DM_OK) {
        free(q);
        unavailable(req, DM_ROUTE_IMAGES, rc);
        dm_worker_end(w);
    }
}

/*---------------------------------------------------------------- readiness ---*/

static void on_ping(int err, redisReply *rep, void *arg)
{
    query_req *q = arg;
    if (err == DM_OK && rep->type == REDIS_REPLY_STATUS && dm_worker_all_ready(q->w))
        dm_http_json(q->req, DM_ROUTE_READYZ, 200, "{\"status\":\"ready\"}");
    else
        dm_http_error(q->req, DM_ROUTE_READYZ, 503, "redis unavailable");
    dm_worker_end(q->w);
    free(q);
}

void dm_ingest_readyz(dm_worker *w, struct evhttp_request *req)
{
    if (!dm_worker_begin(w)) {
        dm_http_error(req, DM_ROUTE_READYZ, 503, "too many requests in flight");
        return;
    }
    query_req *q = dm_xmalloc(sizeof *q);
    q->w = w;
    q->req = req;
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    if (dm_redis_command(dm_worker_redis(w), on_ping, q, 1, argv, lens) != DM_OK) {
        free(q);
        dm_http_error(req, DM_ROUTE_READYZ, 503, "redis unavailable");
        dm_worker_end(w);
    }
}
