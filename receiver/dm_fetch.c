/* dm_fetch.c - outgoing GETs on the main event_base (see dm_fetch.h).
 *
 * One `get` is one URL fetched with a fresh evhttp_connection per fetch (no keep-alive state
 * to go stale between hourly fetches), freed from a deferred event rather than inside
 * libevent's callbacks, which still use it after the request callback returns. A JWKS job owns
 * one get and reuses it for every fetch of its URL; SNS certificate and confirmation fetches
 * are one-shot gets, created when a cache hands out a URL and freed once reaped. Workers only
 * ever touch the fetcher through a keyring's or a cache's waker, which calls event_active()
 * (thread-safe: the base was created after evthread_use_pthreads()).
 */
#include "dm_fetch.h"
#include "dm_keyring.h"
#include "dm_log.h"

#include <arpa/inet.h>
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
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define URL_LOG_BUF    1024
#define REASON_BUF     320 /* fits "invalid JWKS: " + dm_error field and text */
#define MAX_HEADER_LEN (64 * 1024)

/*---- Types ------------------------------------------------------------------------------*/

typedef struct get get;

/* The fetch's result, once: @p failure is NULL for an HTTP 200 whose body is @p body (@p len
 * bytes, not NUL-terminated, valid during the call only). */
typedef void (*get_result_fn)(get *g, const char *body, size_t len, const char *failure);
/* The connection of a finished fetch was released: the get may start again (or, for a
 * one-shot, has just been freed: only @p arg is passed). */
typedef void (*get_reaped_fn)(void *arg);

struct get {
    dm_fetch *f;
    get_result_fn on_result;
    get_reaped_fn on_reaped;     /* may be NULL */
    void *arg;
    const char *accept;
    int max_body;
    bool tls;
    bool ip_literal;
    char *host;                  /* to connect to: no brackets */
    char *host_header;           /* as in the url: brackets and port kept */
    char *target;                /* path and query */
    int port;
    char url_q[URL_LOG_BUF];     /* the url, quoted for log lines */
    char *key;                   /* one-shots: the SNS URL the fetch is for (owned) */

    struct event *deadline;      /* the fetch in flight takes too long */
    struct event *reap;          /* free the finished fetch's connection */
    struct evhttp_connection *evcon;
    bool busy;                   /* from the start of a fetch until it is reaped */
    bool done;                   /* the fetch in flight has a result */
    bool have_err;
    enum evhttp_request_error req_err;
    int sock_err;

    bool oneshot;                /* freed once reaped; linked in f->oneshots */
    get *prev, *next;
};

/* An oidc entry with a jwks_url. */
typedef struct job {
    get g;
    dm_keyring *keyring;         /* borrowed from the config */
    int refresh_s;
    struct event *timer;         /* every refresh_s */
    struct event *kick;          /* a worker asked for a refresh (unknown kid) */
    bool again;                  /* a kick came while busy: fetch again once reaped */
} job;

/* An sns entry with a cache (fetch_certs and/or confirm_subscriptions). */
typedef struct sns_job {
    dm_fetch *f;
    dm_sns_cache *cache;         /* borrowed from the config */
    struct event *kick;          /* a worker queued a certificate or a confirmation */
    int inflight;                /* one-shot gets of this entry not reaped yet */
} sns_job;

struct dm_fetch {
    struct event_base *base;
    struct evdns_base *dns;
    SSL_CTX *ssl_ctx;            /* only if something is fetched over https */
    char *test_base;             /* DIGESTMAP_TEST_SNS_CERT_BASE without a trailing '/' */
    job *jobs;
    size_t njobs;
    sns_job *sns;
    size_t nsns;
    get *oneshots;               /* in flight or waiting to be reaped */
};

/*---- One GET ----------------------------------------------------------------------------*/

/* Deliver the result of the fetch in flight (once) and schedule the connection's release. */
static void finish(get *g, const char *body, size_t len, const char *failure)
{
    if (g->done)
        return;
    g->done = true;
    event_del(g->deadline);
    g->on_result(g, body, len, failure);
    event_active(g->reap, EV_TIMEOUT, 0);
}

static void get_dispose(get *g)
{
    if (g->evcon)
        evhttp_connection_free(g->evcon);
    if (g->deadline)
        event_free(g->deadline);
    if (g->reap)
        event_free(g->reap);
    free(g->host);
    free(g->host_header);
    free(g->target);
    free(g->key);
}

static void unlink_oneshot(get *g)
{
    if (g->prev)
        g->prev->next = g->next;
    else
        g->f->oneshots = g->next;
    if (g->next)
        g->next->prev = g->prev;
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    get *g = arg;
    (void)fd;
    (void)what;
    if (!g->done)
        return;
    /* Pending requests are freed without their callbacks being run. */
    if (g->evcon)
        evhttp_connection_free(g->evcon);
    g->evcon = NULL;
    g->done = false;
    g->busy = false;
    get_reaped_fn cb = g->on_reaped;
    void *cb_arg = g->arg;
    if (g->oneshot) {
        unlink_oneshot(g);
        get_dispose(g); /* frees this very event: libevent allows it from its callback */
        free(g);
    }
    if (cb)
        cb(cb_arg);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish(arg, NULL, 0, "timeout");
}

/* What a failed request tells: libevent's error, the resolver's, OpenSSL's. */
static void failure_reason(get *g, char *buf, size_t size)
{
    struct bufferevent *bev = g->evcon ? evhttp_connection_get_bufferevent(g->evcon) : NULL;
    int dns_err = bev ? bufferevent_socket_get_dns_error(bev) : 0;
    unsigned long ssl_err = 0, e;
    if (bev && g->tls)
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
    if (g->have_err) {
        switch (g->req_err) {
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
            snprintf(buf, size, "response larger than %d bytes", g->max_body);
            return;
        }
    }
    if (g->sock_err)
        snprintf(buf, size, "%s: %s", what, evutil_socket_error_to_string(g->sock_err));
    else
        snprintf(buf, size, "%s", what);
}

static void on_error(enum evhttp_request_error err, void *arg)
{
    get *g = arg;
    g->have_err = true;
    g->req_err = err;
    /* libevent restores the socket error of the failure before calling us. */
    g->sock_err = EVUTIL_SOCKET_ERROR();
}

/* The request's end: @p req is NULL on a connection failure, and is libevent's (it frees it
 * after we return). */
static void on_done(struct evhttp_request *req, void *arg)
{
    get *g = arg;
    char reason[REASON_BUF];
    if (g->done)
        return; /* already timed out */
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code == 0) {
        failure_reason(g, reason, sizeof reason);
        finish(g, NULL, 0, reason);
        return;
    }
    if (code != 200) {
        snprintf(reason, sizeof reason, "HTTP %d", code);
        finish(g, NULL, 0, reason);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > (size_t)g->max_body) { /* evhttp enforces it; never trust one place */
        snprintf(reason, sizeof reason, "response larger than %d bytes", g->max_body);
        finish(g, NULL, 0, reason);
        return;
    }
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    finish(g, body, len, NULL);
}

/* A bufferevent that speaks TLS to g->host and verifies it; NULL on failure (the caller
 * must then not fall back to a plain connection). */
static struct bufferevent *tls_bufferevent(get *g)
{
    SSL *ssl = SSL_new(g->f->ssl_ctx);
    if (!ssl)
        return NULL;
    bool ok;
    if (g->ip_literal) {
        /* No SNI for an address (RFC 6066); the certificate must name the IP. */
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), g->host) == 1;
    } else {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set1_host(ssl, g->host) == 1 && SSL_set_tlsext_host_name(ssl, g->host) == 1;
    }
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        g->f->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    /* Servers often close without close_notify; a truncated body is still caught by
     * Content-Length or by the parser of what was fetched. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* Start a fetch (the get must not be busy). Every outcome, a setup failure included, ends in
 * one on_result call and one reap. */
static void get_start(get *g)
{
    g->busy = true;
    g->done = false;
    g->have_err = false;
    g->sock_err = 0;
    struct bufferevent *bev = NULL;
    if (g->tls && !(bev = tls_bufferevent(g))) {
        finish(g, NULL, 0, "TLS setup failed");
        return;
    }
    g->evcon = evhttp_connection_base_bufferevent_new(g->f->base, g->f->dns, bev, g->host,
                                                      (ev_uint16_t)g->port);
    if (!g->evcon) {
        if (bev)
            bufferevent_free(bev);
        finish(g, NULL, 0, "cannot create a connection");
        return;
    }
    evhttp_connection_set_timeout(g->evcon, DM_FETCH_TIMEOUT_S);
    evhttp_connection_set_max_body_size(g->evcon, g->max_body);
    evhttp_connection_set_max_headers_size(g->evcon, MAX_HEADER_LEN);
    evhttp_connection_set_retries(g->evcon, 0);

    struct timeval tv = {DM_FETCH_TIMEOUT_S, 0};
    event_add(g->deadline, &tv);
    struct evhttp_request *req = evhttp_request_new(on_done, g);
    if (!req) {
        finish(g, NULL, 0, "cannot create a request");
        return;
    }
    evhttp_request_set_error_cb(req, on_error);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", g->host_header);
    evhttp_add_header(h, "Accept", g->accept);
    evhttp_add_header(h, "User-Agent", "digestmapd");
    evhttp_add_header(h, "Connection", "close");
    /* A failure may already have run on_done (and finish) from inside this call. */
    if (evhttp_make_request(g->evcon, req, EVHTTP_REQ_GET, g->target) != 0)
        finish(g, NULL, 0, "cannot send the request");
}

static bool is_ip(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* Prepare @p g to fetch @p url (validated by the caller), logged as @p log_url. */
static int get_init(dm_fetch *f, get *g, const char *log_url, const char *url, int uri_flags)
{
    g->f = f;
    dm_log_quote(log_url, strlen(log_url), g->url_q, sizeof g->url_q);
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, (unsigned)uri_flags);
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    if (!host || !*host || !scheme) {
        evhttp_uri_free(u);
        return DM_EINVAL;
    }
    g->tls = strcmp(scheme, "https") == 0;
    g->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : (g->tls ? 443 : 80);
    size_t hl = strlen(host);
    g->host = host[0] == '[' && hl >= 2 ? dm_xstrndup(host + 1, hl - 2) : dm_xstrdup(host);
    g->ip_literal = is_ip(g->host);
    if (evhttp_uri_get_port(u) > 0) {
        size_t n = hl + 8;
        g->host_header = dm_xmalloc(n);
        snprintf(g->host_header, n, "%s:%d", host, g->port);
    } else {
        g->host_header = dm_xstrdup(host);
    }
    const char *path = evhttp_uri_get_path(u), *query = evhttp_uri_get_query(u);
    if (!path || !*path)
        path = "/";
    size_t n = strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
    g->target = dm_xmalloc(n);
    snprintf(g->target, n, "%s%s%s", path, query ? "?" : "", query ? query : "");
    evhttp_uri_free(u);
    g->deadline = evtimer_new(f->base, on_deadline, g);
    g->reap = event_new(f->base, -1, 0, on_reap, g);
    if (!g->deadline || !g->reap)
        return DM_EIO;
    return DM_OK;
}

/*---- JWKS -------------------------------------------------------------------------------*/

static void jwks_result(get *g, const char *body, size_t len, const char *failure)
{
    job *j = g->arg;
    char reason[REASON_BUF];
    if (!failure) {
        dm_error err = {0};
        size_t n = 0;
        if (dm_keyring_update(j->keyring, body, len, &n, &err) == DM_OK) {
            dm_info("jwks fetched", "url=%s keys=%zu total=%zu", g->url_q, n,
                    dm_keyring_count(j->keyring));
        } else {
            snprintf(reason, sizeof reason, "invalid JWKS: %s%s%s", err.field,
                     err.field[0] ? ": " : "", err.text);
            failure = reason;
        }
    }
    dm_keyring_fetch_end(j->keyring);
    if (failure) {
        char q[REASON_BUF + 8];
        dm_warn("jwks fetch failed", "url=%s reason=%s", g->url_q,
                dm_log_quote(failure, strlen(failure), q, sizeof q));
    }
}

static void jwks_start(job *j, const char *trigger)
{
    if (j->g.busy) { /* one at a time; a kick while busy is remembered */
        if (strcmp(trigger, "unknown kid") == 0)
            j->again = true;
        return;
    }
    dm_debug("jwks fetch", "url=%s trigger=\"%s\"", j->g.url_q, trigger);
    dm_keyring_fetch_begin(j->keyring);
    get_start(&j->g);
}

static void jwks_reaped(void *arg)
{
    job *j = arg;
    if (j->again) {
        j->again = false;
        jwks_start(j, "unknown kid");
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    jwks_start(arg, "periodic");
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    job *j = arg;
    (void)fd;
    (void)what;
    dm_info("jwks refresh: a token named an unknown kid", "url=%s", j->g.url_q);
    jwks_start(j, "unknown kid");
}

/* The keyring's waker: runs on a worker thread, with the keyring locked. */
static void jwks_wake(void *arg)
{
    job *j = arg;
    event_active(j->kick, EV_TIMEOUT, 0);
}

/* The url was validated by dm_config. */
static int job_init(dm_fetch *f, job *j, const dm_auth_entry *e, char *err, size_t errlen)
{
    j->keyring = e->keyring;
    j->refresh_s = e->jwks_refresh_seconds;
    j->g.on_result = jwks_result;
    j->g.on_reaped = jwks_reaped;
    j->g.arg = j;
    j->g.accept = "application/json, application/jwk-set+json";
    j->g.max_body = DM_FETCH_JWKS_MAX_BODY;
    int rc = get_init(f, &j->g, e->jwks_url, e->jwks_url, 0);
    if (rc == DM_EINVAL) {
        snprintf(err, errlen, "jwks_url: cannot parse the url");
        return rc;
    }
    j->timer = event_new(f->base, -1, EV_PERSIST, on_timer, j);
    j->kick = event_new(f->base, -1, 0, on_kick, j);
    struct timeval every = {j->refresh_s, 0};
    if (rc != DM_OK || !j->timer || !j->kick || event_add(j->timer, &every) != 0) {
        snprintf(err, errlen, "jwks_url: cannot create events");
        return DM_EIO;
    }
    return DM_OK;
}

static void job_dispose(job *j)
{
    if (j->keyring) {
        dm_keyring_set_waker(j->keyring, NULL, NULL); /* no worker can reach j after this */
        if (j->g.busy && !j->g.done)
            dm_keyring_fetch_end(j->keyring);
    }
    get_dispose(&j->g);
    if (j->timer)
        event_free(j->timer);
    if (j->kick)
        event_free(j->kick);
}

/*---- SNS --------------------------------------------------------------------------------*/

/* NULL when @p pem is a PEM X.509 certificate with an RSA key, else why not. */
static const char *check_cert(const char *pem, size_t len)
{
    const char *why = NULL;
    if (len == 0)
        return "empty response";
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    EVP_PKEY *key = x ? X509_get0_pubkey(x) : NULL;
    if (!bio)
        why = "out of memory";
    else if (!x)
        why = "not a PEM X.509 certificate";
    else if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
        why = "the certificate's key is not RSA";
    X509_free(x);
    BIO_free(bio);
    ERR_clear_error();
    return why;
}

static void cert_result(get *g, const char *body, size_t len, const char *failure)
{
    sns_job *s = g->arg;
    if (!failure)
        failure = check_cert(body, len);
    if (failure) {
        char q[REASON_BUF + 8];
        dm_warn("sns certificate fetch failed", "url=%s reason=%s", g->url_q,
                dm_log_quote(failure, strlen(failure), q, sizeof q));
        dm_sns_cache_fetched(s->cache, g->key, NULL, 0, failure);
        return;
    }
    dm_sns_cache_fetched(s->cache, g->key, body, len, NULL);
    dm_info("sns certificate fetched", "url=%s bytes=%zu", g->url_q, len);
}

static void confirm_result(get *g, const char *body, size_t len, const char *failure)
{
    (void)body;
    (void)len;
    if (failure) {
        char q[REASON_BUF + 8];
        dm_warn("sns subscription confirmation failed", "url=%s reason=%s", g->url_q,
                dm_log_quote(failure, strlen(failure), q, sizeof q));
        return;
    }
    dm_info("sns subscription confirmed", "url=%s", g->url_q);
}

static void sns_pump(sns_job *s);

static void sns_reaped(void *arg)
{
    sns_job *s = arg;
    s->inflight--;
    sns_pump(s);
}

/* A one-shot GET of the SNS @p url (validated by the worker that queued it), or of its path
 * and query at the test base. */
static void sns_get(sns_job *s, const char *url, bool confirm)
{
    dm_fetch *f = s->f;
    get *g = dm_xcalloc(1, sizeof *g);
    g->on_result = confirm ? confirm_result : cert_result;
    g->on_reaped = sns_reaped;
    g->arg = s;
    g->accept = confirm ? "*/*" : "application/x-pem-file, */*";
    g->max_body = DM_FETCH_SNS_MAX_BODY;
    g->key = dm_xstrdup(url);
    g->oneshot = true;
    char *target = NULL;
    if (f->test_base) {
        const char *rest = strchr(url + strlen("https://"), '/'); /* dm_sns_url_ok: present */
        size_t n = strlen(f->test_base) + strlen(rest ? rest : "/") + 1;
        target = dm_xmalloc(n);
        snprintf(target, n, "%s%s", f->test_base, rest ? rest : "/");
    }
    /* Nonconformant: dm_sns_url_ok already decided what may appear in these URLs. */
    int rc = get_init(f, g, url, target ? target : url, EVHTTP_URI_NONCONFORMANT);
    if (rc != DM_OK) {
        const char *why = rc == DM_EINVAL ? "cannot parse the url" : "cannot create events";
        dm_warn(confirm ? "sns subscription confirmation failed" : "sns certificate fetch failed",
                "url=%s reason=\"%s\"", g->url_q, why);
        if (!confirm)
            dm_sns_cache_fetched(s->cache, url, NULL, 0, why);
        get_dispose(g);
        free(g);
        free(target);
        return;
    }
    dm_debug(confirm ? "sns subscription confirmation" : "sns certificate fetch",
             "url=%s via=\"%s\"", g->url_q, target ? f->test_base : "aws");
    free(target);
    g->next = f->oneshots;
    if (g->next)
        g->next->prev = g;
    f->oneshots = g;
    s->inflight++;
    get_start(g);
}

/* Start what the cache holds, confirmations first, up to DM_FETCH_SNS_PARALLEL at a time;
 * the rest starts as fetches end. */
static void sns_pump(sns_job *s)
{
    while (s->inflight < DM_FETCH_SNS_PARALLEL) {
        bool confirm = true;
        char *url = dm_sns_cache_take_confirm(s->cache);
        if (!url) {
            confirm = false;
            url = dm_sns_cache_take_wanted(s->cache);
        }
        if (!url)
            return;
        sns_get(s, url, confirm);
        free(url);
    }
}

static void on_sns_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sns_pump(arg);
}

/* The cache's waker: runs on a worker thread, with the cache locked. */
static void sns_wake(void *arg)
{
    sns_job *s = arg;
    event_active(s->kick, EV_TIMEOUT, 0);
}

/* DIGESTMAP_TEST_SNS_CERT_BASE: unset, or a loopback http base URL (no path beyond "/"). */
static int read_test_base(char **out, char *err, size_t errlen)
{
    static const char *const loopback[] = {"127.0.0.1", "[::1]", "localhost"};
    const char *v = getenv(DM_FETCH_TEST_SNS_BASE_ENV);
    *out = NULL;
    if (!v)
        return DM_OK;
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(v, 0);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    bool ok = scheme && strcmp(scheme, "http") == 0 && host && !evhttp_uri_get_userinfo(u) &&
              !evhttp_uri_get_query(u) && !evhttp_uri_get_fragment(u) &&
              evhttp_uri_get_port(u) != 0 && (!path || !*path || strcmp(path, "/") == 0);
    bool local = false;
    for (size_t i = 0; ok && i < DM_ARRAY_LEN(loopback) && !local; i++)
        local = strcasecmp(host, loopback[i]) == 0;
    evhttp_uri_free(u);
    if (!ok || !local) {
        snprintf(err, errlen, "%s must be http://127.0.0.1:PORT, http://[::1]:PORT or "
                 "http://localhost:PORT (tests only)", DM_FETCH_TEST_SNS_BASE_ENV);
        return DM_EINVAL;
    }
    size_t n = strlen(v);
    while (n > 0 && v[n - 1] == '/')
        n--;
    *out = dm_xstrndup(v, n);
    dm_warn("test-only setting: SNS certificates and subscription confirmations are fetched "
            "from a local server, not from AWS",
            "variable=%s base=\"%s\"", DM_FETCH_TEST_SNS_BASE_ENV, *out);
    return DM_OK;
}

/*---- Setup ------------------------------------------------------------------------------*/

static void count_entries(const dm_auth_list *l, size_t *njobs, size_t *nsns)
{
    for (size_t i = 0; i < l->n; i++) {
        *njobs += l->v[i].type == DM_AUTH_OIDC && l->v[i].jwks_url;
        *nsns += l->v[i].type == DM_AUTH_SNS && l->v[i].sns_cache;
    }
}

static int add_entries(dm_fetch *f, const dm_auth_list *l, char *err, size_t errlen)
{
    for (size_t i = 0; i < l->n; i++) {
        const dm_auth_entry *e = &l->v[i];
        if (e->type == DM_AUTH_OIDC && e->jwks_url) {
            int rc = job_init(f, &f->jobs[f->njobs++], e, err, errlen);
            if (rc != DM_OK)
                return rc;
        } else if (e->type == DM_AUTH_SNS && e->sns_cache) {
            sns_job *s = &f->sns[f->nsns++];
            s->f = f;
            s->cache = e->sns_cache;
            s->kick = event_new(f->base, -1, 0, on_sns_kick, s);
            if (!s->kick) {
                snprintf(err, errlen, "sns: cannot create events");
                return DM_EIO;
            }
        }
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
    /* Verification failures abort the handshake: nothing from an unverified server is ever
     * read. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

int dm_fetch_start(struct event_base *base, const dm_config *conf, dm_fetch **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    char *test_base = NULL;
    int rc = read_test_base(&test_base, err, errlen);
    if (rc != DM_OK)
        return rc;
    size_t njobs = 0, nsns = 0;
    count_entries(&conf->api_auth, &njobs, &nsns);
    for (size_t i = 0; i < conf->nsources; i++)
        count_entries(&conf->sources[i].auth, &njobs, &nsns);
    if (njobs + nsns == 0) {
        free(test_base);
        return DM_OK;
    }

    dm_fetch *f = dm_xcalloc(1, sizeof *f);
    f->base = base;
    f->test_base = test_base;
    f->jobs = dm_xcalloc(njobs ? njobs : 1, sizeof *f->jobs);
    f->sns = dm_xcalloc(nsns ? nsns : 1, sizeof *f->sns);
    for (size_t i = 0; i < conf->nsources && rc == DM_OK; i++)
        rc = add_entries(f, &conf->sources[i].auth, err, errlen);
    if (rc == DM_OK)
        rc = add_entries(f, &conf->api_auth, err, errlen);
    if (rc != DM_OK)
        goto fail;

    bool any_tls = f->nsns > 0 && !f->test_base;
    for (size_t i = 0; i < f->njobs; i++)
        any_tls |= f->jobs[i].g.tls;
    if (any_tls && !(f->ssl_ctx = client_ctx())) {
        snprintf(err, errlen, "fetch: cannot set up TLS (system CA store)");
        rc = DM_EIO;
        goto fail;
    }
    /* Reads /etc/resolv.conf and /etc/hosts now; resolution is asynchronous afterwards. */
    f->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                      EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!f->dns) {
        snprintf(err, errlen, "fetch: cannot set up the DNS resolver");
        rc = DM_EIO;
        goto fail;
    }
    for (size_t i = 0; i < f->njobs; i++) {
        job *j = &f->jobs[i];
        if (dm_keyring_count(j->keyring) == 0)
            dm_info("jwks keys pending: tokens are refused until the first fetch", "url=%s",
                    j->g.url_q);
        dm_keyring_set_waker(j->keyring, jwks_wake, j);
        jwks_start(j, "startup");
    }
    for (size_t i = 0; i < f->nsns; i++) {
        dm_sns_cache_set_waker(f->sns[i].cache, sns_wake, &f->sns[i]);
        sns_pump(&f->sns[i]); /* nothing yet, unless a cache was filled before */
    }
    *out = f;
    return DM_OK;

fail:
    dm_fetch_stop(f);
    return rc;
}

void dm_fetch_stop(dm_fetch *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->njobs; i++)
        job_dispose(&f->jobs[i]);
    for (size_t i = 0; i < f->nsns; i++) {
        sns_job *s = &f->sns[i];
        if (s->cache)
            dm_sns_cache_set_waker(s->cache, NULL, NULL); /* no worker reaches s after this */
        if (s->kick)
            event_free(s->kick);
    }
    while (f->oneshots) {
        get *g = f->oneshots;
        f->oneshots = g->next;
        get_dispose(g);
        free(g);
    }
    free(f->jobs);
    free(f->sns);
    if (f->dns)
        evdns_base_free(f->dns, 0);
    SSL_CTX_free(f->ssl_ctx);
    free(f->test_base);
    free(f);
}
