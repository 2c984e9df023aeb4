/* dm_hclient.c - outgoing HTTP(S) requests (see dm_hclient.h).
 *
 * libevent constraints this file is built around (the same ones dm_fetch.c met):
 * - an evhttp_connection must not be freed from inside its own callbacks (libevent keeps
 *   using it after the request callback returns), so a finished request's connection is
 *   released from a deferred event ("reap");
 * - evhttp_make_request may fail and run the request callback from inside the call, so a
 *   result that arrives while the request is being started is handed over from that same
 *   deferred event instead;
 * - when a connection fails, libevent frees the request before calling back, so the status
 *   and headers are copied in the header callback, when they arrive;
 * - freeing a connection drops its queued request without calling back, which is how the
 *   deadline and dm_hclient_cancel end a request;
 * - an evhttp_connection whose connection closed would reconnect by itself at its next request
 *   (with the used SSL object, for TLS), so a connection (struct conn) is one TCP connection:
 *   once libevent closed it (its close callback), it is freed, never sent on again;
 * - evhttp keeps a client connection idle after any answer without "Connection: close" (an
 *   HTTP/1.0 one, or one whose body ended with the connection, included), so whether a
 *   connection goes back to its pool is decided here (reusable), not by libevent.
 */
#include "dm_common.h"
#include "dm_hclient.h"
#include "dm_hconn.h"
#include "dm_hhead.h"

#include <sys/queue.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h> /* an answer's HTTP version and framing (reusable) */
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/*---- Types ------------------------------------------------------------------------------*/

/* One TLS context per CA file (and one for the system store), built once and kept. */
typedef struct trust {
    char *ca_file; /* NULL: the system store */
    SSL_CTX *ctx;
    LIST_ENTRY(trust) link;
} trust;

/* What a request needs of its URL. */
typedef struct target {
    bool tls;
    int port;              /* the URL's, else 443 / 80 */
    char *host;            /* to connect to: no brackets (owned) */
    char host_header[300]; /* the Host header: as the URL writes it, with its port if given */
    char *path;            /* path and query, "/" at least (owned) */
} target;

/* The URLs parsed last: a sink posts to one URL again and again, and parsing it took half a
 * dozen allocations per delivery. */
#define URL_CACHE 8

#define MAX_SPARE      256   /* finished requests kept for reuse */
#define SPARE_BLOB_MAX 16384 /* a spare request keeps a buffer up to this size */
#define DEADLINES      4     /* distinct deadlines given a common timeout */
typedef struct parsed_url {
    char *url; /* NULL: unused */
    bool lenient;
    target t;
} parsed_url;

struct dm_hclient {
    struct event_base *base;
    struct evdns_base *dns;
    LIST_HEAD(, trust) trusts;
    LIST_HEAD(, dm_hclient_req) reqs; /* started and not yet reaped */
    LIST_HEAD(, dm_hclient_pool) pools;
    parsed_url urls[URL_CACHE];
    unsigned next_url; /* the entry replaced next */
    /* Finished requests kept for the next ones, with their events and buffer: a sink makes a
     * request per delivery, and each cost five allocations and two event_new. */
    LIST_HEAD(, dm_hclient_req) spare;
    unsigned nspare;
    /* The deadlines' common timeouts (libevent keeps the events of one duration in a list, not
     * its heap): one per timeout_ms seen, the first DEADLINES of them. */
    struct {
        int ms;
        const struct timeval *tv;
    } deadlines[DEADLINES];
    unsigned ndeadlines;
};

struct dm_hclient_req {
    dm_hclient *c;
    dm_hclient_cb cb; /* NULL once called or cancelled */
    void *arg;
    dm_hclient_pool *pool; /* NULL: a connection of its own */
    dm_hconn *k;           /* the connection it is sent on; NULL once handed back to its pool */
    dm_hdest dest;         /* where it goes (dest.host in blob) */
    /* What is sent, kept for a resend on a new connection (in `blob`). The head's header
     * lines are formatted once, as one header of libevent's: its name `head_name`, its value
     * `head_value` (the rest of the block, see new_request). */
    enum evhttp_cmd_type method;
    const char *path, *body;
    const char *head_name, *head_value;
    size_t head_name_len, head_value_len;
    size_t body_len;
    struct timeval timeout;
    size_t max_body;
    bool starting;                  /* inside dm_hclient_request, or (re)starting from reap */
    bool done;                      /* a result is known */
    bool reused;                    /* the first try went out on a kept-alive connection */
    bool resend;                    /* the reused connection turned out closed: resend from reap */
    char resent[DM_HCLIENT_ERRLEN]; /* why it was resent ("" when it was not) */
    /* The result. */
    int status;
    bool have_headers;
    struct evkeyvalq headers_in;          /* a copy (have_headers) */
    const struct evkeyvalq *live_headers; /* libevent's, during a 2xx's callback only */
    char error[DM_HCLIENT_ERRLEN];
    bool has_error;
    /* What a failure leaves behind for the error text. */
    bool have_req_err;
    enum evhttp_request_error req_err;
    int sock_err;
    LIST_ENTRY(dm_hclient_req) link; /* in c->reqs, or in c->spare */
    /* Kept when the request is reused (c->spare); everything above is cleared. */
    struct event *deadline;
    struct event *reap; /* deferred: hand over a result, or resend; then release */
    char *blob;         /* path, host, head and body (one allocation) */
    size_t blob_size;
};

/*---- Small helpers ----------------------------------------------------------------------*/

static SSL_CTX *new_ctx(const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    int ok = SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1;
    if (ok && ca_file) {
        ok = SSL_CTX_load_verify_locations(ctx, ca_file, NULL) == 1;
        if (!ok) {
            char eb[160];
            ERR_error_string_n(ERR_peek_last_error(), eb, sizeof eb);
            snprintf(err, errlen, "cannot load CA file %s: %s", ca_file, eb);
        }
    } else if (ok) {
        ok = SSL_CTX_set_default_verify_paths(ctx) == 1;
        if (!ok)
            snprintf(err, errlen, "cannot load the system CA store");
    } else {
        snprintf(err, errlen, "cannot require TLS 1.2");
    }
    ERR_clear_error();
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* A verification failure aborts the handshake: nothing is sent to an unverified peer. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* Read what the socket has in one read, not a record's 5-byte header and then its body:
     * half the reads of a kept-alive connection's answers (libevent drains SSL_pending). */
    SSL_CTX_set_read_ahead(ctx, 1);
    return ctx;
}

static SSL_CTX *find_ctx(dm_hclient *c, const char *ca_file, char *err, size_t errlen)
{
    trust *t;
    LIST_FOREACH(t, &c->trusts, link)
    {
        if ((!ca_file && !t->ca_file) ||
            (ca_file && t->ca_file && strcmp(ca_file, t->ca_file) == 0))
            return t->ctx;
    }
    SSL_CTX *ctx = new_ctx(ca_file, err, errlen);
    if (!ctx)
        return NULL;
    t = dm_xcalloc(1, sizeof *t);
    t->ca_file = ca_file ? dm_xstrdup(ca_file) : NULL;
    t->ctx = ctx;
    LIST_INSERT_HEAD(&c->trusts, t, link);
    return ctx;
}

/*---- One request ------------------------------------------------------------------------*/

/* Free everything; the request must be unlinked from c->reqs, or never linked. A request in
 * flight is dropped with its connection, without its callback. */
static void req_free(dm_hclient_req *r)
{
    if (r->k)
        dm_hconn_free(r->k);
    if (r->deadline)
        event_free(r->deadline);
    if (r->reap)
        event_free(r->reap);
    if (r->have_headers)
        evhttp_clear_headers(&r->headers_in);
    free(r->blob);
    free(r);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg);
static void on_reap(evutil_socket_t fd, short what, void *arg);

/* A finished request, unlinked from c->reqs (its events are not pending): kept in c->spare for
 * the next request, or freed. */
static void req_release(dm_hclient_req *r)
{
    dm_hclient *c = r->c;
    if (c->nspare >= MAX_SPARE) {
        req_free(r);
        return;
    }
    if (r->k)
        dm_hconn_free(r->k);
    r->k = NULL;
    if (r->have_headers)
        evhttp_clear_headers(&r->headers_in);
    r->have_headers = false;
    if (r->blob_size > SPARE_BLOB_MAX) { /* a burst of large bodies is not kept 256 times */
        free(r->blob);
        r->blob = NULL;
        r->blob_size = 0;
    }
    LIST_INSERT_HEAD(&c->spare, r, link);
    c->nspare++;
}

/* A cleared request: a spare one, or a new one with its events; NULL when they cannot be
 * created. */
static dm_hclient_req *req_get(dm_hclient *c)
{
    dm_hclient_req *r = LIST_FIRST(&c->spare);
    if (r) {
        LIST_REMOVE(r, link);
        c->nspare--;
        memset(r, 0, offsetof(dm_hclient_req, deadline));
        return r;
    }
    r = dm_xcalloc(1, sizeof *r);
    r->deadline = evtimer_new(c->base, on_deadline, r);
    r->reap = event_new(c->base, -1, 0, on_reap, r);
    if (!r->deadline || !r->reap) {
        req_free(r);
        return NULL;
    }
    return r;
}

/* @p ms as a common timeout of c->base when it is one of the first DEADLINES durations, else
 * @p tv itself. */
static const struct timeval *deadline_tv(dm_hclient *c, int ms, const struct timeval *tv)
{
    for (unsigned i = 0; i < c->ndeadlines; i++)
        if (c->deadlines[i].ms == ms)
            return c->deadlines[i].tv;
    if (c->ndeadlines == DEADLINES)
        return tv;
    const struct timeval *common = event_base_init_common_timeout(c->base, tv);
    if (!common)
        return tv;
    c->deadlines[c->ndeadlines].ms = ms;
    c->deadlines[c->ndeadlines++].tv = common;
    return common;
}

static void call_back(dm_hclient_req *r, const char *body, size_t len)
{
    dm_hclient_cb cb = r->cb;
    r->cb = NULL;
    if (!cb)
        return;
    dm_hclient_response res = {
        .status = r->status,
        .error = r->has_error ? r->error : NULL,
        .headers = r->have_headers ? &r->headers_in : r->live_headers,
        .body = r->has_error ? NULL : (body ? body : ""),
        .body_len = r->has_error ? 0 : len,
        .reused = r->reused,
        .resent = r->resent[0] ? r->resent : NULL,
    };
    cb(&res, r->arg);
}

static void start(dm_hclient_req *r);

/* A request that failed on a reused connection is sent again: on a new connection (the old
 * one is closed: libevent reset it), within the same deadline. */
static void resend(dm_hclient_req *r)
{
    dm_hconn_free(r->k);
    r->k = NULL;
    r->have_req_err = false;
    r->sock_err = 0;
    r->status = 0;
    r->starting = true;
    start(r);
    r->starting = false;
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    dm_hclient_req *r = arg;
    (void)fd;
    (void)what;
    if (r->resend) {
        r->resend = false;
        if (!r->done) { /* else the deadline or a cancel came first */
            resend(r);
            return;
        }
    }
    call_back(r, NULL, 0); /* a failure found while starting, not handed over yet */
    LIST_REMOVE(r, link);
    req_release(r); /* frees or keeps this very event: libevent allows both from its callback */
}

/* The request's result is known (once). A response body, when there is one, is passed to the
 * callback directly; everything else may be handed over later from on_reap. */
static void finish(dm_hclient_req *r, const char *body, size_t len)
{
    if (r->done)
        return;
    r->done = true;
    event_del(r->deadline);
    if (!r->starting)
        call_back(r, body, len);
    event_active(r->reap, EV_TIMEOUT, 0);
}

static void fail(dm_hclient_req *r, const char *fmt, const char *detail)
{
    if (r->done)
        return;
    snprintf(r->error, sizeof r->error, fmt, detail);
    r->has_error = true;
    finish(r, NULL, 0);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fail(arg, "%s", "timeout");
}

/* What a failed request tells: the resolver's error, OpenSSL's (with the verification result,
 * the usual cause), or libevent's. */
static void failure_text(dm_hclient_req *r, char *buf, size_t size)
{
    struct bufferevent *bev = r->k ? dm_hconn_bev(r->k) : NULL;
    int dns_err = bev ? bufferevent_socket_get_dns_error(bev) : 0;
    unsigned long ssl_err = 0, e;
    if (bev && r->dest.tls)
        while ((e = bufferevent_get_openssl_error(bev)) != 0)
            ssl_err = ssl_err ? ssl_err : e; /* the first is the cause */
    if (dns_err) {
        snprintf(buf, size, "cannot resolve the host: %s", evutil_gai_strerror(dns_err));
        return;
    }
    if (ssl_err) {
        char eb[160];
        ERR_error_string_n(ssl_err, eb, sizeof eb);
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
        if (vr != X509_V_OK)
            snprintf(buf, size, "TLS: %s (%s)", eb, X509_verify_cert_error_string(vr));
        else
            snprintf(buf, size, "TLS: %s", eb);
        return;
    }
    const char *what = "connection failed";
    if (r->have_req_err) {
        switch (r->req_err) {
        case EVREQ_HTTP_TIMEOUT:
            what = "timeout";
            break;
        case EVREQ_HTTP_EOF:
            what = r->status ? "connection closed before the end of the response"
                             : "connection closed before a response";
            break;
        case EVREQ_HTTP_INVALID_HEADER:
            what = "invalid response header";
            break;
        case EVREQ_HTTP_BUFFER_ERROR:
            what = "connection failed";
            break;
        case EVREQ_HTTP_REQUEST_CANCEL:
            what = "cancelled";
            break;
        case EVREQ_HTTP_DATA_TOO_LONG:
            snprintf(buf, size, "response larger than %zu bytes", r->max_body);
            return;
        }
    }
    if (r->sock_err)
        snprintf(buf, size, "%s: %s", what, evutil_socket_error_to_string(r->sock_err));
    else
        snprintf(buf, size, "%s", what);
}

static void on_error(enum evhttp_request_error err, void *arg)
{
    dm_hclient_req *r = arg;
    r->have_req_err = true;
    r->req_err = err;
    /* libevent restores the socket error of the failure before calling us; after an EOF
     * (no error) that is whatever a non-blocking call left behind, which tells nothing. */
    int e = EVUTIL_SOCKET_ERROR();
    r->sock_err = e == EINPROGRESS || e == EAGAIN || e == EWOULDBLOCK || e == EINTR ? 0 : e;
}

/* The status line and headers arrived. The request may still fail (body), and then libevent
 * frees its request before we hear of it: the headers of an answer other than a 2xx are copied
 * now, for the failure to show them (a Retry-After); a 2xx's are read from libevent's request
 * at the end (on_done), not copied (a dozen allocations per delivery). */
static int on_headers(struct evhttp_request *req, void *arg)
{
    dm_hclient_req *r = arg;
    if (r->done || r->have_headers)
        return 0;
    r->status = evhttp_request_get_response_code(req);
    if (r->status >= 200 && r->status <= 299)
        return 0;
    TAILQ_INIT(&r->headers_in);
    r->have_headers = true;
    struct evkeyval *h;
    TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next)
    {
        evhttp_add_header(&r->headers_in, h->key, h->value);
    }
    return 0;
}

/* The connection of a complete answer @p req may carry another request: the answer is
 * HTTP/1.1, does not say Connection: close, and its end was known from its framing (no body,
 * Content-Length or chunked; not the end of the connection), and nothing follows it. */
static bool reusable(const dm_hclient_req *r, const struct evhttp_request *req)
{
    const dm_hconn *k = r->k;
    if (!k || !k->pool || k->closed || req->major != 1 || req->minor < 1)
        return false;
    const struct evkeyvalq *h = req->input_headers;
    const char *connection = evhttp_find_header(h, "Connection");
    if (connection && dm_hhead_has_token(connection, "close"))
        return false;
    int code = req->response_code;
    bool framed =
        r->method == EVHTTP_REQ_HEAD || code == 204 || code == 304 || req->chunked ||
        (!evhttp_find_header(h, "Transfer-Encoding") && evhttp_find_header(h, "Content-Length"));
    if (!framed || code < 200)
        return false;
    return evbuffer_get_length(bufferevent_get_input(dm_hconn_bev(k))) == 0;
}

/* A failure on a reused connection before any byte of an answer: the server closed the idle
 * connection as we sent on it. It is resent once, on a new connection. */
static bool stale(const dm_hclient_req *r)
{
    return r->reused && !r->resent[0] && r->k && !r->k->got_bytes && r->have_req_err &&
           r->req_err == EVREQ_HTTP_EOF;
}

/* The request's end: @p req is NULL on a failure, and is libevent's (freed after we return). */
static void on_done(struct evhttp_request *req, void *arg)
{
    dm_hclient_req *r = arg;
    if (r->done)
        return;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code == 0) {
        /* libevent 2.1.12 (evhttp_connection_cb) sends a connect that failed with
         * ECONNREFUSED through its retry path, which ends in this callback with the request
         * but without the error callback, and with errno overwritten by the cleanup. */
        if (req && !r->have_req_err && !r->sock_err)
            r->sock_err = ECONNREFUSED;
        char text[DM_HCLIENT_ERRLEN];
        failure_text(r, text, sizeof text);
        if (stale(r)) {
            snprintf(r->resent, sizeof r->resent, "%s", text);
            r->resend = true;
            event_active(r->reap, EV_TIMEOUT, 0); /* not from inside libevent's callback */
            return;
        }
        fail(r, "%s", text);
        return;
    }
    r->status = code;
    if (!r->have_headers)
        r->live_headers = evhttp_request_get_input_headers(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > r->max_body) { /* evhttp enforces it; never trust one place */
        char text[64];
        snprintf(text, sizeof text, "%zu", r->max_body);
        fail(r, "response larger than %s bytes", text);
        r->live_headers = NULL;
        return;
    }
    if (reusable(r, req)) {
        dm_hconn *k = r->k;
        if (k->tls && k->requests == 1)
            dm_hpool_keep_session(k);
        r->k = NULL;
        dm_hpool_put(k); /* libevent allows a request on it from the callback below */
    }
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    finish(r, body, len);
    r->live_headers = NULL; /* libevent frees them with its request */
}

/* A copy of @p len bytes of @p s, NUL-terminated, by libevent's allocator (it frees it). */
static char *ev_strndup(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* libevent's request for @p r: callbacks, head and body; NULL when it cannot be made.
 *
 * The head's header lines go in as one header of libevent's whose value holds the following
 * lines (keep_sendable): evhttp writes each header as "name: value\r\n", so the bytes sent are
 * those of separate headers, but a request costs one header object of libevent's (three
 * allocations) instead of one per header (three allocations, a strcasecmp scan and a printf
 * each: about a fifth of the daemon's instructions per sink delivery, bench/README.md). The
 * header is linked in directly (evhttp_add_header refuses a line break in a value; each value
 * in the block was checked as it would: header_ok). libevent frees it with the request, with
 * free (the daemon never replaces libevent's allocator). */
static struct evhttp_request *new_request(dm_hclient_req *r)
{
    struct evhttp_request *req = evhttp_request_new(on_done, r);
    if (!req)
        return NULL;
    evhttp_request_set_error_cb(req, on_error);
    evhttp_request_set_header_cb(req, on_headers);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evkeyval *kv = calloc(1, sizeof *kv);
    if (kv) {
        kv->key = ev_strndup(r->head_name, r->head_name_len);
        kv->value = ev_strndup(r->head_value, r->head_value_len);
    }
    if (!kv || !kv->key || !kv->value) {
        if (kv) {
            free(kv->key);
            free(kv->value);
            free(kv);
        }
        evhttp_request_free(req);
        return NULL;
    }
    TAILQ_INSERT_TAIL(h, kv, next);
    /* HTTP/1.1: a pooled connection is kept alive unless the server says otherwise. */
    if (!r->k->pool)
        evhttp_add_header(h, "Connection", "close");
    if (r->body_len)
        evbuffer_add(evhttp_request_get_output_buffer(req), r->body, r->body_len);
    return req;
}

/* Take a connection (an idle one of the pool, else a new one) and send. Every outcome, a
 * failure here included, is a result handed to the callback (deferred while r->starting). */
static void start(dm_hclient_req *r)
{
    dm_hconn *k = NULL;
    if (r->pool && !r->resent[0] && (k = dm_hpool_take(r->pool, &r->dest)) != NULL) {
        r->reused = true;
    } else {
        const char *why = NULL;
        dm_hclient_pool *p = r->pool && dm_hpool_room(r->pool) ? r->pool : NULL;
        k = dm_hconn_new(r->c->base, r->c->dns, p, &r->dest, &why);
        if (!k) {
            fail(r, "%s", why);
            return;
        }
    }
    r->k = k;
    k->got_bytes = false;
    k->requests++;
    evhttp_connection_set_timeout_tv(k->evcon, &r->timeout);
    evhttp_connection_set_max_body_size(k->evcon, (ev_ssize_t)r->max_body);
    struct evhttp_request *req = new_request(r);
    if (!req) {
        fail(r, "%s", "cannot create a request");
        return;
    }
    /* A failure may already run on_done (and finish) from inside this call. */
    if (evhttp_make_request(k->evcon, req, r->method, r->path) != 0) {
        fail(r, "%s", "cannot send the request");
        return;
    }
    if (r->reused && !r->done)
        dm_hconn_flush(k); /* an idle connection: the request was dispatched at once */
}

/*---- API --------------------------------------------------------------------------------*/

dm_hclient *dm_hclient_new(struct event_base *base, char *err, size_t errlen)
{
    dm_hclient *c = dm_xcalloc(1, sizeof *c);
    c->base = base;
    LIST_INIT(&c->trusts);
    LIST_INIT(&c->reqs);
    LIST_INIT(&c->spare);
    LIST_INIT(&c->pools);
    c->dns =
        evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!c->dns) {
        snprintf(err, errlen, "cannot set up the DNS resolver");
        free(c);
        return NULL;
    }
    return c;
}

void dm_hclient_free(dm_hclient *c)
{
    if (!c)
        return;
    dm_hclient_req *r;
    while ((r = LIST_FIRST(&c->reqs)) != NULL) { /* first: their connections are pools' */
        LIST_REMOVE(r, link);
        req_free(r);
    }
    while ((r = LIST_FIRST(&c->spare)) != NULL) {
        LIST_REMOVE(r, link);
        req_free(r);
    }
    dm_hclient_pool *p;
    while ((p = LIST_FIRST(&c->pools)) != NULL) {
        LIST_REMOVE(p, link);
        dm_hpool_free(p);
    }
    for (unsigned i = 0; i < URL_CACHE; i++) {
        free(c->urls[i].url);
        free(c->urls[i].t.host);
        free(c->urls[i].t.path);
    }
    trust *t;
    while ((t = LIST_FIRST(&c->trusts)) != NULL) {
        LIST_REMOVE(t, link);
        SSL_CTX_free(t->ctx);
        free(t->ca_file);
        free(t);
    }
    if (c->dns)
        evdns_base_free(c->dns, 0);
    free(c);
}

int dm_hclient_add_trust(dm_hclient *c, const char *ca_file, char *err, size_t errlen)
{
    return find_ctx(c, ca_file, err, errlen) ? DM_OK : DM_EIO;
}

dm_hclient_pool *dm_hclient_pool_new(dm_hclient *c, unsigned max_conns, int idle_timeout_ms)
{
    dm_hclient_pool *p = dm_hpool_new(c->base, max_conns,
                                      idle_timeout_ms > 0 ? idle_timeout_ms : DM_HCLIENT_IDLE_MS);
    if (p)
        LIST_INSERT_HEAD(&c->pools, p, link);
    return p;
}

/* Parse and check @p o's URL (scheme http or https, a host, no userinfo). */
static int parse_target(const dm_hclient_request_opts *o, target *t, char *err, size_t errlen)
{
    unsigned flags = o->lenient_url ? EVHTTP_URI_NONCONFORMANT : 0;
    struct evhttp_uri *u = o->url ? evhttp_uri_parse_with_flags(o->url, flags) : NULL;
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    bool tls = scheme && strcasecmp(scheme, "https") == 0;
    if (!scheme || !host || !*host || (!tls && strcasecmp(scheme, "http") != 0) ||
        evhttp_uri_get_userinfo(u)) {
        if (u) /* evhttp_uri_free(NULL) crashes */
            evhttp_uri_free(u);
        snprintf(err, errlen, "not an http(s) URL");
        return DM_EINVAL;
    }
    t->tls = tls;
    int port = evhttp_uri_get_port(u);
    t->port = port > 0 ? port : (tls ? 443 : 80);
    size_t hl = strlen(host);
    t->host = host[0] == '[' && hl >= 2 ? dm_xstrndup(host + 1, hl - 2) : dm_xstrdup(host);
    if (port > 0)
        snprintf(t->host_header, sizeof t->host_header, "%s:%d", host, port);
    else
        snprintf(t->host_header, sizeof t->host_header, "%s", host);
    const char *path = evhttp_uri_get_path(u), *query = evhttp_uri_get_query(u);
    if (!path || !*path)
        path = "/";
    size_t tn = strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
    t->path = dm_xmalloc(tn);
    snprintf(t->path, tn, "%s%s%s", path, query ? "?" : "", query ? query : "");
    evhttp_uri_free(u);
    return DM_OK;
}

/* @p o's URL parsed and checked: from the cache, or parsed now and cached; NULL with a reason
 * in @p err. */
static const target *find_target(dm_hclient *c, const dm_hclient_request_opts *o, char *err,
                                 size_t errlen)
{
    for (unsigned i = 0; o->url && i < URL_CACHE; i++) {
        const parsed_url *e = &c->urls[i];
        if (e->url && e->lenient == o->lenient_url && strcmp(e->url, o->url) == 0)
            return &e->t;
    }
    target t;
    if (parse_target(o, &t, err, errlen) != DM_OK)
        return NULL;
    parsed_url *e = &c->urls[c->next_url++ % URL_CACHE];
    free(e->url);
    free(e->t.host);
    free(e->t.path);
    e->url = dm_xstrdup(o->url);
    e->lenient = o->lenient_url;
    e->t = t;
    return &e->t;
}

/* Copy what @p r sends (path, head, body) into one allocation, kept for a resend. The head is
 * the header lines "Content-Length: n" (dm_hhead_sends_length), "Host: h" and the caller's, formatted
 * now as "name" and "value\r\nname: value\r\n…value" for new_request. */
static void keep_sendable(dm_hclient_req *r, const dm_hclient_request_opts *o, const target *t)
{
    char len[24] = "";
    bool with_len = dm_hhead_sends_length(o->body_len, r->method);
    if (with_len)
        snprintf(len, sizeof len, "%zu", o->body_len);
    size_t path_n = strlen(t->path) + 1, host_n = strlen(t->host_header),
           dest_n = strlen(t->host) + 1;
    size_t n = path_n + dest_n + sizeof "Content-Length" + strlen(len) +
               sizeof "\r\nHost: " + host_n + o->body_len;
    for (size_t i = 0; i < o->nheaders; i++)
        n += strlen(o->headers[i].name) + strlen(o->headers[i].value) + 4;
    if (n > r->blob_size) { /* a spare request's buffer is reused when it is large enough */
        free(r->blob);
        r->blob = dm_xmalloc(n);
        r->blob_size = n;
    }
    char *p = r->blob;
#define PUT(src, len)            \
    do {                         \
        memcpy(p, (src), (len)); \
        p += (len);              \
    } while (0)
#define PUTS(str) PUT((str), strlen(str))
    r->path = p;
    PUT(t->path, path_n);
    r->dest.host = p;
    PUT(t->host, dest_n);
    r->head_name = p;
    PUTS(with_len ? "Content-Length" : "Host");
    r->head_name_len = (size_t)(p - r->head_name);
    r->head_value = p;
    if (with_len) {
        PUTS(len);
        PUTS("\r\nHost: ");
    }
    PUT(t->host_header, host_n);
    for (size_t i = 0; i < o->nheaders; i++) {
        if (!dm_hhead_header_ok(o->headers[i].name, o->headers[i].value))
            continue;
        PUTS("\r\n");
        PUTS(o->headers[i].name);
        PUTS(": ");
        PUTS(o->headers[i].value);
    }
    r->head_value_len = (size_t)(p - r->head_value);
    r->body = p;
    if (o->body_len)
        PUT(o->body, o->body_len);
    r->body_len = o->body_len;
#undef PUTS
#undef PUT
}

dm_hclient_req *dm_hclient_request(dm_hclient *c, const dm_hclient_request_opts *o,
                                   dm_hclient_cb cb, void *arg, char *err, size_t errlen)
{
    enum evhttp_cmd_type method;
    if (dm_hhead_method(o->method, &method) != DM_OK) {
        snprintf(err, errlen, "unsupported method");
        return NULL;
    }
    const target *t = find_target(c, o, err, errlen);
    if (!t)
        return NULL;
    SSL_CTX *ctx = NULL;
    if (t->tls && !(ctx = find_ctx(c, o->ca_file, err, errlen)))
        return NULL;

    dm_hclient_req *r = req_get(c);
    if (!r) {
        snprintf(err, errlen, "cannot create events");
        return NULL;
    }
    r->c = c;
    r->cb = cb;
    r->arg = arg;
    r->pool = o->pool;
    r->dest.tls = t->tls;
    r->dest.ctx = ctx;
    r->method = method;
    r->max_body = o->max_body;
    r->timeout = (struct timeval){o->timeout_ms / 1000, (o->timeout_ms % 1000) * 1000};
    r->dest.port = t->port;
    keep_sendable(r, o, t);
    LIST_INSERT_HEAD(&c->reqs, r, link);
    event_add(r->deadline, deadline_tv(c, o->timeout_ms, &r->timeout));
    r->starting = true;
    start(r);
    r->starting = false;
    return r;
}

void dm_hclient_cancel(dm_hclient_req *r)
{
    if (!r)
        return;
    r->cb = NULL;
    if (!r->done) {
        r->done = true;
        event_del(r->deadline);
        event_active(r->reap, EV_TIMEOUT, 0);
    }
}
