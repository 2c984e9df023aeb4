/* test_hclient.c - dm_hclient against an in-process evhttp server on the same event_base:
 * request shape, response status/headers/body, body cap, deadline, refused connection,
 * unusable URLs, cancel, free with a request in flight, and a pool's kept-alive connections
 * (reused after a complete answer, not after Connection: close; none without a pool). */
#include "dm_common.h"
#include "dm_hclient.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <cmocka.h>

typedef struct fixture {
    struct event_base *base;
    struct evhttp *http;
    int port;
    dm_hclient *c;
    struct event *watchdog;
    /* what the server saw */
    char method[8], path[64], body[64], sig[64];
    char heads[512]; /* every request header, "name=value;" in order */
    /* what the client got */
    int calls;
    int status;
    char error[DM_HCLIENT_ERRLEN];
    char retry_after[32];
    char rbody[128];
    /* keep-alive: per request, the client's port as the server saw it, and the client's view */
    int peer_port[8];
    char connection[8][16]; /* the request's Connection header */
    bool reused[8];
    int nseen;
} fixture;

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fixture *f = arg;
    event_base_loopbreak(f->base);
    fail_msg("watchdog: no callback");
}

/* Paths: /ok (503 + Retry-After + body), /big (200 with 100 bytes), /hang (no answer). */
static void on_server(struct evhttp_request *req, void *arg)
{
    fixture *f = arg;
    const char *uri = evhttp_request_get_uri(req);
    snprintf(f->method, sizeof f->method, "%s",
             evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" : "other");
    snprintf(f->path, sizeof f->path, "%s", uri);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n >= sizeof f->body)
        n = sizeof f->body - 1;
    evbuffer_remove(in, f->body, n);
    f->body[n] = '\0';
    const char *sig = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Sig");
    snprintf(f->sig, sizeof f->sig, "%s", sig ? sig : "");
    f->heads[0] = '\0';
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next)
    {
        size_t used = strlen(f->heads);
        snprintf(f->heads + used, sizeof f->heads - used, "%s=%s;", kv->key, kv->value);
    }
    if (f->nseen < 8) {
        char *addr;
        ev_uint16_t port;
        evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
        const char *conn = evhttp_find_header(evhttp_request_get_input_headers(req), "Connection");
        f->peer_port[f->nseen] = port;
        snprintf(f->connection[f->nseen], sizeof f->connection[0], "%s", conn ? conn : "-");
        f->nseen++;
    }
    if (strcmp(uri, "/hang") == 0)
        return; /* never answered; freed with the server */
    struct evbuffer *out = evbuffer_new();
    if (strcmp(uri, "/close") == 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        evhttp_send_reply(req, 204, "No Content", NULL);
    } else if (strcmp(uri, "/big") == 0) {
        for (int i = 0; i < 10; i++)
            evbuffer_add(out, "0123456789", 10);
        evhttp_send_reply(req, 200, "OK", out);
    } else {
        evbuffer_add(out, "busy", 4);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "7");
        evhttp_send_reply(req, 503, "Busy", out);
    }
    evbuffer_free(out);
}

static void on_response(const dm_hclient_response *res, void *arg)
{
    fixture *f = arg;
    if (f->calls < 8)
        f->reused[f->calls] = res->reused;
    f->calls++;
    f->status = res->status;
    snprintf(f->error, sizeof f->error, "%s", res->error ? res->error : "");
    const char *ra = res->headers ? evhttp_find_header(res->headers, "Retry-After") : NULL;
    snprintf(f->retry_after, sizeof f->retry_after, "%s", ra ? ra : "");
    size_t n = res->body_len < sizeof f->rbody - 1 ? res->body_len : sizeof f->rbody - 1;
    if (res->body)
        memcpy(f->rbody, res->body, n);
    f->rbody[res->body ? n : 0] = '\0';
    event_base_loopbreak(f->base);
}

static int setup(void **state)
{
    fixture *f = dm_xcalloc(1, sizeof *f);
    char err[128];
    f->base = event_base_new();
    f->http = evhttp_new(f->base);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
    assert_non_null(bs);
    struct sockaddr_storage ss;
    ev_socklen_t len = sizeof ss;
    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &len);
    f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    evhttp_set_gencb(f->http, on_server, f);
    f->c = dm_hclient_new(f->base, err, sizeof err);
    assert_non_null(f->c);
    f->watchdog = evtimer_new(f->base, on_watchdog, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    dm_hclient_free(f->c);
    evhttp_free(f->http);
    event_free(f->watchdog);
    event_base_free(f->base);
    free(f);
    return 0;
}

static dm_hclient_req *start_in(fixture *f, dm_hclient_pool *pool, const char *path, int timeout_ms,
                                size_t max_body)
{
    static const dm_hclient_header h[] = {{"X-Sig", "sha256=abc"},
                                          {"Content-Type", "application/json"}};
    char url[128], err[DM_HCLIENT_ERRLEN];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->port, path);
    dm_hclient_request_opts o = {.method = "POST",
                                 .url = url,
                                 .headers = h,
                                 .nheaders = 2,
                                 .body = "{\"a\":1}",
                                 .body_len = 7,
                                 .timeout_ms = timeout_ms,
                                 .max_body = max_body,
                                 .pool = pool};
    int calls = f->calls;
    dm_hclient_req *r = dm_hclient_request(f->c, &o, on_response, f, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(f->calls, calls); /* never from inside the call */
    return r;
}

static dm_hclient_req *start(fixture *f, const char *path, int timeout_ms, size_t max_body)
{
    return start_in(f, NULL, path, timeout_ms, max_body);
}

static void run(fixture *f)
{
    struct timeval tv = {5, 0};
    evtimer_add(f->watchdog, &tv);
    event_base_dispatch(f->base);
    evtimer_del(f->watchdog);
}

static void test_response(void **state)
{
    fixture *f = *state;
    start(f, "/ok?q=1", 2000, 1024);
    run(f);
    assert_int_equal(f->calls, 1);
    assert_string_equal(f->method, "POST");
    assert_string_equal(f->path, "/ok?q=1");
    assert_string_equal(f->body, "{\"a\":1}");
    assert_string_equal(f->sig, "sha256=abc");
    assert_int_equal(f->status, 503);
    assert_string_equal(f->error, "");
    assert_string_equal(f->retry_after, "7");
    assert_string_equal(f->rbody, "busy");
}

/* The head as the server reads it: Content-Length and Host from the client, the caller's
 * headers in their order, each its own header; one that evhttp_add_header would refuse (a line
 * break in its value) left out, not smuggled in as a header of its own; Content-Length for a
 * PATCH body too (evhttp adds it for POST and PUT only). */
static void test_request_head(void **state)
{
    fixture *f = *state;
    static const dm_hclient_header h[] = {{"X-Sig", "sha256=abc"},
                                          {"X-Bad", "a\r\nX-Injected: 1"},
                                          {"X-Fold", "x\n\r\n       GET /smuggled HTTP/1.1"},
                                          {"X-Fold2", "a\r\n\tfolded"},
                                          {"host", "evil.example"},
                                          {"Content-Length", "0"},
                                          {"Transfer-Encoding", "chunked"},
                                          {"Content-Type", "application/json"},
                                          {"Idempotency-Key", "id-1"}};
    char url[128], err[DM_HCLIENT_ERRLEN], want[256];
    const char *methods[] = {"POST", "PATCH"};
    for (size_t i = 0; i < DM_ARRAY_LEN(methods); i++) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", f->port);
        dm_hclient_request_opts o = {.method = methods[i],
                                     .url = url,
                                     .headers = h,
                                     .nheaders = DM_ARRAY_LEN(h),
                                     .body = "{\"a\":1}",
                                     .body_len = 7,
                                     .timeout_ms = 2000,
                                     .max_body = 1024};
        assert_non_null(dm_hclient_request(f->c, &o, on_response, f, err, sizeof err));
        run(f);
        assert_int_equal(f->calls, (int)i + 1);
        assert_string_equal(f->body, "{\"a\":1}");
        snprintf(want, sizeof want,
                 "Content-Length=7;Host=127.0.0.1:%d;X-Sig=sha256=abc;"
                 "Content-Type=application/json;Idempotency-Key=id-1;Connection=close;",
                 f->port);
        assert_string_equal(f->heads, want);
    }
}

static void test_body_cap(void **state)
{
    fixture *f = *state;
    start(f, "/big", 2000, 10);
    run(f);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->status, 200); /* known from the headers */
    assert_string_equal(f->error, "response larger than 10 bytes");
}

static void test_deadline(void **state)
{
    fixture *f = *state;
    int64_t t0 = 0;
    struct timeval a, b;
    evutil_gettimeofday(&a, NULL);
    start(f, "/hang", 200, 1024);
    run(f);
    evutil_gettimeofday(&b, NULL);
    t0 = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_usec - a.tv_usec) / 1000;
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->status, 0);
    assert_string_equal(f->error, "timeout");
    assert_true(t0 >= 190 && t0 < 2000);
}

static void test_refused(void **state)
{
    fixture *f = *state;
    /* A port bound without listening refuses connections, and stays ours (no parallel test
     * can start listening on it) until the socket is closed. */
    evutil_socket_t fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    ev_socklen_t len = sizeof sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    int port = f->port;
    f->port = ntohs(sin.sin_port);
    start(f, "/", 2000, 1024);
    f->port = port;
    run(f);
    evutil_closesocket(fd);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->status, 0);
    assert_non_null(strstr(f->error, "connection failed"));
    assert_non_null(strstr(f->error, "refused"));
}

/* lenient_url: a path and query RFC 3986 does not allow (as SNS URLs may have) are sent as
 * they are; scheme, host and user info are still checked. Without it they are refused. */
static void test_lenient_url(void **state)
{
    fixture *f = *state;
    char url[128], err[DM_HCLIENT_ERRLEN];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/a|b?q={x}", f->port);
    dm_hclient_request_opts o = {.method = "GET", .url = url, .timeout_ms = 2000, .max_body = 1024};
    err[0] = '\0';
    assert_null(dm_hclient_request(f->c, &o, on_response, f, err, sizeof err));
    assert_string_equal(err, "not an http(s) URL");
    o.lenient_url = true;
    assert_non_null(dm_hclient_request(f->c, &o, on_response, f, err, sizeof err));
    run(f);
    assert_int_equal(f->calls, 1);
    assert_string_equal(f->path, "/a|b?q={x}");
    assert_int_equal(f->status, 503);
    static const char *const bad[] = {"ftp://127.0.0.1/a|b", "http://u:p@127.0.0.1/a|b",
                                      "http:///a|b"};
    for (size_t i = 0; i < DM_ARRAY_LEN(bad); i++) {
        dm_hclient_request_opts b = {
            .method = "GET", .url = bad[i], .timeout_ms = 100, .max_body = 10, .lenient_url = true};
        err[0] = '\0';
        assert_null(dm_hclient_request(f->c, &b, on_response, f, err, sizeof err));
        assert_string_equal(err, "not an http(s) URL");
    }
    assert_int_equal(f->calls, 1);
}

static void test_unusable(void **state)
{
    fixture *f = *state;
    char err[DM_HCLIENT_ERRLEN];
    static const char *const urls[] = {"ftp://127.0.0.1/", "127.0.0.1:80", "http://",
                                       "http://u:p@127.0.0.1/", NULL};
    for (size_t i = 0; i < DM_ARRAY_LEN(urls); i++) {
        dm_hclient_request_opts o = {
            .method = "POST", .url = urls[i], .timeout_ms = 100, .max_body = 10};
        err[0] = '\0';
        assert_null(dm_hclient_request(f->c, &o, on_response, f, err, sizeof err));
        assert_true(err[0] != '\0');
    }
    dm_hclient_request_opts o = {.method = "BREW", .url = "http://127.0.0.1/", .timeout_ms = 100};
    assert_null(dm_hclient_request(f->c, &o, on_response, f, err, sizeof err));
    dm_hclient_request_opts t = {.method = "GET",
                                 .url = "https://127.0.0.1/",
                                 .timeout_ms = 100,
                                 .ca_file = "/nonexistent/ca.pem"};
    assert_null(dm_hclient_request(f->c, &t, on_response, f, err, sizeof err));
    assert_non_null(strstr(err, "cannot load CA file"));
    assert_int_equal(dm_hclient_add_trust(f->c, "/nonexistent/ca.pem", err, sizeof err), DM_EIO);
    assert_int_equal(f->calls, 0);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void test_cancel_and_free(void **state)
{
    fixture *f = *state;
    dm_hclient_req *r = start(f, "/hang", 300, 1024);
    dm_hclient_cancel(r);
    start(f, "/hang", 5000, 1024); /* left in flight for dm_hclient_free */
    struct event *tick = evtimer_new(f->base, on_tick, f->base);
    struct timeval tv = {0, 500000}; /* past the cancelled one's deadline */
    evtimer_add(tick, &tv);
    event_base_dispatch(f->base);
    event_free(tick);
    assert_int_equal(f->calls, 0);
}

/* A pool keeps the connection of a complete answer for the next request (HTTP/1.1, no
 * Connection header), and drops one whose answer said Connection: close; without a pool every
 * request has a connection of its own and says Connection: close. */
static void test_pool(void **state)
{
    fixture *f = *state;
    dm_hclient_pool *pool = dm_hclient_pool_new(f->c, 4, 0);
    assert_non_null(pool);
    static const char *const paths[] = {"/ok", "/ok", "/close", "/ok", "/ok"};
    for (int i = 0; i < 5; i++) {
        start_in(f, pool, paths[i], 2000, 1024);
        run(f);
        assert_int_equal(f->calls, i + 1);
        assert_string_equal(f->error, "");
    }
    start(f, "/ok", 2000, 1024);
    run(f);
    assert_int_equal(f->nseen, 6);
    /* one connection for the first three, a new one after Connection: close */
    assert_int_equal(f->peer_port[1], f->peer_port[0]);
    assert_int_equal(f->peer_port[2], f->peer_port[0]);
    assert_int_not_equal(f->peer_port[3], f->peer_port[0]);
    assert_int_equal(f->peer_port[4], f->peer_port[3]);
    assert_int_not_equal(f->peer_port[5], f->peer_port[4]);
    bool want[] = {false, true, true, false, true, false};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(f->reused[i], want[i]);
        assert_string_equal(f->connection[i], i < 5 ? "-" : "close");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lenient_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
