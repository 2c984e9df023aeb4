/* dm_health.h - the routes for operators and orchestrators: GET /healthz (the process
 * answers), GET /readyz (Redis answers, through every worker) and GET /metrics (Prometheus
 * text, dm_metrics.h). None needs credentials. Route handlers (dm_routes.h).
 */
#ifndef DM_RECEIVER_DM_HEALTH_H
#define DM_RECEIVER_DM_HEALTH_H

#include "dm_worker.h"

/** GET /healthz: 200 {"status":"ok"} whenever the worker's loop runs. */
void dm_health_healthz(dm_worker *w, struct evhttp_request *req, const dm_route_match *m);

/** GET /readyz: 200 only when a PING through this worker's Redis connection succeeds and
 *  every worker's connection is ready; else 503. */
void dm_health_readyz(dm_worker *w, struct evhttp_request *req, const dm_route_match *m);

/** GET /metrics: the Prometheus text exposition. */
void dm_health_metrics(dm_worker *w, struct evhttp_request *req, const dm_route_match *m);

#endif
