/* test_topology.c - dm_topology_parse on real CLUSTER SLOTS replies of Redis 7.0 (captured from
 * a 3+3 cluster on 127.0.0.1:43000-43005 into tests/fuzz/corpus/cluster/, the fuzz target's
 * seeds), fed as RESP bytes through hiredis' reader, and on malformed ones. */
#include "dm_common.h"
#include "dm_slot.h"
#include "dm_test.h"
#include "dm_resp.h"
#include "dm_topology.h"

#include <hiredis/hiredis.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define CORPUS DM_FIXTURES "/../fuzz/corpus/cluster/"

/* The reply the RESP bytes @p buf (@p len) hold. */
static redisReply *reply_of(const char *buf, size_t len)
{
    redisReader *rd = redisReaderCreate();
    assert_int_equal(redisReaderFeed(rd, buf, len), REDIS_OK);
    void *rep = NULL;
    assert_int_equal(redisReaderGetReply(rd, &rep), REDIS_OK);
    assert_non_null(rep);
    redisReaderFree(rd);
    return rep;
}

static redisReply *reply_file(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, CORPUS "%s", name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return reply_of(buf, n);
}

/* Parse the corpus reply @p name as asked of 127.0.0.1; returns 0/-1 and fills @p t. */
static int parse_file(const char *name, dm_topology *t)
{
    redisReply *rep = reply_file(name);
    char err[128];
    int rc = dm_topology_parse(rep, "127.0.0.1", t, err, sizeof err);
    freeReplyObject(rep);
    return rc;
}

static void expect_three(const dm_topology *t, const char *host)
{
    assert_int_equal(t->nmasters, 3);
    assert_int_equal(t->nranges, 3);
    assert_int_equal(t->slots, DM_SLOTS);
    static const unsigned first[] = {0, 5461, 10923}, last[] = {5460, 10922, 16383};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(t->ranges[i].first, first[i]);
        assert_int_equal(t->ranges[i].last, last[i]);
        assert_int_equal(t->ranges[i].master, i);
        assert_int_equal(t->masters[i].port, 43000 + (int)i);
        if (host) {
            assert_string_equal(t->masters[i].host, host);
        } else {
            char want[64];
            snprintf(want, sizeof want, "redis-%d.cluster.internal", 43000 + (int)i);
            assert_string_equal(t->masters[i].host, want);
        }
    }
}

/* The usual reply: [first, last, [ip, port, id, {}], replica] per range; each replica is kept
 * with its master (the router reads the map from them when no master answers). */
static void test_three_masters(void **state)
{
    (void)state;
    dm_topology t;
    assert_int_equal(parse_file("slots-3x2", &t), 0);
    expect_three(&t, "127.0.0.1");
    assert_int_equal(t.nreplicas, 3);
    static const int rport[] = {43004, 43005, 43003};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(t.replicas[i].node.host, "127.0.0.1");
        assert_int_equal(t.replicas[i].node.port, rport[i]);
        assert_int_equal(t.replicas[i].master, i);
    }
    dm_topology_clear(&t);
    assert_null(t.replicas);
    /* A replica answers the same map. */
    assert_int_equal(parse_file("slots-from-replica", &t), 0);
    expect_three(&t, "127.0.0.1");
    dm_topology_clear(&t);
    assert_null(t.masters);
}

/* cluster-preferred-endpoint-type hostname: the names are what the router connects to. */
static void test_hostnames(void **state)
{
    (void)state;
    dm_topology t;
    assert_int_equal(parse_file("slots-hostnames", &t), 0);
    expect_three(&t, NULL);
    dm_topology_clear(&t);
}

/* unknown-endpoint: NULL hosts mean "the host you asked". */
static void test_unknown_endpoint(void **state)
{
    (void)state;
    redisReply *rep = reply_file("slots-unknown-endpoint");
    dm_topology t;
    char err[128];
    assert_int_equal(dm_topology_parse(rep, "redis.lb.internal", &t, err, sizeof err), 0);
    assert_int_equal(t.nmasters, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(t.masters[i].host, "redis.lb.internal");
        assert_int_equal(t.masters[i].port, 43000 + (int)i);
    }
    assert_int_equal(t.nreplicas, 3); /* their NULL hosts too */
    assert_string_equal(t.replicas[0].node.host, "redis.lb.internal");
    assert_int_equal(t.replicas[0].node.port, 43004);
    dm_topology_clear(&t);
    freeReplyObject(rep);
}

/* A master and its replica down: two masters left, 10923 slots served. After a failover the
 * promoted replica serves the dead master's range. */
static void test_partial_and_failover(void **state)
{
    (void)state;
    dm_topology t;
    assert_int_equal(parse_file("slots-after-failover", &t), 0);
    assert_int_equal(t.slots, DM_SLOTS);
    assert_int_equal(t.nmasters, 3);
    assert_int_equal(t.masters[t.ranges[2].master].port, 43003); /* promoted replica */
    dm_topology_clear(&t);
    assert_int_equal(parse_file("slots-partial", &t), 0);
    assert_int_equal(t.slots, DM_SLOTS);
    dm_topology_clear(&t);
}

static void expect_bad(const char *resp, const char *why)
{
    redisReply *rep = reply_of(resp, strlen(resp));
    dm_topology t;
    char err[128] = "";
    assert_int_equal(dm_topology_parse(rep, "127.0.0.1", &t, err, sizeof err), -1);
    assert_null(t.masters);
    assert_null(t.ranges);
    assert_int_equal(t.nmasters, 0);
    if (!strstr(err, why))
        fail_msg("\"%s\" does not say \"%s\"", err, why);
    freeReplyObject(rep);
}

#define NODE(h, p) "*2\r\n$1\r\n" #h "\r\n:" #p "\r\n"

static void test_malformed(void **state)
{
    (void)state;
    expect_bad("-ERR This instance has cluster support disabled\r\n", "not an array");
    expect_bad(":1\r\n", "not an array");
    expect_bad("*1\r\n:1\r\n", "entry 0: not [first, last, master");
    expect_bad("*1\r\n*2\r\n:0\r\n:1\r\n", "entry 0: not [first, last, master");
    expect_bad("*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\nh\r\n:1\r\n", "slot range out of");
    expect_bad("*1\r\n*3\r\n:-1\r\n:4\r\n*2\r\n$1\r\nh\r\n:1\r\n", "slot range out of");
    expect_bad("*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n", "slot range out of");
    expect_bad("*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n", "slot range out of");
    expect_bad("*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n", "master not [host, port");
    expect_bad("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:1\r\n", "master not [host, port");
    expect_bad("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n$1\r\n1\r\n", "master not [host, port");
    expect_bad("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n", "port out of 1..65535");
    expect_bad("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:65536\r\n", "port out of 1..65535");
    expect_bad("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na b\r\n:1\r\n", "bad master host");
    expect_bad("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na\nb\r\n:1\r\n", "bad master host");
    expect_bad("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na\"b\r\n:1\r\n", "bad master host");
    expect_bad("*2\r\n*3\r\n:0\r\n:10\r\n" NODE(1, 7000) "*3\r\n:10\r\n:20\r\n" NODE(2, 7001),
               "entry 1: slot served twice");
}

/* Odd but valid: an empty map, a "?" endpoint (left unserved), one master in two ranges. */
static void test_edges(void **state)
{
    (void)state;
    dm_topology t;
    char err[128];
    redisReply *rep = reply_of("*0\r\n", 4);
    assert_int_equal(dm_topology_parse(rep, NULL, &t, err, sizeof err), 0);
    assert_int_equal(t.slots, 0);
    assert_int_equal(t.nmasters, 0);
    dm_topology_clear(&t);
    freeReplyObject(rep);
    static const char two[] = "*3\r\n*3\r\n:0\r\n:9\r\n*2\r\n$1\r\nb\r\n:7000\r\n"
                              "*3\r\n:10\r\n:19\r\n*2\r\n$1\r\n?\r\n:7001\r\n"
                              "*3\r\n:20\r\n:29\r\n*3\r\n$1\r\nb\r\n:7000\r\n$2\r\nid\r\n";
    rep = reply_of(two, sizeof two - 1);
    assert_int_equal(dm_topology_parse(rep, NULL, &t, err, sizeof err), 0);
    assert_int_equal(t.nmasters, 1);
    assert_int_equal(t.nranges, 2);
    assert_int_equal(t.slots, 20);
    assert_string_equal(t.masters[0].host, "b");
    assert_int_equal(t.ranges[1].first, 20);
    assert_int_equal(t.nreplicas, 0); /* ["id"] is no replica: no port */
    dm_topology_clear(&t);
    freeReplyObject(rep);
    /* Unusable replicas (a bad host, port 0, "?", not an array) are left out; the map stands. */
    static const char reps[] = "*1\r\n*7\r\n:0\r\n:9\r\n" NODE(m, 7000) NODE(r, 7001)
        "*2\r\n$3\r\na b\r\n:7002\r\n" NODE(r, 0) NODE(?, 7003) ":5\r\n";
    rep = reply_of(reps, sizeof reps - 1);
    assert_int_equal(dm_topology_parse(rep, NULL, &t, err, sizeof err), 0);
    assert_int_equal(t.nmasters, 1);
    assert_int_equal(t.nreplicas, 1);
    assert_string_equal(t.replicas[0].node.host, "r");
    assert_int_equal(t.replicas[0].node.port, 7001);
    dm_topology_clear(&t);
    freeReplyObject(rep);
    /* An empty host with nothing asked cannot be used. */
    static const char empty[] = "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$0\r\n\r\n:7000\r\n";
    rep = reply_of(empty, sizeof empty - 1);
    assert_int_equal(dm_topology_parse(rep, NULL, &t, err, sizeof err), -1);
    freeReplyObject(rep);
    assert_true(dm_topology_host_ok("fd00::5", 7));
    assert_true(dm_topology_host_ok("redis-0.redis.svc", 17));
    assert_false(dm_topology_host_ok("", 0));
    assert_false(dm_topology_host_ok("a/b", 3));
}

/* A reader bounded by dm_resp_bound (as every connection's is) refuses an array that declares
 * more elements than DM_RESP_MAX_ELEMENTS before allocating anything (hiredis would allocate
 * the element table at once: 13 GB for this header, fuzz.cluster's finding), and reads an
 * ordinary array as before. */
static void test_reader_bound(void **state)
{
    (void)state;
    static const char huge[] = "*1720368543\r\n-V\\4\r\n";
    redisReader *rd = redisReaderCreate();
    dm_resp_bound(rd);
    assert_int_equal(redisReaderFeed(rd, huge, sizeof huge - 1), REDIS_OK);
    void *rep = NULL;
    assert_int_equal(redisReaderGetReply(rd, &rep), REDIS_ERR);
    assert_null(rep);
    redisReaderFree(rd);

    char just[64];
    int n = snprintf(just, sizeof just, "*%zu\r\n", DM_RESP_MAX_ELEMENTS + 1);
    rd = redisReaderCreate();
    dm_resp_bound(rd);
    redisReaderFeed(rd, just, (size_t)n);
    assert_int_equal(redisReaderGetReply(rd, &rep), REDIS_ERR);
    redisReaderFree(rd);

    rd = redisReaderCreate();
    dm_resp_bound(rd);
    dm_resp_bound(rd); /* twice is once */
    static const char ok[] = "*2\r\n:1\r\n$2\r\nab\r\n";
    redisReaderFeed(rd, ok, sizeof ok - 1);
    assert_int_equal(redisReaderGetReply(rd, &rep), REDIS_OK);
    redisReply *r = rep;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[1]->str, "ab");
    freeReplyObject(rep);
    redisReaderFree(rd);
    dm_resp_bound(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_masters),    cmocka_unit_test(test_hostnames),
        cmocka_unit_test(test_unknown_endpoint), cmocka_unit_test(test_partial_and_failover),
        cmocka_unit_test(test_malformed),        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_reader_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
