/* test_redis.c - the Redis client and the sweeper may be freed from inside one of their own
 * callbacks (the drain does it: the last answered request ends the worker's loop), with
 * commands still queued behind: every queued command still completes, once, with
 * DM_EUNAVAIL, and nothing touches freed memory (run under ASan to see the difference). A
 * server that refuses a script's flags line gets the script without it.
 *
 * Needs a real redis-server (on PATH): each test starts its own on a unix socket in a temporary
 * directory; the server dies with the test (PR_SET_PDEATHSIG) even when ctest kills it. */
#include "dm_common.h"
#include "dm_join.h"
#include "dm_metrics.h"
#include "dm_redis.h"
#include "dm_scripts.h"
#include "dm_sweep.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <dirent.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LSAN_DISABLE() __lsan_disable()
#define LSAN_ENABLE()  __lsan_enable()
#else
#define LSAN_DISABLE() ((void)0)
#define LSAN_ENABLE()  ((void)0)
#endif

typedef struct server {
    char dir[64];
    char sock[96];
    pid_t pid;
} server;

static bool can_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static int server_start(void **state)
{
    server *s = dm_xcalloc(1, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/dmredis.XXXXXX");
    if (!mkdtemp(s->dir))
        return -1;
    snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
    pid_t parent = getpid();
    s->pid = fork();
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphan, even when ctest kills us */
        if (getppid() != parent)
            _exit(1);
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", s->sock, "--dir",
               s->dir, "--save", "", "--appendonly", "no", "--logfile", "redis.log", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 400 && !can_connect(s->sock); i++) {
        struct timespec ts = {0, 25 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (!can_connect(s->sock))
        return -1;
    *state = s;
    return 0;
}

static int server_stop(void **state)
{
    server *s = *state;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    char path[160];
    snprintf(path, sizeof path, "%s/redis.log", s->dir);
    unlink(path);
    unlink(s->sock);
    rmdir(s->dir);
    free(s);
    return 0;
}

/* A synchronous command on a connection of its own (the test's side channel). */
static void server_command(const server *s, const char *cmd)
{
    redisContext *c = redisConnectUnix(s->sock);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisReply *rep = redisCommand(c, cmd);
    assert_non_null(rep);
    assert_int_not_equal(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    redisFree(c);
}

/* Run @p base until @p done is true (5 s at most: a failing test must not hang). */
static void run_until(struct event_base *base, const bool *done)
{
    for (int i = 0; i < 5000 && !*done; i++) {
        struct timeval tv = {0, 1000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    assert_true(*done);
}

static void on_ready(bool ready, void *arg)
{
    if (ready)
        *(bool *)arg = true;
}

static dm_redis *client_new(struct event_base *base, const server *s, int timeout_ms, bool *ready)
{
    dm_redis_opts o = {.unix_path = s->sock,
                       .connect_timeout_ms = 1000,
                       .command_timeout_ms = timeout_ms,
                       .max_inflight = 100,
                       .scripts = dm_scripts(),
                       .nscripts = DM_SCRIPT_COUNT,
                       .name = "test",
                       .on_ready = on_ready,
                       .on_ready_arg = ready};
    dm_redis *r = dm_redis_new(base, &o);
    assert_non_null(r);
    run_until(base, ready);
    return r;
}

/* The commands of one test: what each completion saw, and who frees the client when. */
typedef struct calls {
    dm_redis *r;
    int free_at;  /**< the completion (0-based) that frees the client, -1: none */
    int n;        /**< completions so far */
    int errs[16]; /**< err of each completion, in order */
    bool done;
    int want;
} calls;

typedef struct call {
    calls *all;
    int index; /**< the order it was queued in */
} call;

static void on_call(int err, redisReply *rep, void *arg)
{
    (void)rep;
    call *c = arg;
    calls *a = c->all;
    assert_int_equal(c->index, a->n); /* FIFO, each exactly once */
    a->errs[a->n++] = err;
    if (a->n - 1 == a->free_at)
        dm_redis_free(a->r); /* from inside the client's own callback, more queued behind */
    if (a->n == a->want)
        a->done = true;
}

static void queue(calls *a, call *c, int n, const char **argv, int argc)
{
    size_t lens[8];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    for (int i = 0; i < n; i++) {
        c[i] = (call){.all = a, .index = i};
        assert_int_equal(dm_redis_command(a->r, NULL, on_call, &c[i], argc, argv, lens), DM_OK);
    }
}

/* A reply's completion frees the client while later commands are queued on it. */
static void test_free_inside_reply(void **state)
{
    server *s = *state;
    struct event_base *base = event_base_new();
    bool ready = false;
    calls a = {.free_at = 0, .want = 4};
    a.r = client_new(base, s, 2000, &ready);
    call c[4];
    const char *ping[] = {"PING"};
    queue(&a, c, 4, ping, 1);
    run_until(base, &a.done);
    assert_int_equal(a.errs[0], DM_OK);
    /* The rest were queued on a client that no longer exists: each fails, once. */
    for (int i = 1; i < 4; i++)
        assert_int_equal(a.errs[i], DM_EUNAVAIL);
    event_base_free(base);
}

/* A command deadline tears the connection down; the first failed completion frees the client
 * while the teardown still has commands to fail and its own state to update. */
static void test_free_inside_timeout(void **state)
{
    server *s = *state;
    struct event_base *base = event_base_new();
    bool ready = false;
    calls a = {.free_at = 0, .want = 3};
    a.r = client_new(base, s, 100, &ready);
    /* Every command waits behind the pause, past its 100 ms deadline. */
    server_command(s, "CLIENT PAUSE 600 ALL");
    call c[3];
    const char *ping[] = {"PING"};
    queue(&a, c, 3, ping, 1);
    run_until(base, &a.done);
    assert_int_equal(a.errs[0], DM_ETIMEOUT);
    for (int i = 1; i < 3; i++)
        assert_true(a.errs[i] == DM_ETIMEOUT || a.errs[i] == DM_EUNAVAIL);
    event_base_free(base);
}

/* dm_redis_free outside any callback still fails every queued command before it returns. */
static void test_free_outside(void **state)
{
    server *s = *state;
    struct event_base *base = event_base_new();
    bool ready = false;
    calls a = {.free_at = -1, .want = 3};
    a.r = client_new(base, s, 2000, &ready);
    call c[3];
    const char *ping[] = {"PING"};
    queue(&a, c, 3, ping, 1);
    dm_redis_free(a.r);
    assert_true(a.done);
    for (int i = 0; i < 3; i++)
        assert_int_equal(a.errs[i], DM_EUNAVAIL);
    event_base_free(base);
}

static void on_sweep(const dm_sweep_stats *st, void *arg)
{
    (void)st;
    (*(int *)arg)++;
}

/* The sweeper freed while its claim is in flight: the claim's completion must find it
 * still there, and free it (dm_sweep.h: in-flight commands finish harmlessly). */
static void test_sweeper_free_in_flight(void **state)
{
    server *s = *state;
    struct event_base *base = event_base_new();
    bool ready = false;
    dm_redis *r = client_new(base, s, 2000, &ready);
    dm_join_conf conf = {.prefix = "dm", .shards = 2, .window_ms = 1000, .mapping_ttl_ms = 1000};
    server_command(s, "CLIENT PAUSE 300 ALL");
    int ticks = 0;
    dm_sweeper *sw = dm_sweeper_new(base, r, &conf, 10, 16, on_sweep, &ticks);
    assert_non_null(sw);
    /* Run until the first tick has queued its claims (they wait behind the pause). */
    for (int i = 0; i < 2000 && dm_redis_inflight(r) == 0; i++) {
        struct timeval tv = {0, 1000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    assert_int_equal(dm_redis_inflight(r), 2);
    dm_sweeper_free(sw);
    /* The claims complete after the pause; the sweeper reports nothing any more. */
    for (int i = 0; i < 5000 && dm_redis_inflight(r) > 0; i++) {
        struct timeval tv = {0, 1000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    assert_int_equal(dm_redis_inflight(r), 0);
    assert_int_equal(ticks, 0);
    dm_redis_free(r);
    event_base_free(base);
}

static void on_seven(int err, redisReply *rep, void *arg)
{
    assert_int_equal(err, DM_OK);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    assert_int_equal(rep->integer, 7);
    *(bool *)arg = true;
}

/* A server that refuses a script's flags line (Redis < 7 compiles it as Lua; Redis 7 refuses an
 * unknown flag the same way) gets the script without it, and the client still becomes ready. */
static void test_flags_line_refused(void **state)
{
    server *s = *state;
    struct event_base *base = event_base_new();
    static const char *const scripts[] = {"#!lua flags=no-such-flag\nreturn 7",
                                          "#!lua flags=no-writes\nreturn 8"};
    bool ready = false, done = false;
    dm_redis_opts o = {.unix_path = s->sock,
                       .connect_timeout_ms = 1000,
                       .command_timeout_ms = 1000,
                       .max_inflight = 10,
                       .scripts = scripts,
                       .nscripts = 2,
                       .name = "flags",
                       .on_ready = on_ready,
                       .on_ready_arg = &ready};
    dm_redis *r = dm_redis_new(base, &o);
    run_until(base, &ready);
    assert_int_equal(dm_redis_eval(r, 0, on_seven, &done, 0, 0, NULL, NULL), DM_OK);
    run_until(base, &done);
    dm_redis_free(r);
    event_base_free(base);
}

static uint64_t dns_failures(void)
{
    struct evbuffer *b = evbuffer_new();
    dm_metrics_render(b);
    evbuffer_add(b, "", 1);
    const char *text = (const char *)evbuffer_pullup(b, -1);
    const char *at = strstr(text, "\ndigestmap_redis_dns_failures_total ");
    uint64_t v = at ? strtoull(at + strlen("\ndigestmap_redis_dns_failures_total "), NULL, 10) : 0;
    evbuffer_free(b);
    return v;
}

/* A host name that does not resolve (NXDOMAIN, or no answer before the connect deadline): a
 * failure is counted and logged, the client is not ready and keeps trying with backoff, and
 * it frees cleanly with a lookup in flight (run under ASan: the cancelled lookup's late report
 * finds its ticket and the resolver still there). */
static void test_name_not_resolved(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    uint64_t before = dns_failures();
    bool ready = false;
    dm_redis_opts o = {.host = "no-such-host.invalid",
                       .port = 6379,
                       .connect_timeout_ms = 300,
                       .command_timeout_ms = 300,
                       .max_inflight = 10,
                       .name = "dns",
                       .on_ready = on_ready,
                       .on_ready_arg = &ready};
    dm_redis *r = dm_redis_new(base, &o);
    assert_non_null(r);
    for (int i = 0; i < 10000 && dns_failures() == before; i++) {
        struct timeval tv = {0, 1000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    assert_true(dns_failures() > before);
    assert_false(ready);
    assert_false(dm_redis_ready(r));
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    assert_int_equal(dm_redis_command(r, NULL, on_call, NULL, 1, argv, lens), DM_EUNAVAIL);
    dm_redis_kick(r); /* a new lookup now, freed while in flight */
    dm_redis_free(r);
    for (int i = 0; i < 20; i++) {
        struct timeval tv = {0, 1000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    event_base_free(base);
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* As a worker's shutdown does it: the client freed with a lookup in flight, then at once the
 * event_base, no loop pass in between, so no lookup's report ever runs. The resolver (and its
 * UDP socket) must go with the client all the same. The per-lookup records libevent 2.1.12
 * frees only in that report are outside LeakSanitizer's view here (their report never runs);
 * test_name_not_resolved shows them freed when the loop runs on. */
static void test_free_then_base(void **state)
{
    (void)state;
    int fds = open_fds();
    LSAN_DISABLE();
    struct event_base *base = event_base_new();
    dm_redis_opts o = {.host = "no-such-host.invalid",
                       .port = 6379,
                       .connect_timeout_ms = 5000,
                       .command_timeout_ms = 300,
                       .max_inflight = 10,
                       .name = "dnsfree"};
    dm_redis *r = dm_redis_new(base, &o);
    assert_non_null(r); /* its lookup is in flight: sent, and the loop has not run since */
    dm_redis_free(r);
    event_base_free(base);
    LSAN_ENABLE();
    assert_int_equal(open_fds(), fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_free_inside_reply, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_free_inside_timeout, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_free_outside, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_sweeper_free_in_flight, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_flags_line_refused, server_start, server_stop),
        cmocka_unit_test(test_name_not_resolved),
        cmocka_unit_test(test_free_then_base),
    };
    /* DM_TEST_FILTER=test_free_inside_timeout runs one (ASan stops at the first report). */
    if (getenv("DM_TEST_FILTER"))
        cmocka_set_test_filter(getenv("DM_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
