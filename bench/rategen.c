/* bench/rategen.c - a rate-limited HTTP load generator for bench/latency.sh, bench/rss.sh and
 * the smoke mode of bench/run.sh (bench/README.md). One thread, plain non-blocking sockets and
 * epoll, responses parsed by http_parser (a digestmap dependency already).
 *
 * Open loop: with -r R, request i has an intended send time start + i / R, whatever happened to
 * the requests before it. It leaves on the first idle connection at or after that time (in
 * order; one request at a time per keep-alive connection, no pipelining), and its latency is
 * measured from the INTENDED time, so a server that stalls pays for every request that queued
 * behind the stall (no coordinated omission). "late" counts requests that left more than -l µs
 * after their intended time (every connection was busy, or the generator itself was behind).
 * With -r 0 it is closed loop: each connection sends the next request as soon as it has its
 * answer, and latency is measured from the actual send.
 *
 * Modes (the bodies and digests of bench/push.lua):
 *   push  every request the ACR push of a new digest k = 0, 1, 2, ...
 *   join  request 2k is the ACR push of digest k, request 2k+1 the build event of digest k.
 *         The two are not ordered on the wire (they may travel on different connections), and
 *         the edge is durable once both are parked: the push->edge latency of pair k is the time
 *         from the intended send of its SECOND request (2k+1) until the later of the pair's two
 *         2xx answers. Normally that is the build's answer, which digestmapd sends only after
 *         park.lua wrote the edge; when the build overtakes the push, the push's script writes
 *         the edge and its answer is the later one. Measured with -r only.
 * Digests: sha256:<salt 8>ffff<k 8 hex><44 fixed>, salt from -s or random.
 *
 * Prints "name: value" lines (counts, percentiles in ms) and a bucket table; exits 0 once it
 * ran (the caller checks the counts), 2 on bad usage, 1 when it cannot start. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* --- histogram: log-linear, 32 sub-buckets per power of two (about 3 % resolution), in µs --- */
#define SUB_BITS 5
#define SUB      (1 << SUB_BITS)
#define NBUCKETS (64 * SUB)

struct hist {
    uint64_t count[NBUCKETS];
    uint64_t n, max;
};

static int bucket_of(uint64_t v)
{
    if (v < 2 * SUB)
        return (int)v;
    int e = 63 - __builtin_clzll(v);
    return (e - SUB_BITS) * SUB + (int)(v >> (e - SUB_BITS));
}

static uint64_t bucket_low(int b)
{
    if (b < 2 * SUB)
        return (uint64_t)b;
    int e = b / SUB + SUB_BITS - 1;
    return (uint64_t)(b % SUB + SUB) << (e - SUB_BITS);
}

static void hist_add(struct hist *h, uint64_t us)
{
    h->count[bucket_of(us)]++;
    h->n++;
    if (us > h->max)
        h->max = us;
}

/* The highest value of the bucket holding the p-th percentile (never above the maximum). */
static uint64_t hist_pct(const struct hist *h, double p)
{
    uint64_t want = (uint64_t)(p / 100.0 * (double)h->n + 0.999999), seen = 0;
    for (int b = 0; b < NBUCKETS; b++) {
        seen += h->count[b];
        if (seen >= want && seen > 0) {
            uint64_t hi = bucket_low(b + 1) - 1;
            return hi < h->max ? hi : h->max;
        }
    }
    return h->max;
}

static void hist_print(const struct hist *h, const char *name)
{
    static const double pcts[] = {50, 90, 99, 99.9};
    static const char *const labels[] = {"p50", "p90", "p99", "p99.9"};
    for (int i = 0; i < 4; i++)
        printf("%s %s ms: %.3f\n", name, labels[i], (double)hist_pct(h, pcts[i]) / 1000.0);
    printf("%s max ms: %.3f\n", name, (double)h->max / 1000.0);
    printf("%s count: %llu\n", name, (unsigned long long)h->n);
    if (h->n == 0)
        return;
    /* The table merges the fine buckets into quarters of a power of two (8 fine buckets each;
     * below 64 µs, 16 µs wide rows). */
    printf("# %s: bucket table (ms, from inclusive, to exclusive)\n", name);
    printf("# %10s %10s %10s %8s\n", "from", "to", "count", "cum %");
    uint64_t cum = 0;
    int b = 0;
    while (b < NBUCKETS) {
        int width = b < 2 * SUB ? 16 : SUB / 4;
        uint64_t c = 0;
        for (int j = b; j < b + width; j++)
            c += h->count[j];
        cum += c;
        if (c > 0) {
            int bar = (int)(c * 40 / h->n);
            printf("# %10.3f %10.3f %10llu %8.3f %.*s\n", (double)bucket_low(b) / 1000.0,
                   (double)bucket_low(b + width) / 1000.0, (unsigned long long)c,
                   100.0 * (double)cum / (double)h->n, bar,
                   "########################################");
        }
        if (cum == h->n)
            break;
        b += width;
    }
}

/* --- requests ------------------------------------------------------------------------------ */
static const char PUSH_HEAD[] = "{\"id\":\"bench-";
static const char PUSH_MID[] =
    "\",\"timestamp\":\"2026-11-28T14:02:11.483920117Z\",\"action\":\"push\",\"target\":{"
    "\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"size\":1609,\"digest\":"
    "\"sha256:";
static const char PUSH_TAIL[] =
    "\",\"length\":1609,\"repository\":\"team/api\",\"tag\":\"1.4.0\"},\"request\":{"
    "\"id\":\"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0\",\"host\":\"contoso.azurecr.io\","
    "\"method\":\"PUT\",\"useragent\":\"buildkit/v0.16\"}}";
static const char BUILD_HEAD[] =
    "{\"images\":[{\"name\":\"contoso.azurecr.io/team/api\",\"digest\":\"sha256:";
static const char BUILD_TAIL[] =
    "\",\"tags\":[\"1.4.0\",\"latest\"]}],\"built_at\":\"2026-11-28T14:02:14Z\","
    "\"run\":{\"provider\":\"github\",\"repository\":\"acme/api\",\"run_id\":\"12094877312\","
    "\"run_attempt\":\"1\",\"commit\":\"3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d\","
    "\"ref\":\"refs/heads/main\",\"workflow\":\"release\",\"actor\":\"mona\"}}";

static struct {
    const char *host, *acr_path, *build_path, *acr_auth, *build_auth;
    char salt[9];
    int port, conns;
    double rate, secs, drain;
    uint64_t max_requests, late_us;
    bool join;
} opt = {.host = "127.0.0.1",
         .acr_path = "/v1/registry/acr",
         .build_path = "/v1/builds",
         .acr_auth = "Bearer dev-acr-token",
         .build_auth = "Bearer dev-ci-token",
         .conns = 8,
         .secs = 10,
         .drain = 10,
         .late_us = 1000};

/* The request i into buf (room for 2048 bytes); returns its length. */
static size_t format_request(uint64_t i, char *buf)
{
    uint64_t k = opt.join ? i / 2 : i;
    bool build = opt.join && i % 2 == 1;
    char digest[65], body[1024];
    snprintf(digest, sizeof digest, "%sffff%08llx%s", opt.salt, (unsigned long long)k,
             "0123456789a0123456789a0123456789a0123456789a");
    int blen = build ? snprintf(body, sizeof body, "%s%s%s", BUILD_HEAD, digest, BUILD_TAIL)
                     : snprintf(body, sizeof body, "%s%s%s%s%s", PUSH_HEAD, digest, PUSH_MID,
                                digest, PUSH_TAIL);
    int n = snprintf(buf, 2048,
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     "Authorization: %s\r\nContent-Length: %d\r\n\r\n%s",
                     build ? opt.build_path : opt.acr_path, opt.host, opt.port,
                     build ? opt.build_auth : opt.acr_auth, blen, body);
    return (size_t)n;
}

/* --- connections --------------------------------------------------------------------------- */
enum {
    DOWN,
    CONNECTING,
    IDLE,
    BUSY
};

struct conn {
    int fd, state;
    http_parser parser;
    bool complete;
    uint64_t req, sent_at, retry_at;
    char out[2048];
    size_t outlen, outoff;
};

static struct {
    int ep;
    struct conn *conns;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint64_t start, next, total, inflight, last_activity;
    uint64_t sent, ok, non2xx, errors, late, pairs_ok, connect_failures;
    unsigned char *pairs; /* join: per pair, answers so far (bits 0-1) and 4 = one failed */
    struct hist req_hist, pair_hist;
} g;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t intended(uint64_t i)
{
    return g.start + (uint64_t)((double)i * 1e9 / opt.rate);
}

static int on_complete(http_parser *p)
{
    ((struct conn *)p->data)->complete = true;
    http_parser_pause(p, 1); /* one answer per request: never read past it */
    return 0;
}

static const http_parser_settings SETTINGS = {.on_message_complete = on_complete};

static void set_events(struct conn *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &e);
}

static void conn_open(struct conn *c, uint64_t now)
{
    c->fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (c->fd >= 0)
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->fd < 0 ||
        (connect(c->fd, (struct sockaddr *)&g.addr, g.addrlen) != 0 && errno != EINPROGRESS)) {
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        c->state = DOWN;
        c->retry_at = now + 100000000u; /* 100 ms */
        g.connect_failures++;
        return;
    }
    c->state = CONNECTING;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(g.ep, EPOLL_CTL_ADD, c->fd, &e);
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->complete = false;
}

static void pair_done(uint64_t i, bool good, uint64_t now)
{
    if (!opt.join)
        return;
    unsigned char *p = &g.pairs[i / 2];
    *p = (unsigned char)(*p + 1 + (good ? 0 : 4));
    if ((*p & 3) == 2 && !(*p & 4)) {
        g.pairs_ok++;
        if (opt.rate > 0)
            hist_add(&g.pair_hist, (now - intended(i | 1)) / 1000);
    }
}

/* The connection failed or the server closed it: a request in flight is an error. */
static void conn_fail(struct conn *c, uint64_t now)
{
    if (c->state == BUSY) {
        g.errors++;
        g.inflight--;
        pair_done(c->req, false, now);
    } else if (c->state == CONNECTING) {
        g.connect_failures++;
    }
    epoll_ctl(g.ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = DOWN;
    c->retry_at = now + 100000000u;
}

static void conn_flush(struct conn *c, uint64_t now)
{
    while (c->outoff < c->outlen) {
        ssize_t w = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
        if (w < 0 && errno == EAGAIN) {
            set_events(c, EPOLLIN | EPOLLOUT);
            return;
        }
        if (w <= 0) {
            conn_fail(c, now);
            return;
        }
        c->outoff += (size_t)w;
    }
    set_events(c, EPOLLIN);
}

static void conn_send(struct conn *c, uint64_t i, uint64_t now)
{
    c->req = i;
    c->sent_at = now;
    c->outlen = format_request(i, c->out);
    c->outoff = 0;
    c->state = BUSY;
    g.inflight++;
    g.sent++;
    g.last_activity = now;
    if (opt.rate > 0 && now > intended(i) + opt.late_us * 1000)
        g.late++;
    conn_flush(c, now);
}

static void conn_read(struct conn *c, uint64_t now)
{
    char buf[8192];
    ssize_t r = read(c->fd, buf, sizeof buf);
    if (r < 0 && errno == EAGAIN)
        return;
    if (r <= 0 || c->state != BUSY) { /* EOF, error, or bytes nobody asked for */
        conn_fail(c, now);
        return;
    }
    size_t used = http_parser_execute(&c->parser, &SETTINGS, buf, (size_t)r);
    if (!c->complete) {
        if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK)
            conn_fail(c, now);
        return;
    }
    bool extra = used < (size_t)r, keep = http_should_keep_alive(&c->parser);
    unsigned status = c->parser.status_code;
    uint64_t from = opt.rate > 0 ? intended(c->req) : c->sent_at;
    hist_add(&g.req_hist, (now - from) / 1000);
    bool good = status >= 200 && status < 300;
    if (good)
        g.ok++;
    else
        g.non2xx++;
    pair_done(c->req, good, now);
    g.inflight--;
    g.last_activity = now;
    c->state = IDLE;
    c->complete = false;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    if (extra || !keep) { /* the server closes it (or sent garbage): open a new one */
        epoll_ctl(g.ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        if (extra)
            g.errors++;
        conn_open(c, now);
    }
}

static void on_event(struct conn *c, uint32_t ev, uint64_t now)
{
    if (c->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (ev & (EPOLLERR | EPOLLHUP))) {
            conn_fail(c, now);
            return;
        }
        c->state = IDLE;
        set_events(c, EPOLLIN);
        return;
    }
    if (ev & EPOLLIN)
        conn_read(c, now);
    else if (ev & (EPOLLERR | EPOLLHUP))
        conn_fail(c, now);
    if (c->fd >= 0 && c->state == BUSY && (ev & EPOLLOUT) && c->outoff < c->outlen)
        conn_flush(c, now);
}

/* epoll_pwait2 waits with nanosecond precision; where the kernel lacks it, epoll_wait rounds
 * down to milliseconds (and spins through the last one). */
static int wait_events(struct epoll_event *ev, int n, uint64_t timeout_ns)
{
    static bool no_pwait2;
    if (!no_pwait2) {
        struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};
        int r = epoll_pwait2(g.ep, ev, n, &ts, NULL);
        if (r >= 0 || errno != ENOSYS)
            return r;
        no_pwait2 = true;
    }
    return epoll_wait(g.ep, ev, n, (int)(timeout_ns / 1000000u));
}

static int usage(void)
{
    fprintf(
        stderr,
        "usage: rategen -p PORT [-H HOST] [-c CONNS] [-r RATE] [-d SECONDS] [-n REQUESTS]\n"
        "               [-m push|join] [-s SALT8HEX] [-a ACR_AUTH] [-b BUILD_AUTH]\n"
        "               [-A ACR_PATH] [-B BUILD_PATH] [-l LATE_US] [-D DRAIN_SECONDS]\n"
        "  -r RATE  total requests per second, open loop (0: closed loop, as fast as answered)\n"
        "  sending stops after SECONDS (default 10) or REQUESTS, whichever comes first;\n"
        "  then it waits at most DRAIN_SECONDS (10) for the answers still due\n"
        "  (open loop: scheduled requests still leave, late, for DRAIN_SECONDS more);\n"
        "  join in closed loop needs -n\n");
    return 2;
}

static int parse_args(int argc, char **argv)
{
    int ch;
    while ((ch = getopt(argc, argv, "p:H:c:r:d:n:m:s:a:b:A:B:l:D:")) != -1) {
        switch (ch) {
        case 'p':
            opt.port = atoi(optarg);
            break;
        case 'H':
            opt.host = optarg;
            break;
        case 'c':
            opt.conns = atoi(optarg);
            break;
        case 'r':
            opt.rate = atof(optarg);
            break;
        case 'd':
            opt.secs = atof(optarg);
            break;
        case 'n':
            opt.max_requests = strtoull(optarg, NULL, 10);
            break;
        case 'm':
            if (strcmp(optarg, "push") != 0 && strcmp(optarg, "join") != 0)
                return usage();
            opt.join = strcmp(optarg, "join") == 0;
            break;
        case 's':
            if (strlen(optarg) != 8 || strspn(optarg, "0123456789abcdef") != 8)
                return usage();
            memcpy(opt.salt, optarg, 9);
            break;
        case 'a':
            opt.acr_auth = optarg;
            break;
        case 'b':
            opt.build_auth = optarg;
            break;
        case 'A':
            opt.acr_path = optarg;
            break;
        case 'B':
            opt.build_path = optarg;
            break;
        case 'l':
            opt.late_us = strtoull(optarg, NULL, 10);
            break;
        case 'D':
            opt.drain = atof(optarg);
            break;
        default:
            return usage();
        }
    }
    if (optind != argc || opt.port <= 0 || opt.port > 65535 || opt.conns < 1 || opt.conns > 10000 ||
        opt.rate < 0 || opt.secs <= 0 || opt.drain < 0 ||
        (opt.join && opt.rate == 0 && opt.max_requests == 0)) /* join counts pairs: a bound */
        return usage();
    if (!opt.salt[0]) {
        srand((unsigned)now_ns() ^ (unsigned)getpid());
        snprintf(opt.salt, sizeof opt.salt, "%04x%04x", rand() & 0xffff, rand() & 0xffff);
    }
    return 0;
}

static int resolve(void)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    char port[8];
    snprintf(port, sizeof port, "%d", opt.port);
    if (getaddrinfo(opt.host, port, &hints, &res) != 0) {
        fprintf(stderr, "rategen: cannot resolve %s\n", opt.host);
        return -1;
    }
    memcpy(&g.addr, res->ai_addr, res->ai_addrlen);
    g.addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Open every connection and wait (at most 5 s) until they are all up, so that connecting is
 * not part of the first requests' latency. */
static int connect_all(void)
{
    uint64_t now = now_ns(), until = now + 5000000000u;
    for (int i = 0; i < opt.conns; i++)
        conn_open(&g.conns[i], now);
    struct epoll_event ev[64];
    for (;;) {
        int up = 0;
        for (int i = 0; i < opt.conns; i++)
            up += g.conns[i].state == IDLE;
        if (up == opt.conns)
            return 0;
        now = now_ns();
        if (now >= until) {
            fprintf(stderr, "rategen: only %d of %d connections to %s:%d\n", up, opt.conns,
                    opt.host, opt.port);
            return -1;
        }
        int n = wait_events(ev, 64, 10000000u);
        for (int i = 0; i < n; i++)
            on_event(ev[i].data.ptr, ev[i].events, now_ns());
        for (int i = 0; i < opt.conns; i++)
            if (g.conns[i].state == DOWN && now_ns() >= g.conns[i].retry_at)
                conn_open(&g.conns[i], now_ns());
    }
}

int main(int argc, char **argv)
{
    int bad = parse_args(argc, argv);
    if (bad)
        return bad;
    signal(SIGPIPE, SIG_IGN);
    if (resolve() != 0)
        return 1;
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    g.conns = calloc((size_t)opt.conns, sizeof *g.conns);
    g.total = opt.rate > 0 ? (uint64_t)(opt.rate * opt.secs) : UINT64_MAX;
    if (opt.max_requests && opt.max_requests < g.total)
        g.total = opt.max_requests;
    if (opt.join && g.total != UINT64_MAX)
        g.total &= ~(uint64_t)1; /* whole pairs */
    g.pairs = opt.join ? calloc(g.total / 2 + 1, 1) : NULL;
    if (g.ep < 0 || !g.conns || (opt.join && !g.pairs)) {
        fprintf(stderr, "rategen: out of memory\n");
        return 1;
    }
    if (connect_all() != 0)
        return 1;

    g.start = g.last_activity = now_ns();
    uint64_t send_until = g.start + (uint64_t)(opt.secs * 1e9);
    uint64_t drain_ns = (uint64_t)(opt.drain * 1e9);
    struct epoll_event ev[256];
    for (;;) {
        uint64_t now = now_ns();
        /* Open loop: every scheduled request leaves, late if need be (for at most the drain
         * time after the schedule); closed loop: nothing new after SECONDS. */
        uint64_t stop_at = opt.rate > 0 ? send_until + drain_ns : send_until;
        bool sending = g.next < g.total && now < stop_at;
        /* Hand every request that is due to an idle connection, oldest first. */
        bool have_idle = false;
        for (int i = 0; i < opt.conns; i++) {
            struct conn *c = &g.conns[i];
            if (c->state == DOWN && sending && now >= c->retry_at)
                conn_open(c, now);
            if (c->state != IDLE)
                continue;
            if (!sending || (opt.rate > 0 && intended(g.next) > now)) {
                have_idle = true;
                continue;
            }
            conn_send(c, g.next++, now);
            sending = g.next < g.total;
        }
        if (!sending && g.inflight == 0)
            break;
        if (!sending && now >= g.last_activity + drain_ns)
            break; /* answers overdue: give up on them (counted as unanswered) */
        uint64_t wake = now + 100000000u; /* at least every 100 ms: retries, the deadlines */
        if (sending && have_idle && opt.rate > 0 && intended(g.next) < wake)
            wake = intended(g.next);
        int n = wait_events(ev, 256, wake > now ? wake - now : 0);
        now = now_ns();
        for (int i = 0; i < n; i++)
            on_event(ev[i].data.ptr, ev[i].events, now);
    }

    double elapsed = (double)(now_ns() - g.start) / 1e9;
    uint64_t scheduled = opt.rate > 0 ? g.total : g.sent;
    printf("mode: %s\nconnections: %d\nrate: %.0f\nsalt: %s\n", opt.join ? "join" : "push",
           opt.conns, opt.rate, opt.salt);
    printf("scheduled: %llu\nsent: %llu\n2xx: %llu\nnon-2xx: %llu\nerrors: %llu\n",
           (unsigned long long)scheduled, (unsigned long long)g.sent, (unsigned long long)g.ok,
           (unsigned long long)g.non2xx, (unsigned long long)g.errors);
    printf("late: %llu\nunsent: %llu\nunanswered: %llu\nconnect failures: %llu\n",
           (unsigned long long)g.late, (unsigned long long)(scheduled - g.sent),
           (unsigned long long)g.inflight, (unsigned long long)g.connect_failures);
    if (opt.join)
        printf("pairs answered: %llu\n", (unsigned long long)g.pairs_ok);
    printf("elapsed s: %.3f\nanswered/s: %.1f\n", elapsed,
           elapsed > 0 ? (double)(g.ok + g.non2xx) / elapsed : 0.0);
    hist_print(&g.req_hist, opt.rate > 0 ? "latency" : "latency (closed loop)");
    if (opt.join && opt.rate > 0)
        hist_print(&g.pair_hist, "push->edge");
    for (int i = 0; i < opt.conns; i++)
        if (g.conns[i].fd >= 0)
            close(g.conns[i].fd);
    free(g.conns);
    free(g.pairs);
    close(g.ep);
    return 0;
}
