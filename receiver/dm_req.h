/* dm_req.h - a request the connection layer (dm_conn.h) serves itself, without evhttp: the
 * sources' POST routes (dm_ingest.h), the daemon's hot path.
 *
 * The connection layer frames the request (its head in a dm_head, its body collected as it
 * arrives, chunked or not), has the server's head check name its route and, where headers
 * decide it, authenticate it, and then hands it to the route's handler as a dm_req. The handler
 * answers it exactly once, now or later (after Redis), with dm_req_json, dm_req_error or
 * dm_req_unavailable: each counts the answer in digestmap_requests_total{route,status} and
 * writes it as HTTP/1.x with Content-Type: application/json, Cache-Control: no-store,
 * Retry-After on 503, WWW-Authenticate on 401, the lines of dm_req_add_header, Date,
 * Content-Length and, when the connection closes after it (the client asked, HTTP/1.0 without
 * keep-alive, the server drains), Connection: close. The answer is built with memcpy and a
 * small integer formatter (no printf on the way of a 2xx).
 *
 * Ownership: the connection owns its dm_req and reuses it request after request. Between the
 * handler's call and its answer the request belongs to the handler: should the client go away
 * meanwhile, the connection leaves the request behind (dm_req_orphan) and the answer frees it
 * instead of writing it. Everything below stays valid until the answer. One thread (the
 * worker's).
 */
#ifndef DM_RECEIVER_DM_REQ_H
#define DM_RECEIVER_DM_REQ_H

#include "dm_auth.h"
#include "dm_head.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct dm_req dm_req;

/** The connection's side of a request (dm_conn.c). */
typedef struct dm_req_conn_ops {
    /** Whether the connection closes once this answer is out. */
    bool (*closing)(void *conn);
    /** Write the whole answer @p data (@p close as closing said) and end the request. */
    void (*write)(void *conn, const char *data, size_t len, bool close);
} dm_req_conn_ops;

struct dm_req {
    /* The request (filled by the connection layer). */
    int method;             /**< enum evhttp_cmd_type */
    unsigned http_minor;    /**< HTTP/1.x: the answer's version */
    dm_head head;           /**< the target and the headers */
    char *body;             /**< the body (NUL-terminated), "" when none */
    size_t len;             /**< its length */
    size_t cap;             /**< bytes allocated at body (0: body points to a constant) */
    size_t expect;          /**< the declared Content-Length (0: chunked or none) */
    char peer[64];          /**< "ip:port" for log lines */
    size_t route;           /**< the route's number in the metrics (dm_routes.h) */
    const char *route_name; /**< its name in log lines */
    const void *target;     /**< what the head check routed it to (a dm_source_conf) */
    dm_auth_outcome auth;   /**< with @c authed: what the head's credentials proved */
    bool authed;            /**< the head check authenticated the request for good (no entry
                                   that needs the body could have passed before): the handler
                                   takes @c auth over instead of checking again */
    /* The answer being built. */
    char extra[192]; /**< dm_req_add_header lines */
    size_t nextra;
    /* The connection: NULL once orphaned. */
    void *conn;
    const dm_req_conn_ops *ops;
    bool orphan; /**< the connection is gone: the answer frees the request */
    bool busy;   /**< handed to a handler and not answered yet */
};

/** A new request object of the connection @p conn; its head holds at most @p max_head bytes. */
dm_req *dm_req_new(void *conn, const dm_req_conn_ops *ops, size_t max_head);

/** Make ready for the next request (the head, body and answer forgotten; memory kept, within
 *  reason; an outcome still held disposed). */
void dm_req_reset(dm_req *r);

/** Append @p n body bytes (the connection checked the limits). */
void dm_req_body_add(dm_req *r, const char *at, size_t n);

/** The connection of a request goes away: free @p r now when no handler holds it, else
 *  leave it to the handler's answer. */
void dm_req_orphan(dm_req *r);

/** The value of the first header @p name (case-insensitive), or NULL. */
static inline const char *dm_req_header(const dm_req *r, const char *name)
{
    return dm_head_find(&r->head, name);
}

/** The peer as "ip:port", for log lines. */
static inline const char *dm_req_peer(const dm_req *r)
{
    return r->peer;
}

/** Add the header line "@p name: @p value" to the coming answer (Retry-After, Allow). */
void dm_req_add_header(dm_req *r, const char *name, const char *value);

/** Answer @p status with the NUL-terminated JSON document @p json (a newline is added), counted
 *  on route @p route. The request is over. */
void dm_req_json(dm_req *r, size_t route, int status, const char *json);

/** The same with the @p len bytes at @p json. */
void dm_req_json_n(dm_req *r, size_t route, int status, const char *json, size_t len);

/** Answer @p status with {"error": "<formatted text>"} (escaped as jansson does). */
void dm_req_error(dm_req *r, size_t route, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/**
 * Answer 503 (with Retry-After) because Redis could not take the request: @p err is DM_EBUSY
 * (in-flight cap), DM_ETIMEOUT, DM_EREDIS or DM_EUNAVAIL. Logged with @p route_name and counted
 * in the matching metric, as dm_http_unavailable.
 */
void dm_req_unavailable(dm_req *r, size_t route, const char *route_name, int err);

#endif
