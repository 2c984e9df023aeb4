/* test_sse.c - the pure parts of the event stream (dm_sse_text.h): Last-Event-ID parsing and
 * formatting, the start position, and the SSE framing of one record. */
#include "dm_common.h"
#include "dm_sse_text.h"

#include <event2/buffer.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int parse(const char *s, size_t nshards, dm_sse_id *out, char *err)
{
    return dm_sse_parse_ids(s, strlen(s), nshards, out, err, 200);
}

static void test_parse_one_shard(void **state)
{
    (void)state;
    dm_sse_id id[1];
    char err[200];
    assert_int_equal(DM_OK, parse("1732800000000-0", 1, id, err));
    assert_true(id[0].ms == 1732800000000ULL && id[0].seq == 0);
    assert_int_equal(DM_OK, parse("0-0", 1, id, err));
    assert_true(id[0].ms == 0 && id[0].seq == 0);
    assert_int_equal(DM_OK, parse("18446744073709551615-18446744073709551615", 1, id, err));
    assert_true(id[0].ms == UINT64_MAX && id[0].seq == UINT64_MAX);
}

static void test_parse_shards(void **state)
{
    (void)state;
    dm_sse_id id[3];
    char err[200];
    assert_int_equal(DM_OK, parse("5-1,0-0,7-22", 3, id, err));
    assert_true(id[0].ms == 5 && id[0].seq == 1);
    assert_true(id[1].ms == 0 && id[1].seq == 0);
    assert_true(id[2].ms == 7 && id[2].seq == 22);

    assert_int_equal(DM_EINVAL, parse("5-1,0-0", 3, id, err));
    assert_string_equal("2 ids given, 3 expected (one <ms>-<seq> per shard, comma-separated)", err);
    assert_int_equal(DM_EINVAL, parse("5-1,0-0,1-1,2-2", 3, id, err));
    assert_non_null(strstr(err, "more than 3 ids"));
    assert_int_equal(DM_EINVAL, parse("5-1,x,1-1", 3, id, err));
    assert_non_null(strstr(err, "id number 2 is not <ms>-<seq>"));
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",    /* empty */
        "123", /* no sequence (Redis would take it; we want exact positions) */
        "123-",
        "-5",
        "1-2-3",
        "+1-2",
        "1-+2",
        " 1-2",
        "1-2 ",
        "1 -2",
        "0x1-2",
        "1-2,",
        ",1-2",
        "18446744073709551616-0",  /* UINT64_MAX + 1 */
        "1-99999999999999999999",  /* 20 digits, overflows */
        "000000000000000000001-0", /* 21 digits */
        "1\n-2",
        "１-2",
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(bad); i++) {
        dm_sse_id id[1];
        char err[200] = "";
        if (parse(bad[i], 1, id, err) != DM_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_true(err[0] != '\0');
    }
    /* NUL inside the given length is not a digit */
    dm_sse_id id[1];
    char err[200];
    assert_int_equal(DM_EINVAL, dm_sse_parse_ids("1-2\0", 4, 1, id, err, sizeof err));
}

static void test_format_ids(void **state)
{
    (void)state;
    dm_sse_id ids[3] = {{1732800000000ULL, 0}, {0, 0}, {UINT64_MAX, 7}};
    char buf[3 * (DM_SSE_ID_MAX + 1)];
    size_t n = dm_sse_format_ids(ids, 3, buf, sizeof buf);
    assert_string_equal("1732800000000-0,0-0,18446744073709551615-7", buf);
    assert_int_equal(strlen(buf), n);
    /* round trip */
    dm_sse_id back[3];
    char err[200];
    assert_int_equal(DM_OK, dm_sse_parse_ids(buf, n, 3, back, err, sizeof err));
    assert_memory_equal(ids, back, sizeof ids);
    /* one id in the largest form fits DM_SSE_ID_MAX */
    char one[DM_SSE_ID_MAX + 1];
    dm_sse_id max = {UINT64_MAX, UINT64_MAX};
    assert_int_equal(DM_SSE_ID_MAX, dm_sse_format_ids(&max, 1, one, sizeof one));
}

/* dm_sse_parse_start on @p query and @p header with 2 shards refuses with exactly @p want. */
static void expect_start_refused(const char *query, const char *header, const char *want)
{
    dm_sse_start st;
    dm_sse_id pos[2];
    char err[320] = "";
    assert_int_equal(DM_EINVAL, dm_sse_parse_start(query, header, 2, &st, pos, err, sizeof err));
    assert_string_equal(want, err);
}

static void test_parse_start(void **state)
{
    (void)state;
    dm_sse_start st;
    dm_sse_id pos[2] = {{0, 0}, {0, 0}};
    char err[320];
    assert_int_equal(DM_OK, dm_sse_parse_start(NULL, NULL, 2, &st, pos, err, sizeof err));
    assert_int_equal(DM_SSE_FROM_NEW, st.from);
    assert_string_equal("new", st.text);
    assert_int_equal(DM_OK, dm_sse_parse_start("from=start", "", 2, &st, pos, err, sizeof err));
    assert_int_equal(DM_SSE_FROM_START, st.from);
    assert_string_equal("start", st.text);
    /* the header beats the parameters; an empty header counts as absent */
    assert_int_equal(DM_OK, dm_sse_parse_start("from=start&last_event_id=1-1,2-2", "3-3,4-4", 2,
                                               &st, pos, err, sizeof err));
    assert_int_equal(DM_SSE_FROM_ID, st.from);
    assert_true(pos[0].ms == 3 && pos[1].seq == 4);
    assert_string_equal("\"3-3,4-4\"", st.text);
    assert_int_equal(DM_OK,
                     dm_sse_parse_start("last_event_id=1-1,2-2", "", 2, &st, pos, err, sizeof err));
    assert_true(st.from == DM_SSE_FROM_ID && pos[0].ms == 1 && pos[1].ms == 2);

    expect_start_refused("a=%00", NULL, "parameters must not contain NUL bytes (%00)");
    expect_start_refused("since=1", NULL, "unknown parameter since (known: last_event_id, from)");
    expect_start_refused("from=start&from=start", NULL, "from: given more than once");
    expect_start_refused("from=end", NULL,
                         "from: must be \"start\" (or leave it out for new records only)");
    expect_start_refused(NULL, "1-1",
                         "Last-Event-ID: 1 id given, 2 expected (one <ms>-<seq> "
                         "per shard, comma-separated)");
    expect_start_refused("last_event_id=x", NULL,
                         "last_event_id: id number 1 is not <ms>-<seq> (two decimal numbers, at "
                         "most 20 digits each, joined by a dash)");
}

static char *event_text(const char *id, const char *type, const char *data, size_t dlen)
{
    struct evbuffer *b = evbuffer_new();
    dm_sse_format_event(b, id, type, strlen(type), data, dlen);
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

static void expect_event(const char *type, const char *data, const char *want)
{
    char *s = event_text("1-0", type, data, strlen(data));
    assert_string_equal(want, s);
    free(s);
}

static void test_format_event(void **state)
{
    (void)state;
    expect_event("dev.digestmap.mapping.confirmed.v1", "{\"a\":1}",
                 "id: 1-0\nevent: dev.digestmap.mapping.confirmed.v1\ndata: {\"a\":1}\n\n");
    /* LF, CRLF and CR all end a data line; the client joins the lines back with LF */
    expect_event("t", "{\n\"a\":1\r\n}\rx",
                 "id: 1-0\nevent: t\ndata: {\ndata: \"a\":1\ndata: }\n"
                 "data: x\n\n");
    /* a trailing line break keeps its (empty) last line, so the document arrives whole */
    expect_event("t", "{}\n", "id: 1-0\nevent: t\ndata: {}\ndata: \n\n");
    /* no type, or a type that would break the framing: no event line (a "message" event) */
    expect_event("", "{}", "id: 1-0\ndata: {}\n\n");
    expect_event("a\nid: 9-9", "{}", "id: 1-0\ndata: {}\n\n");
    expect_event("a\rb", "{}", "id: 1-0\ndata: {}\n\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_one_shard), cmocka_unit_test(test_parse_shards),
        cmocka_unit_test(test_parse_rejects),   cmocka_unit_test(test_format_ids),
        cmocka_unit_test(test_format_event),    cmocka_unit_test(test_parse_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
