/* dm_jwks_fetch.c - JWKS fetches on the main event_base (see dm_jwks_fetch.h).
 *
 * One job per oidc entry with a jwks_url. A job has at most one fetch in flight: a fresh
 * evhttp_connection per fetch (no keep-alive state to go stale between hourly fetches), freed
 * from a deferred event rather than inside libevent's callbacks, which still use it after the
 * request callback returns. Workers only ever touch a job through its keyring's waker, which
 * calls event_active() (thread-safe: the base was created after evthread_use_pthreads()).
 */
#include "dm_jwks_fetch.h"
#include "dm_keyring.h"
#include "dm_log.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define URL_LOG_BUF    512
#define REASON_BUF     320 /* fits "invalid JWKS: " + dm_error field and text */
#define MAX_HEADER_LEN (64 * 1024)

/*---- Types ------------------------------------------------------------------------------*/

typedef struct job {
    dm_jwks_fetch *f;
    dm_keyring *keyring;         /* borrowed from the config */
    int refresh_s;
    bool tls;
    bool ip_literal;
    char *host;                  /* to connect to: no brackets */
    char *host_header;           /* as in the url: brackets and port kept */
    char *target;                /* path and query */
    int port;
    char url_q[URL_LOG_BUF];     /* the url, quoted for log lines */

    struct event *timer;         /* every refresh_s */
    struct event *kick;          /* a worker asked for a refresh (unknown kid) */
    struct event *deadline;      /* the fetch in flight takes too long */
    struct event *reap;          /* free the finished fetch's connection */

    struct evhttp_connection *evcon; /* non-NULL from the start of a fetch until reaped */
    bool done;                   /* the fetch in flight has a result (logged) */
    bool again;                  /* a kick came while busy: fetch again once reaped */
    bool have_err;
    enum evhttp_request_error req_err;
    int sock_err;
} job;

struct dm_jwks_fetch {
    struct event_base *base;
    struct evdns_base *dns;
    SSL_CTX *ssl_ctx;            /* only if some url is https */
    job *jobs;
    size_t njobs;
};

/*---- Ending a fetch ---------------------------------------------------------------------*/

/* Record the result of the fetch in flight (once) and schedule the connection's release. */
static void finish(job *j, const char *reason)
{
    if (j->done)
        return;
    j->done = true;
    event_del(j->deadline);
    dm_keyring_fetch_end(j->keyring);
    if (reason) {
        char q[REASON_BUF + 8];
        dm_warn("jwks fetch failed", "url=%s reason=%s", j->url_q,
                dm_log_quote(reason, strlen(reason), q, sizeof q));
    }
    event_active(j->reap, EV_TIMEOUT, 0);
}

static void start_fetch(job *j, const char *trigger);

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    job *j = arg;
    (void)fd;
    (void)what;
    if (!j->done)
        return;
    /* Pending requests are freed without their callbacks being run. */
    evhttp_connection_free(j->evcon);
    j->evcon = NULL;
    j->done = false;
    if (j->again) {
        j->again = false;
        start_fetch(j, "unknown kid");
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish(arg, "timeout");
}

/* What a failed request tells: libevent's error, the resolver's, OpenSSL's. */
static void failure_reason(job *j, char *buf, size_t size)
{
    struct bufferevent *bev = j->evcon ? evhttp_connection_get_bufferevent(j->evcon) : NULL;
    int dns_err = bev ? bufferevent_socket_get_dns_error(bev) : 0;
    unsigned long ssl_err = 0, e;
    if (bev && j->tls)
        while ((e = bufferevent_get_openssl_error(bev)) != 0)
            ssl_err = ssl_err ? ssl_err : e; /* the first is the cause */
    if (dns_err) {
        snprintf(buf, size, "cannot resolve the host: %s", evutil_gai_strerror(dns_err));
        return;
    }
    if (ssl_err) {
        char eb[160];
        ERR_error_string_n(ssl_err, eb, sizeof eb);
        snprintf(buf, size, "TLS: %s", eb);
        return;
    }
    const char *what = "connection failed";
    if (j->have_err) {
        switch (j->req_err) {
        case EVREQ_HTTP_TIMEOUT:
            what = "timeout";
            break;
        case EVREQ_HTTP_EOF:
            what = "connection closed before a complete response";
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
            snprintf(buf, size, "response larger than %d bytes", DM_JWKS_FETCH_MAX_BODY);
            return;
        }
    }
    if (j->sock_err)
        snprintf(buf, size, "%s: %s", what, evutil_socket_error_to_string(j->sock_err));
    else
        snprintf(buf, size, "%s", what);
}

static void on_error(enum evhttp_request_error err, void *arg)
{
    job *j = arg;
    j->have_err = true;
    j->req_err = err;
    /* libevent restores the socket error of the failure before calling us. */
    j->sock_err = EVUTIL_SOCKET_ERROR();
}

/* The request's end: @p req is NULL on a connection failure, and is libevent's (it frees it
 * after we return). */
static void on_done(struct evhttp_request *req, void *arg)
{
    job *j = arg;
    char reason[REASON_BUF];
    if (j->done)
        return; /* already timed out */
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code == 0) {
        failure_reason(j, reason, sizeof reason);
        finish(j, reason);
        return;
    }
    if (code != 200) {
        snprintf(reason, sizeof reason, "HTTP %d", code);
        finish(j, reason);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > DM_JWKS_FETCH_MAX_BODY) { /* evhttp enforces it; never trust one place */
        snprintf(reason, sizeof reason, "response larger than %d bytes", DM_JWKS_FETCH_MAX_BODY);
        finish(j, reason);
        return;
    }
    const char *doc = len ? (const char *)evbuffer_pullup(in, -1) : "";
    dm_error err = {0};
    size_t n = 0;
    if (dm_keyring_update(j->keyring, doc, len, &n, &err) != DM_OK) {
        snprintf(reason, sizeof reason, "invalid JWKS: %s%s%s", err.field,
                 err.field[0] ? ": " : "", err.text);
        finish(j, reason);
        return;
    }
    dm_info("jwks fetched", "url=%s keys=%zu total=%zu", j->url_q, n,
            dm_keyring_count(j->keyring));
    finish(j, NULL);
}

/*---- Starting a fetch -------------------------------------------------------------------*/

/* A bufferevent that speaks TLS to j->host and verifies it; NULL on failure (the caller
 * must then not fall back to a plain connection). */
static struct bufferevent *tls_bufferevent(job *j)
{
    SSL *ssl = SSL_new(j->f->ssl_ctx);
    if (!ssl)
        return NULL;
    bool ok;
    if (j->ip_literal) {
        /* No SNI for an address (RFC 6066); the certificate must name the IP. */
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), j->host) == 1;
    } else {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set1_host(ssl, j->host) == 1 && SSL_set_tlsext_host_name(ssl, j->host) == 1;
    }
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        j->f->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    /* Servers often close without close_notify; a truncated body is still caught by
     * Content-Length or by the JSON parser. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static void start_fetch(job *j, const char *trigger)
{
    if (j->evcon) { /* one at a time; a kick while busy is remembered */
        if (strcmp(trigger, "unknown kid") == 0)
            j->again = true;
        return;
    }
    dm_debug("jwks fetch", "url=%s trigger=\"%s\"", j->url_q, trigger);
    j->done = false;
    j->have_err = false;
    j->sock_err = 0;
    dm_keyring_fetch_begin(j->keyring);

    struct bufferevent *bev = NULL;
    if (j->tls && !(bev = tls_bufferevent(j))) {
        j->evcon = NULL;
        dm_keyring_fetch_end(j->keyring);
        dm_warn("jwks fetch failed", "url=%s reason=\"TLS setup failed\"", j->url_q);
        return;
    }
    j->evcon = evhttp_connection_base_bufferevent_new(j->f->base, j->f->dns, bev, j->host,
                                                      (ev_uint16_t)j->port);
    if (!j->evcon) {
        if (bev)
            bufferevent_free(bev);
        dm_keyring_fetch_end(j->keyring);
        dm_warn("jwks fetch failed", "url=%s reason=\"cannot create a connection\"", j->url_q);
        return;
    }
    evhttp_connection_set_timeout(j->evcon, DM_JWKS_FETCH_TIMEOUT_S);
    evhttp_connection_set_max_body_size(j->evcon, DM_JWKS_FETCH_MAX_BODY);
    evhttp_connection_set_max_headers_size(j->evcon, MAX_HEADER_LEN);
    evhttp_connection_set_retries(j->evcon, 0);

    struct timeval tv = {DM_JWKS_FETCH_TIMEOUT_S, 0};
    event_add(j->deadline, &tv);
    struct evhttp_request *req = evhttp_request_new(on_done, j);
    if (!req) {
        finish(j, "cannot create a request");
        return;
    }
    evhttp_request_set_error_cb(req, on_error);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", j->host_header);
    evhttp_add_header(h, "Accept", "application/json, application/jwk-set+json");
    evhttp_add_header(h, "User-Agent", "digestmapd");
    evhttp_add_header(h, "Connection", "close");
    /* A failure may already have run on_done (and finish) from inside this call. */
    if (evhttp_make_request(j->evcon, req, EVHTTP_REQ_GET, j->target) != 0)
        finish(j, "cannot send the request");
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    start_fetch(arg, "periodic");
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    job *j = arg;
    (void)fd;
    (void)what;
    dm_info("jwks refresh: a token named an unknown kid", "url=%s", j->url_q);
    start_fetch(j, "unknown kid");
}

/* The keyring's waker: runs on a worker thread, with the keyring locked. */
static void wake(void *arg)
{
    job *j = arg;
    event_active(j->kick, EV_TIMEOUT, 0);
}

/*---- Setup ------------------------------------------------------------------------------*/

static bool is_ip(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* Split the url (validated by dm_config) into what a connection and a request need. */
static int job_init(dm_jwks_fetch *f, job *j, const dm_auth_entry *e, char *err, size_t errlen)
{
    j->f = f;
    j->keyring = e->keyring;
    j->refresh_s = e->jwks_refresh_seconds;
    dm_log_quote(e->jwks_url, strlen(e->jwks_url), j->url_q, sizeof j->url_q);
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(e->jwks_url, 0);
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    if (!host || !*host) {
        evhttp_uri_free(u);
        snprintf(err, errlen, "jwks_url: cannot parse the url");
        return DM_EINVAL;
    }
    j->tls = strcmp(evhttp_uri_get_scheme(u), "https") == 0;
    j->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : (j->tls ? 443 : 80);
    size_t hl = strlen(host);
    j->host = host[0] == '[' && hl >= 2 ? dm_xstrndup(host + 1, hl - 2) : dm_xstrdup(host);
    j->ip_literal = is_ip(j->host);
    if (evhttp_uri_get_port(u) > 0) {
        size_t n = hl + 8;
        j->host_header = dm_xmalloc(n);
        snprintf(j->host_header, n, "%s:%d", host, j->port);
    } else {
        j->host_header = dm_xstrdup(host);
    }
    const char *path = evhttp_uri_get_path(u), *query = evhttp_uri_get_query(u);
    if (!path || !*path)
        path = "/";
    size_t n = strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
    j->target = dm_xmalloc(n);
    snprintf(j->target, n, "%s%s%s", path, query ? "?" : "", query ? query : "");
    evhttp_uri_free(u);

    j->timer = event_new(f->base, -1, EV_PERSIST, on_timer, j);
    j->kick = event_new(f->base, -1, 0, on_kick, j);
    j->deadline = evtimer_new(f->base, on_deadline, j);
    j->reap = event_new(f->base, -1, 0, on_reap, j);
    struct timeval every = {j->refresh_s, 0};
    if (!j->timer || !j->kick || !j->deadline || !j->reap || event_add(j->timer, &every) != 0) {
        snprintf(err, errlen, "jwks_url: cannot create events");
        return DM_EIO;
    }
    return DM_OK;
}

static void job_dispose(job *j)
{
    if (j->keyring)
        dm_keyring_set_waker(j->keyring, NULL, NULL); /* no worker can reach j after this */
    if (j->evcon) {
        evhttp_connection_free(j->evcon);
        if (!j->done)
            dm_keyring_fetch_end(j->keyring);
    }
    if (j->timer)
        event_free(j->timer);
    if (j->kick)
        event_free(j->kick);
    if (j->deadline)
        event_free(j->deadline);
    if (j->reap)
        event_free(j->reap);
    free(j->host);
    free(j->host_header);
    free(j->target);
}

static size_t count_url_entries(const dm_auth_list *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += l->v[i].type == DM_AUTH_OIDC && l->v[i].jwks_url;
    return n;
}

static int add_jobs(dm_jwks_fetch *f, const dm_auth_list *l, char *err, size_t errlen)
{
    for (size_t i = 0; i < l->n; i++) {
        const dm_auth_entry *e = &l->v[i];
        if (e->type != DM_AUTH_OIDC || !e->jwks_url)
            continue;
        int rc = job_init(f, &f->jobs[f->njobs++], e, err, errlen);
        if (rc != DM_OK)
            return rc;
    }
    return DM_OK;
}

static SSL_CTX *client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_default_verify_paths(ctx) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* Verification failures abort the handshake: keys from an unverified server are never
     * read. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

int dm_jwks_fetch_start(struct event_base *base, const dm_config *conf, dm_jwks_fetch **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    size_t n = count_url_entries(&conf->api_auth);
    for (size_t i = 0; i < conf->nsources; i++)
        n += count_url_entries(&conf->sources[i].auth);
    if (n == 0)
        return DM_OK;

    dm_jwks_fetch *f = dm_xcalloc(1, sizeof *f);
    f->base = base;
    f->jobs = dm_xcalloc(n, sizeof *f->jobs);
    int rc = DM_OK;
    for (size_t i = 0; i < conf->nsources && rc == DM_OK; i++)
        rc = add_jobs(f, &conf->sources[i].auth, err, errlen);
    if (rc == DM_OK)
        rc = add_jobs(f, &conf->api_auth, err, errlen);
    if (rc != DM_OK)
        goto fail;

    bool any_tls = false;
    for (size_t i = 0; i < f->njobs; i++)
        any_tls |= f->jobs[i].tls;
    if (any_tls && !(f->ssl_ctx = client_ctx())) {
        snprintf(err, errlen, "jwks_url: cannot set up TLS (system CA store)");
        rc = DM_EIO;
        goto fail;
    }
    /* Reads /etc/resolv.conf and /etc/hosts now; resolution is asynchronous afterwards. */
    f->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                      EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!f->dns) {
        snprintf(err, errlen, "jwks_url: cannot set up the DNS resolver");
        rc = DM_EIO;
        goto fail;
    }
    for (size_t i = 0; i < f->njobs; i++) {
        job *j = &f->jobs[i];
        if (dm_keyring_count(j->keyring) == 0)
            dm_info("jwks keys pending: tokens are refused until the first fetch", "url=%s",
                    j->url_q);
        dm_keyring_set_waker(j->keyring, wake, j);
        start_fetch(j, "startup");
    }
    *out = f;
    return DM_OK;

fail:
    dm_jwks_fetch_stop(f);
    return rc;
}

void dm_jwks_fetch_stop(dm_jwks_fetch *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->njobs; i++)
        job_dispose(&f->jobs[i]);
    free(f->jobs);
    if (f->dns)
        evdns_base_free(f->dns, 0);
    SSL_CTX_free(f->ssl_ctx);
    free(f);
}
