/* dm_worker.h - one worker thread of the server: its event loop and evhttp on its own listening
 * socket, its Redis connection, its event streams and its admission count; worker 1 also runs
 * the sweeper and the trimmer. The struct is private to dm_worker.c.
 *
 * Two sides use it. The server (dm_server.c) creates the workers, runs each on its thread,
 * drains and frees them, and hands each the function that answers its requests (the route
 * table, dm_routes.h): the worker never calls the route table or the server itself, and
 * reaches its siblings only through the dm_worker_siblings the server owns. The handlers
 * (dm_ingest, dm_api, dm_health) get the accessors below and the route their request matched;
 * they must not set a request's on-complete callback (the connection layer, dm_conn.h, owns it).
 * Except where a function says otherwise, it runs on the worker's own thread.
 */
#ifndef DM_RECEIVER_DM_WORKER_H
#define DM_RECEIVER_DM_WORKER_H

#include "dm_config.h"
#include "dm_conn.h"
#include "dm_join.h"
#include "dm_trust.h"

#include <stdatomic.h>

struct evhttp_request;
struct dm_redis;
struct dm_sse_hub;
struct dm_spool;
struct dm_spool_client;
struct dm_waiter;

/** Process-wide, read-only after start. */
typedef struct dm_app {
    const dm_config *conf;    /**< borrowed for the server's life */
    const dm_trust *trust;    /**< the auth entries' keyrings and caches; borrowed likewise */
    const char *redis_socket; /**< the embedded redis-server's socket, or NULL (borrowed) */
    struct dm_spool *spool;   /**< the spool (main.c owns it), or NULL: none */
    dm_join_conf join;
} dm_app;

typedef struct dm_worker dm_worker;

/*---------------------------------------------------------------- for the handlers ---*/

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
/** This worker's client of the spool (spool/dm_spool.h), or NULL without a spool. */
struct dm_spool_client *dm_worker_spool(const dm_worker *w);
/** This worker's WAIT coalescer (spool/dm_wait.h) with redis.wait_replicas, or NULL. */
struct dm_waiter *dm_worker_waiter(const dm_worker *w);
/** This worker's event-stream clients (dm_sse.h). */
struct dm_sse_hub *dm_worker_sse(const dm_worker *w);
/** True when every worker's Redis connection is ready (for /readyz). */
bool dm_worker_all_ready(const dm_worker *w);
/** Admit one request (false: the in-flight cap is reached → answer 503). */
bool dm_worker_begin(dm_worker *w);
/** A request admitted by dm_worker_begin has been answered. */
void dm_worker_end(dm_worker *w);

/*---------------------------------------------------------------- for the server ---*/
/* Worker 1 also runs the spool's replayer (spool/dm_replay.h) on a Redis connection of its own;
 * every worker has a spool client for its requests. */

/** What the workers of one server share. The server owns it and frees it after every worker;
 * the workers update @c ready and kick each other through @c all from their own threads. */
typedef struct dm_worker_siblings {
    atomic_int ready;      /**< workers whose Redis connection is ready */
    _Atomic size_t bodies; /**< bytes of request bodies in flight (limits.max_body_memory_bytes) */
    dm_worker **all;       /**< every worker by id - 1 (NULL until created), set before any runs */
    int n;
} dm_worker_siblings;

/** Answers one request of worker @p w (the server's route table); runs on @p w's thread. */
typedef void dm_worker_request_fn(dm_worker *w, struct evhttp_request *req, void *arg);

/** Answers one request the connection layer serves without evhttp (dm_req.h, dm_conn.h). */
typedef void dm_worker_direct_fn(dm_worker *w, dm_req *req, void *arg);

typedef struct dm_worker_conf {
    int id;                              /**< 1..siblings->n; in log lines, and worker 1 sweeps */
    const dm_app *app;                   /**< borrowed until dm_worker_free */
    dm_worker_siblings *siblings;        /**< borrowed likewise */
    int fd;                              /**< its listening socket, bound and listening: the worker
                                        owns it from the call on, also when the call fails */
    const char *const *protected_groups; /**< the consumer groups worker 1's trimmer waits for
                                              (borrowed likewise) */
    size_t nprotected;
    dm_worker_request_fn *on_request; /**< every request evhttp serves goes here */
    void *on_request_arg;
    dm_worker_direct_fn *on_direct; /**< every request the head check made direct goes here */
    void *on_direct_arg;
    dm_conn_head_fn *on_head; /**< every complete request head goes here first (dm_conn.h) */
    void *on_head_arg;
    int max_connections;           /**< this worker's share of limits.max_connections */
    dm_conn_make_bev_fn *make_bev; /**< the bufferevent below each connection (a TLS one with
                                        tls: dm_tls_evhttp_bevcb); NULL: a socket */
    void *make_bev_arg;
} dm_worker_conf;

/**
 * Create a worker from @p wc, ready to run (its thread not started). Returns DM_OK with the
 * worker in @p out, or an error with a reason in @p err (nothing left to free).
 */
int dm_worker_new(const dm_worker_conf *wc, dm_worker **out, char *err, size_t errlen);

/** The worker's thread: run its event loop until a drain has ended it. */
void dm_worker_run(dm_worker *w);

/** Any thread: stop accepting, let in-flight requests finish (bounded wait), end the loop. */
void dm_worker_drain(dm_worker *w);

/** Free @p w (NULL is fine) once its loop has ended or never ran. */
void dm_worker_free(dm_worker *w);

#endif
