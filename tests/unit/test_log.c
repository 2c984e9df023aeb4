/* test_log.c - log value quoting (it carries sender-controlled bytes) and level names. */
#include "dm_common.h"
#include "dm_log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_quote_plain(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(dm_log_quote("abc", 3, buf, sizeof buf), "\"abc\"");
    assert_string_equal(dm_log_quote("", 0, buf, sizeof buf), "\"\"");
    /* only len bytes are read: network data is not NUL-terminated */
    assert_string_equal(dm_log_quote("abcdef", 2, buf, sizeof buf), "\"ab\"");
}

static void test_quote_escapes_and_controls(void **state)
{
    (void)state;
    char buf[64];
    /* a quote or backslash cannot end the value early; control bytes cannot forge a new line */
    assert_string_equal(dm_log_quote("a\"b\\c", 5, buf, sizeof buf), "\"a\\\"b\\\\c\"");
    assert_string_equal(dm_log_quote("x\ny\r\tz\x7f", 7, buf, sizeof buf), "\"x?y??z?\"");
    assert_string_equal(dm_log_quote("a\0b", 3, buf, sizeof buf), "\"a?b\"");
}

static void test_quote_truncates(void **state)
{
    (void)state;
    char buf[16];
    const char *long_text = "0123456789abcdefghijklmnop";
    dm_log_quote(long_text, strlen(long_text), buf, sizeof buf);
    assert_true(strlen(buf) < sizeof buf);
    assert_int_equal(buf[0], '"');
    assert_int_equal(buf[strlen(buf) - 1], '"');
    assert_non_null(strstr(buf, "\xe2\x80\xa6")); /* the ellipsis says it was cut */
    assert_memory_equal(buf, "\"0123456789", 11);
}

static void test_parse_level(void **state)
{
    (void)state;
    dm_log_level l = DM_LOG_ERROR;
    assert_int_equal(dm_log_parse_level("debug", &l), DM_OK);
    assert_int_equal(l, DM_LOG_DEBUG);
    assert_int_equal(dm_log_parse_level("warn", &l), DM_OK);
    assert_int_equal(l, DM_LOG_WARN);
    assert_int_equal(dm_log_parse_level("verbose", &l), DM_EINVAL);
    assert_int_equal(l, DM_LOG_WARN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote_plain),
        cmocka_unit_test(test_quote_escapes_and_controls),
        cmocka_unit_test(test_quote_truncates),
        cmocka_unit_test(test_parse_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
