#include "dm_common.h"
#include "dm_http.h"
#include "dm_log.h"
#include "dm_metrics.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *dm_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 417:
        return "Expectation Failed";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

void dm_http_send(struct evhttp_request *req, size_t route, int status, struct evbuffer *body)
{
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        /* evhttp writes a HEAD answer's body after its headers, without a length: the client
         * would read it as the start of its next answer on the connection. The length of the
         * body a GET would have had, and no body. */
        char len[24];
        snprintf(len, sizeof len, "%zu", body ? evbuffer_get_length(body) : (size_t)0);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", len);
        body = NULL;
    }
    dm_metrics_request(route, status);
    evhttp_send_reply(req, status, dm_http_reason(status), body);
}

static void reply(struct evhttp_request *req, size_t route, int status, const char *ctype,
                  struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (status == 503)
        evhttp_add_header(h, "Retry-After", DM_RETRY_AFTER);
    if (status == 401)
        evhttp_add_header(h, "WWW-Authenticate", "Bearer");
    dm_http_send(req, route, status, body);
}

void dm_http_json(struct evhttp_request *req, size_t route, int status, const char *json)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort(); /* out of memory */
    evbuffer_add(b, json, strlen(json));
    evbuffer_add(b, "\n", 1);
    reply(req, route, status, "application/json", b);
    evbuffer_free(b);
}

char *dm_http_error_json(const char *text)
{
    json_t *o = json_pack("{s:s}", "error", text);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s ? s : dm_xstrdup("{\"error\":\"internal error\"}");
}

void dm_http_error(struct evhttp_request *req, size_t route, int status, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    char *s = dm_http_error_json(text);
    dm_http_json(req, route, status, s);
    free(s);
}

void dm_http_raw_error(struct evbuffer *out, int status, const char *extra, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    char *json = dm_http_error_json(text);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                        "Cache-Control: no-store\r\n%s%s%sContent-Length: %zu\r\n"
                        "Connection: close\r\n\r\n%s\n",
                        status, dm_http_reason(status),
                        status == 503 ? "Retry-After: " DM_RETRY_AFTER "\r\n" : "",
                        status == 401 ? "WWW-Authenticate: Bearer\r\n" : "", extra ? extra : "",
                        strlen(json) + 1, json);
    free(json);
}

void dm_http_text(struct evhttp_request *req, size_t route, int status, const char *ctype,
                  struct evbuffer *body)
{
    reply(req, route, status, ctype, body);
}

const char *dm_http_peer(struct evhttp_request *req, char buf[64])
{
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (c)
        evhttp_connection_get_peer(c, &addr, &port);
    snprintf(buf, 64, "%s:%u", addr ? addr : "?", (unsigned)port);
    return buf;
}

const char *dm_http_refused(int err, const char *route_name, const char *peer)
{
    dm_metric m = err == DM_EBUSY      ? DM_M_OVERLOADED
                  : err == DM_ETIMEOUT ? DM_M_REDIS_TIMEOUT
                  : err == DM_EREDIS   ? DM_M_REDIS_ERROR
                                       : DM_M_REDIS_UNAVAILABLE;
    dm_metrics_inc(m);
    dm_warn("request refused", "status=503 route=%s reason=\"%s\" peer=%s", route_name,
            dm_strerror(err), peer);
    return err == DM_EBUSY ? "too many requests in flight" : "storage unavailable";
}

void dm_http_unavailable(struct evhttp_request *req, size_t route, const char *route_name, int err)
{
    char peer[64];
    dm_http_error(req, route, 503, "%s; retry later",
                  dm_http_refused(err, route_name, dm_http_peer(req, peer)));
}
