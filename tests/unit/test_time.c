/* test_time.c - RFC 3339 parsing and formatting in milliseconds, clocks. */
#include "dm_common.h"
#include "dm_time.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int64_t parse_ok(const char *s)
{
    int64_t ms = 12345;
    int rc = dm_time_parse_rfc3339(s, strlen(s), &ms);
    if (rc != DM_OK)
        fail_msg("rejected: %s", s);
    return ms;
}

static void parse_bad(const char *s)
{
    int64_t ms = 12345;
    if (dm_time_parse_rfc3339(s, strlen(s), &ms) != DM_EINVAL)
        fail_msg("accepted: %s", s);
    assert_int_equal(ms, 12345); /* untouched on error */
}

static void test_parse_valid(void **state)
{
    (void)state;
    /* ACR: nine fractional digits, truncated (not rounded) to the millisecond */
    assert_int_equal(parse_ok("2026-11-28T14:02:11.483920117Z"), 1795874531483);
    assert_int_equal(parse_ok("2026-11-28T14:02:11.999999999Z"), 1795874531999);
    assert_int_equal(parse_ok("2026-11-28T18:40:00.000000001Z"), 1795891200000);
    /* EventBridge: seconds; Pub/Sub: milliseconds */
    assert_int_equal(parse_ok("2026-11-28T14:03:20Z"), 1795874600000);
    assert_int_equal(parse_ok("2026-11-28T14:03:20.123Z"), 1795874600123);
    /* fewer than three digits scale up */
    assert_int_equal(parse_ok("2026-11-28T15:00:00.5+01:00"), 1795874400500);
    assert_int_equal(parse_ok("2026-11-28T14:02:11.4+05:30"), 1795854731400);
    assert_int_equal(parse_ok("2026-11-28T14:10:00.250+02:00"), 1795867800250);
    assert_int_equal(parse_ok("2026-11-28T14:02:11-08:00"), 1795903331000);
    assert_int_equal(parse_ok("2026-11-28T14:02:11+00:00"), parse_ok("2026-11-28T14:02:11Z"));
    assert_int_equal(parse_ok("2026-11-28T14:02:11-00:00"), parse_ok("2026-11-28T14:02:11Z"));
    /* RFC 3339 allows lowercase t/z and (§5.6 note) a space separator */
    assert_int_equal(parse_ok("2026-11-28t14:03:20z"), 1795874600000);
    assert_int_equal(parse_ok("2026-11-28 14:03:20Z"), 1795874600000);
    /* epoch, before the epoch, leap days, leap second, range ends */
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse_ok("1969-12-31T23:59:59.999Z"), -1);
    assert_int_equal(parse_ok("2024-02-29T00:00:00Z"), 1709164800000);
    assert_int_equal(parse_ok("2000-02-29T00:00:00Z"), 951782400000);
    assert_int_equal(parse_ok("2000-03-01T00:00:00Z"), 951868800000);
    assert_int_equal(parse_ok("2026-11-28T23:59:60Z"), 1795910399000);
    assert_int_equal(parse_ok("9999-12-31T23:59:59.999Z"), 253402300799999);
    assert_int_equal(parse_ok("0001-01-01T00:00:00Z"), -62135596800000);
    /* up to twelve fractional digits */
    assert_int_equal(parse_ok("2026-11-28T14:03:20.123456789012Z"), 1795874600123);
}

static void test_parse_invalid(void **state)
{
    (void)state;
    parse_bad("");
    parse_bad("2026");
    parse_bad("2026-11-28");
    parse_bad("2026-11-28T14:02");
    parse_bad("2026-11-28T14:02:11");                /* no zone */
    parse_bad("2026-11-28T14:02:11.483");            /* no zone */
    parse_bad("2026-11-28T14:02:11.Z");              /* empty fraction */
    parse_bad("2026-11-28T14:02:11.1234567890123Z"); /* 13 digits */
    parse_bad("2026-11-28T14:02:11Zjunk");
    parse_bad("2026-11-28T14:02:11Z ");
    parse_bad(" 2026-11-28T14:02:11Z");
    parse_bad("2026-11-28T14:02:11+0100");
    parse_bad("2026-11-28T14:02:11+01");
    parse_bad("2026-11-28T14:02:11+24:00");
    parse_bad("2026-11-28T14:02:11+01:60");
    parse_bad("2026-13-28T14:02:11Z");
    parse_bad("2026-00-28T14:02:11Z");
    parse_bad("2026-11-00T14:02:11Z");
    parse_bad("2026-11-31T14:02:11Z");
    parse_bad("2026-02-29T14:02:11Z"); /* not a leap year */
    parse_bad("1900-02-29T14:02:11Z"); /* century, not a leap year */
    parse_bad("2026-11-28T24:00:00Z");
    parse_bad("2026-11-28T14:60:00Z");
    parse_bad("2026-11-28T14:02:61Z");
    parse_bad("2026-11-28X14:02:11Z");
    parse_bad("2026/11/28T14:02:11Z");
    parse_bad("26-11-28T14:02:11Z");
    parse_bad("+2026-11-28T14:02:11Z");
    parse_bad("2026-1a-28T14:02:11Z");
    parse_bad("Nov 28, 2026, 2:02:11 PM");
    parse_bad("1795874531");
}

static void test_parse_length_bound(void **state)
{
    (void)state;
    int64_t ms = 0;
    /* the length is what counts: a NUL inside or bytes after it are not read */
    const char *s = "2026-11-28T14:03:20Z trailing";
    assert_int_equal(dm_time_parse_rfc3339(s, 20, &ms), DM_OK);
    assert_int_equal(ms, 1795874600000);
    assert_int_equal(dm_time_parse_rfc3339(s, 19, &ms), DM_EINVAL);
    assert_int_equal(dm_time_parse_rfc3339("2026-11-28T14:03:20\0", 20, &ms), DM_EINVAL);
    assert_int_equal(dm_time_parse_rfc3339("2026-11-28T14:03:20.\0Z", 22, &ms), DM_EINVAL);
    assert_int_equal(dm_time_parse_rfc3339("2026-11-28T14:03:20+\0", 21, &ms), DM_EINVAL);
    /* every prefix of a valid stamp (except the full one) is rejected without overreading */
    const char *full = "2026-11-28T14:02:11.483920117+05:30";
    size_t n = strlen(full);
    for (size_t i = 0; i < n; i++) {
        char *copy = dm_xmalloc(i ? i : 1); /* exact size: ASan flags any read past it */
        memcpy(copy, full, i);
        if (dm_time_parse_rfc3339(copy, i, &ms) != DM_EINVAL)
            fail_msg("prefix of %zu bytes accepted", i);
        free(copy);
    }
}

static void format_is(int64_t ms, const char *want)
{
    char buf[DM_TIME_BUFLEN];
    dm_time_format(ms, buf);
    assert_string_equal(buf, want);
}

static void test_format(void **state)
{
    (void)state;
    format_is(0, "1970-01-01T00:00:00.000Z");
    format_is(1795874531483, "2026-11-28T14:02:11.483Z");
    format_is(1795874600000, "2026-11-28T14:03:20.000Z");
    format_is(-1, "1969-12-31T23:59:59.999Z");
    format_is(1709164800000, "2024-02-29T00:00:00.000Z");
    format_is(253402300799999, "9999-12-31T23:59:59.999Z");
    format_is(-62135596800000, "0001-01-01T00:00:00.000Z");
}

static void test_roundtrip(void **state)
{
    (void)state;
    /* every format() output parses back to the same millisecond */
    int64_t samples[] = {
        0,  1,     999,       1000,          86399999,       86400000, 951782400000, 1795874531483,
        -1, -1000, -86400001, 4102444800000, 253402300799999};
    for (size_t i = 0; i < DM_ARRAY_LEN(samples); i++) {
        char buf[DM_TIME_BUFLEN];
        dm_time_format(samples[i], buf);
        int64_t back = 0;
        assert_int_equal(dm_time_parse_rfc3339(buf, strlen(buf), &back), DM_OK);
        assert_int_equal(back, samples[i]);
    }
}

static void test_clocks(void **state)
{
    (void)state;
    int64_t now = dm_now_ms();
    assert_true(now > 1704067200000); /* after 2024-01-01: the clock is in ms, not s or us */
    assert_true(now < 4102444800000); /* before 2100 */
    int64_t a = dm_mono_ms();
    int64_t b = dm_mono_ms();
    assert_true(a >= 0);
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_parse_length_bound), cmocka_unit_test(test_format),
        cmocka_unit_test(test_roundtrip),          cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
