/* test_log.c - log value quoting (it carries sender-controlled bytes) and level names. */
#include "dm_common.h"
#include "dm_log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

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
    assert_string_equal(dm_log_quote("x\ny\r\tz\x7f", 7, buf, sizeof buf), "\"x\\ny\\r\\tz\\x7f\"");
    assert_string_equal(dm_log_quote("a\0b", 3, buf, sizeof buf), "\"a\\x00b\"");
    assert_string_equal(dm_log_quote(NULL, 5, buf, sizeof buf), "\"\"");
    assert_string_equal(dm_log_quote_str(NULL, buf, sizeof buf), "\"\"");
    assert_string_equal(dm_log_quote_str("k", buf, sizeof buf), "\"k\"");
}

/* The kid of the report: a forged second line and terminal escapes. */
static void test_quote_injection(void **state)
{
    (void)state;
    char buf[256];
    const char *kid =
        "k1\n ts=2026-01-01T00:00:00.000Z level=error msg=\"forged\"\x1b[2J\x1b]0;x\x07";
    dm_log_quote(kid, strlen(kid), buf, sizeof buf);
    assert_string_equal(buf,
                        "\"k1\\n ts=2026-01-01T00:00:00.000Z level=error msg=\\\"forged\\\"\\x1b[2J"
                        "\\x1b]0;x\\x07\"");
    for (const char *p = buf; *p; p++)
        assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f);
    /* the only unescaped quotes are the outer two */
    size_t quotes = 0;
    for (size_t i = 0; buf[i]; i++)
        quotes += buf[i] == '"' && (i == 0 || buf[i - 1] != '\\');
    assert_int_equal(quotes, 2);
}

static void test_quote_utf8(void **state)
{
    (void)state;
    char buf[64];
    /* well-formed text is kept */
    assert_string_equal(dm_log_quote_str("caf\xc3\xa9 \xe2\x82\xac", buf, sizeof buf),
                        "\"caf\xc3\xa9 \xe2\x82\xac\"");
    /* a lone continuation byte, a truncated sequence, an overlong '/', a surrogate */
    assert_string_equal(dm_log_quote_str("\x80", buf, sizeof buf), "\"\\x80\"");
    assert_string_equal(dm_log_quote_str("a\xc3", buf, sizeof buf), "\"a\\xc3\"");
    assert_string_equal(dm_log_quote_str("\xc0\xaf", buf, sizeof buf), "\"\\xc0\\xaf\"");
    assert_string_equal(dm_log_quote_str("\xed\xa0\x80", buf, sizeof buf), "\"\\xed\\xa0\\x80\"");
    /* C1 CSI (U+009B) and a right-to-left override (U+202E) */
    assert_string_equal(dm_log_quote_str("\xc2\x9b"
                                         "2J",
                                         buf, sizeof buf),
                        "\"\\xc2\\x9b2J\"");
    assert_string_equal(dm_log_quote_str("\xe2\x80\xae", buf, sizeof buf), "\"\\xe2\\x80\\xae\"");
    /* a raw 8-bit CSI byte */
    assert_string_equal(dm_log_quote_str("\x9b", buf, sizeof buf), "\"\\x9b\"");
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

/* A cut never splits an escape or a UTF-8 sequence. */
static void test_quote_truncates_whole_units(void **state)
{
    (void)state;
    for (size_t size = 8; size < 24; size++) {
        char buf[24];
        dm_log_quote_str("\n\n\n\n\n\n\n\n\n\n", buf, size);
        size_t n = strlen(buf);
        assert_true(n < size);
        assert_memory_equal(buf + n - 4, "\xe2\x80\xa6\"", 4);
        /* before the ellipsis: the opening quote and whole "\n" pairs */
        assert_int_equal((n - 5) % 2, 0);
        dm_log_quote_str(
            "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", buf,
            size);
        n = strlen(buf);
        assert_true(n < size);
        assert_memory_equal(buf + n - 4, "\xe2\x80\xa6\"", 4);
        assert_int_equal((n - 5) % 2, 0);
    }
}

/* One call writes exactly one line, whatever a caller forgot to quote. */
static void test_log_one_line(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    dm_log(DM_LOG_WARN, "request refused", "kid=%s", "x\n ts=1 level=error\x1b[31m");
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    char out[512];
    ssize_t n = read(fds[0], out, sizeof out - 1);
    close(fds[0]);
    assert_true(n > 0);
    out[n] = '\0';
    assert_non_null(strstr(out, "kid=x? ts=1 level=error?[31m\n"));
    assert_int_equal(strchr(out, '\n') - out, n - 1);
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
        cmocka_unit_test(test_quote_plain),     cmocka_unit_test(test_quote_escapes_and_controls),
        cmocka_unit_test(test_quote_injection), cmocka_unit_test(test_quote_utf8),
        cmocka_unit_test(test_quote_truncates), cmocka_unit_test(test_quote_truncates_whole_units),
        cmocka_unit_test(test_log_one_line),    cmocka_unit_test(test_parse_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
