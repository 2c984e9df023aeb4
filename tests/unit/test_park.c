/* test_park.c - park.lua's arrival time (ARGV 5 and 6, dm_join_submit_at): a spooled event replayed
 * long after it arrived keeps its event time, its expiry counts from its arrival, and it joins
 * the other side's items that were alive when it arrived (docs/spool.md), while its edge's record
 * carries the time it was confirmed; with arrival 0 (now) the same event time is skewed and
 * replaced. A live event (dm_join_submit) arrives at this process's clock, read before and after
 * (park.lua no longer reads Redis's TIME: docs/park-path.md "Whose clock"), and an arrival later
 * than now is now. And the spool's record form round-trips.
 *
 * Needs a real redis-server (on PATH), started on a unix socket in a temporary directory; it
 * dies with the test (PR_SET_PDEATHSIG) even when ctest kills it. */
#include "dm_common.h"
#include "dm_acr.h"
#include "dm_build.h"
#include "dm_join.h"
#include "dm_keys.h"
#include "dm_redis.h"
#include "dm_scripts.h"
#include "dm_spool.h"
#include "dm_time.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
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

#define WINDOW_MS 60000
#define SKEW_MS   300000

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
    snprintf(s->dir, sizeof s->dir, "/tmp/dmpark.XXXXXX");
    if (!mkdtemp(s->dir))
        return -1;
    snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
    pid_t parent = getpid();
    s->pid = fork();
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
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

static const dm_join_conf conf = {.prefix = "dm",
                                  .shards = 1,
                                  .window_ms = WINDOW_MS,
                                  .grace_ms = 0,
                                  .max_skew_ms = SKEW_MS,
                                  .mapping_ttl_ms = 3600000,
                                  .stream_maxlen = 1000,
                                  .max_builds = 16,
                                  .max_locations = 16,
                                  .max_tags = 16};

typedef struct parked {
    bool done;
    int err;
    dm_join_result res;
} parked;

static void on_parked(int err, const dm_join_result *res, void *arg)
{
    parked *p = arg;
    p->err = err;
    if (res)
        p->res = *res;
    p->done = true;
}

typedef struct fixture {
    struct event_base *base;
    dm_redis *r;
    const server *s;
} fixture;

static void fixture_open(fixture *f, const server *s)
{
    f->s = s;
    f->base = event_base_new();
    bool ready = false;
    dm_redis_opts o = {.unix_path = s->sock,
                       .connect_timeout_ms = 1000,
                       .command_timeout_ms = 5000,
                       .max_inflight = 100,
                       .scripts = dm_join_scripts(&conf),
                       .nscripts = DM_SCRIPT_COUNT,
                       .name = "test",
                       .on_ready = on_ready,
                       .on_ready_arg = &ready};
    f->r = dm_redis_new(f->base, &o);
    assert_non_null(f->r);
    run_until(f->base, &ready);
}

static void fixture_close(fixture *f)
{
    dm_redis_free(f->r);
    event_base_free(f->base);
}

/* One event (an ACR push, or a build when @p run_id is set) of @p digest at @p t_ms, parked as
 * arrived at @p arrival_ms (0: now) with dm_join_submit_at, or as a live one with
 * dm_join_submit when @p arrival_ms is LIVE. */
#define LIVE (-1)
static dm_join_result park_at(fixture *f, const char *digest, const char *run_id, int64_t t_ms,
                              int64_t arrival_ms)
{
    char body[1024], when[40];
    time_t secs = (time_t)(t_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + strlen(when), sizeof when - strlen(when), ".%03dZ", (int)(t_ms % 1000));
    if (run_id)
        snprintf(body, sizeof body,
                 "{\"images\":[{\"name\":\"contoso.azurecr.io/team/api\",\"digest\":\"%s\"}],"
                 "\"built_at\":\"%s\",\"run\":{\"provider\":\"github\",\"repository\":\"acme/api\","
                 "\"run_id\":\"%s\",\"run_attempt\":\"1\"}}",
                 digest, when, run_id);
    else
        snprintf(body, sizeof body,
                 "{\"id\":\"evt-%s\",\"timestamp\":\"%s\",\"action\":\"push\",\"target\":{"
                 "\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"size\":1,"
                 "\"digest\":\"%s\",\"length\":1,\"repository\":\"team/api\",\"tag\":\"1.0\"},"
                 "\"request\":{\"id\":\"r\",\"host\":\"contoso.azurecr.io\",\"method\":\"PUT\"}}",
                 digest + 7, when, digest);
    dm_event_list list = {0};
    dm_error err = {0};
    int rc = run_id ? dm_build_parse(body, strlen(body), NULL, &list, &err)
                    : dm_acr_parse(body, strlen(body), &list, &err);
    assert_int_equal(rc, DM_OK);
    assert_int_equal(list.n, 1);
    /* As the spool's replayer parks it: from its JSON form, read back. */
    char *json = dm_event_to_json(&list.v[0]);
    json_error_t jerr;
    json_t *doc = json_loads(json, 0, &jerr);
    assert_non_null(doc);
    dm_event ev;
    assert_int_equal(dm_event_from_json(doc, &ev), DM_OK);
    parked p = {0};
    if (arrival_ms == LIVE)
        assert_int_equal(dm_join_submit(f->r, &conf, &ev, on_parked, &p), DM_OK);
    else
        assert_int_equal(dm_join_submit_at(f->r, &conf, &ev, arrival_ms, on_parked, &p), DM_OK);
    dm_event_dispose(&ev);
    json_decref(doc);
    free(json);
    dm_event_list_dispose(&list);
    run_until(f->base, &p.done);
    assert_int_equal(p.err, DM_OK);
    return p.res;
}

/* A parked push's stored item, decoded. */
static json_t *stored_push(fixture *f, const char *digest)
{
    redisContext *c = redisConnectUnix(f->s->sock);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, "HGET dm:{0}:r:%s contoso.azurecr.io/team/api", digest);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    json_error_t jerr;
    json_t *o = json_loads(rep->str, 0, &jerr);
    freeReplyObject(rep);
    redisFree(c);
    assert_non_null(o);
    return o;
}

/* The "time" of the last record on the shard's output stream, in ms. */
static int64_t last_record_time(fixture *f)
{
    redisContext *c = redisConnectUnix(f->s->sock);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, "XREVRANGE dm:{0}:out + - COUNT 1");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_int_equal(rep->elements, 1);
    const redisReply *fields = rep->element[0]->element[1];
    json_t *doc = NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (strcmp(fields->element[i]->str, "event") == 0)
            doc = json_loads(fields->element[i + 1]->str, 0, NULL);
    freeReplyObject(rep);
    redisFree(c);
    assert_non_null(doc);
    const char *when = json_string_value(json_object_get(doc, "time"));
    assert_non_null(when);
    int64_t ms = 0;
    assert_int_equal(dm_time_parse_rfc3339(when, strlen(when), &ms), DM_OK);
    json_decref(doc);
    return ms;
}

#define D_LATE   "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D_NOW    "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D_LIVE   "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define D_FUTURE "sha256:4444444444444444444444444444444444444444444444444444444444444444"

/* Replayed two hours late, with its arrival: not skewed, the event time kept, the expiry
 * from the arrival, and a build that arrived within the window joins it. */
static void test_replayed_keeps_event_time(void **state)
{
    fixture f;
    fixture_open(&f, *state);
    int64_t t0 = dm_now_ms() - 2 * 3600 * 1000;
    dm_join_result r = park_at(&f, D_LATE, NULL, t0, t0 + 1000);
    assert_int_equal(r.skewed, 0);
    json_t *p = stored_push(&f, D_LATE);
    assert_int_equal(json_integer_value(json_object_get(p, "t")), t0);
    assert_int_equal((int64_t)json_number_value(json_object_get(p, "x")), t0 + 1000 + WINDOW_MS);
    json_decref(p);
    /* The push expired (as of now) long ago, but was alive when the build arrived. */
    int64_t before = dm_now_ms();
    r = park_at(&f, D_LATE, "701", t0 + 5000, t0 + 6000);
    int64_t after = dm_now_ms();
    assert_int_equal(r.skewed, 0);
    assert_int_equal(r.edges, 1);
    /* Its edge was confirmed now (ARGV 6), not at its arrival. */
    int64_t confirmed = last_record_time(&f);
    assert_true(confirmed >= before && confirmed <= after);
    /* A live build of the same time is skewed (replaced by now) and finds the push expired. */
    r = park_at(&f, D_LATE, "702", t0 + 5000, 0);
    assert_int_equal(r.skewed, 1);
    assert_int_equal(r.edges, 0);
    fixture_close(&f);
}

/* Arrival 0 is now: the old event time is skewed and replaced, as before the argument. */
static void test_arrival_now_skews(void **state)
{
    fixture f;
    fixture_open(&f, *state);
    int64_t t0 = dm_now_ms() - 2 * 3600 * 1000;
    int64_t before = dm_now_ms();
    dm_join_result r = park_at(&f, D_NOW, NULL, t0, 0);
    assert_int_equal(r.skewed, 1);
    json_t *p = stored_push(&f, D_NOW);
    assert_true(json_integer_value(json_object_get(p, "t")) >= before);
    json_decref(p);
    fixture_close(&f);
}

/* A live event's arrival is this process's clock when it was submitted: its expiry ("x") is
 * that plus the retention, and an event time hours away is replaced by it. An arrival 0 or
 * absurd (seconds for ms, say) would store an expiry far off these bounds. */
static void test_live_arrival_is_the_clock(void **state)
{
    fixture f;
    fixture_open(&f, *state);
    int64_t before = dm_now_ms();
    dm_join_result r = park_at(&f, D_LIVE, NULL, before - 2 * 3600 * 1000, LIVE);
    int64_t after = dm_now_ms();
    assert_int_equal(r.skewed, 1);
    json_t *p = stored_push(&f, D_LIVE);
    int64_t x = (int64_t)json_number_value(json_object_get(p, "x"));
    int64_t t = json_integer_value(json_object_get(p, "t"));
    assert_true(x >= before + WINDOW_MS && x <= after + WINDOW_MS);
    assert_true(t >= before && t <= after);
    json_decref(p);
    fixture_close(&f);
}

/* A spooled arrival later than now (the clock stepped back since) is now. */
static void test_future_arrival_is_now(void **state)
{
    fixture f;
    fixture_open(&f, *state);
    int64_t before = dm_now_ms();
    dm_join_result r = park_at(&f, D_FUTURE, NULL, before, before + 3600 * 1000);
    int64_t after = dm_now_ms();
    assert_int_equal(r.skewed, 0);
    json_t *p = stored_push(&f, D_FUTURE);
    int64_t x = (int64_t)json_number_value(json_object_get(p, "x"));
    assert_true(x >= before + WINDOW_MS && x <= after + WINDOW_MS);
    json_decref(p);
    fixture_close(&f);
}

/* The spool's record form keeps what the replay needs. */
static void test_record_round_trip(void **state)
{
    (void)state;
    const char *ev = "{\"side\":\"registry\",\"digest\":\"" D_NOW "\",\"t\":5}";
    dm_spool_record in = {.arrival_ms = 1234567890123,
                          .event = ev,
                          .event_len = strlen(ev),
                          .jti_key = "dm:jti:ab",
                          .request_id = "00ff",
                          .jti_pxat = 99};
    size_t len;
    char *line = dm_spool_encode(&in, &len);
    assert_non_null(line);
    assert_int_equal(line[len - 1], '\n');
    assert_null(memchr(line, '\n', len - 1));
    dm_spool_record out;
    json_t *doc;
    assert_int_equal(dm_spool_decode(line, len - 1, &out, &doc), DM_OK);
    assert_int_equal(out.arrival_ms, 1234567890123);
    assert_string_equal(out.jti_key, "dm:jti:ab");
    assert_string_equal(out.request_id, "00ff");
    assert_int_equal(out.jti_pxat, 99);
    assert_non_null(strstr(out.event, D_NOW));
    free((char *)out.event);
    json_decref(doc);
    /* A torn line, or one whose event has no valid digest, is not a record. */
    assert_int_equal(dm_spool_decode(line, len / 2, &out, &doc), DM_EINVAL);
    const char *bad = "{\"at\":1,\"ev\":{\"digest\":\"sha256:zz\"}}";
    assert_int_equal(dm_spool_decode(bad, strlen(bad), &out, &doc), DM_EINVAL);
    free(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replayed_keeps_event_time, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_arrival_now_skews, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_live_arrival_is_the_clock, server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_future_arrival_is_now, server_start, server_stop),
        cmocka_unit_test(test_record_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
