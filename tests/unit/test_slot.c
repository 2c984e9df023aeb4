/* test_slot.c - Redis Cluster slots and redirects (dm_slot.h), against values Redis computes
 * (CLUSTER KEYSLOT) and the error texts a cluster node sends. */
#include "dm_slot.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static unsigned slot(const char *k)
{
    return dm_slot_of(k, strlen(k));
}

static void test_crc16(void **state)
{
    (void)state;
    /* the check value of CRC16-XMODEM, quoted by the Redis Cluster specification */
    assert_int_equal(dm_slot_crc16("123456789", 9), 0x31C3);
    assert_int_equal(dm_slot_crc16("", 0), 0);
}

static void test_slots(void **state)
{
    (void)state;
    /* CLUSTER KEYSLOT of a redis-server 7.0 */
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("bar"), 5061);
    assert_int_equal(slot("{0}"), slot("0"));
    assert_int_equal(slot("dm:{0}:out"), 13907);
    assert_int_equal(slot("dm:{1}:out"), 9842);
    assert_int_equal(slot("dm:{15}:due"), slot("15"));
    /* hash tags: the first '{', the first '}' after it, not empty */
    assert_int_equal(slot("{user1000}.following"), slot("{user1000}.followers"));
    assert_int_equal(slot("foo{}{bar}"), dm_slot_crc16("foo{}{bar}", 10) % DM_SLOTS);
    assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));
    assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));
    assert_int_equal(slot("foo{bar"), dm_slot_crc16("foo{bar", 7) % DM_SLOTS);
    /* binary-safe: a NUL inside the key counts */
    assert_int_not_equal(dm_slot_of("a\0b", 3), slot("a"));
}

static void test_redirects(void **state)
{
    (void)state;
    dm_redirect r;
    const char *moved = "MOVED 3999 127.0.0.1:6381";
    assert_true(dm_redirect_parse(moved, strlen(moved), &r));
    assert_false(r.ask);
    assert_int_equal(r.slot, 3999);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.port, 6381);

    const char *ask = "ASK 16383 redis-2.redis.svc.cluster.local:7000";
    assert_true(dm_redirect_parse(ask, strlen(ask), &r));
    assert_true(r.ask);
    assert_int_equal(r.slot, 16383);
    assert_string_equal(r.host, "redis-2.redis.svc.cluster.local");
    assert_int_equal(r.port, 7000);

    const char *v6 = "MOVED 0 [::1]:30001";
    assert_true(dm_redirect_parse(v6, strlen(v6), &r));
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 30001);
    const char *v6bare = "MOVED 7 ::1:30001"; /* Redis < 7 writes IPv6 without brackets */
    assert_true(dm_redirect_parse(v6bare, strlen(v6bare), &r));
    assert_string_equal(r.host, "::1");

    const char *bad[] = {"",
                         "MOVED",
                         "MOVED ",
                         "MOVED 16384 127.0.0.1:6381",
                         "MOVED -1 127.0.0.1:6381",
                         "MOVED 12 127.0.0.1",
                         "MOVED 12 127.0.0.1:",
                         "MOVED 12 127.0.0.1:0",
                         "MOVED 12 127.0.0.1:65536",
                         "MOVED 12 127.0.0.1:63x",
                         "MOVED 12 :6379",
                         "MOVED 12 a b:6379",
                         "MOVED 123456 h:1",
                         "MOVED 12  h:1",
                         "ASK12 h:1",
                         "ERR MOVED 12 h:1",
                         "TRYAGAIN Multiple keys request during rehashing of slot",
                         "CLUSTERDOWN The cluster is down"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(dm_redirect_parse(bad[i], strlen(bad[i]), &r));
    /* the length bounds the parse: no NUL terminator is needed or read */
    assert_false(dm_redirect_parse(moved, 10, &r));
    char longhost[600] = "MOVED 1 ";
    memset(longhost + 8, 'h', 300);
    strcpy(longhost + 308, ":1");
    assert_false(dm_redirect_parse(longhost, strlen(longhost), &r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16),
        cmocka_unit_test(test_slots),
        cmocka_unit_test(test_redirects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
