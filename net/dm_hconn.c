/* dm_hconn.c - dm_hclient's connections and pools (see dm_hconn.h). */
#include "dm_common.h"
#include "dm_hconn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MAX_HEADER_LEN (64 * 1024)

bool dm_hconn_is_ip(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

struct bufferevent *dm_hconn_bev(const dm_hconn *k)
{
    return evhttp_connection_get_bufferevent(k->evcon);
}

void dm_hconn_free(dm_hconn *k)
{
    if (k->idle || k->dead)
        LIST_REMOVE(k, link);
    if (k->pool)
        k->pool->nconns--;
    evhttp_connection_set_closecb(k->evcon, NULL, NULL);
    evhttp_connection_free(k->evcon); /* drops a request in flight, without its callback */
    free(k->host);
    free(k);
}

/* libevent closed the connection: the server closed it or sent something while it was idle
 * (it read EOF or bytes: evhttp's close detection), its idle timeout passed, the answer said
 * Connection: close, or a request on it failed. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    dm_hconn *k = arg;
    (void)evcon;
    k->closed = true;
    if (k->idle) {
        LIST_REMOVE(k, link);
        k->idle = false;
        k->dead = true;
        LIST_INSERT_HEAD(&k->pool->dead, k, link);
        event_active(k->pool->sweep, EV_TIMEOUT, 0);
    }
}

/* Bytes of an answer arrived (the stale-connection rule needs to know none did). */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    if (info->n_added > 0)
        ((dm_hconn *)arg)->got_bytes = true;
}

/* A request is being written. Before its first byte leaves, turn Nagle's algorithm off: a
 * request that leaves in several writes (over TLS one per record, and a large body is several)
 * would wait with Nagle for the ACK of the first, which the server delays (~40 ms) as it waits
 * for the rest of the request. Set once the connection has its socket. */
static void on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    dm_hconn *k = arg;
    if (info->n_added == 0)
        return;
    /* Over TLS each buffer chain becomes a record and a write: one chain, one record (the
     * request's head and body are a few KB). */
    if (k->tls && evbuffer_get_contiguous_space(buf) < evbuffer_get_length(buf) &&
        evbuffer_get_length(buf) <= 64 * 1024)
        evbuffer_pullup(buf, -1);
    if (k->nodelay)
        return;
    evutil_socket_t fd = bufferevent_getfd(dm_hconn_bev(k));
    int one = 1;
    if (fd >= 0) {
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* best effort */
        k->nodelay = true;
    }
}

/* evhttp writes a request from the write event it enables when the request is made, and turns
 * write interest off again once written: two epoll_ctl per delivery on a kept-alive
 * connection, and a loop turn between making the request and sending it. Writing at once does
 * what libevent's socket bufferevent does on that event (bufferevent_writecb: unfreeze the
 * output's start, write, freeze it, and call the write callback when the output is empty), so
 * the write interest is added and removed within one turn, which the epoll changelist folds
 * away. evhttp's write callback (evhttp_write_connectioncb) itself checks that the output is
 * empty before it starts reading the answer. */
void dm_hconn_flush(dm_hconn *k)
{
    if (k->tls || k->closed)
        return;
    struct bufferevent *bev = dm_hconn_bev(k);
    struct evbuffer *out = bufferevent_get_output(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd < 0 || evbuffer_get_length(out) == 0)
        return;
    evbuffer_unfreeze(out, 1);
    int n = evbuffer_write(out, fd);
    evbuffer_freeze(out, 1);
    if (n > 0 && evbuffer_get_length(out) == 0)
        bufferevent_trigger(bev, EV_WRITE, 0);
}

/* A bufferevent that speaks TLS to @p host and verifies it, resuming @p session when given;
 * NULL on failure (the caller must then not fall back to a plain connection). */
static struct bufferevent *tls_bufferevent(struct event_base *base, SSL_CTX *ctx, const char *host,
                                           SSL_SESSION *session)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    bool ok;
    if (dm_hconn_is_ip(host)) {
        /* No SNI for an address (RFC 6066); the certificate must name the IP. */
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    } else {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set1_host(ssl, host) == 1 && SSL_set_tlsext_host_name(ssl, host) == 1;
    }
    /* A session is only ever offered to the destination whose certificate it verified. */
    if (ok && session)
        ok = SSL_set_session(ssl, session) == 1;
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    /* Servers often close without close_notify; Content-Length still catches a cut body. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static bool same_destination(const dm_hconn *k, const dm_hdest *d)
{
    return k->tls == d->tls && k->ctx == d->ctx && k->port == d->port &&
           strcmp(k->host, d->host) == 0;
}

/* The pool's session, when it is for @p d. */
static SSL_SESSION *pool_session(const dm_hclient_pool *p, const dm_hdest *d)
{
    if (!p || !p->session || p->session_ctx != d->ctx || p->session_port != d->port ||
        strcmp(p->session_host, d->host) != 0)
        return NULL;
    return p->session;
}

void dm_hpool_keep_session(dm_hconn *k)
{
    dm_hclient_pool *p = k->pool;
    SSL *ssl = bufferevent_openssl_get_ssl(dm_hconn_bev(k));
    SSL_SESSION *live = ssl ? SSL_get1_session(ssl) : NULL;
    /* A copy: OpenSSL marks a connection's own session not resumable when the connection is
     * freed without a close_notify sent, which is how idle connections end (TLS >= 1.1 no
     * longer asks for that). */
    SSL_SESSION *s = live && SSL_SESSION_is_resumable(live) ? SSL_SESSION_dup(live) : NULL;
    SSL_SESSION_free(live);
    if (!s)
        return;
    if (p->session)
        SSL_SESSION_free(p->session);
    free(p->session_host);
    p->session = s;
    p->session_ctx = k->ctx;
    p->session_host = dm_xstrdup(k->host);
    p->session_port = k->port;
}

dm_hconn *dm_hconn_new(struct event_base *base, struct evdns_base *dns, dm_hclient_pool *pool,
                       const dm_hdest *d, const char **why)
{
    struct bufferevent *bev = NULL;
    if (d->tls && !(bev = tls_bufferevent(base, d->ctx, d->host, pool_session(pool, d)))) {
        *why = "TLS setup failed";
        return NULL;
    }
    struct evhttp_connection *evcon =
        evhttp_connection_base_bufferevent_new(base, dns, bev, d->host, (ev_uint16_t)d->port);
    if (!evcon) {
        if (bev)
            bufferevent_free(bev);
        *why = "cannot create a connection";
        return NULL;
    }
    evhttp_connection_set_max_headers_size(evcon, MAX_HEADER_LEN);
    evhttp_connection_set_retries(evcon, 0);
    dm_hconn *k = dm_xcalloc(1, sizeof *k);
    k->pool = pool;
    k->evcon = evcon;
    k->tls = d->tls;
    k->ctx = d->ctx;
    k->host = dm_xstrdup(d->host);
    k->port = d->port;
    evhttp_connection_set_closecb(evcon, on_conn_close, k);
    evbuffer_add_cb(bufferevent_get_input(dm_hconn_bev(k)), on_input, k);
    evbuffer_add_cb(bufferevent_get_output(dm_hconn_bev(k)), on_output, k);
    if (pool)
        pool->nconns++;
    return k;
}

dm_hconn *dm_hpool_take(dm_hclient_pool *p, const dm_hdest *d)
{
    dm_hconn *k;
    LIST_FOREACH(k, &p->idle, link)
    {
        if (same_destination(k, d)) {
            LIST_REMOVE(k, link);
            k->idle = false;
            return k;
        }
    }
    return NULL;
}

bool dm_hpool_room(dm_hclient_pool *p)
{
    if (p->nconns < p->max_conns)
        return true;
    dm_hconn *k, *last = NULL;
    LIST_FOREACH(k, &p->idle, link)
    {
        last = k;
    }
    if (!last)
        return false;
    dm_hconn_free(last);
    return p->nconns < p->max_conns;
}

/* Back to idle, where libevent's close detection watches it and the idle timeout (its read
 * timeout while idle) closes it. */
void dm_hpool_put(dm_hconn *k)
{
    dm_hclient_pool *p = k->pool;
    evhttp_connection_set_timeout_tv(k->evcon, &p->idle_tv);
    k->idle = true;
    LIST_INSERT_HEAD(&p->idle, k, link);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    dm_hclient_pool *p = arg;
    (void)fd;
    (void)what;
    dm_hconn *k;
    while ((k = LIST_FIRST(&p->dead)) != NULL)
        dm_hconn_free(k);
}

dm_hclient_pool *dm_hpool_new(struct event_base *base, unsigned max_conns, int idle_timeout_ms)
{
    dm_hclient_pool *p = dm_xcalloc(1, sizeof *p);
    p->max_conns = max_conns > 0 ? max_conns : 1;
    p->idle_tv = (struct timeval){idle_timeout_ms / 1000, (idle_timeout_ms % 1000) * 1000};
    LIST_INIT(&p->idle);
    LIST_INIT(&p->dead);
    p->sweep = event_new(base, -1, 0, on_sweep, p);
    if (!p->sweep) {
        free(p);
        return NULL;
    }
    return p;
}

void dm_hpool_free(dm_hclient_pool *p)
{
    dm_hconn *k;
    while ((k = LIST_FIRST(&p->idle)) != NULL)
        dm_hconn_free(k);
    while ((k = LIST_FIRST(&p->dead)) != NULL)
        dm_hconn_free(k);
    if (p->sweep)
        event_free(p->sweep);
    if (p->session)
        SSL_SESSION_free(p->session);
    free(p->session_host);
    free(p);
}
