/* test_query.c - GET /v1/mappings: cursor encoding and decoding, query-string validation. */
#include "dm_common.h"
#include "dm_api.h"
#include "dm_query.h"
#include "dm_test.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEX40 "89abcdef0123456789abcdef0123456789abcdef"
static const char MEMBER[] = "8204125468626|sha256:" HEX64 "|" HEX40;

/* The cursor of MEMBER, made by the test itself from the member's bytes. */
static void cursor_of(const char *member, char out[DM_CURSOR_LEN + 1])
{
    dm_query_cursor_encode(member, out);
}

static void test_cursor_roundtrip(void **state)
{
    (void)state;
    assert_int_equal(strlen(MEMBER), DM_INDEX_MEMBER_LEN);
    char c[DM_CURSOR_LEN + 1], m[DM_INDEX_MEMBER_LEN + 1];
    cursor_of(MEMBER, c);
    assert_int_equal(strlen(c), DM_CURSOR_LEN);
    for (size_t i = 0; i < DM_CURSOR_LEN; i++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                               c[i]));
    assert_true(dm_query_cursor_decode(c, strlen(c), m));
    assert_string_equal(m, MEMBER);
    /* base64 of "826…": a known prefix, so the encoding is base64 and not something else */
    assert_memory_equal(c, "ODIwNDEy", 8);
}

static void test_cursor_url_alphabet(void **state)
{
    (void)state;
    /* Many members: never '+', '/' or padding in a cursor (it goes into a URL unescaped). */
    char c[DM_CURSOR_LEN + 1], m[DM_INDEX_MEMBER_LEN + 1];
    for (int t = 0; t < 200; t++) {
        char member[DM_INDEX_MEMBER_LEN + 1];
        snprintf(member, sizeof member, "%013d|sha256:%s|%s", t * 7919, HEX64, HEX40);
        member[DM_INDEX_MEMBER_LEN - 1 - (t % 40)] = "0123456789abcdef"[t % 16];
        cursor_of(member, c);
        assert_null(strchr(c, '+'));
        assert_null(strchr(c, '/'));
        assert_null(strchr(c, '='));
        assert_true(dm_query_cursor_decode(c, DM_CURSOR_LEN, m));
        assert_string_equal(m, member);
    }
}

static void decode_bad(const char *text)
{
    char m[DM_INDEX_MEMBER_LEN + 1] = "untouched";
    if (dm_query_cursor_decode(text, strlen(text), m))
        fail_msg("accepted cursor: %s", text);
}

/* The base64url text of arbitrary bytes, via the encoder's own alphabet rules. */
static void b64url(const char *bytes, size_t n, char *out)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned char)bytes[i] << 16 | (unsigned char)bytes[i + 1] << 8 |
                     (unsigned char)bytes[i + 2];
        out[o++] = A[v >> 18 & 63];
        out[o++] = A[v >> 12 & 63];
        out[o++] = A[v >> 6 & 63];
        out[o++] = A[v & 63];
    }
    out[o] = '\0';
}

static void test_cursor_invalid(void **state)
{
    (void)state;
    char c[DM_CURSOR_LEN + 1];
    cursor_of(MEMBER, c);
    /* our independent encoder agrees with the real one */
    char mine[DM_CURSOR_LEN + 1];
    b64url(MEMBER, DM_INDEX_MEMBER_LEN, mine);
    assert_string_equal(mine, c);

    decode_bad("");
    decode_bad("garbage");
    char buf[DM_CURSOR_LEN + 8];
    /* one character short, one too many */
    snprintf(buf, sizeof buf, "%.*s", DM_CURSOR_LEN - 1, c);
    decode_bad(buf);
    snprintf(buf, sizeof buf, "%sA", c);
    decode_bad(buf);
    /* standard alphabet, padding, blanks */
    const char bad_chars[] = "+/= \n.%";
    for (size_t i = 0; bad_chars[i]; i++) {
        snprintf(buf, sizeof buf, "%s", c);
        buf[17] = bad_chars[i];
        decode_bad(buf);
    }
    /* well-formed base64url of malformed members */
    const char *members[] = {
        "8204125468626|sha256:" HEX64 "|" "89ABCDEF0123456789abcdef0123456789abcdef", /* upper */
        "8204125468626|sha512:" HEX64 "|" HEX40,
        "82041254686x6|sha256:" HEX64 "|" HEX40,
        "8204125468626,sha256:" HEX64 "|" HEX40,
        "8204125468626|sha256:" HEX64 ";" HEX40,
        "8204125468626|sha256:" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg"
        "|" HEX40,
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(members); i++) {
        assert_int_equal(strlen(members[i]), DM_INDEX_MEMBER_LEN);
        b64url(members[i], DM_INDEX_MEMBER_LEN, buf);
        decode_bad(buf);
    }
    /* a NUL inside the member */
    char nul[DM_INDEX_MEMBER_LEN];
    memcpy(nul, MEMBER, sizeof nul);
    nul[60] = '\0';
    b64url(nul, sizeof nul, buf);
    decode_bad(buf);
}

static void parse_ok(const char *qs, dm_mappings_query *q)
{
    dm_error err = {0};
    if (dm_api_parse_mappings(qs, q, &err) != DM_OK)
        fail_msg("rejected [%s]: %s: %s", qs ? qs : "(null)", err.field, err.text);
}

static void parse_bad(const char *qs, const char *field, const char *text_prefix)
{
    dm_mappings_query q;
    dm_error err = {0};
    if (dm_api_parse_mappings(qs, &q, &err) != DM_EINVAL)
        fail_msg("accepted [%s]", qs ? qs : "(null)");
    assert_string_equal(err.field, field);
    if (strncmp(err.text, text_prefix, strlen(text_prefix)) != 0)
        fail_msg("[%s]: text [%s] does not start with [%s]", qs ? qs : "(null)", err.text,
                 text_prefix);
}

static void test_parse_valid(void **state)
{
    (void)state;
    dm_mappings_query q;
    parse_ok("repository=acme/api", &q);
    assert_int_equal(q.kind, DM_INDEX_REPOSITORY);
    assert_string_equal(q.name, "acme/api");
    assert_int_equal(q.limit, DM_QUERY_DEFAULT_LIMIT);
    assert_string_equal(q.after, "");

    parse_ok("run=github/9876543210&limit=500", &q);
    assert_int_equal(q.kind, DM_INDEX_RUN);
    assert_string_equal(q.name, "github/9876543210");
    assert_int_equal(q.limit, 500);

    parse_ok("limit=1&image_repository=team%2Fapi&registry=contoso.azurecr.io", &q);
    assert_int_equal(q.kind, DM_INDEX_IMAGE);
    assert_string_equal(q.name, "contoso.azurecr.io/team/api");
    assert_int_equal(q.limit, 1);

    char c[DM_CURSOR_LEN + 1], qs[300];
    cursor_of(MEMBER, c);
    snprintf(qs, sizeof qs, "repository=a+b&cursor=%s", c);
    parse_ok(qs, &q);
    assert_string_equal(q.name, "a b"); /* '+' is a space in a query string */
    assert_string_equal(q.after, MEMBER);

    parse_ok("limit=007&repository=x", &q);
    assert_int_equal(q.limit, 7);

    /* the longest name accepted */
    char longq[DM_QUERY_MAX_NAME + 32];
    int n = snprintf(longq, sizeof longq, "repository=");
    memset(longq + n, 'r', DM_QUERY_MAX_NAME);
    longq[n + DM_QUERY_MAX_NAME] = '\0';
    parse_ok(longq, &q);
    assert_int_equal(strlen(q.name), DM_QUERY_MAX_NAME);
    /* registry + "/" + image_repository counts as one name */
    n = snprintf(longq, sizeof longq, "registry=r&image_repository=");
    memset(longq + n, 'i', DM_QUERY_MAX_NAME - 2);
    longq[n + DM_QUERY_MAX_NAME - 2] = '\0';
    parse_ok(longq, &q);
    assert_int_equal(strlen(q.name), DM_QUERY_MAX_NAME);
}

static void test_parse_invalid(void **state)
{
    (void)state;
    parse_bad(NULL, "", "one of repository=");
    parse_bad("", "", "one of repository=");
    parse_bad("limit=3", "", "one of repository=");
    parse_bad("repository=a&run=g/1", "", "ambiguous");
    parse_bad("run=g/1&registry=r&image_repository=i", "", "ambiguous");
    parse_bad("run=github", "run", "must be <provider>/<run id>");
    parse_bad("run=/1", "run", "must be <provider>/<run id>");
    parse_bad("run=github/", "run", "must be <provider>/<run id>");
    parse_bad("run=github/1/2", "run", "must be <provider>/<run id>");
    parse_bad("registry=r", "image_repository", "is required with registry");
    parse_bad("image_repository=i", "registry", "is required with image_repository");
    parse_bad("registry=r/x&image_repository=i", "registry", "must be a registry host");
    const char *limits[] = {"0", "501", "-1", "1e2", "abc", "1.0", "99999999999999999999", " 5"};
    for (size_t i = 0; i < DM_ARRAY_LEN(limits); i++) {
        char qs[64];
        snprintf(qs, sizeof qs, "repository=a&limit=%s", limits[i]);
        parse_bad(qs, "limit", "must be an integer from 1 to 500");
    }
    parse_bad("repository=a&limit=", "limit", "must not be empty");
    parse_bad("repository=a&cursor=abc", "cursor", "not a next_cursor");
    parse_bad("repository=a&foo=1&bar=2", "", "unknown parameter(s): foo, bar");
    parse_bad("REPOSITORY=a", "", "unknown parameter(s): REPOSITORY");
    parse_bad("repository=a&repository=a", "repository", "given more than once");
    parse_bad("repository=", "repository", "must not be empty");
    parse_bad("repository", "", "malformed query string");
    parse_bad("=a", "", "malformed query string");
    parse_bad("repository=a%00b", "", "parameters must not contain NUL");
    /* a name from the URI that is not printable ASCII is shown with '?' (the answer is JSON) */
    dm_mappings_query q;
    dm_error err = {0};
    assert_int_equal(dm_api_parse_mappings("repository=a&x\xff\x01y=1", &q, &err), DM_EINVAL);
    assert_string_equal(err.text, "unknown parameter(s): x??y (known: repository, run, "
                                  "registry, image_repository, limit, cursor)");

    char longq[DM_QUERY_MAX_NAME + 40];
    int n = snprintf(longq, sizeof longq, "repository=");
    memset(longq + n, 'r', DM_QUERY_MAX_NAME + 1);
    longq[n + DM_QUERY_MAX_NAME + 1] = '\0';
    parse_bad(longq, "repository", "longer than 512 bytes");
    n = snprintf(longq, sizeof longq, "registry=r&image_repository=");
    memset(longq + n, 'i', DM_QUERY_MAX_NAME - 1);
    longq[n + DM_QUERY_MAX_NAME - 1] = '\0';
    parse_bad(longq, "image_repository", "longer than 512 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_roundtrip), cmocka_unit_test(test_cursor_url_alphabet),
        cmocka_unit_test(test_cursor_invalid),   cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
