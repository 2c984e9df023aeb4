#include "dm_common.h"
#include "dm_conn.h"
#include "dm_head.h"
#include "dm_http.h"
#include "dm_listen.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>

/* After a refusal's answer is out (and our side of the connection shut), what the client still
 * sends is read and dropped this long, so that closing with unread bytes does not reset the
 * connection before the client has read the answer. */
#define LINGER_MS        2000
/* The last answer must leave within this time once the connection is closing. */
#define CLOSE_DRAIN_MS   30000
/* At most this many bytes wait in the socket's output: evhttp's answers queue in front of it,
 * where the event streams see them (dm_sse.h) and the write timeout applies. */
#define UNDER_WRITE_HIGH (64 * 1024)
/* While a request is with evhttp, the next one's bytes wait in the socket buffer beyond this. */
#define UNDER_READ_HIGH  (64 * 1024)

typedef enum {
    C_HEAD = 0, /**< reading a request head (or waiting for the first byte of one) */
    C_BODY,     /**< reading its body */
    C_WAIT,     /**< the request is with evhttp and its handler; nothing more is read */
    C_CLOSING,  /**< answered for the last time: input is dropped until the connection ends */
} conn_state;

typedef struct conn conn;
struct conn {
    dm_conns *cs;              /**< NULL once dm_conns_free detached it */
    struct bufferevent *bev;   /**< the filter evhttp reads and writes */
    struct bufferevent *under; /**< the socket (or TLS) bufferevent below it */
    struct evbuffer_cb_entry *out_cb;
    struct event *timer; /**< head or body deadline, then the linger */
    LIST_ENTRY(conn) link;
    int fd; /**< registered in cs->byfd, or -1 */
    http_parser p;
    conn_state state;
    bool timing;      /**< the head deadline runs */
    bool dispatched;  /**< a handler has the current request */
    bool half_closed; /**< shutdown(SHUT_WR) done */
    bool keepalive;   /**< the client keeps the connection after this request */
    bool chunked;
    bool in_head;        /**< a request head has begun and is not complete */
    bool direct;         /**< the current request is served without evhttp (dm_req.h) */
    bool direct_ready;   /**< ... and is complete: hand it to its handler */
    bool in_filter;      /**< filter_in runs (it goes on with the bytes that wait) */
    bool peer_eof;       /**< the client's EOF, held while its direct request is served */
    struct evbuffer *to; /**< evhttp's input, while the parser runs */
    /* The request being read (its head, and a direct request's body) and served directly. */
    dm_req *req;
    size_t bytes; /**< bytes read since the last answer (for log lines) */
    /* The current request, once its head is complete. */
    int method;
    bool routed;
    size_t route;
    const char *route_name;
    uint64_t body_seen; /**< chunked: the sizes announced so far */
    size_t reserved;    /**< bytes of the body-memory budget it holds */
    /* The socket bufferevent's own callbacks (the filter's), called through ours. */
    bufferevent_data_cb under_read, under_write;
    bufferevent_event_cb under_event;
    void *under_arg;
    char peer[64];
};

struct dm_conns {
    dm_conn_conf cc;
    const dm_config *c;
    LIST_HEAD(, conn) all;
    int n;
    conn **byfd; /**< the connection of each file descriptor, for the dispatcher's lookup */
    int nbyfd;
    dm_listen *gate; /**< pauses the listener at the limit (dm_listen.h) */
    bool draining;
    http_parser_settings settings;
};

/*---------------------------------------------------------------- small tools ---*/

/* evhttp has freed the connection (the filter's callbacks are cleared) but the filter's
 * context is only freed by a finalizer later in the loop: our events must not act on it. */
static bool gone(conn *c)
{
    bufferevent_event_cb ecb = NULL;
    bufferevent_getcb(c->bev, NULL, NULL, &ecb, NULL);
    return c->cs == NULL || ecb == NULL;
}

static const char *find_header(void *ctx, const char *name)
{
    conn *c = ctx;
    return dm_head_find(&c->req->head, name);
}

static void arm(conn *c, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static void peer_of(conn *c)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (c->fd >= 0 && getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
            port = ntohs(s4->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
            port = ntohs(s6->sin6_port);
        }
    }
    snprintf(c->peer, sizeof c->peer, "%s:%u", host, port);
    memcpy(c->req->peer, c->peer, sizeof c->req->peer);
}

/* The fd is known once evhttp has set it (after dm_conns_bevcb): register it on first use. */
static void register_fd(conn *c)
{
    dm_conns *cs = c->cs;
    int fd = bufferevent_getfd(c->under);
    if (fd < 0 || !cs)
        return;
    if (fd >= cs->nbyfd) {
        int n = cs->nbyfd ? cs->nbyfd : 64;
        while (n <= fd)
            n *= 2;
        cs->byfd = dm_xrealloc(cs->byfd, (size_t)n * sizeof *cs->byfd);
        memset(cs->byfd + cs->nbyfd, 0, (size_t)(n - cs->nbyfd) * sizeof *cs->byfd);
        cs->nbyfd = n;
    }
    cs->byfd[fd] = c;
    c->fd = fd;
    peer_of(c);
}

static bool reserve(conn *c, uint64_t n)
{
    _Atomic size_t *b = c->cs->cc.bodies;
    size_t limit = c->cs->c->limits.max_body_memory_bytes;
    if (n > limit)
        return false;
    size_t before = atomic_fetch_add(b, (size_t)n);
    if (before + n > limit) {
        atomic_fetch_sub(b, (size_t)n);
        return false;
    }
    c->reserved += (size_t)n;
    return true;
}

static void release(conn *c)
{
    if (c->reserved && c->cs)
        atomic_fetch_sub(c->cs->cc.bodies, c->reserved);
    c->reserved = 0;
}

/*---------------------------------------------------------------- closing ---*/

/* End the connection through evhttp (its error path frees it, and with it the filter). */
static void kill_conn(conn *c)
{
    if (!gone(c))
        bufferevent_trigger_event(c->bev, BEV_EVENT_ERROR | BEV_EVENT_READING,
                                  BEV_TRIG_DEFER_CALLBACKS);
}

/* The last answer is out: shut our side (the client sees the end of the answer), then read
 * and drop what the client still sends until it closes or LINGER_MS pass. */
static void half_close(conn *c)
{
    c->half_closed = true;
    int fd = bufferevent_getfd(c->under);
    if (fd >= 0)
        shutdown(fd, SHUT_WR);
    arm(c, LINGER_MS);
}

static void on_under_output(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    (void)info;
    conn *c = arg;
    if (c->state == C_CLOSING && !c->half_closed && evbuffer_get_length(b) == 0 && !gone(c))
        half_close(c);
}

/* evhttp queues an answer's head while the filter's writing is still disabled, and enabling it
 * does not move what waits: move it from the loop, once evhttp has enabled writing. */
static void on_filter_output(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    (void)b;
    conn *c = arg;
    if (info->n_added && !gone(c))
        bufferevent_trigger(c->under, EV_WRITE,
                            BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* No more requests on this connection: it closes once what is queued for it is written. */
static void start_closing(conn *c)
{
    c->state = C_CLOSING;
    evtimer_del(c->timer);
    if (evbuffer_get_length(bufferevent_get_output(c->under)) == 0)
        half_close(c);
    else /* a client that stops reading its last answer is cut off, not kept until idle */
        arm(c, CLOSE_DRAIN_MS);
}

/* Answer the current request with a JSON error beside evhttp, count it with its route, and
 * close. */
static void answer(conn *c, int status, const char *extra, const char *text)
{
    dm_http_raw_error(bufferevent_get_output(c->under), status, extra, "%s", text);
    if (c->routed)
        dm_metrics_request(c->route, status);
    start_closing(c);
}

/* A refusal of the connection layer itself: logged, counted by @p why, answered. */
static void refuse(conn *c, int status, dm_conn_reason why, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void refuse(conn *c, int status, dm_conn_reason why, const char *fmt, ...)
{
    char text[320], qtext[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (c->fd < 0)
        register_fd(c);
    if (why < DM_CONN_REASON_COUNT)
        dm_metrics_conn_refused(why);
    else if (status == 413)
        dm_metrics_inc(DM_M_TOO_LARGE);
    dm_warn("request refused", "status=%d route=%s reason=%s bytes=%zu peer=%s", status,
            c->routed ? c->route_name : "-", dm_log_quote(text, strlen(text), qtext, sizeof qtext),
            c->bytes, c->peer);
    answer(c, status, NULL, text);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    conn *c = arg;
    if (gone(c))
        return;
    const dm_config *cf = c->cs->c;
    if (c->state == C_HEAD)
        refuse(c, 408, DM_CONN_HEADER_TIMEOUT,
               "request head not complete within limits.header_timeout_ms (%d ms)",
               cf->limits.header_timeout_ms);
    else if (c->state == C_BODY)
        refuse(c, 408, DM_CONN_BODY_TIMEOUT,
               "request body not complete within limits.body_timeout_ms (%d ms)",
               cf->limits.body_timeout_ms);
    else if (c->state == C_CLOSING)
        kill_conn(c);
}

/*---------------------------------------------------------------- answers and the next request ---*/

/* Bytes of an answer of ours (a direct request's, "100 Continue"): straight into the socket when
 * nothing waits before them (no event to add, no later write), the rest queued below the filter. */
static void out_bytes(conn *c, const char *data, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(c->under);
    size_t sent = 0;
    if (!c->cs->cc.make_bev && c->fd >= 0 && evbuffer_get_length(out) == 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            sent = (size_t)n;
    }
    if (sent < len) /* a full socket, or an error the bufferevent will report */
        evbuffer_add(out, data + sent, len - sent);
}

/* The answer is out (or queued): read the next request on this connection. */
static void next_request(conn *c)
{
    c->state = C_HEAD;
    c->bytes = 0;
    http_parser_init(&c->p, HTTP_REQUEST);
    c->p.data = c;
    /* Bytes of the next request may already wait: parse them from the loop (filter_in goes on
     * with them by itself when it is the caller). */
    if (!c->in_filter && evbuffer_get_length(bufferevent_get_input(c->under)) > 0)
        bufferevent_trigger(c->under, EV_READ,
                            BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* A request served directly (dm_req.h): its route's handler gets it instead of evhttp, which
 * waits for a next head meanwhile; evhttp's idle timeout is off until the answer (as it is
 * while evhttp serves a request: our deadlines and the handler's bound the time). */
static void direct_begin(conn *c, const dm_conn_verdict *v, uint64_t cl, bool expect)
{
    dm_req *r = c->req;
    c->direct = true;
    r->method = c->method;
    r->http_minor = c->p.http_minor;
    r->route = v->route;
    r->route_name = v->route_name;
    r->target = v->target;
    r->expect = c->chunked ? 0 : (size_t)cl;
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    if (expect && c->p.http_minor >= 1 && (cl > 0 || c->chunked))
        out_bytes(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

static bool direct_closing(void *arg)
{
    conn *c = arg;
    return gone(c) || !c->keepalive || !c->cs || c->cs->draining || c->peer_eof;
}

/* The handler's answer (dm_req.h) of the current request. */
static void direct_write(void *arg, const char *data, size_t len, bool close)
{
    conn *c = arg;
    dm_req_reset(c->req);
    release(c);
    c->direct = false;
    if (gone(c))
        return;
    out_bytes(c, data, len);
    if (close) {
        start_closing(c);
        return;
    }
    int s = c->cs->c->limits.idle_timeout_seconds;
    struct timeval idle = {s, 0};
    bufferevent_set_timeouts(c->bev, &idle, &idle);
    next_request(c);
}

static const dm_req_conn_ops direct_ops = {direct_closing, direct_write};

/* The request is complete: its handler answers it now or later. */
static void direct_dispatch(conn *c)
{
    c->direct_ready = false;
    c->req->busy = true;
    c->cs->cc.on_direct(c->req, c->cs->cc.on_direct_arg);
}

/* The socket's events reach the filter through here: a client that half-closes after its
 * request still gets the answer (evhttp, which stops reading while it serves a request, never
 * sees that EOF early; a direct request goes on reading). */
static void under_read_cb(struct bufferevent *b, void *arg)
{
    conn *c = arg;
    c->under_read(b, c->under_arg);
}

static void under_write_cb(struct bufferevent *b, void *arg)
{
    conn *c = arg;
    c->under_write(b, c->under_arg);
}

static void under_event_cb(struct bufferevent *b, short what, void *arg)
{
    conn *c = arg;
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && c->req->busy) {
        c->peer_eof = true; /* the answer closes the connection */
        return;
    }
    c->under_event(b, what, c->under_arg);
}

/*---------------------------------------------------------------- the head ---*/

static int on_message_begin(http_parser *p)
{
    conn *c = p->data;
    dm_req_reset(c->req);
    c->in_head = true;
    c->routed = c->chunked = c->direct = c->direct_ready = false;
    c->body_seen = 0;
    c->state = C_HEAD;
    if (!c->timing) { /* the first request's deadline runs from the accept */
        c->timing = true;
        arm(c, c->cs->c->limits.header_timeout_ms);
    }
    return 0;
}

static int too_large(conn *c)
{
    refuse(c, 431, DM_CONN_HEAD_TOO_LARGE, "request head exceeds limits.max_header_bytes (%zu)",
           c->cs->c->limits.max_header_bytes);
    return -1;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    return dm_head_url(&c->req->head, at, n) ? 0 : too_large(c);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (!c->in_head)
        return 0; /* a chunked body's trailer: dropped, as evhttp drops it; never a header */
    if (memchr(at, '\0', n))
        return -1;
    return dm_head_name(&c->req->head, at, n) ? 0 : too_large(c);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (!c->in_head)
        return 0; /* a chunked body's trailer: dropped, as evhttp drops it; never a header */
    if (memchr(at, '\0', n))
        return -1;
    return dm_head_value(&c->req->head, at, n) ? 0 : too_large(c);
}

static int evhttp_method(unsigned m)
{
    switch (m) {
    case HTTP_GET:
        return EVHTTP_REQ_GET;
    case HTTP_POST:
        return EVHTTP_REQ_POST;
    case HTTP_HEAD:
        return EVHTTP_REQ_HEAD;
    case HTTP_PUT:
        return EVHTTP_REQ_PUT;
    case HTTP_DELETE:
        return EVHTTP_REQ_DELETE;
    case HTTP_OPTIONS:
        return EVHTTP_REQ_OPTIONS;
    case HTTP_PATCH:
        return EVHTTP_REQ_PATCH;
    default:
        return 0;
    }
}

/* Hand evhttp the head as we understood it: origin-form target, the framing headers we
 * checked, and a connection it will never close on its own (we do, once the answer is out:
 * evhttp would free it while the answer still waits below the filter). */
static void emit_head(conn *c, const char *path, const char *query, uint64_t cl)
{
    char framing[96] = "";
    if (c->chunked)
        snprintf(framing, sizeof framing, "Transfer-Encoding: chunked\r\n");
    else if (c->p.flags & F_CONTENTLENGTH)
        snprintf(framing, sizeof framing, "Content-Length: %llu\r\n", (unsigned long long)cl);
    if (c->p.http_major == 1 && c->p.http_minor == 0)
        strcat(framing, "Connection: keep-alive\r\n");
    dm_head_emit(&c->req->head, c->to, http_method_str(c->p.method), path, query, c->p.http_major,
                 c->p.http_minor, framing);
}

static bool te_is_chunked(conn *c)
{
    const char *te = find_header(c, "Transfer-Encoding");
    if (!te || dm_head_count(&c->req->head, "Transfer-Encoding") != 1)
        return false;
    while (*te == ' ' || *te == '\t')
        te++;
    size_t n = strlen(te);
    while (n && (te[n - 1] == ' ' || te[n - 1] == '\t'))
        n--;
    return n == 7 && strncasecmp(te, "chunked", 7) == 0;
}

/* The head is complete: check it, ask the server, hand it to evhttp. Returns 0 to go on, -1
 * after a refusal (the parser stops). */
static int check_head(conn *c, const char *path, const char *query)
{
    const dm_config *cf = c->cs->c;
    uint64_t cl = (c->p.flags & F_CONTENTLENGTH) ? c->p.content_length : 0;
    c->chunked = (c->p.flags & F_CHUNKED) != 0;
    if (c->p.uses_transfer_encoding && !(c->chunked && te_is_chunked(c))) {
        refuse(c, 400, DM_CONN_MALFORMED, "unsupported Transfer-Encoding (only chunked)");
        return -1;
    }
    /* evhttp reads no body after HEAD: it would take one for the next request. */
    if (c->method == EVHTTP_REQ_HEAD && (c->chunked || cl > 0)) {
        refuse(c, 400, DM_CONN_MALFORMED, "HEAD request with a body");
        return -1;
    }
    const char *expect = find_header(c, "Expect");
    if (expect && strcasecmp(expect, "100-continue") != 0) {
        refuse(c, 417, DM_CONN_MALFORMED, "unsupported Expect (only 100-continue)");
        return -1;
    }
    if (!path || !*path)
        path = "/";
    dm_conn_verdict v = {0};
    dm_conn_head h = {c->method, path, c->chunked || cl > 0, find_header, c, c->peer};
    c->cs->cc.on_head(&h, &v, c->cs->cc.on_head_arg);
    c->routed = true;
    c->route = v.route;
    c->route_name = v.route_name;
    if (v.authed) { /* the request keeps it (disposed with it) */
        c->req->auth = v.auth;
        c->req->authed = true;
    }
    if (v.status) {
        answer(c, v.status, v.extra[0] ? v.extra : NULL, v.error);
        return -1;
    }
    size_t limit = cf->limits.max_body_bytes;
    if (cl > limit) {
        refuse(c, 413, DM_CONN_REASON_COUNT,
               "body of %llu bytes exceeds limits.max_body_bytes (%zu)", (unsigned long long)cl,
               limit);
        return -1;
    }
    if (cl && !reserve(c, cl)) {
        refuse(c, 503, DM_CONN_BODY_MEMORY,
               "too many request bodies in flight (limits.max_body_memory_bytes); retry later");
        return -1;
    }
    if (v.direct && c->cs->cc.on_direct)
        direct_begin(c, &v, cl, expect != NULL); /* 100-continue: others were refused */
    else
        emit_head(c, path, query, cl);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    conn *c = p->data;
    if (!dm_head_seal(&c->req->head))
        return too_large(c);
    c->in_head = false;
    c->keepalive = http_should_keep_alive(p) != 0;
    c->method = evhttp_method(p->method);
    if (!c->method) {
        refuse(c, 501, DM_CONN_MALFORMED, "method %s not implemented", http_method_str(p->method));
        return -1;
    }
    /* The same parse as evhttp's (its NONCONFORMANT flag), so what passes here passes there; a
     * plain path is what that parse would make of it (dm_head.h), without its copies. */
    const char *target = dm_head_target(&c->req->head);
    int rc;
    if (dm_head_plain_path(target)) {
        rc = check_head(c, target, NULL);
    } else {
        struct evhttp_uri *uri = evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT);
        if (!uri) {
            refuse(c, 400, DM_CONN_MALFORMED, "malformed request target");
            return -1;
        }
        rc = check_head(c, evhttp_uri_get_path(uri), evhttp_uri_get_query(uri));
        evhttp_uri_free(uri);
    }
    if (rc != 0)
        return rc;
    if (c->chunked || ((c->p.flags & F_CONTENTLENGTH) && c->p.content_length > 0)) {
        c->state = C_BODY;
        arm(c, c->cs->c->limits.body_timeout_ms);
    }
    return 0; /* without a body the message ends here */
}

/*---------------------------------------------------------------- the body ---*/

static int on_chunk_header(http_parser *p)
{
    conn *c = p->data;
    uint64_t n = p->content_length;
    size_t limit = c->cs->c->limits.max_body_bytes;
    if (n == 0)
        return 0;
    if (n > limit || c->body_seen + n > limit) {
        refuse(c, 413, DM_CONN_REASON_COUNT,
               "body of more than %zu bytes exceeds limits.max_body_bytes (%zu)", limit, limit);
        return -1;
    }
    if (!reserve(c, n)) {
        refuse(c, 503, DM_CONN_BODY_MEMORY,
               "too many request bodies in flight (limits.max_body_memory_bytes); retry later");
        return -1;
    }
    c->body_seen += n;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (c->direct) {
        dm_req_body_add(c->req, at, n);
        return 0;
    }
    if (c->chunked)
        evbuffer_add_printf(c->to, "%zx\r\n", n);
    evbuffer_add(c->to, at, n);
    if (c->chunked)
        evbuffer_add(c->to, "\r\n", 2);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    conn *c = p->data;
    if (c->chunked && !c->direct)
        evbuffer_add(c->to, "0\r\n\r\n", 5);
    c->direct_ready = c->direct;
    c->state = C_WAIT;
    c->timing = false;
    evtimer_del(c->timer);
    http_parser_pause(p, 1); /* the next request waits until evhttp has answered this one */
    return 0;
}

/* http-parser stopped on an error of its own. */
static void refuse_parse(conn *c, enum http_errno e)
{
    if (e == HPE_HEADER_OVERFLOW) {
        too_large(c);
    } else if (e == HPE_UNEXPECTED_CONTENT_LENGTH) {
        refuse(c, 400, DM_CONN_MALFORMED,
               "two Content-Length headers, or Content-Length with Transfer-Encoding");
    } else if (e == HPE_CB_header_field || e == HPE_CB_header_value) {
        refuse(c, 400, DM_CONN_MALFORMED, "NUL byte in a header");
    } else {
        refuse(c, 400, DM_CONN_MALFORMED, "malformed request: %s", http_errno_description(e));
    }
}

/*---------------------------------------------------------------- the filters ---*/

/* Every byte from the client passes here before evhttp sees anything. */
static enum bufferevent_filter_result filter_in(struct evbuffer *src, struct evbuffer *dst,
                                                ev_ssize_t lim, enum bufferevent_flush_mode mode,
                                                void *ctx)
{
    (void)lim, (void)mode;
    conn *c = ctx;
    if (c->fd < 0)
        register_fd(c);
    if (c->state == C_CLOSING || !c->cs) {
        evbuffer_drain(src, evbuffer_get_length(src));
        return BEV_NEED_MORE;
    }
    bool used = false;
    size_t before = evbuffer_get_length(dst);
    c->to = dst;
    c->in_filter = true;
    /* A head's deadline runs from its first byte, even one http-parser skips without starting a
     * message (the CRLFs allowed between requests): otherwise a CRLF every few seconds would
     * keep a connection open forever, each one resetting the idle timer. */
    if (c->state == C_HEAD && !c->timing && evbuffer_get_length(src) > 0) {
        c->timing = true;
        arm(c, c->cs->c->limits.header_timeout_ms);
    }
    while (evbuffer_get_length(src) > 0 && c->state != C_WAIT && c->state != C_CLOSING) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(src, -1, NULL, &v, 1) < 1)
            break;
        size_t n = http_parser_execute(&c->p, &c->cs->settings, v.iov_base, v.iov_len);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->p);
        c->bytes += n;
        if (c->state == C_CLOSING)
            break; /* a callback refused the request */
        evbuffer_drain(src, n);
        used = true;
        if (e != HPE_OK && e != HPE_PAUSED)
            refuse_parse(c, e);
        else if (c->direct_ready)
            direct_dispatch(c); /* answered at once: the loop goes on with the next request */
    }
    c->in_filter = false;
    c->to = NULL;
    if (c->state == C_CLOSING) {
        evbuffer_drain(src, evbuffer_get_length(src));
        return BEV_NEED_MORE;
    }
    /* evhttp hears of what it got, and of a head still arriving (its idle timeout restarts);
     * the bytes of a direct request are none of its business. */
    return evbuffer_get_length(dst) > before || (used && c->in_head) ? BEV_OK : BEV_NEED_MORE;
}

/* evhttp writes its answers here; a handler's pass on. Anything evhttp says about a request
 * no handler has (its HTML error pages) is replaced by a JSON answer; "100 Continue" passes. */
static enum bufferevent_filter_result filter_out(struct evbuffer *src, struct evbuffer *dst,
                                                 ev_ssize_t lim, enum bufferevent_flush_mode mode,
                                                 void *ctx)
{
    (void)mode;
    conn *c = ctx;
    size_t n = evbuffer_get_length(src);
    if (n == 0 || c->state == C_CLOSING || !c->cs)
        return BEV_NEED_MORE; /* held: freed with the connection */
    if (!c->dispatched) {
        char line[16] = {0};
        evbuffer_copyout(src, line, sizeof line - 1);
        if (strncmp(line, "HTTP/1.1 100 ", 13) == 0 || strncmp(line, "HTTP/1.0 100 ", 13) == 0) {
            struct evbuffer_ptr end = evbuffer_search(src, "\r\n\r\n", 4, NULL);
            if (end.pos < 0)
                return BEV_NEED_MORE;
            evbuffer_remove_buffer(src, dst, (size_t)end.pos + 4);
            return BEV_OK;
        }
        int status = atoi(line + 9);
        refuse(c, status >= 400 && status < 600 ? status : 400, DM_CONN_MALFORMED,
               "request refused by the HTTP layer (%d)", status);
        return BEV_NEED_MORE;
    }
    if (lim >= 0 && (size_t)lim < n)
        n = (size_t)lim;
    if (n == 0)
        return BEV_NEED_MORE;
    evbuffer_remove_buffer(src, dst, n);
    return BEV_OK;
}

/*---------------------------------------------------------------- the listener ---*/

void dm_conns_listen(dm_conns *cs, struct evconnlistener *lev)
{
    dm_listen_attach(cs->gate, lev);
}

void dm_conns_unlisten(dm_conns *cs)
{
    dm_listen_detach(cs->gate);
    cs->draining = true;
}

/*---------------------------------------------------------------- connections ---*/

static void free_conn(void *ctx)
{
    conn *c = ctx;
    dm_conns *cs = c->cs;
    release(c);
    if (cs) {
        evbuffer_remove_cb_entry(bufferevent_get_output(c->under), c->out_cb);
        event_free(c->timer);
        if (c->fd >= 0 && c->fd < cs->nbyfd && cs->byfd[c->fd] == c)
            cs->byfd[c->fd] = NULL;
        LIST_REMOVE(c, link);
        cs->n--;
        dm_metrics_connections(-1);
        dm_listen_count(cs->gate, cs->n, cs->cc.max_connections);
    }
    dm_req_orphan(c->req);
    free(c);
}

struct bufferevent *dm_conns_bevcb(struct event_base *base, void *arg)
{
    dm_conns *cs = arg;
    struct bufferevent *under = cs->cc.make_bev
                                    ? cs->cc.make_bev(base, cs->cc.make_bev_arg)
                                    : bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!under)
        abort(); /* out of memory: as dm_xmalloc (evhttp would make an unguarded one) */
    conn *c = dm_xcalloc(1, sizeof *c);
    c->cs = cs;
    c->under = under;
    c->fd = -1;
    c->req = dm_req_new(c, &direct_ops, cs->c->limits.max_header_bytes + 256);
    snprintf(c->peer, sizeof c->peer, "?");
    snprintf(c->req->peer, sizeof c->req->peer, "?");
    http_parser_init(&c->p, HTTP_REQUEST);
    c->p.data = c;
    c->timer = evtimer_new(base, on_timer, c);
    c->bev = bufferevent_filter_new(under, filter_in, filter_out,
                                    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, free_conn, c);
    if (!c->timer || !c->bev)
        abort(); /* out of memory: as dm_xmalloc */
    bufferevent_getcb(under, &c->under_read, &c->under_write, &c->under_event, &c->under_arg);
    bufferevent_setcb(under, under_read_cb, under_write_cb, under_event_cb, c);
    c->out_cb = evbuffer_add_cb(bufferevent_get_output(under), on_under_output, c);
    evbuffer_add_cb(bufferevent_get_output(c->bev), on_filter_output, c);
    bufferevent_setwatermark(under, EV_WRITE, 0, UNDER_WRITE_HIGH);
    bufferevent_setwatermark(under, EV_READ, 0, UNDER_READ_HIGH);
    LIST_INSERT_HEAD(&cs->all, c, link);
    cs->n++;
    dm_metrics_connections(1);
    c->timing = true; /* the first head's deadline runs from now */
    arm(c, cs->c->limits.header_timeout_ms);
    dm_listen_count(cs->gate, cs->n, cs->cc.max_connections);
    return c->bev;
}

static conn *conn_of(dm_conns *cs, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    int fd = bev ? bufferevent_getfd(bev) : -1;
    conn *c = fd >= 0 && fd < cs->nbyfd ? cs->byfd[fd] : NULL;
    return c && c->bev == bev ? c : NULL;
}

static void remove_all(struct evkeyvalq *h, const char *name)
{
    while (evhttp_find_header(h, name))
        evhttp_remove_header(h, name);
}

/* evhttp has written the answer (into the filter): the body's memory is released, and the
 * connection either reads the next request or closes once the answer is out. evhttp decides
 * right after this whether to free the connection itself, which would lose what still waits
 * below the filter: the headers that would make it do so are removed. */
static void on_complete(struct evhttp_request *req, void *arg)
{
    conn *c = arg;
    release(c);
    c->dispatched = false;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    const char *conn_hdr = evhttp_find_header(out, "Connection");
    bool close = !c->keepalive || !c->cs || c->cs->draining ||
                 (conn_hdr && strcasecmp(conn_hdr, "close") == 0);
    remove_all(out, "Connection");
    remove_all(evhttp_request_get_input_headers(req), "Connection");
    evhttp_add_header(evhttp_request_get_input_headers(req), "Connection", "keep-alive");
    if (close) {
        start_closing(c);
        return;
    }
    next_request(c);
}

void dm_conns_dispatch(dm_conns *cs, struct evhttp_request *req)
{
    conn *c = conn_of(cs, req);
    if (!c)
        return;
    c->dispatched = true;
    evhttp_request_set_on_complete_cb(req, on_complete, c);
}

dm_conns *dm_conns_new(const dm_conn_conf *cc)
{
    dm_conns *cs = dm_xcalloc(1, sizeof *cs);
    cs->cc = *cc;
    cs->c = cc->conf;
    if (cs->cc.max_connections < 1)
        cs->cc.max_connections = 1;
    LIST_INIT(&cs->all);
    cs->gate = dm_listen_new(cc->base, cc->worker);
    /* Process-wide in http-parser; every worker sets the same value. */
    http_parser_set_max_header_size((uint32_t)cc->conf->limits.max_header_bytes);
    http_parser_settings_init(&cs->settings);
    cs->settings.on_message_begin = on_message_begin;
    cs->settings.on_url = on_url;
    cs->settings.on_header_field = on_header_field;
    cs->settings.on_header_value = on_header_value;
    cs->settings.on_headers_complete = on_headers_complete;
    cs->settings.on_body = on_body;
    cs->settings.on_message_complete = on_message_complete;
    cs->settings.on_chunk_header = on_chunk_header;
    return cs;
}

void dm_conns_free(dm_conns *cs)
{
    if (!cs)
        return;
    conn *c;
    while ((c = LIST_FIRST(&cs->all)) != NULL) {
        LIST_REMOVE(c, link);
        release(c);
        evbuffer_remove_cb_entry(bufferevent_get_output(c->under), c->out_cb);
        event_free(c->timer);
        c->timer = NULL;
        c->cs = NULL;
        dm_metrics_connections(-1);
    }
    dm_listen_free(cs->gate);
    free(cs->byfd);
    free(cs);
}
