/* bench/evhttp204.c - the framework's own ceiling for bench/ceiling.sh: a bare libevent evhttp
 * server, one thread, default settings, answering 204 to any request. digestmapd's receiver is
 * built on the same evhttp, so its throughput divided by this server's is the share of what
 * the framework allows that digestmapd reaches (bench/README.md).
 *
 * Usage: evhttp204 PORT   (listens on 127.0.0.1:PORT)
 * On SIGTERM or SIGINT it stops and prints "requests: N" and "body bytes: N" on stdout, so the
 * bench can check that the POST body really arrived (evhttp reads the whole body before the
 * callback runs) and divide CPU time by an exact request count.
 * Built by bench/lib.sh (bench_tool), not by CMake: a bench tool, not part of digestmap. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned long long requests, body_bytes;

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    requests++;
    body_bytes += evbuffer_get_length(evhttp_request_get_input_buffer(req));
    evhttp_send_reply(req, 204, "No Content", NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *base)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
    int port = argc == 2 ? atoi(argv[1]) : 0;
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: evhttp204 PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    if (!http) {
        fprintf(stderr, "evhttp204: cannot create the event base\n");
        return 1;
    }
    evhttp_set_gencb(http, on_request, NULL);
    evhttp_set_max_body_size(http, 1 << 20); /* nginx204.conf: client_max_body_size 1m */
    if (evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)port) != 0) {
        fprintf(stderr, "evhttp204: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    struct event *term = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *intr = evsignal_new(base, SIGINT, on_signal, base);
    if (!term || !intr || evsignal_add(term, NULL) != 0 || evsignal_add(intr, NULL) != 0) {
        fprintf(stderr, "evhttp204: cannot catch signals\n");
        return 1;
    }
    event_base_dispatch(base);
    printf("requests: %llu\nbody bytes: %llu\n", requests, body_bytes);
    event_free(term);
    event_free(intr);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
