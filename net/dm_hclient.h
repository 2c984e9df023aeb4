/* dm_hclient.h - outgoing HTTP(S) requests on one event_base (libevent's evhttp client).
 *
 * One request = one fresh connection (Connection: close), so no keep-alive state goes stale
 * between requests and a deadline can always be enforced by dropping the connection. Names
 * are resolved asynchronously (evdns, /etc/hosts included); nothing blocks the loop except
 * loading a CA file the first time it is used (dm_hclient_add_trust does that at startup).
 *
 * https: the server's certificate is verified against the system store (SSL_CERT_FILE /
 * SSL_CERT_DIR override it, as for any OpenSSL client) or against a given CA file instead,
 * and its name against the URL's host (a DNS name, with SNI; an IP literal must be an IP SAN
 * and gets no SNI). TLS >= 1.2. Every failure fails the request; nothing is ever sent in
 * cleartext to an https URL.
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
    const dm_hclient_header *headers; /**< extra headers (Host, Connection and
                                          Content-Length are set by the client) */
    size_t nheaders;
    const void *body; /**< copied; may be NULL */
    size_t body_len;
    int timeout_ms;      /**< deadline from the start of the call to the last byte (> 0) */
    size_t max_body;     /**< largest response body accepted (bytes) */
    const char *ca_file; /**< https: PEM trust anchors instead of the system store, or NULL */
    bool lenient_url;    /**< the caller validated @c url itself: its path and query may hold
                              characters RFC 3986 does not allow there; they are sent as they
                              are (scheme, host and port are still checked) */
} dm_hclient_request_opts;

/** What a request ended with. Everything is borrowed: valid during the callback only. */
typedef struct dm_hclient_response {
    int status;        /**< the response's status code, or 0 when no status line arrived */
    const char *error; /**< NULL for a complete response; else a short text ("timeout",
                              "connection failed: Connection refused", "TLS: certificate verify
                              failed (…)", "response larger than N bytes", …). A status may be
                              set along with an error (e.g. the body was cut short). */
    const struct evkeyvalq *headers; /**< response headers (evhttp_find_header works on it);
                                          NULL when status is 0 */
    const char *body;                /**< response body (not NUL-terminated); NULL with error set */
    size_t body_len;
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

/** Abandon a request before its callback ran: the callback never runs. NULL is fine. */
void dm_hclient_cancel(dm_hclient_req *r);

/**
 * Parse a Retry-After value (RFC 9110 §10.2.3: delta-seconds, or an HTTP-date in IMF-fixdate,
 * RFC 850 or asctime form) into a delay in ms from @p now_ms (a past date gives 0). Returns
 * DM_OK, or DM_EINVAL for anything else.
 */
int dm_hclient_retry_after_ms(const char *value, int64_t now_ms, int64_t *delay_ms);

#endif
