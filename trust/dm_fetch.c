/* dm_fetch.c - outgoing GETs on the main event_base (see dm_fetch.h).
 *
 * The transport (connections, name resolution, TLS, deadline, body cap) is dm_hclient's: this
 * file decides what is fetched and when, and what an answer means. A JWKS job has at most one
 * request in flight; SNS certificate and confirmation fetches are one-shot requests, created
 * when a cache hands out a URL and freed when they end. Workers only ever touch the fetcher
 * through a keyring's or a cache's waker, which calls event_active() (thread-safe: the base
 * was created after evthread_use_pthreads()).
 */
#include "dm_fetch.h"
#include "dm_hclient.h"
#include "dm_keyring.h"
#include "dm_log.h"
#include "dm_trust.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define URL_LOG_BUF 1024
#define REASON_BUF  320 /* fits "invalid JWKS: " + dm_error field and text */

/*---- Types ------------------------------------------------------------------------------*/

/* An oidc entry with a jwks_url. */
typedef struct job {
    dm_fetch *f;
    dm_keyring *keyring;     /* borrowed from the trust */
    const char *url;         /* borrowed from the config (validated by dm_config) */
    char url_q[URL_LOG_BUF]; /* the url, quoted for log lines */
    int refresh_s;
    struct event *timer; /* every refresh_s */
    struct event *kick;  /* a worker asked for a refresh (unknown kid) */
    dm_hclient_req *req; /* the fetch in flight, if any */
    bool again;          /* a kick came while busy: fetch again once it ends */
} job;

/* An sns entry with a cache (fetch_certs and/or confirm_subscriptions). */
typedef struct sns_job {
    dm_fetch *f;
    dm_sns_cache *cache; /* borrowed from the trust */
    struct event *kick;  /* a worker queued a certificate or a confirmation */
    int inflight;        /* fetches of this entry not ended yet */
} sns_job;

/* One SNS certificate or confirmation fetch in flight. */
typedef struct sns_get {
    sns_job *s;
    bool confirm;
    char *url;               /* the SNS URL, the cache's key (owned) */
    char url_q[URL_LOG_BUF]; /* the url, quoted for log lines */
    dm_hclient_req *req;
    LIST_ENTRY(sns_get) link; /* in f->gets */
} sns_get;

struct dm_fetch {
    struct event_base *base;
    dm_hclient *http;
    char *test_base; /* DIGESTMAP_TEST_SNS_CERT_BASE without a trailing '/' */
    job *jobs;
    size_t njobs;
    sns_job *sns;
    size_t nsns;
    LIST_HEAD(, sns_get) gets; /* SNS fetches in flight */
};

/*---- One GET ----------------------------------------------------------------------------*/

/* Start a GET of @p url for dm_fetch's callers: NULL with a reason in @p err when it cannot
 * start (the callback then never runs). @p lenient: the URL was validated by dm_sns_url_ok,
 * which decides what may appear in its path and query. */
static dm_hclient_req *get(dm_fetch *f, const char *url, bool lenient, const char *accept,
                           size_t max_body, dm_hclient_cb cb, void *arg, char *err, size_t errlen)
{
    const dm_hclient_header h[] = {{"Accept", accept}, {"User-Agent", "digestmapd"}};
    dm_hclient_request_opts o = {
        .method = "GET",
        .url = url,
        .headers = h,
        .nheaders = DM_ARRAY_LEN(h),
        .timeout_ms = DM_FETCH_TIMEOUT_S * 1000,
        .max_body = max_body,
        .lenient_url = lenient,
    };
    return dm_hclient_request(f->http, &o, cb, arg, err, errlen);
}

/* NULL when @p res is a complete HTTP 200, else why not (in @p buf or @p res). */
static const char *get_failure(const dm_hclient_response *res, char *buf, size_t size)
{
    if (res->error)
        return res->error;
    if (res->status != 200) {
        snprintf(buf, size, "HTTP %d", res->status);
        return buf;
    }
    return NULL;
}

/*---- JWKS -------------------------------------------------------------------------------*/

static void jwks_start(job *j, const char *trigger);

/* The fetch's end; an HTTP 200 body replaces the keys if it holds a usable JWKS. */
static void jwks_done(job *j, const dm_hclient_response *res, const char *setup_failure)
{
    char reason[REASON_BUF];
    const char *failure = setup_failure ? setup_failure : get_failure(res, reason, sizeof reason);
    if (!failure) {
        dm_error err = {0};
        size_t n = 0;
        if (dm_keyring_update(j->keyring, res->body, res->body_len, &n, &err) == DM_OK) {
            dm_info("jwks fetched", "url=%s keys=%zu total=%zu", j->url_q, n,
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
        dm_warn("jwks fetch failed", "url=%s reason=%s", j->url_q,
                dm_log_quote(failure, strlen(failure), q, sizeof q));
    }
}

static void on_jwks_response(const dm_hclient_response *res, void *arg)
{
    job *j = arg;
    j->req = NULL;
    jwks_done(j, res, NULL);
    if (j->again) {
        j->again = false;
        jwks_start(j, "unknown kid");
    }
}

static void jwks_start(job *j, const char *trigger)
{
    if (j->req) { /* one at a time; a kick while busy is remembered */
        if (strcmp(trigger, "unknown kid") == 0)
            j->again = true;
        return;
    }
    dm_debug("jwks fetch", "url=%s trigger=\"%s\"", j->url_q, trigger);
    dm_keyring_fetch_begin(j->keyring);
    char err[DM_HCLIENT_ERRLEN];
    j->req = get(j->f, j->url, false, "application/json, application/jwk-set+json",
                 DM_FETCH_JWKS_MAX_BODY, on_jwks_response, j, err, sizeof err);
    if (!j->req)
        jwks_done(j, NULL, err);
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
    dm_info("jwks refresh: a token named an unknown kid", "url=%s", j->url_q);
    jwks_start(j, "unknown kid");
}

/* The keyring's waker: runs on a worker thread, with the keyring locked. */
static void jwks_wake(void *arg)
{
    job *j = arg;
    event_active(j->kick, EV_TIMEOUT, 0);
}

static int job_init(dm_fetch *f, job *j, const dm_trust_entry *te, char *err, size_t errlen)
{
    const dm_auth_entry *e = te->conf;
    j->f = f;
    j->keyring = te->keyring;
    j->url = e->jwks_url;
    j->refresh_s = e->jwks_refresh_seconds;
    dm_log_quote(j->url, strlen(j->url), j->url_q, sizeof j->url_q);
    j->timer = event_new(f->base, -1, EV_PERSIST, on_timer, j);
    j->kick = event_new(f->base, -1, 0, on_kick, j);
    struct timeval every = {j->refresh_s, 0};
    if (!j->timer || !j->kick || event_add(j->timer, &every) != 0) {
        snprintf(err, errlen, "jwks_url: cannot create events");
        return DM_EIO;
    }
    return DM_OK;
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

/* What a certificate or confirmation fetch (@p res, or @p failure when it could not start)
 * ended with: logged, and a certificate's outcome handed to the cache. */
static void sns_done(sns_get *g, const dm_hclient_response *res, const char *failure)
{
    char reason[REASON_BUF], q[REASON_BUF + 8];
    if (!failure)
        failure = get_failure(res, reason, sizeof reason);
    if (g->confirm) {
        if (failure)
            dm_warn("sns subscription confirmation failed", "url=%s reason=%s", g->url_q,
                    dm_log_quote(failure, strlen(failure), q, sizeof q));
        else
            dm_info("sns subscription confirmed", "url=%s", g->url_q);
        return;
    }
    if (!failure)
        failure = check_cert(res->body, res->body_len);
    if (failure) {
        dm_warn("sns certificate fetch failed", "url=%s reason=%s", g->url_q,
                dm_log_quote(failure, strlen(failure), q, sizeof q));
        dm_sns_cache_fetched(g->s->cache, g->url, NULL, 0, failure);
        return;
    }
    dm_sns_cache_fetched(g->s->cache, g->url, res->body, res->body_len, NULL);
    dm_info("sns certificate fetched", "url=%s bytes=%zu", g->url_q, res->body_len);
}

static void sns_get_free(sns_get *g)
{
    free(g->url);
    free(g);
}

static void sns_pump(sns_job *s);

static void on_sns_response(const dm_hclient_response *res, void *arg)
{
    sns_get *g = arg;
    sns_job *s = g->s;
    sns_done(g, res, NULL);
    LIST_REMOVE(g, link);
    sns_get_free(g);
    s->inflight--;
    sns_pump(s);
}

/* Fetch the SNS @p url (validated by the worker that queued it), or its path and query at the
 * test base. */
static void sns_start(sns_job *s, const char *url, bool confirm)
{
    dm_fetch *f = s->f;
    sns_get *g = dm_xcalloc(1, sizeof *g);
    g->s = s;
    g->confirm = confirm;
    g->url = dm_xstrdup(url);
    dm_log_quote(url, strlen(url), g->url_q, sizeof g->url_q);
    char *target = NULL;
    if (f->test_base) {
        const char *rest = strchr(url + strlen("https://"), '/'); /* dm_sns_url_ok: present */
        size_t n = strlen(f->test_base) + strlen(rest ? rest : "/") + 1;
        target = dm_xmalloc(n);
        snprintf(target, n, "%s%s", f->test_base, rest ? rest : "/");
    }
    char via[160];
    dm_debug(confirm ? "sns subscription confirmation" : "sns certificate fetch", "url=%s via=%s",
             g->url_q, dm_log_quote_str(target ? f->test_base : "aws", via, sizeof via));
    char err[DM_HCLIENT_ERRLEN];
    const char *accept = confirm ? "*/*" : "application/x-pem-file, */*";
    g->req = get(f, target ? target : url, true, accept, DM_FETCH_SNS_MAX_BODY, on_sns_response, g,
                 err, sizeof err);
    free(target);
    if (!g->req) {
        sns_done(g, NULL, err);
        sns_get_free(g);
        return;
    }
    LIST_INSERT_HEAD(&f->gets, g, link);
    s->inflight++;
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
        sns_start(s, url, confirm);
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
    if (u) /* evhttp_uri_free(NULL) crashes */
        evhttp_uri_free(u);
    if (!ok || !local) {
        snprintf(err, errlen,
                 "%s must be http://127.0.0.1:PORT, http://[::1]:PORT or "
                 "http://localhost:PORT (tests only)",
                 DM_FETCH_TEST_SNS_BASE_ENV);
        return DM_EINVAL;
    }
    size_t n = strlen(v);
    while (n > 0 && v[n - 1] == '/')
        n--;
    *out = dm_xstrndup(v, n);
    char q[160];
    dm_warn("test-only setting: SNS certificates and subscription confirmations are fetched "
            "from a local server, not from AWS",
            "variable=%s base=%s", DM_FETCH_TEST_SNS_BASE_ENV, dm_log_quote_str(*out, q, sizeof q));
    return DM_OK;
}

/*---- Setup ------------------------------------------------------------------------------*/

static bool fetches_keys(const dm_trust_entry *te)
{
    return te->keyring && te->conf->jwks_url;
}

/* One job per entry with a jwks_url, one sns job per certificate cache, in configuration
 * order. */
static int add_entries(dm_fetch *f, const dm_trust_entry *v, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (fetches_keys(&v[i])) {
            int rc = job_init(f, &f->jobs[f->njobs++], &v[i], err, errlen);
            if (rc != DM_OK)
                return rc;
        } else if (v[i].sns_cache) {
            sns_job *s = &f->sns[f->nsns++];
            s->f = f;
            s->cache = v[i].sns_cache;
            s->kick = event_new(f->base, -1, 0, on_sns_kick, s);
            if (!s->kick) {
                snprintf(err, errlen, "sns: cannot create events");
                return DM_EIO;
            }
        }
    }
    return DM_OK;
}

int dm_fetch_start(struct event_base *base, const dm_trust *trust, dm_fetch **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    char *test_base = NULL;
    int rc = read_test_base(&test_base, err, errlen);
    if (rc != DM_OK)
        return rc;
    size_t n = 0, njobs = 0, nsns = 0;
    const dm_trust_entry *v = dm_trust_entries(trust, &n);
    for (size_t i = 0; i < n; i++) {
        njobs += fetches_keys(&v[i]);
        nsns += v[i].sns_cache != NULL;
    }
    if (njobs + nsns == 0) {
        free(test_base);
        return DM_OK;
    }

    dm_fetch *f = dm_xcalloc(1, sizeof *f);
    f->base = base;
    f->test_base = test_base;
    LIST_INIT(&f->gets);
    f->jobs = dm_xcalloc(njobs ? njobs : 1, sizeof *f->jobs);
    f->sns = dm_xcalloc(nsns ? nsns : 1, sizeof *f->sns);
    if ((rc = add_entries(f, v, n, err, errlen)) != DM_OK)
        goto fail;

    char herr[DM_HCLIENT_ERRLEN];
    if (!(f->http = dm_hclient_new(base, herr, sizeof herr))) {
        snprintf(err, errlen, "fetch: %s", herr);
        rc = DM_EIO;
        goto fail;
    }
    /* The system store is loaded now, so a broken one is a startup error. */
    bool any_tls = f->nsns > 0 && !f->test_base;
    for (size_t i = 0; i < f->njobs; i++)
        any_tls |= strncmp(f->jobs[i].url, "https://", 8) == 0;
    if (any_tls && dm_hclient_add_trust(f->http, NULL, herr, sizeof herr) != DM_OK) {
        snprintf(err, errlen, "fetch: cannot set up TLS (system CA store): %s", herr);
        rc = DM_EIO;
        goto fail;
    }
    for (size_t i = 0; i < f->njobs; i++) {
        job *j = &f->jobs[i];
        if (dm_keyring_count(j->keyring) == 0)
            dm_info("jwks keys pending: tokens are refused until the first fetch", "url=%s",
                    j->url_q);
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
    /* No worker can reach a job or an sns entry after this. */
    for (size_t i = 0; i < f->njobs; i++) {
        job *j = &f->jobs[i];
        if (!j->keyring)
            continue;
        dm_keyring_set_waker(j->keyring, NULL, NULL);
        if (j->req)
            dm_keyring_fetch_end(j->keyring);
    }
    for (size_t i = 0; i < f->nsns; i++) {
        if (f->sns[i].cache)
            dm_sns_cache_set_waker(f->sns[i].cache, NULL, NULL);
    }
    dm_hclient_free(f->http); /* drops what is in flight without calling back */
    for (size_t i = 0; i < f->njobs; i++) {
        if (f->jobs[i].timer)
            event_free(f->jobs[i].timer);
        if (f->jobs[i].kick)
            event_free(f->jobs[i].kick);
    }
    for (size_t i = 0; i < f->nsns; i++) {
        if (f->sns[i].kick)
            event_free(f->sns[i].kick);
    }
    while (!LIST_EMPTY(&f->gets)) {
        sns_get *g = LIST_FIRST(&f->gets);
        LIST_REMOVE(g, link);
        sns_get_free(g);
    }
    free(f->jobs);
    free(f->sns);
    free(f->test_base);
    free(f);
}
