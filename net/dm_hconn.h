/* dm_hconn.h - dm_hclient's connections: one outgoing TCP (or TLS) connection each, and the
 * pools that keep them alive between requests. Internal to net/: only dm_hclient.c uses it
 * (dm_hclient.h is the interface and says what a pool promises).
 *
 * A connection (dm_hconn) is one evhttp_connection that never reconnects: an
 * evhttp_connection whose connection closed would reconnect by itself at its next request
 * (with the used SSL object, for TLS), so once libevent closed it (its close callback sets
 * `closed`) it is only ever freed. It is in exactly one place: idle in its pool, in use by the
 * one request that sends on it (which frees it or puts it back), or closed by libevent while
 * idle, waiting in the pool's `dead` list for a deferred event to free it (an
 * evhttp_connection must not be freed from inside its own callbacks).
 *
 * Idle connections are watched by evhttp's close detection (EOF or any byte while idle closes
 * it), and their idle timeout is libevent's read timeout while idle (dm_hpool_put sets it;
 * the next request sets its own). The pool keeps the TLS session of its last connection that
 * answered and offers it to the next new connection to the same destination only.
 *
 * Not thread-safe: the event_base's thread only, like dm_hclient.
 */
#ifndef DM_NET_DM_HCONN_H
#define DM_NET_DM_HCONN_H

#include "dm_common.h"

#include <sys/queue.h>
#include <sys/time.h>

#include <openssl/ssl.h>

struct event;
struct event_base;
struct evdns_base;
struct evhttp_connection;
struct bufferevent;

typedef struct dm_hconn dm_hconn;
typedef struct dm_hclient_pool dm_hclient_pool; /* as dm_hclient.h names it */

/** Where a connection goes: what it was verified for (all must match to reuse it). */
typedef struct dm_hdest {
    bool tls;
    SSL_CTX *ctx;     /**< the trust of an https destination (one per CA file), else NULL */
    const char *host; /**< as connected to and verified: no brackets */
    int port;
} dm_hdest;

struct dm_hconn {
    dm_hclient_pool *pool; /**< NULL: one request's own (Connection: close) */
    struct evhttp_connection *evcon;
    bool tls;
    SSL_CTX *ctx;
    char *host; /**< owned */
    int port;
    bool closed;       /**< libevent closed it: never sent on again */
    bool idle;         /**< in pool->idle */
    bool dead;         /**< in pool->dead */
    bool got_bytes;    /**< a byte of an answer arrived since the current request was sent
                            (the caller clears it when it sends) */
    unsigned requests; /**< sent on it so far (the caller counts) */
    bool nodelay;      /**< TCP_NODELAY is set on its socket */
    LIST_ENTRY(dm_hconn) link;
};

struct dm_hclient_pool {
    unsigned max_conns;
    struct timeval idle_tv;
    unsigned nconns;            /**< idle + in use + dead */
    LIST_HEAD(, dm_hconn) idle; /**< most recently used first */
    LIST_HEAD(, dm_hconn) dead;
    struct event *sweep;  /**< frees `dead` */
    SSL_SESSION *session; /**< of the last TLS connection that answered, for `session_*` */
    SSL_CTX *session_ctx;
    char *session_host;
    int session_port;
    LIST_ENTRY(dm_hclient_pool) link; /**< in its dm_hclient's list (dm_hclient.c) */
};

/** A pool on @p base (see dm_hclient_pool_new; @p idle_timeout_ms > 0); NULL when its event
 *  cannot be created. */
dm_hclient_pool *dm_hpool_new(struct event_base *base, unsigned max_conns, int idle_timeout_ms);

/** Close its idle and dead connections and free @p p (those in use must be freed first). */
void dm_hpool_free(dm_hclient_pool *p);

/** An idle connection of @p p to @p d (the most recently used), taken out of the pool, or
 *  NULL. */
dm_hconn *dm_hpool_take(dm_hclient_pool *p, const dm_hdest *d);

/** Room in @p p for one more connection; an idle one (the least recently used) is closed to
 *  make it when that helps. */
bool dm_hpool_room(dm_hclient_pool *p);

/** @p k (of a pool, open) answered in full and may carry the next request: back to idle. */
void dm_hpool_put(dm_hconn *k);

/** Keep the TLS session of @p k (of a pool, it answered) for the pool's next connection. */
void dm_hpool_keep_session(dm_hconn *k);

/**
 * A new connection to @p d (not connected yet: evhttp connects at the first request), counted
 * in @p pool (NULL: none). The pool's session is offered when it is for @p d. NULL with a
 * reason in @p why (a static string).
 */
dm_hconn *dm_hconn_new(struct event_base *base, struct evdns_base *dns, dm_hclient_pool *pool,
                       const dm_hdest *d, const char **why);

/** Close and free @p k (never from inside one of its libevent callbacks). */
void dm_hconn_free(dm_hconn *k);

/**
 * Write what evhttp has just queued on @p k (a plain connection that was idle: the request was
 * dispatched at once) now, from the loop turn that made the request, and when all of it went
 * out, hand evhttp its write callback: evhttp then waits for the answer without ever having
 * asked for write readiness (see dm_hconn.c). Anything left, and any error, takes libevent's
 * usual path (the write event). Never for TLS (the bytes must go through OpenSSL).
 */
void dm_hconn_flush(dm_hconn *k);

/** @p k's bufferevent. */
struct bufferevent *dm_hconn_bev(const dm_hconn *k);

/** @p s is an IPv4 or IPv6 address literal. */
bool dm_hconn_is_ip(const char *s);

#endif
