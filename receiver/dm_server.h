/* dm_server.h - the HTTP side: N worker threads, each with its own event_base, evhttp and
 * Redis connection, accepting on SO_REUSEPORT sockets that share one port (STYLE §2.3).
 *
 * Threads share nothing mutable but the metrics' atomics and the read-only dm_app.
 */
#ifndef DM_RECEIVER_DM_SERVER_H
#define DM_RECEIVER_DM_SERVER_H

#include "dm_config.h"
#include "dm_join.h"

struct evhttp_request;

/** Route numbers for metrics; sources follow as DM_ROUTE_SOURCES + index. */
enum {
    DM_ROUTE_HEALTHZ = 0,
    DM_ROUTE_READYZ,
    DM_ROUTE_METRICS,
    DM_ROUTE_IMAGES,
    DM_ROUTE_MAPPINGS,
    DM_ROUTE_EVENTS,
    DM_ROUTE_OTHER,
    DM_ROUTE_SOURCES
};

/** Process-wide, read-only after start. */
typedef struct dm_app {
    const dm_config *conf; /**< borrowed for the server's life */
    dm_join_conf join;
} dm_app;

typedef struct dm_worker dm_worker;

typedef struct dm_server dm_server;

/**
 * Bind the listening sockets (one per worker, SO_REUSEPORT) and start the worker threads.
 * The bound port is logged (useful with port 0) and returned through @p port_out.
 * Returns DM_OK, or an error with a reason in @p err.
 */
int dm_server_start(const dm_config *conf, dm_server **out, int *port_out, char *err,
                    size_t errlen);

/** Stop accepting, let in-flight requests finish (bounded wait), join threads, free. */
void dm_server_stop(dm_server *s);

/* For the request handlers (dm_ingest.c), called on the worker's own thread. */
const dm_app *dm_worker_app(const dm_worker *w);
struct dm_redis *dm_worker_redis(const dm_worker *w);
struct event_base *dm_worker_base(const dm_worker *w);
/** This worker's event-stream clients (dm_sse.h). */
struct dm_sse_hub *dm_worker_sse(const dm_worker *w);
/** True when every worker's Redis connection is ready (for /readyz). */
bool dm_worker_all_ready(const dm_worker *w);
/** Admit one request (false: the in-flight cap is reached → answer 503). */
bool dm_worker_begin(dm_worker *w);
/** A request admitted by dm_worker_begin has been answered. */
void dm_worker_end(dm_worker *w);

#endif
