#include "dm_common.h"
#include "dm_routes.h"
#include "dm_api.h"
#include "dm_health.h"
#include "dm_http.h"
#include "dm_ingest.h"
#include "dm_log.h"
#include "dm_metrics.h"

#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

/* Configuration refuses a source at any of these paths (config/dm_config_root.c). */
static const dm_route builtin[] = {
    {"/healthz", false, DM_ROUTE_GET, dm_health_healthz, "/healthz"},
    {"/readyz", false, DM_ROUTE_GET, dm_health_readyz, "/readyz"},
    {"/metrics", false, DM_ROUTE_GET, dm_health_metrics, "/metrics"},
    {"/v1/images/", true, DM_ROUTE_GET, dm_api_image, "/v1/images"},
    {"/v1/mappings", false, DM_ROUTE_GET, dm_api_mappings, "/v1/mappings"},
    {"/v1/events/stream", false, DM_ROUTE_GET, dm_api_events, "/v1/events/stream"},
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

static bool method_allowed(struct evhttp_request *req, unsigned methods)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
        return methods & DM_ROUTE_GET;
    return m == EVHTTP_REQ_POST && (methods & DM_ROUTE_POST);
}

/* Run @p r's handler, or answer 405 with the methods it allows. */
static void serve(dm_worker *w, struct evhttp_request *req, const dm_route *r,
                  const dm_route_match *m)
{
    if (method_allowed(req, r->methods)) {
        r->handler(w, req, m);
        return;
    }
    const char *allow = r->methods == DM_ROUTE_GET    ? "GET"
                        : r->methods == DM_ROUTE_POST ? "POST"
                                                      : "GET, POST";
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    dm_http_error(req, m->id, 405, "method not allowed; use %s", allow);
}

void dm_routes_dispatch(dm_worker *w, const dm_config *conf, struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !*path)
        path = "/";

    for (size_t i = 0; i < conf->nsources; i++) {
        const dm_source_conf *src = &conf->sources[i];
        if (strcmp(path, src->path) == 0) {
            dm_route r = {src->path, false, DM_ROUTE_POST, dm_ingest_handle, src->path};
            serve(w, req, &r, &(dm_route_match){ROUTE_SOURCES + i, r.metric, "", src});
            return;
        }
    }
    for (size_t i = 0; i < DM_ARRAY_LEN(builtin); i++) {
        const dm_route *r = &builtin[i];
        size_t n = strlen(r->path);
        if (r->prefix ? strncmp(path, r->path, n) == 0 : strcmp(path, r->path) == 0) {
            serve(w, req, r, &(dm_route_match){i, r->metric, r->prefix ? path + n : "", NULL});
            return;
        }
    }
    char peer[64], qpath[160];
    dm_info("request refused", "status=404 path=%s peer=%s",
            dm_log_quote(path, strlen(path), qpath, sizeof qpath), dm_http_peer(req, peer));
    dm_http_error(req, ROUTE_OTHER, 404, "no such route");
}
