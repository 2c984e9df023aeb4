/* dm_cli_http.c - one HTTP(S) exchange with digestmapd through libevent's evhttp client, on a
 * private event_base dispatched until the answer (or the failure) arrives. https verifies the
 * server's certificate and name with OpenSSL. */
#include "dm_common.h"
#include "dm_cli.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DM_VERSION
#define DM_VERSION "0.0.0"
#endif

/* One attempt, connect to last byte. */
#define HTTP_TIMEOUT_SECONDS 30

typedef struct exchange {
    struct event_base *base;
    dm_cli_http_answer *ans;
    bool done;
    bool answered;
    bool have_error;
    enum evhttp_request_error error;
} exchange;

static void on_error(enum evhttp_request_error e, void *arg)
{
    exchange *x = arg;
    x->have_error = true;
    x->error = e;
}

static void on_done(struct evhttp_request *req, void *arg)
{
    exchange *x = arg;
    x->done = true;
    if (req && evhttp_request_get_response_code(req) != 0) {
        x->answered = true;
        x->ans->status = evhttp_request_get_response_code(req);
        const char *line = evhttp_request_get_response_code_line(req);
        x->ans->reason = line ? dm_xstrdup(line) : NULL;
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        x->ans->body = dm_xmalloc(n + 1);
        evbuffer_remove(in, x->ans->body, n);
        x->ans->body[n] = '\0';
        x->ans->len = n;
    }
    event_base_loopexit(x->base, NULL);
}

static const char *request_error_text(enum evhttp_request_error e)
{
    switch (e) {
    case EVREQ_HTTP_TIMEOUT: return "timed out";
    case EVREQ_HTTP_EOF: return "connection closed before an answer";
    case EVREQ_HTTP_INVALID_HEADER: return "invalid answer headers";
    case EVREQ_HTTP_BUFFER_ERROR: return "connection error";
    case EVREQ_HTTP_REQUEST_CANCEL: return "request cancelled";
    case EVREQ_HTTP_DATA_TOO_LONG: return "answer too long";
    }
    return "request failed";
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[16];
    return evutil_inet_pton(AF_INET, host, buf) == 1 || evutil_inet_pton(AF_INET6, host, buf) == 1;
}

static SSL *tls_new(const dm_cli *c, const char *host, SSL_CTX **ctxp, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (c->cacert) {
        if (SSL_CTX_load_verify_locations(ctx, c->cacert, NULL) != 1) {
            snprintf(err, errlen, "--cacert %s: cannot load PEM certificates: %s", c->cacert,
                     ERR_reason_error_string(ERR_peek_last_error())
                         ? ERR_reason_error_string(ERR_peek_last_error())
                         : "unknown error");
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, errlen, "cannot load the system's trusted certificates");
        goto fail;
    }
    if (!(ssl = SSL_new(ctx))) {
        snprintf(err, errlen, "cannot create a TLS connection");
        goto fail;
    }
    bool ip = is_ip_literal(host);
    if (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1
           : (SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1)) {
        snprintf(err, errlen, "cannot set the TLS server name \"%.200s\"", host);
        goto fail;
    }
    *ctxp = ctx;
    return ssl;
fail:
    if (ssl)
        SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

int dm_cli_http(const dm_cli *c, const char *method, const char *path,
                const dm_cli_header *headers, size_t nheaders, const char *body, size_t len,
                dm_cli_http_answer *ans, char *err, size_t errlen)
{
    memset(ans, 0, sizeof *ans);
    int rc = DM_EIO;
    struct evhttp_uri *u = evhttp_uri_parse(c->url);
    struct event_base *base = NULL;
    struct evhttp_connection *conn = NULL;
    struct bufferevent *bev = NULL;
    SSL_CTX *ssl_ctx = NULL;
    SSL *ssl = NULL;      /* owned until bev takes it */
    SSL *ssl_view = NULL; /* the connection's TLS state, owned by bev */
    char *target = NULL;
    if (!u) {
        snprintf(err, errlen, "bad URL \"%.200s\"", c->url);
        return DM_EINVAL;
    }
    bool https = strcmp(evhttp_uri_get_scheme(u), "https") == 0;
    const char *uhost = evhttp_uri_get_host(u);
    int port = evhttp_uri_get_port(u);
    if (port <= 0)
        port = https ? 443 : 80;
    char host[256];
    size_t hl = strlen(uhost);
    if (uhost[0] == '[' && hl > 2 && uhost[hl - 1] == ']')
        snprintf(host, sizeof host, "%.*s", (int)(hl - 2), uhost + 1);
    else
        snprintf(host, sizeof host, "%s", uhost);
    const char *prefix = evhttp_uri_get_path(u);
    size_t tn = strlen(prefix ? prefix : "") + strlen(path) + 1;
    target = dm_xmalloc(tn);
    snprintf(target, tn, "%s%s", prefix ? prefix : "", path);
    /* The base URL's path prefix is kept without its trailing slash (resolve strips it). */

    if (!(base = event_base_new())) {
        snprintf(err, errlen, "cannot create an event base");
        goto out;
    }
    if (https) {
        if (!(ssl = tls_new(c, host, &ssl_ctx, err, errlen)))
            goto out;
        bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!bev) {
            SSL_free(ssl);
            ssl = NULL;
            snprintf(err, errlen, "cannot create a TLS connection");
            goto out;
        }
        ssl_view = ssl;
        ssl = NULL;
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    }
    /* dnsbase NULL: names are resolved with a blocking lookup, fine in a client. */
    conn = evhttp_connection_base_bufferevent_new(base, NULL, bev, host, (unsigned short)port);
    if (!conn) {
        snprintf(err, errlen, "cannot create a connection to %s", c->url);
        goto out;
    }
    evhttp_connection_set_timeout(conn, HTTP_TIMEOUT_SECONDS);
    evhttp_connection_set_retries(conn, 0);

    exchange x = {.base = base, .ans = ans};
    struct evhttp_request *req = evhttp_request_new(on_done, &x);
    if (!req) {
        snprintf(err, errlen, "cannot create a request");
        goto out;
    }
    evhttp_request_set_error_cb(req, on_error);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    char hosthdr[300];
    if (strchr(host, ':'))
        snprintf(hosthdr, sizeof hosthdr, "[%s]:%d", host, port);
    else
        snprintf(hosthdr, sizeof hosthdr, "%s:%d", host, port);
    evhttp_add_header(oh, "Host", hosthdr);
    evhttp_add_header(oh, "User-Agent", "digestmap/" DM_VERSION);
    evhttp_add_header(oh, "Accept", "application/json");
    evhttp_add_header(oh, "Connection", "close");
    for (size_t i = 0; i < nheaders; i++)
        evhttp_add_header(oh, headers[i].name, headers[i].value);
    enum evhttp_cmd_type cmd = EVHTTP_REQ_GET;
    if (strcmp(method, "POST") == 0) {
        cmd = EVHTTP_REQ_POST;
        evhttp_add_header(oh, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
    }
    /* On failure evhttp_make_request frees the request itself. */
    if (evhttp_make_request(conn, req, cmd, target) != 0) {
        snprintf(err, errlen, "cannot send the request to %s", c->url);
        goto out;
    }
    event_base_dispatch(base);

    if (x.answered) {
        rc = DM_OK;
    } else {
        struct bufferevent *cb = evhttp_connection_get_bufferevent(conn);
        int dns = cb ? bufferevent_socket_get_dns_error(cb) : 0;
        long verify = ssl_view ? SSL_get_verify_result(ssl_view) : X509_V_OK;
        unsigned long tls_err = cb && ssl_view ? bufferevent_get_openssl_error(cb) : 0;
        const char *tls_reason = tls_err ? ERR_reason_error_string(tls_err) : NULL;
        if (dns) {
            snprintf(err, errlen, "cannot connect to %s: cannot resolve \"%s\": %s", c->url,
                     host, evutil_gai_strerror(dns));
        } else if (ssl_view && verify != X509_V_OK) {
            snprintf(err, errlen, "%s: TLS certificate verification failed: %s", c->url,
                     X509_verify_cert_error_string(verify));
        } else if (!x.have_error) {
            /* libevent 2.1 ends a request without an error code only when the connect was
             * refused (http.c, evhttp_connection_cb → evhttp_connection_cb_cleanup); errno
             * is gone by then. */
            snprintf(err, errlen, "cannot connect to %s: Connection refused", c->url);
        } else if (x.error == EVREQ_HTTP_TIMEOUT) {
            snprintf(err, errlen, "%s: no answer within %d s", c->url, HTTP_TIMEOUT_SECONDS);
            rc = DM_ETIMEOUT;
        } else if (tls_reason) {
            snprintf(err, errlen, "%s: TLS handshake failed: %s", c->url, tls_reason);
        } else {
            snprintf(err, errlen, "%s: %s", c->url, request_error_text(x.error));
        }
    }
out:
    if (conn)
        evhttp_connection_free(conn); /* frees bev, which frees ssl */
    else if (bev)
        bufferevent_free(bev);
    if (ssl)
        SSL_free(ssl);
    if (ssl_ctx)
        SSL_CTX_free(ssl_ctx);
    if (base)
        event_base_free(base);
    free(target);
    evhttp_uri_free(u);
    ERR_clear_error();
    return rc;
}

void dm_cli_http_answer_free(dm_cli_http_answer *ans)
{
    free(ans->body);
    free(ans->reason);
    memset(ans, 0, sizeof *ans);
}

void dm_cli_print_answer(FILE *out, const dm_cli_http_answer *ans, char *why, size_t whylen)
{
    if (whylen)
        why[0] = '\0';
    json_error_t jerr;
    json_t *j = ans->len ? json_loadb(ans->body, ans->len, 0, &jerr) : NULL;
    if (!out) {
        /* only the error member is wanted */
    } else if (j) {
        json_dumpf(j, out, JSON_INDENT(2));
        fputc('\n', out);
    } else if (ans->len) {
        fwrite(ans->body, 1, ans->len, out);
        if (ans->body[ans->len - 1] != '\n')
            fputc('\n', out);
    }
    if (j) {
        const char *e = json_string_value(json_object_get(j, "error"));
        if (e && whylen)
            snprintf(why, whylen, "%s", e);
        json_decref(j);
    }
    if (out)
        fflush(out);
}
