/* dm_hclient.h - outgoing HTTP(S) requests on one event_base (libevent's evhttp client).
 *
 * Connections. A request without a pool gets a connection of its own (Connection: close), so
 * no keep-alive state goes stale between requests. A request with a pool (dm_hclient_pool_new,
 * the webhook sinks) is sent over HTTP/1.1 on an idle kept-alive connection of that pool to the
 * same destination (scheme, host, port and trust: the TLS connection stays open, its
 * certificate and name checked once at its handshake, exactly as for a new one), else on a new
 * connection; a connection goes back to its pool only after an answer that was complete and
 * well framed: HTTP/1.1, no Connection: close, its end known from its framing (no body,
 * Content-Length or chunked, not the end of the connection) and nothing after it. Any error, a
 * timeout, an HTTP/1.0 answer, Connection: close, a body delimited by the close or bytes left
 * over close it instead. Idle connections are watched: the server closing one (or sending
 * anything) drops it, and one idle for the pool's idle timeout is closed. A request that fails
 * on a reused connection before any byte of an answer arrived (the server closed the idle
 * connection as the request went out) is sent once more, on a new connection, within the same
 * deadline, and the answer says so (dm_hclient_response.resent): the server may have received
 * it twice. docs/sink-connections.md describes it.
 *
 * Deadlines are per request and always enforced by closing its connection. Names are resolved
 * asynchronously (evdns, /etc/hosts included); nothing blocks the loop except loading a CA
 * file the first time it is used (dm_hclient_add_trust does that at startup).
 *
 * https: the server's certificate is verified against the system store (SSL_CERT_FILE /
 * SSL_CERT_DIR override it, as for any OpenSSL client) or against a given CA file instead,
 * and its name against the URL's host (a DNS name, with SNI; an IP literal must be an IP SAN
 * and gets no SNI). TLS >= 1.2. Every failure fails the request; nothing is ever sent in
 * cleartext to an https URL. A pool keeps the session of its last verified connection and
 * offers it to its next new connection to the same destination only (session resumption).
 *
 * Not thread-safe: one dm_hclient per event_base, used from that base's thread only.
 */
#ifndef DM_NET_DM_HCLIENT_H
#define DM_NET_DM_HCLIENT_H

#include "dm_common.h"

struct event_base;
struct evkeyvalq;

typedef struct dm_hclient dm_hclient;
typedef struct dm_hclient_req dm_hclient_req;
typedef struct dm_hclient_pool dm_hclient_pool;

/** Idle timeout of a pool's connections when dm_hclient_pool_new is given none (ms). */
#define DM_HCLIENT_IDLE_MS 30000

/** Size of a buffer that holds any dm_hclient_response.error text. */
#define DM_HCLIENT_ERRLEN 256

/** One request header (both strings borrowed for the dm_hclient_request call only). */
typedef struct dm_hclient_header {
    const char *name;
    const char *value;
} dm_hclient_header;

typedef struct dm_hclient_request_opts {
    const char *method;               /**< "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD" */
    const char *url;                  /**< http:// or https:// absolute URL */
    const dm_hclient_header *headers; /**< extra headers; one with a CR or LF in its name
                                          or value is left out, and so are Host, Connection,
                                          Content-Length and Transfer-Encoding (the client
                                          sets the framing itself) */
    size_t nheaders;
    const void *body; /**< copied; may be NULL */
    size_t body_len;
    int timeout_ms;        /**< deadline from the start of the call to the last byte (> 0) */
    size_t max_body;       /**< largest response body accepted (bytes) */
    const char *ca_file;   /**< https: PEM trust anchors instead of the system store, or NULL */
    bool lenient_url;      /**< the caller validated @c url itself: its path and query may hold
                              characters RFC 3986 does not allow there; they are sent as they
                              are (scheme, host and port are still checked) */
    dm_hclient_pool *pool; /**< keep-alive connections to use, or NULL (a connection of its
                                own, closed after the answer) */
} dm_hclient_request_opts;

/** What a request ended with. Everything is borrowed: valid during the callback only. */
typedef struct dm_hclient_response {
    int status;        /**< the response's status code, or 0 when no status line arrived */
    const char *error; /**< NULL for a complete response; else a short text ("timeout",
                              "connection failed: Connection refused", "TLS: certificate verify
                              failed (…)", "response larger than N bytes", …). A status may be
                              set along with an error (e.g. the body was cut short). */
    const struct evkeyvalq *headers; /**< response headers (evhttp_find_header works on it);
                                          NULL when status is 0, and when a 2xx answer failed
                                          after its head (e.g. a cut body) */
    const char *body;                /**< response body (not NUL-terminated); NULL with error set */
    size_t body_len;
    bool reused;        /**< it went out on a kept-alive connection of its pool */
    const char *resent; /**< NULL, or why it was sent a second time on a new connection (the
                             reused one failed before any byte of an answer, e.g.
                             "connection closed before a response"): the server may have
                             received it twice */
} dm_hclient_response;

/**
 * Completion of one request: called exactly once per request that was not cancelled, on the
 * base's thread, never from inside dm_hclient_request. The request handle is invalid from the
 * moment the callback is entered.
 */
typedef void (*dm_hclient_cb)(const dm_hclient_response *res, void *arg);

/**
 * Create a client on @p base (borrowed; must outlive the client). Reads /etc/resolv.conf and
 * /etc/hosts now. Returns NULL with a reason in @p err when the resolver cannot be set up.
 */
dm_hclient *dm_hclient_new(struct event_base *base, char *err, size_t errlen);

/**
 * Cancel every request in flight (their callbacks do not run) and free @p c (NULL is fine).
 * Not from inside one of its callbacks.
 */
void dm_hclient_free(dm_hclient *c);

/**
 * Prepare the TLS context for @p ca_file (NULL: the system store) now rather than at its
 * first https request, so a bad file is a startup error. Returns DM_OK, or DM_EIO with a
 * reason in @p err.
 */
int dm_hclient_add_trust(dm_hclient *c, const char *ca_file, char *err, size_t errlen);

/**
 * Start a request. @p o's strings and body are copied. Returns the handle (owned by the
 * client; valid until the callback runs or dm_hclient_cancel), or NULL with a reason in
 * @p err when @p o is unusable (bad URL or method, TLS context cannot be built): the
 * callback then never runs. Transport failures (resolution, connect, TLS, timeout) are
 * reported through the callback.
 */
dm_hclient_req *dm_hclient_request(dm_hclient *c, const dm_hclient_request_opts *o,
                                   dm_hclient_cb cb, void *arg, char *err, size_t errlen);

/**
 * A pool of kept-alive connections for the requests that name it (opts.pool): at most
 * @p max_conns open at once (idle or in use; a request that finds none idle and no room gets a
 * connection of its own), each closed after @p idle_timeout_ms idle (<= 0: DM_HCLIENT_IDLE_MS).
 * Owned by @p c, freed with it. NULL when its event cannot be created.
 */
dm_hclient_pool *dm_hclient_pool_new(dm_hclient *c, unsigned max_conns, int idle_timeout_ms);

/** Abandon a request before its callback ran: the callback never runs. NULL is fine. */
void dm_hclient_cancel(dm_hclient_req *r);

/**
 * Parse a Retry-After value (RFC 9110 §10.2.3: delta-seconds, or an HTTP-date in IMF-fixdate,
 * RFC 850 or asctime form) into a delay in ms from @p now_ms (a past date gives 0). Returns
 * DM_OK, or DM_EINVAL for anything else.
 */
int dm_hclient_retry_after_ms(const char *value, int64_t now_ms, int64_t *delay_ms);

#endif
