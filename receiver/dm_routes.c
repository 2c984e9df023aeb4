#include "dm_common.h"
#include "dm_routes.h"
#include "dm_access.h"
#include "dm_api.h"
#include "dm_health.h"
#include "dm_http.h"
#include "dm_ingest.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_ui.h"

#include "dm_time.h"

#include <event2/http.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Configuration refuses a source at any of these paths (config/dm_config_root.c). */
static const dm_route builtin[] = {
    {"/healthz", false, DM_ROUTE_GET, dm_health_healthz, "/healthz", false},
    {"/readyz", false, DM_ROUTE_GET, dm_health_readyz, "/readyz", false},
    {"/metrics", false, DM_ROUTE_GET, dm_health_metrics, "/metrics", false},
    {"/v1/images/", true, DM_ROUTE_GET, dm_api_image, "/v1/images", true},
    {"/v1/mappings", false, DM_ROUTE_GET, dm_api_mappings, "/v1/mappings", true},
    {"/v1/exposure", false, DM_ROUTE_GET, dm_api_exposure, "/v1/exposure", true},
    {"/v1/events/stream", false, DM_ROUTE_GET, dm_api_events, "/v1/events/stream", true},
    {"/ui/", true, DM_ROUTE_GET, dm_ui_serve, "/ui", false},
};

#define ROUTE_OTHER   DM_ARRAY_LEN(builtin)
#define ROUTE_SOURCES (ROUTE_OTHER + 1)

const dm_route *dm_routes_builtin(size_t *n)
{
    *n = DM_ARRAY_LEN(builtin);
    return builtin;
}

size_t dm_routes_other(void)
{
    return ROUTE_OTHER;
}

void dm_routes_init_metrics(const dm_config *conf)
{
    size_t nroutes = ROUTE_SOURCES + conf->nsources;
    const char **names = dm_xcalloc(nroutes, sizeof *names);
    for (size_t i = 0; i < DM_ARRAY_LEN(builtin); i++)
        names[i] = builtin[i].metric;
    names[ROUTE_OTHER] = "other";
    for (size_t i = 0; i < conf->nsources; i++)
        names[ROUTE_SOURCES + i] = conf->sources[i].path;
    dm_metrics_init(names, nroutes);
    free(names);
}

static bool method_allowed(int m, unsigned methods)
{
    if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
        return methods & DM_ROUTE_GET;
    return m == EVHTTP_REQ_POST && (methods & DM_ROUTE_POST);
}

static const char *allowed(const dm_route *r)
{
    return r->methods == DM_ROUTE_GET ? "GET" : r->methods == DM_ROUTE_POST ? "POST" : "GET, POST";
}

/* The sources' routes are served by the connection layer (dm_routes_direct): evhttp sees none
 * of their POSTs as long as every connection is framed there (dm_conn.h). */
static void source_via_evhttp(dm_worker *w, struct evhttp_request *req, const dm_route_match *m)
{
    (void)w;
    dm_error("request not framed by the connection layer", "route=%s", m->name);
    dm_http_error(req, m->id, 503, "retry later");
}

/* The route of @p path into @p r and @p m; false when none matches (m->id: "other"). */
static bool find(const dm_config *conf, const char *path, dm_route *r, dm_route_match *m)
{
    for (size_t i = 0; i < conf->nsources; i++) {
        const dm_source_conf *src = &conf->sources[i];
        if (strcmp(path, src->path) == 0) {
            *r = (dm_route){src->path, false, DM_ROUTE_POST, source_via_evhttp, src->path, false};
            *m = (dm_route_match){ROUTE_SOURCES + i, r->metric, "", src};
            return true;
        }
    }
    for (size_t i = 0; i < DM_ARRAY_LEN(builtin); i++) {
        const dm_route *b = &builtin[i];
        size_t n = strlen(b->path);
        if (b->prefix ? strncmp(path, b->path, n) == 0 : strcmp(path, b->path) == 0) {
            *r = *b;
            *m = (dm_route_match){i, b->metric, b->prefix ? path + n : "", NULL};
            return true;
        }
        /* "/ui" without its slash: the page's route, which redirects it (dm_ui.h). */
        if (b->handler == dm_ui_serve && strncmp(path, b->path, n - 1) == 0 &&
            path[n - 1] == '\0') {
            *r = *b;
            *m = (dm_route_match){i, b->metric, dm_ui_bare, NULL};
            return true;
        }
    }
    *m = (dm_route_match){ROUTE_OTHER, "other", "", NULL};
    return false;
}

/* Refuse in the head check: log, count, fill @p v. */
static void head_refuse(dm_conn_verdict *v, const dm_conn_head *h, int status, const char *why,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void head_refuse(dm_conn_verdict *v, const dm_conn_head *h, int status, const char *why,
                        const char *fmt, ...)
{
    char qwhy[300], qpath[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->error, sizeof v->error, fmt, ap);
    va_end(ap);
    v->status = status;
    dm_info("request refused", "status=%d route=%s path=%s reason=%s peer=%s before_body=true",
            status, v->route_name, dm_log_quote(h->path, strlen(h->path), qpath, sizeof qpath),
            dm_log_quote(why, strlen(why), qwhy, sizeof qwhy), h->peer);
}

/* Whether an entry of @p list may still pass once the body is there. */
static bool body_may_pass(const dm_auth_list *list, const dm_conn_head *h)
{
    for (size_t i = 0; i < list->n; i++) {
        const dm_auth_entry *e = &list->v[i];
        if (e->type == DM_AUTH_NONE || (e->type == DM_AUTH_HMAC && h->find(h->find_ctx, e->name)) ||
            (e->type == DM_AUTH_SNS && h->find(h->find_ctx, "x-amz-sns-message-type")))
            return true;
    }
    return false;
}

/* Whether @p out, which passed, is what checking the request again with its body would
 * conclude: it passed on credentials of the head alone (never an hmac-sha256 or sns entry: at
 * the head those were checked against an empty body, so an HMAC of "" would otherwise stand for
 * any body), and no entry before it could pass with the body (an hmac-sha256 or sns entry whose
 * header is present). */
static bool final_at_head(const dm_auth_list *list, const dm_auth_outcome *out,
                          const dm_conn_head *h)
{
    if (!out->entry || out->entry->type == DM_AUTH_HMAC || out->entry->type == DM_AUTH_SNS)
        return false;
    for (size_t i = 0; i < list->n && &list->v[i] != out->entry; i++) {
        const dm_auth_entry *e = &list->v[i];
        if ((e->type == DM_AUTH_HMAC || e->type == DM_AUTH_SNS) && h->find(h->find_ctx, e->name))
            return false;
    }
    return out->entry != NULL;
}

/* Credentials carried in headers, checked before the body is read. A request they let in for
 * good keeps the outcome (@p keep: a source's route), so that its handler does not check them
 * again. */
static void head_auth(const dm_app *app, const dm_auth_list *list, const dm_conn_head *h,
                      dm_conn_verdict *v, bool keep)
{
    dm_auth_outcome out;
    dm_auth_verify(app->trust, list, h->find, h->find_ctx, NULL, 0, dm_now_ms() / 1000, &out);
    bool refuse =
        out.result != DM_AUTH_OK && out.result != DM_AUTH_UNAVAILABLE && !body_may_pass(list, h);
    if (refuse)
        v->status =
            dm_access_refusal(&out, v->route_name, h->peer, true, v->error, sizeof v->error);
    if (keep && out.result == DM_AUTH_OK && final_at_head(list, &out, h)) {
        v->auth = out;
        v->authed = true;
        return;
    }
    dm_auth_outcome_dispose(&out);
}

void dm_routes_check_head(const dm_conn_head *h, dm_conn_verdict *v, void *arg)
{
    const dm_app *app = arg;
    dm_route r;
    dm_route_match m;
    bool found = find(app->conf, h->path, &r, &m);
    v->route = m.id;
    v->route_name = m.name;
    /* A source's POST is served by the connection layer itself (dm_routes_direct). */
    v->direct = m.source && method_allowed(h->method, r.methods);
    v->target = m.source;
    if (!h->body)
        return; /* nothing to spare: the handler answers as usual */
    if (!found) {
        head_refuse(v, h, 404, "no such route", "no such route");
    } else if (!method_allowed(h->method, r.methods)) {
        /* (The page's other headers do not fit in extra: nosniff at least.) */
        snprintf(v->extra, sizeof v->extra, "Allow: %s\r\n%s", allowed(&r),
                 r.handler == dm_ui_serve ? "X-Content-Type-Options: nosniff\r\n" : "");
        head_refuse(v, h, 405, "method not allowed", "method not allowed; use %s", allowed(&r));
    } else if (r.api && !app->conf->api_configured) {
        dm_metrics_inc(DM_M_AUTH_FAILED);
        head_refuse(v, h, 401, "no api.auth configured", "query API disabled: configure api.auth");
    } else if (r.api || m.source) {
        head_auth(app, r.api ? &app->conf->api_auth : &m.source->auth, h, v, v->direct);
    }
}

/* Run @p r's handler, or answer 405 with the methods it allows. */
static void serve(dm_worker *w, struct evhttp_request *req, const dm_route *r,
                  const dm_route_match *m)
{
    if (method_allowed(evhttp_request_get_command(req), r->methods)) {
        r->handler(w, req, m);
        return;
    }
    if (r->handler == dm_ui_serve)
        dm_ui_headers(req); /* the page's headers on every answer of its route */
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allowed(r));
    dm_http_error(req, m->id, 405, "method not allowed; use %s", allowed(r));
}

void dm_routes_direct(dm_worker *w, dm_req *req)
{
    const dm_source_conf *src = req->target;
    dm_route_match m = {req->route, req->route_name, "", src};
    dm_ingest_handle(w, req, &m);
}

void dm_routes_dispatch(dm_worker *w, const dm_config *conf, struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !*path)
        path = "/";
    dm_route r;
    dm_route_match m;
    if (find(conf, path, &r, &m)) {
        serve(w, req, &r, &m);
        return;
    }
    char peer[64], qpath[160];
    dm_info("request refused", "status=404 path=%s peer=%s",
            dm_log_quote(path, strlen(path), qpath, sizeof qpath), dm_http_peer(req, peer));
    dm_http_error(req, ROUTE_OTHER, 404, "no such route");
}
