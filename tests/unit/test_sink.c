/* test_sink.c - the pure parts of the webhook sink: outcome of a status, retry delays with
 * jitter and Retry-After, the signature (dm_sign), Retry-After parsing (dm_hclient), and the
 * CloudEvent id of a record (its fast scan must answer as jansson does, on every input). */
#include "dm_common.h"
#include "dm_hclient.h"
#include "dm_sign.h"
#include "dm_sink_record.h"
#include "dm_sink_ceid.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

static void test_classify(void **state)
{
    (void)state;
    static const int delivered[] = {200, 201, 202, 204, 299};
    static const int retry[] = {0, 408, 425, 429, 500, 502, 503, 504, 599};
    static const int permanent[] = {100, 199, 300, 301, 302, 304, 400, 401, 403, 404,
                                    405, 409, 410, 413, 422, 426, 428, 431, 451, 600};
    for (size_t i = 0; i < DM_ARRAY_LEN(delivered); i++)
        assert_int_equal(dm_sink_classify(delivered[i]), DM_SINK_DELIVERED);
    for (size_t i = 0; i < DM_ARRAY_LEN(retry); i++)
        assert_int_equal(dm_sink_classify(retry[i]), DM_SINK_RETRY);
    for (size_t i = 0; i < DM_ARRAY_LEN(permanent); i++)
        assert_int_equal(dm_sink_classify(permanent[i]), DM_SINK_PERMANENT);
}

static void test_backoff(void **state)
{
    (void)state;
    /* d = initial * 2^(attempt-1); delay = d/2 + rnd mod (d/2 + 1) */
    assert_int_equal(dm_sink_retry_delay_ms(1, 1000, 300000, -1, 0), 500);
    assert_int_equal(dm_sink_retry_delay_ms(1, 1000, 300000, -1, 500), 1000);
    assert_int_equal(dm_sink_retry_delay_ms(1, 1000, 300000, -1, 501), 500);
    assert_int_equal(dm_sink_retry_delay_ms(2, 1000, 300000, -1, 0), 1000);
    assert_int_equal(dm_sink_retry_delay_ms(4, 1000, 300000, -1, 0), 4000);
    assert_int_equal(dm_sink_retry_delay_ms(4, 1000, 300000, -1, 4000), 8000);
    /* capped by backoff_max_ms, without overflow for large attempt numbers */
    assert_int_equal(dm_sink_retry_delay_ms(30, 1000, 300000, -1, 0), 150000);
    assert_int_equal(dm_sink_retry_delay_ms(1000, 3600000, 86400000, -1, UINT32_MAX),
                     43200000 + (int64_t)(UINT32_MAX % 43200001u));
    assert_int_equal(dm_sink_retry_delay_ms(3, 100, 250, -1, 0), 125);
    /* every value stays within [d/2, d] */
    for (uint32_t rnd = 0; rnd < 5000; rnd += 7) {
        int64_t v = dm_sink_retry_delay_ms(3, 1000, 300000, -1, rnd);
        assert_true(v >= 2000 && v <= 4000);
    }
    /* Retry-After raises the delay, up to backoff_max_ms; it never lowers it */
    assert_int_equal(dm_sink_retry_delay_ms(1, 1000, 300000, 5000, 0), 5000);
    assert_int_equal(dm_sink_retry_delay_ms(1, 1000, 300000, 200, 0), 500);
    assert_int_equal(dm_sink_retry_delay_ms(1, 1000, 300000, 0, 0), 500);
    assert_int_equal(dm_sink_retry_delay_ms(1, 1000, 4000, 1000000, 0), 4000);
    assert_int_equal(dm_sink_retry_delay_ms(1, 1000, 4000, INT64_MAX / 10, 0), 4000);
}

static void test_signature(void **state)
{
    (void)state;
    char sig[DM_SIGN_LEN];
    /* RFC 4231 test case 2 */
    const char *data = "what do ya want for nothing?";
    dm_sign_body((const unsigned char *)"Jefe", 4, data, strlen(data), sig);
    assert_string_equal(sig,
                        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* an empty body is signed too (openssl dgst -sha256 -hmac k < /dev/null) */
    dm_sign_body((const unsigned char *)"k", 1, NULL, 0, sig);
    assert_string_equal(sig,
                        "sha256=8bb990c40a7d61cb97597a942125025be50ac8beb74436e3735b98893a7f6620");
}

static int64_t ra_ok(const char *v, int64_t now)
{
    int64_t ms = -7;
    if (dm_hclient_retry_after_ms(v, now, &ms) != DM_OK)
        fail_msg("rejected: \"%s\"", v);
    return ms;
}

static void ra_bad(const char *v)
{
    int64_t ms = -7;
    if (dm_hclient_retry_after_ms(v, 0, &ms) != DM_EINVAL)
        fail_msg("accepted: \"%s\"", v ? v : "(null)");
    assert_int_equal(ms, -7);
}

static void test_retry_after(void **state)
{
    (void)state;
    const int64_t t = 784111777000; /* Sun, 06 Nov 1994 08:49:37 GMT */
    assert_int_equal(ra_ok("120", t), 120000);
    assert_int_equal(ra_ok("0", t), 0);
    assert_int_equal(ra_ok(" 3 ", t), 3000);
    assert_int_equal(ra_ok("007", t), 7000);
    assert_true(ra_ok("99999999999999999999999999", t) > (int64_t)1e15); /* saturates */
    /* the three HTTP-date forms, 10 s after now */
    assert_int_equal(ra_ok("Sun, 06 Nov 1994 08:49:47 GMT", t), 10000);
    assert_int_equal(ra_ok("Sunday, 06-Nov-94 08:49:47 GMT", t), 10000);
    assert_int_equal(ra_ok("Sun Nov  6 08:49:47 1994", t), 10000);
    /* a date in the past: retry now */
    assert_int_equal(ra_ok("Sun, 06 Nov 1994 08:49:37 GMT", t + 5000), 0);
    assert_int_equal(ra_ok("Sat, 01 Jan 2000 00:00:00 GMT", t), 946684800000 - t);

    ra_bad(NULL);
    ra_bad("");
    ra_bad("   ");
    ra_bad("-1");
    ra_bad("1.5");
    ra_bad("10s");
    ra_bad("abc");
    ra_bad("Sun, 06 Nov 1994 08:49:37 UTC");
    ra_bad("Sun, 06 Nov 1994 08:49:37 GMT trailing");
    ra_bad("2026-11-28T14:00:00Z");
    ra_bad("Sun, 06 Nov 1994");
}

static void expect_id(const char *doc, const char *want)
{
    char *got = dm_sink_cloudevent_id(doc, strlen(doc));
    if (want)
        assert_string_equal(got, want);
    else
        assert_null(got);
    free(got);
}

static const char *const EVENT =
    "{\"specversion\":\"1.0\",\"id\":\"e6efd436316a0572a67b3c1de850c9ffee284d98\","
    "\"source\":\"digestmap\",\"time\":\"2026-11-28T15:50:29.373Z\","
    "\"type\":\"dev.digestmap.mapping.confirmed.v1\",\"subject\":\"sha256:49e7\","
    "\"datacontenttype\":\"application/json\",\"data\":{\"digest\":\"sha256:49e7\","
    "\"relation\":\"image\",\"image\":{\"registry\":\"contoso.azurecr.io\","
    "\"repository\":\"team/api\",\"tags\":[\"1.4.0\",\"latest\"],\"source\":\"acr\"},"
    "\"build\":{\"provider\":\"github\",\"run_attempt\":\"1\",\"verified\":false,"
    "\"x\":null,\"y\":true,\"z\":[]},\"skew_ms\":-9352,\"r\":0.5}}";

static void test_cloudevent_id(void **state)
{
    (void)state;
    expect_id(EVENT, "e6efd436316a0572a67b3c1de850c9ffee284d98");
    expect_id(" {\"id\":\"a\"} \n", "a");
    expect_id("{\"data\":{\"id\":\"inner\"},\"id\":\"outer\"}", "outer");
    expect_id("{\"data\":{\"id\":\"inner\"}}", NULL);
    expect_id("{\"id\":\"first\",\"id\":\"last\"}", "last");
    expect_id("{\"id\":\"first\",\"id\":7}", NULL);
    expect_id("{\"id\":\"\"}", NULL);
    expect_id("{\"id\":42}", NULL);
    expect_id("{\"id\":\"a\\\"b\"}", "a\"b");            /* escaped: jansson unescapes */
    expect_id("{\"id\":\"caf\\u00e9\"}", "caf\xc3\xa9"); /* \u: jansson */
    expect_id("{\"\\u0069d\":\"x\"}", "x");              /* "id" spelt with \u */
    expect_id("{\"id\":\"x\",\"n\":1e400}", NULL);       /* overflow: not JSON to jansson */
    expect_id("{\"id\":\"x\",\"n\":123456789012345678901234}", NULL); /* too big */
    expect_id("{\"id\":\"x\",\"n\":1.5e3}", "x");
    expect_id("{\"id\":\"x\",}", NULL);
    expect_id("{\"id\":\"x\"} x", NULL);
    expect_id("{\"id\":\"x\"", NULL);
    expect_id("[{\"id\":\"x\"}]", NULL);
    expect_id("\"id\"", NULL);
    expect_id("", NULL);
    expect_id("{\"id\":\"x\",\"s\":\"\\u0000\"}", NULL); /* NUL: refused by jansson */
    expect_id("{\"id\":\"x\",\"n\":01}", NULL);
    expect_id("{\"id\":\"x\",\"n\":-}", NULL);
    expect_id("{\"id\":\"x\",\"b\":tru}", NULL);
    expect_id("{\"id\":\"x\",\"s\":\"tab\there\"}", NULL); /* a raw control character */
    expect_id("{\"id\":\"x\",\"s\":\"bad \\q escape\"}", NULL);
    expect_id("{\"id\":\"x\",\"s\":\"\xc3\xa9\"}", "x"); /* UTF-8: jansson */
    expect_id("{\"id\":\"x\",\"s\":\"\xc3\"}", NULL);    /* broken UTF-8 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),      cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_signature),     cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_cloudevent_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
