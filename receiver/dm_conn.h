/* dm_conn.h - the connection layer of one worker: what a client connection may cost before a
 * handler sees its request (docs/internet-connections.md, configs/README.md "limits"), and the
 * server of the requests the head check marks direct (the sources' POSTs, docs/hot-path.md).
 *
 * evhttp (libevent 2.1) has no hook for a new request, its headers, a connection count or its
 * own error pages, so every connection's bytes pass through a filtering bufferevent
 * (dm_conns_bevcb, installed with evhttp_set_bevcb) before evhttp reads them:
 * - http-parser frames each request; evhttp is handed a canonical copy of what it understood
 *   (the head with one Content-Length or "Transfer-Encoding: chunked", origin-form target,
 *   chunk extensions and trailers dropped), so the two parsers can never disagree on where a
 *   request ends. Two Content-Length headers, Content-Length with chunked, any other
 *   Transfer-Encoding, a bad request target: 400; an unknown method: 501; an Expect other than
 *   100-continue: 417; a head over limits.max_header_bytes: 431.
 * - the head must arrive within limits.header_timeout_ms and the body within
 *   limits.body_timeout_ms, however slowly it trickles: else 408.
 * - when the head is complete the server's head check (dm_conn_head_fn: route lookup, and
 *   credentials carried in headers) may refuse a request that has a body before one byte of
 *   it is buffered; a body over limits.max_body_bytes (declared, or chunks adding up) gets the
 *   JSON 413; a body that would take the bodies in flight of the process past
 *   limits.max_body_memory_bytes gets 503 with Retry-After.
 * - one request at a time: the next one is read only when this one is answered.
 * - a request the head check marks direct never reaches evhttp: its body is collected here, the
 *   head check's authentication goes with it, and dm_conn_direct_fn gets it as a dm_req
 *   (dm_req.h), whose answer is written straight to the socket. evhttp meanwhile waits for a
 *   head that does not come; its idle timeout is off until the answer, as while it serves a
 *   request itself. A client's EOF after a direct request waits until that request is answered.
 * Each refusal is answered as JSON with "Connection: close" on the underlying bufferevent,
 * logged with the peer and counted; the connection then closes once the answer is out. No
 * answer of libevent's own (an HTML error page) ever reaches a client: it is replaced by a
 * JSON one.
 * The worker's listener pauses at its share of limits.max_connections (new connections wait in
 * the backlog until one closes) and, out of file descriptors, for a moment (dm_listen.h).
 *
 * Everything here runs on the worker's thread, except the body-memory counter, shared by the
 * workers of a process.
 */
#ifndef DM_RECEIVER_DM_CONN_H
#define DM_RECEIVER_DM_CONN_H

#include "dm_auth.h"
#include "dm_config.h"
#include "dm_req.h"

#include <stdatomic.h>

struct bufferevent;
struct event_base;
struct evconnlistener;
struct evhttp_request;

/** Makes the bufferevent a connection's bytes travel through, on fd -1 (evhttp sets the fd
 *  later): a socket bufferevent by default, a TLS one for a TLS listener. NULL: failure. It
 *  must close the fd when freed (BEV_OPT_CLOSE_ON_FREE). */
typedef struct bufferevent *dm_conn_make_bev_fn(struct event_base *base, void *arg);

/** A complete request head, as the connection layer parsed it (borrowed for the call). */
typedef struct dm_conn_head {
    int method;        /**< enum evhttp_cmd_type */
    const char *path;  /**< the target's path, "/" when empty */
    bool body;         /**< a body follows (Content-Length > 0, or chunked) */
    dm_header_fn find; /**< the first header of a name (case-insensitive), or NULL */
    void *find_ctx;
    const char *peer; /**< "ip:port", for log lines */
} dm_conn_head;

/** What a head check concluded. */
typedef struct dm_conn_verdict {
    size_t route;           /**< the route's number in the metrics (dm_routes.h) */
    const char *route_name; /**< its name in log lines */
    int status;             /**< 0: go on; else refuse the request with this status */
    char error[320];        /**< the answer's "error" text */
    char extra[64];         /**< extra header lines of the answer ("Allow: POST\r\n"), or "" */
    bool direct;            /**< status 0: serve it without evhttp (dm_conn_direct_fn) */
    const void *target;     /**< with direct: what the route serves (dm_req.target) */
    bool authed;            /**< the check authenticated the request for good: @c auth (owned)
                                 goes to the request (dm_req.auth), also when it is refused */
    dm_auth_outcome auth;
} dm_conn_verdict;

/** The server's check of every complete head: fills @p v (route always; a refusal, already
 *  logged and counted by the check, only for a request with a body). */
typedef void dm_conn_head_fn(const dm_conn_head *h, dm_conn_verdict *v, void *arg);

/** Serves a request the head check marked direct, once its body is complete: the handler
 *  answers @p req (dm_req.h) now or later; the next request of the connection waits for it. */
typedef void dm_conn_direct_fn(dm_req *req, void *arg);

typedef struct dm_conn_conf {
    struct event_base *base;
    const dm_config *conf;  /**< limits (borrowed until dm_conns_free) */
    int worker;             /**< the worker's id, for log lines */
    int max_connections;    /**< this worker's share of the process's limit (>= 1) */
    _Atomic size_t *bodies; /**< bytes of the process's bodies in flight (shared, borrowed) */
    dm_conn_head_fn *on_head;
    void *on_head_arg;
    dm_conn_direct_fn *on_direct; /**< NULL: every request goes to evhttp */
    void *on_direct_arg;
    dm_conn_make_bev_fn *make_bev; /**< NULL: a socket bufferevent */
    void *make_bev_arg;
} dm_conn_conf;

/** One worker's connections. */
typedef struct dm_conns dm_conns;

dm_conns *dm_conns_new(const dm_conn_conf *cc);

/** For evhttp_set_bevcb(http, dm_conns_bevcb, conns): one new connection. */
struct bufferevent *dm_conns_bevcb(struct event_base *base, void *arg);

/** Watch @p lev (the listener evhttp accepts on): pause it at the connection limit and when
 *  accept fails for want of file descriptors. */
void dm_conns_listen(dm_conns *cs, struct evconnlistener *lev);

/** The listener is going away (the worker drains): stop touching it; connections close after
 *  their current answer. */
void dm_conns_unlisten(dm_conns *cs);

/** Call first for every request evhttp hands over: marks it answered by a handler (and sets
 *  its on-complete callback, which handlers must leave alone). */
void dm_conns_dispatch(dm_conns *cs, struct evhttp_request *req);

/** Free @p cs (NULL is fine) before evhttp_free: the connections evhttp then frees no longer
 *  touch it. */
void dm_conns_free(dm_conns *cs);

#endif
