/* dm_http.h - answers of the daemon's HTTP server (evhttp requests): JSON documents and
 * errors, counted per route in the metrics (@p route is the route's number given to
 * dm_metrics_init).
 *
 * Every function here sends the one reply of @p req; afterwards the request belongs to evhttp
 * again and must not be touched.
 */
#ifndef DM_NET_DM_HTTP_H
#define DM_NET_DM_HTTP_H

#include "dm_common.h"

struct evhttp_request;
struct evbuffer;

/** Seconds in the Retry-After header of 503 answers. */
#define DM_RETRY_AFTER "2"

/** Reply @p status with the NUL-terminated JSON document @p json (borrowed). */
void dm_http_json(struct evhttp_request *req, size_t route, int status, const char *json);

/** Reply @p status with {"error": "<formatted text>"}. 503 answers get Retry-After. */
void dm_http_error(struct evhttp_request *req, size_t route, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/**
 * Reply 503 (with Retry-After) because Redis could not take the request: @p err is DM_EBUSY
 * (in-flight cap), DM_ETIMEOUT, DM_EREDIS or DM_EUNAVAIL. Logged with @p route_name and
 * counted in the matching metric.
 */
void dm_http_unavailable(struct evhttp_request *req, size_t route, const char *route_name, int err);

/** {"error": @p text} with jansson's escaping of whatever the text quotes from the request
 *  (the body of every error answer); the caller frees it. Never NULL. */
char *dm_http_error_json(const char *text);

/**
 * The bookkeeping of a 503 for @p err (as dm_http_unavailable): counts the matching metric, logs
 * the refusal with @p route_name and @p peer, and returns the answer's reason ("too many
 * requests in flight" or "storage unavailable"; static). For answers written beside evhttp.
 */
const char *dm_http_refused(int err, const char *route_name, const char *peer);

/** Reply with a plain-text body and content type @p ctype (for /metrics). */
void dm_http_text(struct evhttp_request *req, size_t route, int status, const char *ctype,
                  struct evbuffer *body);

/**
 * Append to @p out a whole answer written beside evhttp (the connection layer's refusals, before
 * or instead of a request evhttp would see): "HTTP/1.1 @p status", the headers dm_http_error
 * sends (Retry-After on 503, WWW-Authenticate on 401), @p extra (complete "Name: value\r\n"
 * lines, or NULL), Content-Length, Connection: close, and {"error": "<formatted text>"}. Not
 * counted: the caller counts it with the route it knows.
 */
void dm_http_raw_error(struct evbuffer *out, int status, const char *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** Send @p status with the headers already set on @p req and @p body (NULL: none; the caller
 *  keeps and frees it), counted for @p route; a HEAD gets the body's Content-Length and no body. */
void dm_http_send(struct evhttp_request *req, size_t route, int status, struct evbuffer *body);

/** The reason phrase of an HTTP status this server answers ("Error" for others): static. */
const char *dm_http_reason(int status);

/** The peer address of @p req as "ip:port" for log lines (into @p buf of 64 bytes). */
const char *dm_http_peer(struct evhttp_request *req, char buf[64]);

#endif
