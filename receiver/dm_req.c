/* dm_req.c - see dm_req.h. */
#include "dm_common.h"
#include "dm_req.h"
#include "dm_http.h"
#include "dm_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A body buffer this large or smaller is kept for the connection's next request (an ACR push
 * is about 0.5 KiB): what idle keep-alive connections hold beside limits.max_body_memory_bytes. */
#define KEEP_BODY_CAP 4096
/* Answers up to this size are built on the stack. */
#define ANSWER_STACK  2048

dm_req *dm_req_new(void *conn, const dm_req_conn_ops *ops, size_t max_head)
{
    dm_req *r = dm_xcalloc(1, sizeof *r);
    dm_head_init(&r->head, max_head);
    r->body = "";
    r->conn = conn;
    r->ops = ops;
    return r;
}

static void free_body(dm_req *r)
{
    if (r->cap)
        free(r->body);
    r->body = "";
    r->len = r->cap = 0;
}

void dm_req_reset(dm_req *r)
{
    dm_head_reset(&r->head);
    if (r->cap > KEEP_BODY_CAP)
        free_body(r);
    r->len = 0;
    r->expect = 0;
    if (r->cap)
        r->body[0] = '\0';
    if (r->authed)
        dm_auth_outcome_dispose(&r->auth);
    r->authed = false;
    r->target = NULL;
    r->nextra = 0;
    r->busy = false;
}

static void destroy(dm_req *r)
{
    if (r->authed)
        dm_auth_outcome_dispose(&r->auth);
    dm_head_free(&r->head);
    free_body(r);
    free(r);
}

void dm_req_orphan(dm_req *r)
{
    if (!r)
        return;
    r->conn = NULL;
    r->orphan = true;
    if (!r->busy)
        destroy(r);
}

void dm_req_body_add(dm_req *r, const char *at, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        /* A declared length is taken at once, so the buffer is what the bodies' memory budget
         * reserved for it; chunks double from 1 KiB. */
        size_t cap = r->cap ? r->cap : 1024;
        if (r->expect >= r->len + n)
            cap = r->expect + 1;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *b = dm_xmalloc(cap);
        memcpy(b, r->body, r->len);
        if (r->cap)
            free(r->body);
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, at, n);
    r->len += n;
    r->body[r->len] = '\0';
}

void dm_req_add_header(dm_req *r, const char *name, const char *value)
{
    size_t a = strlen(name), b = strlen(value);
    if (r->nextra + a + b + 4 >= sizeof r->extra)
        return; /* the few short lines the handlers add always fit */
    char *p = r->extra + r->nextra;
    memcpy(p, name, a);
    memcpy(p + a, ": ", 2);
    memcpy(p + a + 2, value, b);
    memcpy(p + a + 2 + b, "\r\n", 2);
    r->nextra += a + b + 4;
}

/*---------------------------------------------------------------- the answer ---*/

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_str(char *p, const char *s)
{
    return put(p, s, strlen(s));
}

/* The Date header's value (RFC 1123, as evhttp writes it), formatted once a second per
 * thread. */
static const char *date_now(void)
{
    static _Thread_local time_t last = -1;
    static _Thread_local char text[40];
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
                 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        last = now;
    }
    return text;
}

void dm_req_json_n(dm_req *r, size_t route, int status, const char *json, size_t len)
{
    dm_metrics_request(route, status);
    if (r->orphan || !r->conn) {
        r->busy = false;
        destroy(r);
        return;
    }
    bool close = r->ops->closing(r->conn);
    /* The fixed lines, the handler's, and the body with its newline. */
    size_t need = 256 + r->nextra + len + 1;
    char stack[ANSWER_STACK];
    char *buf = need <= sizeof stack ? stack : dm_xmalloc(need);
    char *p = buf;
    p = PUT(p, "HTTP/1.");
    *p++ = r->http_minor ? '1' : '0';
    *p++ = ' ';
    p = dm_put_uint(p, (unsigned long long)status);
    *p++ = ' ';
    p = put_str(p, dm_http_reason(status));
    p = PUT(p, "\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n");
    if (status == 503)
        p = PUT(p, "Retry-After: " DM_RETRY_AFTER "\r\n");
    if (status == 401)
        p = PUT(p, "WWW-Authenticate: Bearer\r\n");
    p = put(p, r->extra, r->nextra);
    if (r->http_minor) {
        p = PUT(p, "Date: ");
        p = put_str(p, date_now());
        p = PUT(p, "\r\n");
    }
    p = PUT(p, "Content-Length: ");
    p = dm_put_uint(p, len + 1);
    if (close)
        p = PUT(p, "\r\nConnection: close");
    else if (!r->http_minor)
        p = PUT(p, "\r\nConnection: keep-alive");
    p = PUT(p, "\r\n\r\n");
    p = put(p, json, len);
    *p++ = '\n';
    /* The connection resets the request for the next one (dm_req_reset) inside. */
    r->ops->write(r->conn, buf, (size_t)(p - buf), close);
    if (buf != stack)
        free(buf);
}

void dm_req_json(dm_req *r, size_t route, int status, const char *json)
{
    dm_req_json_n(r, route, status, json, strlen(json));
}

void dm_req_error(dm_req *r, size_t route, int status, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    char *s = dm_http_error_json(text);
    dm_req_json(r, route, status, s);
    free(s);
}

void dm_req_unavailable(dm_req *r, size_t route, const char *route_name, int err)
{
    dm_req_error(r, route, 503, "%s; retry later", dm_http_refused(err, route_name, r->peer));
}
