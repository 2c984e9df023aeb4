/* dm_worker.h - what a request handler gets from the server: the worker thread it runs on
 * (that worker's Redis connection, event streams and admission count) and the route its
 * request matched.
 *
 * dm_server.c implements the worker functions; the handlers (dm_ingest, dm_api, dm_health)
 * use only this header, and the server reaches them only through the route table
 * (dm_routes.h). Every function here runs on the worker's own thread.
 */
#ifndef DM_RECEIVER_DM_WORKER_H
#define DM_RECEIVER_DM_WORKER_H

#include "dm_config.h"
#include "dm_join.h"
#include "dm_trust.h"

struct evhttp_request;
struct dm_redis;
struct dm_sse_hub;

/** Process-wide, read-only after start. */
typedef struct dm_app {
    const dm_config *conf;    /**< borrowed for the server's life */
    const dm_trust *trust;    /**< the auth entries' keyrings and caches; borrowed likewise */
    const char *redis_socket; /**< the embedded redis-server's socket, or NULL (borrowed) */
    dm_join_conf join;
} dm_app;

typedef struct dm_worker dm_worker;

/** The route a request matched, as its handler sees it (borrowed for the call only). */
typedef struct dm_route_match {
    size_t id;                    /**< the route's number in the metrics, for dm_http.h */
    const char *name;             /**< its metric label, also route= in log lines */
    const char *rest;             /**< prefix routes: the path after the prefix; else "" */
    const dm_source_conf *source; /**< a source's route: that source; else NULL */
} dm_route_match;

/** A route's handler: answers @p req now or later (it owns the answer from here on). */
typedef void dm_handler(dm_worker *w, struct evhttp_request *req, const dm_route_match *m);

const dm_app *dm_worker_app(const dm_worker *w);
struct dm_redis *dm_worker_redis(const dm_worker *w);
/** This worker's event-stream clients (dm_sse.h). */
struct dm_sse_hub *dm_worker_sse(const dm_worker *w);
/** True when every worker's Redis connection is ready (for /readyz). */
bool dm_worker_all_ready(const dm_worker *w);
/** Admit one request (false: the in-flight cap is reached → answer 503). */
bool dm_worker_begin(dm_worker *w);
/** A request admitted by dm_worker_begin has been answered. */
void dm_worker_end(dm_worker *w);

#endif
