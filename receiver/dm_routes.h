/* dm_routes.h - every HTTP route of the daemon, in one table: path (exact, or a prefix),
 * allowed methods, handler, and the name the metrics and log lines give it.
 *
 * The built-in routes are fixed; each configured source adds a POST route at its path. A
 * request is dispatched to the route its path matches, answered 405 (with Allow) when the
 * method is not allowed there, and 404 ("other" in the metrics) when no route matches. The
 * configuration refuses a source path that a built-in route would take (config/dm_config_root.c,
 * checked against this table by tests/unit/test_routes.c), so at most one route matches.
 *
 * Route numbers (for dm_metrics_init and dm_http.h): the built-in routes in table order, then
 * DM_ROUTES_OTHER, then one per source in configuration order.
 */
#ifndef DM_RECEIVER_DM_ROUTES_H
#define DM_RECEIVER_DM_ROUTES_H

#include "dm_worker.h"

/** Methods a route allows: GET (HEAD goes with it and is not listed in Allow), POST. */
enum {
    DM_ROUTE_GET = 1 << 0,
    DM_ROUTE_POST = 1 << 1,
};

typedef struct dm_route {
    const char *path; /**< the path, or with @c prefix what the path starts with */
    bool prefix;
    unsigned methods; /**< DM_ROUTE_* */
    dm_handler *handler;
    const char *metric; /**< label in digestmap_requests_total, and route= in log lines */
    bool api;           /**< a query route: api.auth applies */
} dm_route;

/** The built-in routes (@p n gets their number), in route-number order. */
const dm_route *dm_routes_builtin(size_t *n);

/** The route number of requests no route matched (404). */
size_t dm_routes_other(void);

/** Name every route of @p conf in the metrics (dm_metrics_init), before a worker starts. */
void dm_routes_init_metrics(const dm_config *conf);

/**
 * The head check of the connection layer (dm_conn_head_fn; @p arg is the dm_app): names the
 * route of @p h, and refuses a request that has a body when the body could not change the
 * answer: 404, 405, or credentials carried in headers that no entry of the route's auth list
 * accepts (401/403; an hmac-sha256 entry whose header is present, an sns entry whose
 * x-amz-sns-message-type is present, or a none entry wait for the body). A refusal is logged
 * and counted here, as the handlers would. A source's POST is made direct (served by
 * dm_routes_direct, never by evhttp), and when the head's credentials let it in for good (no
 * entry that needs the body comes before the one that passed) the outcome goes with it, so
 * that they are checked once.
 */
void dm_routes_check_head(const dm_conn_head *h, dm_conn_verdict *v, void *arg);

/** Serve @p req, a source's POST the head check made direct (dm_conn.h): its ingest
 *  (dm_ingest_handle). */
void dm_routes_direct(dm_worker *w, dm_req *req);

/** Answer @p req (on worker @p w): its route's handler, 405 or 404. */
void dm_routes_dispatch(dm_worker *w, const dm_config *conf, struct evhttp_request *req);

#endif
