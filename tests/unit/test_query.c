/* test_query.c - the C side of the query answers: GET /v1/images placed together from
 * lua/query.lua's pieces, its cursor and its paging parameters; GET /v1/mappings: cursor encoding and decoding, query-string
 * validation, the merge of the shards' pages (against a model of lua/mappings.lua) and the
 * answer placed together from the page's mappings. */
#include "dm_common.h"
#include "dm_api.h"
#include "dm_exposure.h"
#include "dm_query.h"
#include "dm_test.h"
#include "dm_keys.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

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
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", c[i]));
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
        "8204125468626|sha256:" HEX64 "|"
        "89ABCDEF0123456789abcdef0123456789abcdef", /* upper */
        "8204125468626|sha512:" HEX64 "|" HEX40,
        "82041254686x6|sha256:" HEX64 "|" HEX40,
        "8204125468626,sha256:" HEX64 "|" HEX40,
        "8204125468626|sha256:" HEX64 ";" HEX40,
        "8204125468626|sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg"
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

/*---------------------------------------------------------------- GET /v1/images ---*/

#define DIGEST "sha256:" HEX64

/* A reply of query.lua (or something else): strings and integers as hiredis builds them. */
typedef struct fake_reply {
    redisReply top, items[11];
    redisReply *ptrs[11];
} fake_reply;

static const redisReply *fake(fake_reply *f, size_t n, const char *const *strs)
{
    memset(f, 0, sizeof *f);
    f->top.type = REDIS_REPLY_ARRAY;
    f->top.elements = n;
    f->top.element = f->ptrs;
    for (size_t i = 0; i < n; i++) {
        f->ptrs[i] = &f->items[i];
        if (strs[i]) {
            f->items[i].type = REDIS_REPLY_STRING;
            f->items[i].str = (char *)strs[i];
            f->items[i].len = strlen(strs[i]);
        } else {
            f->items[i].type = REDIS_REPLY_INTEGER;
            f->items[i].integer = 1;
        }
    }
    return &f->top;
}

/* query.lua's reply: four list texts, the next page's edge id, the number of mappings, and
 * the findings and workloads parts (summary, items, next key, total, workloads). */
static const redisReply *image_rep_full(fake_reply *f, const char *const pieces[4],
                                        const char *next, long long total, const char *summary,
                                        const char *items, const char *fnext, long long ftotal,
                                        const char *workloads)
{
    const char *strs[11] = {pieces[0], pieces[1], pieces[2], pieces[3], next,     NULL,
                            summary,   items,     fnext,     NULL,      workloads};
    fake(f, 11, strs);
    f->items[5].integer = total;
    f->items[9].integer = ftotal;
    return &f->top;
}

static const redisReply *image_rep(fake_reply *f, const char *const pieces[4], const char *next,
                                   long long total)
{
    return image_rep_full(f, pieces, next, total, "", "[]", "", 0, "[]");
}

#define NO_FINDINGS                                                                 \
    ",\"findings\":{\"summary\":{\"critical\":0,\"high\":0,\"medium\":0,\"low\":0," \
    "\"unknown\":0,\"by_scanner\":{}},\"items\":[],\"next_cursor\":null},\"workloads\":[]"

static void image_answer_is(const char *const pieces[4], const char *next, long long total,
                            int want_status, const char *want)
{
    fake_reply f;
    int status = 0;
    char *body = dm_query_image_answer(DIGEST, image_rep(&f, pieces, next, total), &status);
    assert_non_null(body);
    assert_int_equal(status, want_status);
    assert_string_equal(body, want);
    free(body);
}

static void test_image_answer(void **state)
{
    (void)state;
    /* The pieces are placed as they are, in query.lua's order: C does not read them. */
    const char *const found[4] = {"[{\"digest\":\"m\"}]", "[{\"registry\":\"r\"},{\"x\":1}]", "[]",
                                  "[{\"image\":{\"deleted_at\":\"t\"}}]"};
    image_answer_is(found, "", 1, 200,
                    "{\"digest\":\"" DIGEST "\",\"mappings\":[{\"digest\":\"m\"}],"
                    "\"next_cursor\":null,"
                    "\"pending\":{\"registry\":[{\"registry\":\"r\"},{\"x\":1}],\"build\":[]},"
                    "\"deleted\":[{\"image\":{\"deleted_at\":\"t\"}}]" NO_FINDINGS "}");
    /* more pages: the cursor of the page's last edge id */
    char c[DM_IMAGE_CURSOR_LEN + 1], want[1024];
    dm_query_image_cursor_encode(HEX40, c);
    snprintf(want, sizeof want,
             "{\"digest\":\"" DIGEST "\",\"mappings\":[{\"digest\":\"m\"}],\"next_cursor\":\"%s\","
             "\"pending\":{\"registry\":[{\"registry\":\"r\"},{\"x\":1}],\"build\":[]},"
             "\"deleted\":[{\"image\":{\"deleted_at\":\"t\"}}]" NO_FINDINGS "}",
             c);
    image_answer_is(found, HEX40, 9, 200, want);
    /* any one list is enough for a 200 */
    for (size_t i = 0; i < 4; i++) {
        const char *one[4] = {"[]", "[]", "[]", "[]"};
        one[i] = "[{}]";
        fake_reply f;
        int status = 0;
        char *body = dm_query_image_answer(DIGEST, image_rep(&f, one, "", i == 0), &status);
        assert_int_equal(status, 200);
        assert_null(strstr(body, "error"));
        free(body);
    }
    /* a page past the last mapping of a digest that has mappings: still known */
    const char *const none[4] = {"[]", "[]", "[]", "[]"};
    image_answer_is(none, "", 3, 200,
                    "{\"digest\":\"" DIGEST "\",\"mappings\":[],\"next_cursor\":null,"
                    "\"pending\":{\"registry\":[],\"build\":[]},\"deleted\":[]" NO_FINDINGS "}");
    /* nothing known: the same document, every list empty, with an error */
    image_answer_is(none, "", 0, 404,
                    "{\"digest\":\"" DIGEST "\",\"mappings\":[],\"next_cursor\":null,"
                    "\"pending\":{\"registry\":[],\"build\":[]},\"deleted\":[]" NO_FINDINGS
                    ",\"error\":\"nothing is known about this digest\"}");
}

/* A digest known only by its findings or its workloads is known: 200. */
static void test_image_answer_findings_workloads(void **state)
{
    (void)state;
    const char *const none[4] = {"[]", "[]", "[]", "[]"};
    const char *sum = "{\"critical\":1,\"high\":0,\"medium\":0,\"low\":0,\"unknown\":0,"
                      "\"by_scanner\":{\"trivy\":{\"critical\":1}}}";
    const char *item = "[{\"id\":\"CVE-1\",\"package\":\"p\",\"severity\":\"critical\","
                       "\"scanner\":\"trivy\"}]";
    const char *key = "0\x1f"
                      "CVE-1\x1fp\x1ftrivy";
    fake_reply f;
    int status = 0;
    char *body = dm_query_image_answer(
        DIGEST, image_rep_full(&f, none, "", 0, sum, item, key, 2, "[]"), &status);
    assert_int_equal(status, 200);
    char *c = dm_cursor_encode(key, strlen(key)), want[1024];
    snprintf(want, sizeof want,
             "{\"digest\":\"" DIGEST "\",\"mappings\":[],\"next_cursor\":null,"
             "\"pending\":{\"registry\":[],\"build\":[]},\"deleted\":[],"
             "\"findings\":{\"summary\":%s,\"items\":%s,\"next_cursor\":\"%s\"},"
             "\"workloads\":[]}",
             sum, item, c);
    assert_string_equal(body, want);
    free(body);
    /* the cursor decodes back to the key, and only to a key of that form */
    char back[DM_FINDINGS_KEY_MAX + 1];
    size_t n = 0;
    assert_true(dm_cursor_decode(c, strlen(c), back, DM_FINDINGS_KEY_MAX, &n));
    assert_true(dm_query_findings_key_valid(back, n));
    assert_string_equal(back, key);
    free(c);
    c = dm_cursor_encode("9\x1fx\x1fy\x1fz", 7);
    assert_true(dm_cursor_decode(c, strlen(c), back, DM_FINDINGS_KEY_MAX, &n));
    assert_false(dm_query_findings_key_valid(back, n));
    free(c);
    /* workloads only */
    const char *wl = "[{\"cluster\":\"c\",\"namespace\":\"n\",\"kind\":\"Pod\",\"name\":\"p\","
                     "\"exposure\":\"internet\",\"images\":[\"" DIGEST "\"]}]";
    body = dm_query_image_answer(DIGEST, image_rep_full(&f, none, "", 0, "", "[]", "", 0, wl),
                                 &status);
    assert_int_equal(status, 200);
    assert_non_null(strstr(body, wl));
    free(body);
    /* findings counted but none on this page (past the last): known */
    body = dm_query_image_answer(DIGEST, image_rep_full(&f, none, "", 0, "", "[]", "", 3, "[]"),
                                 &status);
    assert_int_equal(status, 200);
    free(body);
    /* a findings next key or summary of another form: refused */
    int st = -1;
    assert_null(dm_query_image_answer(
        DIGEST, image_rep_full(&f, none, "", 0, "", "[]", "CVE-1", 1, "[]"), &st));
    assert_null(dm_query_image_answer(
        DIGEST, image_rep_full(&f, none, "", 0, "[1]", "[]", "", 1, "[]"), &st));
    assert_null(
        dm_query_image_answer(DIGEST, image_rep_full(&f, none, "", 0, "", "[]", "", 1, "{}"), &st));
}

static void image_answer_bad(const redisReply *rep)
{
    int status = -1;
    assert_null(dm_query_image_answer(DIGEST, rep, &status));
    assert_int_equal(status, -1);
}

static void test_image_answer_malformed(void **state)
{
    (void)state;
    fake_reply f;
    /* the shape of another version of the script, or of another script */
    const char *const five[5] = {NULL, "[]", "[]", "[]", "[]"};
    image_answer_bad(fake(&f, 5, five));
    image_answer_bad(fake(&f, 3, five + 1));
    image_answer_bad(fake(&f, 4, five + 1)); /* before paging: no next, no total */
    /* lists that are not array texts */
    const char *const bad[] = {"", "[", "]", "{}", "[]x", " []", "null"};
    for (size_t i = 0; i < DM_ARRAY_LEN(bad); i++) {
        const char *p[4] = {"[]", "[]", "[]", "[]"};
        p[i % 4] = bad[i];
        image_answer_bad(image_rep(&f, p, "", 1));
    }
    /* a next that is not an edge id; a total that is not an integer */
    const char *const lists[4] = {"[]", "[]", "[]", "[]"};
    const char *const nexts[] = {"0", HEX40 "0", "89ABCDEF0123456789abcdef0123456789abcdef",
                                 "g9abcdef0123456789abcdef0123456789abcdef"};
    for (size_t i = 0; i < DM_ARRAY_LEN(nexts); i++)
        image_answer_bad(image_rep(&f, lists, nexts[i], 1));
    const char *const text_total[11] = {"[]", "[]", "[]", "[]", "", "1", "", "[]", "", NULL, "[]"};
    image_answer_bad(fake(&f, 11, text_total));
    image_answer_bad(fake(&f, 6, text_total)); /* before findings and workloads */
    /* an error reply (the script failed) */
    redisReply err = {.type = REDIS_REPLY_ERROR, .str = (char *)"ERR x", .len = 5};
    image_answer_bad(&err);
}

static void test_image_cursor(void **state)
{
    (void)state;
    /* every id round-trips through a 27-character base64url text */
    char id[DM_EDGE_ID_LEN + 1], c[DM_IMAGE_CURSOR_LEN + 1], back[DM_EDGE_ID_LEN + 1];
    static const char hex[] = "0123456789abcdef";
    srand(11);
    for (int n = 0; n < 2000; n++) {
        for (size_t i = 0; i < DM_EDGE_ID_LEN; i++)
            id[i] = n == 0 ? '0' : n == 1 ? 'f' : hex[rand() % 16];
        id[DM_EDGE_ID_LEN] = '\0';
        dm_query_image_cursor_encode(id, c);
        assert_int_equal(strlen(c), DM_IMAGE_CURSOR_LEN);
        assert_int_equal(
            strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
            DM_IMAGE_CURSOR_LEN);
        assert_true(dm_query_image_cursor_decode(c, strlen(c), back));
        assert_string_equal(back, id);
    }
    dm_query_image_cursor_encode(HEX40, c);
    /* not canonical: the last character's spare bits set */
    char odd[DM_IMAGE_CURSOR_LEN + 1];
    memcpy(odd, c, sizeof odd);
    odd[DM_IMAGE_CURSOR_LEN - 1] = odd[DM_IMAGE_CURSOR_LEN - 1] == 'A' ? 'B' : 'A';
    bool canonical_differs =
        dm_query_image_cursor_decode(odd, strlen(odd), back) && strcmp(back, HEX40) == 0;
    assert_false(canonical_differs);
    /* wrong lengths, padding, the standard alphabet, blanks, a /v1/mappings cursor */
    char longer[DM_IMAGE_CURSOR_LEN + 2], mcur[DM_CURSOR_LEN + 1];
    snprintf(longer, sizeof longer, "%sA", c);
    dm_query_cursor_encode(MEMBER, mcur);
    const char *bad[] = {"",
                         "A",
                         longer,
                         "AAAAAAAAAAAAAAAAAAAAAAAAAA=",
                         "AAAAAAAAAAAAAAAAAAAAAAAAAA+",
                         "AAAAAAAAAAAAAAAAAAAAAAAAAA/",
                         "AAAAAAAAAAAAAAAAAAAAAAAAAA ",
                         mcur};
    for (size_t i = 0; i < DM_ARRAY_LEN(bad); i++)
        assert_false(dm_query_image_cursor_decode(bad[i], strlen(bad[i]), back));
    char nul[DM_IMAGE_CURSOR_LEN];
    memcpy(nul, c, sizeof nul);
    nul[5] = '\0';
    assert_false(dm_query_image_cursor_decode(nul, sizeof nul, back));
}

static void image_parse_bad(const char *qs, const char *field, const char *text)
{
    dm_image_query q;
    dm_error err = {0};
    if (dm_api_parse_image(qs, &q, &err) != DM_EINVAL)
        fail_msg("accepted [%s]", qs ? qs : "(null)");
    assert_string_equal(err.field, field);
    assert_string_equal(err.text, text);
}

static void test_image_params(void **state)
{
    (void)state;
    dm_image_query q;
    dm_error err = {0};
    /* none: the first page of 100 */
    memset(&q, 0x5a, sizeof q);
    assert_int_equal(dm_api_parse_image(NULL, &q, &err), DM_OK);
    assert_int_equal(q.limit, DM_IMAGE_DEFAULT_LIMIT);
    assert_string_equal(q.after, "");
    assert_int_equal(dm_api_parse_image("", &q, &err), DM_OK);
    assert_int_equal(q.limit, 100);
    char c[DM_IMAGE_CURSOR_LEN + 1], qs[128];
    dm_query_image_cursor_encode(HEX40, c);
    snprintf(qs, sizeof qs, "cursor=%s&limit=500", c);
    assert_int_equal(dm_api_parse_image(qs, &q, &err), DM_OK);
    assert_int_equal(q.limit, 500);
    assert_string_equal(q.after, HEX40);
    assert_int_equal(dm_api_parse_image("limit=1", &q, &err), DM_OK);
    assert_int_equal(q.limit, 1);
    assert_string_equal(q.after, "");

    const char *lim = "must be an integer from 1 to 500";
    image_parse_bad("limit=0", "limit", lim);
    image_parse_bad("limit=501", "limit", lim);
    image_parse_bad("limit=-1", "limit", lim);
    image_parse_bad("limit=+1", "limit", lim);
    image_parse_bad("limit=0100", "limit", lim);
    image_parse_bad("limit=1.0", "limit", lim);
    image_parse_bad("limit=99999999999999999999", "limit", lim);
    image_parse_bad("limit=", "limit", "must not be empty");
    image_parse_bad("limit=1&limit=1", "limit", "given more than once");
    image_parse_bad("cursor=x", "cursor", "not a next_cursor returned by this API");
    image_parse_bad("cursor=", "cursor", "must not be empty");
    image_parse_bad(
        "Limit=1", "",
        "unknown parameter(s): Limit (known: limit, cursor, findings_limit, findings_cursor)");
    image_parse_bad("limit=1&repository=a&z=", "",
                    "unknown parameter(s): repository, z (known: limit, cursor, findings_limit, "
                    "findings_cursor)");
    image_parse_bad("limit=1%00", "", "parameters must not contain NUL bytes (%00)");
}

/*---------------------------------------------------------------- GET /v1/exposure ---*/

static void test_exposure_keys(void **state)
{
    (void)state;
    assert_true(dm_exposure_key_valid("prod-weu/shop/Deployment/api", 28));
    static const char *const bad[] = {"",       "a/b/c",  "a/b/c/d/e", "a//c/d",
                                      "a/b/c/", "/b/c/d", "a/b/c/d|x", "a b/b/c/d"};
    for (size_t i = 0; i < DM_ARRAY_LEN(bad); i++)
        assert_false(dm_exposure_key_valid(bad[i], strlen(bad[i])));
    /* the index order is that of "<key>|": a key before its extensions ('|' > any name byte) */
    assert_true(dm_exposure_key_cmp("c/n/Pod/a-x", "c/n/Pod/a") < 0);
    assert_true(dm_exposure_key_cmp("c/n/Pod/a", "c/n/Pod/a-x") > 0);
    assert_true(dm_exposure_key_cmp("c/n/Pod/a", "c/n/Pod/b") < 0);
    assert_int_equal(dm_exposure_key_cmp("c/n/Pod/a", "c/n/Pod/a"), 0);
    /* cursors round-trip, canonical only */
    char back[DM_WORKLOAD_KEY_MAX + 1];
    size_t n = 0;
    char *c = dm_cursor_encode("c/n/Pod/a", 9);
    assert_true(dm_cursor_decode(c, strlen(c), back, DM_WORKLOAD_KEY_MAX, &n));
    assert_int_equal(n, 9);
    assert_string_equal(back, "c/n/Pod/a");
    c[strlen(c) - 1] = c[strlen(c) - 1] == 'Q' ? 'R' : 'Q';
    bool same = dm_cursor_decode(c, strlen(c), back, DM_WORKLOAD_KEY_MAX, &n) &&
                strcmp(back, "c/n/Pod/a") == 0;
    assert_false(same);
    free(c);
    assert_false(dm_cursor_decode("", 0, back, DM_WORKLOAD_KEY_MAX, &n));
    assert_false(dm_cursor_decode("YQ=", 3, back, DM_WORKLOAD_KEY_MAX, &n));
    assert_false(dm_cursor_decode("Y+", 2, back, DM_WORKLOAD_KEY_MAX, &n));
    assert_false(dm_cursor_decode("YWJj", 4, back, 2, &n)); /* longer than the room */
    assert_false(dm_cursor_decode("AA", 2, back, DM_WORKLOAD_KEY_MAX, &n)); /* a NUL */
}

static void test_exposure_merge(void **state)
{
    (void)state;
    /* shard 0 stopped at "c/n/K/b" (more after it); shard 1 is exhausted */
    const char *const k0[] = {"c/n/K/a", "c/n/K/b"}, *const k1[] = {"c/n/K/a", "c/n/K/c"};
    dm_exposure_page pages[2] = {{.exhausted = false, .frontier = "c/n/K/b", .n = 2, .keys = k0},
                                 {.exhausted = true, .frontier = "", .n = 2, .keys = k1}};
    dm_exposure_pick out[4];
    const char *next = NULL;
    /* a workload in both shards is one pick; never past shard 0's frontier */
    size_t n = dm_exposure_merge(pages, 2, 4, out, &next);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].key, "c/n/K/a");
    assert_string_equal(out[1].key, "c/n/K/b");
    assert_string_equal(next, "c/n/K/b");
    /* a full page: the cursor is its last key */
    n = dm_exposure_merge(pages, 2, 1, out, &next);
    assert_int_equal(n, 1);
    assert_string_equal(next, "c/n/K/a");
    /* every shard exhausted: all of it, and the walk is complete */
    pages[0].exhausted = true;
    n = dm_exposure_merge(pages, 2, 4, out, &next);
    assert_int_equal(n, 3);
    assert_string_equal(out[2].key, "c/n/K/c");
    assert_null(next);
    n = dm_exposure_merge(pages, 2, 3, out, &next);
    assert_int_equal(n, 3);
    assert_null(next);
    /* a shard that found nothing passing but is not exhausted still bounds the page */
    dm_exposure_page stop[2] = {{.exhausted = false, .frontier = "c/n/K/a", .n = 0, .keys = k0},
                                {.exhausted = true, .n = 2, .keys = k1}};
    n = dm_exposure_merge(stop, 2, 4, out, &next);
    assert_int_equal(n, 1);
    assert_string_equal(next, "c/n/K/a");
}

/*---------------------------------------------------------------- GET /v1/mappings ---*/

static void test_mappings_answer(void **state)
{
    (void)state;
    dm_mappings_query q = {.kind = DM_INDEX_REPOSITORY, .limit = 2};
    snprintf(q.name, sizeof q.name, "acme/api");
    const char *const maps[] = {"{\"a\":1,\"confirmed_at\":\"t1\"}", "{\"confirmed_at\":\"t2\"}"};
    const size_t lens[] = {strlen(maps[0]), strlen(maps[1])};
    char c[DM_CURSOR_LEN + 1], want[512];
    dm_query_cursor_encode(MEMBER, c);
    /* the page's mappings as they are, in order; the cursor of the next member */
    char *body = dm_query_mappings_answer(&q, maps, lens, 2, MEMBER);
    snprintf(want, sizeof want,
             "{\"query\":{\"repository\":\"acme/api\",\"limit\":2},\"mappings\":[%s,%s],"
             "\"next_cursor\":\"%s\"}",
             maps[0], maps[1], c);
    assert_string_equal(body, want);
    free(body);
    /* the walk is complete: null; no mappings: [] */
    body = dm_query_mappings_answer(&q, maps, lens, 0, NULL);
    assert_string_equal(body, "{\"query\":{\"repository\":\"acme/api\",\"limit\":2},"
                              "\"mappings\":[],\"next_cursor\":null}");
    free(body);
    /* the echo: a run; an image split at its first '/'; names are JSON-escaped */
    q = (dm_mappings_query){.kind = DM_INDEX_RUN, .limit = 50};
    snprintf(q.name, sizeof q.name, "github/12\"3");
    body = dm_query_mappings_answer(&q, maps, lens, 1, NULL);
    snprintf(want, sizeof want,
             "{\"query\":{\"run\":\"github/12\\\"3\",\"limit\":50},\"mappings\":[%s],"
             "\"next_cursor\":null}",
             maps[0]);
    assert_string_equal(body, want);
    free(body);
    q = (dm_mappings_query){.kind = DM_INDEX_IMAGE, .limit = 1};
    snprintf(q.name, sizeof q.name, "contoso.azurecr.io/team/\xc3\xa9");
    body = dm_query_mappings_answer(&q, maps, lens, 0, NULL);
    assert_string_equal(body, "{\"query\":{\"registry\":\"contoso.azurecr.io\","
                              "\"image_repository\":\"team/\xc3\xa9\",\"limit\":1},"
                              "\"mappings\":[],\"next_cursor\":null}");
    free(body);
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
    char too_long[64];
    snprintf(too_long, sizeof too_long, "longer than %d bytes", DM_QUERY_MAX_NAME);
    parse_bad(longq, "repository", too_long);
    n = snprintf(longq, sizeof longq, "registry=r&image_repository=");
    memset(longq + n, 'i', DM_QUERY_MAX_NAME - 1);
    longq[n + DM_QUERY_MAX_NAME - 1] = '\0';
    parse_bad(longq, "image_repository", too_long);

    /* names that are not UTF-8 are refused, not dropped from the echoed query */
    parse_bad("repository=acme%2Fap%FF", "repository", "must be UTF-8");
    parse_bad("run=github/1%C3", "run", "must be UTF-8");
    parse_bad("registry=r%80&image_repository=i", "registry", "must be UTF-8");
    parse_bad("registry=r&image_repository=%ED%A0%80", "image_repository", "must be UTF-8");
    parse_bad("repository=%C0%AF", "repository", "must be UTF-8"); /* overlong '/' */
}

static void test_name_limit(void **state)
{
    (void)state;
    /* A build's run.repository may be 2048 bytes (adapters/dm_build.c, dm_oidc.c) and park.lua
     * indexes it: the longest one must be a question the API accepts. */
    assert_true(DM_QUERY_MAX_NAME >= 2048);
    dm_mappings_query q;
    parse_ok("repository=%C3%A9quipe/api", &q); /* UTF-8 is fine */
    assert_string_equal(q.name, "\xc3\xa9quipe/api");
}

/*---------------------------------------------------------------- merge ---*/

/* A model shard: its index (ascending members) and which entries still have their mapping. */
#define MODEL_MAX 64
typedef struct model_shard {
    char members[MODEL_MAX][DM_INDEX_MEMBER_LEN + 1];
    bool live[MODEL_MAX];
    size_t n;
} model_shard;

static void model_member(char out[DM_INDEX_MEMBER_LEN + 1], unsigned age, unsigned tag)
{
    /* age 0 = the newest: the inverted time grows with age, as in park.lua */
    snprintf(out, DM_INDEX_MEMBER_LEN + 1, "%013u|sha256:%s|%040u", 1000000 + age, HEX64, tag);
}

/* What lua/mappings.lua answers: up to per live members after the cursor, at most 4 × per
 * examined; the frontier is the last one examined, exhausted when nothing follows it. */
static void model_page(const model_shard *s, const char *after, unsigned per,
                       dm_query_shard_page *pg, char *members, char frontier[])
{
    size_t i = 0;
    while (i < s->n && after[0] && memcmp(s->members[i], after, DM_INDEX_MEMBER_LEN) <= 0)
        i++;
    size_t found = 0, budget = 4 * per;
    const char *last = after;
    while (i < s->n && found < per && budget > 0) {
        last = s->members[i];
        if (s->live[i])
            memcpy(members + found++ * DM_INDEX_MEMBER_LEN, s->members[i], DM_INDEX_MEMBER_LEN);
        i++;
        budget--;
    }
    snprintf(frontier, DM_INDEX_MEMBER_LEN + 1, "%s", last);
    *pg = (dm_query_shard_page){
        .exhausted = i == s->n, .frontier = frontier, .members = members, .n = found};
}

/* Walk every page of the model with @p limit; the members returned, in order, into @p got. */
static size_t model_walk(const model_shard *shards, size_t nshards, unsigned limit,
                         char (*got)[DM_INDEX_MEMBER_LEN + 1], size_t max, size_t *pages)
{
    unsigned per = dm_query_shard_limit(limit, (unsigned)nshards);
    char after[DM_INDEX_MEMBER_LEN + 1] = "";
    size_t ngot = 0;
    *pages = 0;
    for (;;) {
        dm_query_shard_page pg[16];
        static char members[16][MODEL_MAX * DM_INDEX_MEMBER_LEN];
        static char frontiers[16][DM_INDEX_MEMBER_LEN + 1];
        static dm_query_pick picks[MODEL_MAX * 16];
        assert_true(nshards <= 16 && limit <= MODEL_MAX * 16);
        for (size_t s = 0; s < nshards; s++)
            model_page(&shards[s], after, per, &pg[s], members[s], frontiers[s]);
        const char *next = NULL;
        size_t take = dm_query_merge(pg, nshards, limit, picks, &next);
        assert_true(take <= limit);
        for (size_t i = 0; i < take; i++) {
            assert_true(ngot < max);
            assert_int_equal(picks[i].index < pg[picks[i].shard].n, true);
            assert_ptr_equal(picks[i].member,
                             pg[picks[i].shard].members + picks[i].index * DM_INDEX_MEMBER_LEN);
            memcpy(got[ngot], picks[i].member, DM_INDEX_MEMBER_LEN);
            got[ngot++][DM_INDEX_MEMBER_LEN] = '\0';
        }
        (*pages)++;
        if (!next)
            return ngot;
        /* a cursor always moves forward, so a walk ends */
        assert_true(!after[0] || memcmp(next, after, DM_INDEX_MEMBER_LEN) > 0);
        memcpy(after, next, DM_INDEX_MEMBER_LEN);
        after[DM_INDEX_MEMBER_LEN] = '\0';
        assert_true(*pages < 10000);
    }
}

/* Every live member of the model exactly once, newest first. */
static void check_walk(const model_shard *shards, size_t nshards, unsigned limit)
{
    static char want[16 * MODEL_MAX][DM_INDEX_MEMBER_LEN + 1];
    static char got[16 * MODEL_MAX][DM_INDEX_MEMBER_LEN + 1];
    size_t nwant = 0;
    for (size_t s = 0; s < nshards; s++)
        for (size_t i = 0; i < shards[s].n; i++)
            if (shards[s].live[i])
                memcpy(want[nwant++], shards[s].members[i], DM_INDEX_MEMBER_LEN + 1);
    qsort(want, nwant, sizeof want[0], (int (*)(const void *, const void *))strcmp);
    size_t pages, ngot = model_walk(shards, nshards, limit, got, DM_ARRAY_LEN(got), &pages);
    if (ngot != nwant)
        fail_msg("limit %u, %zu shards: walked %zu mappings in %zu pages, want %zu", limit, nshards,
                 ngot, pages, nwant);
    for (size_t i = 0; i < nwant; i++)
        if (strcmp(got[i], want[i]) != 0)
            fail_msg("limit %u, %zu shards: mapping %zu is %.13s, want %.13s", limit, nshards, i,
                     got[i], want[i]);
}

static void shard_add(model_shard *s, unsigned age, bool live)
{
    assert_true(s->n < MODEL_MAX);
    model_member(s->members[s->n], age, (unsigned)s->n);
    s->live[s->n++] = live;
}

static void test_merge_stops_at_unfinished_shard(void **state)
{
    (void)state;
    /* Shard 0: five dead entries (ages 0-4) newer than its live one (age 6); shard 1: live
     * entries older and newer than that (ages 5, 7, 8). With limit 1 shard 0 spends its budget
     * of 4 on dead entries: the page must stop at its frontier, not take shard 1's age 5 and
     * jump past shard 0's age 6. */
    static model_shard sh[2];
    memset(sh, 0, sizeof sh);
    for (unsigned age = 0; age < 5; age++)
        shard_add(&sh[0], age, false);
    shard_add(&sh[0], 6, true);
    shard_add(&sh[1], 5, true);
    shard_add(&sh[1], 7, true);
    shard_add(&sh[1], 8, true);
    check_walk(sh, 2, 1);
    check_walk(sh, 2, 2);
    check_walk(sh, 2, 50);

    /* the first page of that walk: empty, its cursor is shard 0's frontier (age 3) */
    char m0[4 * DM_INDEX_MEMBER_LEN], m1[4 * DM_INDEX_MEMBER_LEN];
    char f0[DM_INDEX_MEMBER_LEN + 1], f1[DM_INDEX_MEMBER_LEN + 1];
    dm_query_shard_page pg[2];
    model_page(&sh[0], "", 1, &pg[0], m0, f0);
    model_page(&sh[1], "", 1, &pg[1], m1, f1);
    assert_false(pg[0].exhausted);
    assert_int_equal(pg[0].n, 0);
    assert_int_equal(pg[1].n, 1);
    dm_query_pick picks[1];
    const char *next = NULL;
    assert_int_equal(dm_query_merge(pg, 2, 1, picks, &next), 0);
    assert_ptr_equal(next, pg[0].frontier);
    assert_memory_equal(next, sh[0].members[3], DM_INDEX_MEMBER_LEN);
}

static void test_merge_cut(void **state)
{
    (void)state;
    char a[3 * DM_INDEX_MEMBER_LEN + 1], b[2 * DM_INDEX_MEMBER_LEN + 1], m[DM_INDEX_MEMBER_LEN + 1];
    const unsigned ages_a[] = {1, 4, 5}, ages_b[] = {2, 3};
    for (size_t i = 0; i < 3; i++) {
        model_member(m, ages_a[i], 0);
        memcpy(a + i * DM_INDEX_MEMBER_LEN, m, DM_INDEX_MEMBER_LEN);
    }
    for (size_t i = 0; i < 2; i++) {
        model_member(m, ages_b[i], 1);
        memcpy(b + i * DM_INDEX_MEMBER_LEN, m, DM_INDEX_MEMBER_LEN);
    }
    dm_query_shard_page pg[2] = {{.exhausted = true, .members = a, .n = 3},
                                 {.exhausted = true, .members = b, .n = 2}};
    dm_query_pick picks[5];
    const char *next = NULL;
    /* all exhausted, everything fits: in order, no cursor */
    assert_int_equal(dm_query_merge(pg, 2, 5, picks, &next), 5);
    assert_null(next);
    const size_t want_shard[] = {0, 1, 1, 0, 0}, want_index[] = {0, 0, 1, 1, 2};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(picks[i].shard, want_shard[i]);
        assert_int_equal(picks[i].index, want_index[i]);
    }
    /* more than the limit: the cursor is the last member taken */
    assert_int_equal(dm_query_merge(pg, 2, 2, picks, &next), 2);
    assert_ptr_equal(next, b);
    /* shard 1 unfinished at its last member (age 3): ages 4 and 5 wait for the next page */
    pg[1].exhausted = false;
    pg[1].frontier = b + DM_INDEX_MEMBER_LEN;
    assert_int_equal(dm_query_merge(pg, 2, 5, picks, &next), 3);
    assert_ptr_equal(next, pg[1].frontier);
    /* no shard answered anything */
    dm_query_shard_page none[2] = {{.exhausted = true}, {.exhausted = true}};
    assert_int_equal(dm_query_merge(none, 2, 5, picks, &next), 0);
    assert_null(next);
}

static void test_merge_random_walks(void **state)
{
    (void)state;
    /* Random indexes (some entries dead, some shards crowded) walked with many limits: every
     * live mapping exactly once, newest first, whatever each shard is asked for. */
    static model_shard sh[16];
    uint32_t seed = 12345;
    for (int round = 0; round < 60; round++) {
        size_t nshards = 1 + (size_t)(round % 7 == 6 ? 15 : round % 5);
        memset(sh, 0, sizeof sh);
        unsigned entries = 20 + (unsigned)(round * 7 % 150);
        for (unsigned age = 0; age < entries; age++) {
            seed = seed * 1103515245u + 12345u;
            /* one crowded shard in odd rounds */
            size_t s = (round % 2 && (seed >> 16) % 3 != 0) ? 0 : (seed >> 8) % nshards;
            if (sh[s].n == MODEL_MAX)
                continue;
            shard_add(&sh[s], age, (seed >> 20) % 4 != 0 || (round % 3 == 0 && age > 10));
        }
        const unsigned limits[] = {1, 2, 3, 5, 8, 13, 40, 500};
        for (size_t l = 0; l < DM_ARRAY_LEN(limits); l++)
            check_walk(sh, nshards, limits[l]);
    }
}

static void test_shard_limit(void **state)
{
    (void)state;
    assert_int_equal(dm_query_shard_limit(50, 1), 50);
    assert_int_equal(dm_query_shard_limit(500, 1), 500);
    assert_int_equal(dm_query_shard_limit(1, 4), 1);
    assert_int_equal(dm_query_shard_limit(5, 4), 5);
    assert_int_equal(dm_query_shard_limit(20, 4), 10);
    assert_int_equal(dm_query_shard_limit(500, 4), 250);
    assert_int_equal(dm_query_shard_limit(500, 16), 64);
    assert_int_equal(dm_query_shard_limit(500, 1024), 8);
    assert_int_equal(dm_query_shard_limit(3, 1024), 3);
    assert_int_equal(dm_query_shard_limit(50, 1024), 8);
    /* the work of a full page stays near 2 × limit, never shards × limit */
    for (unsigned shards = 2; shards <= 1024; shards *= 2)
        for (unsigned limit = 1; limit <= 500; limit++) {
            unsigned per = dm_query_shard_limit(limit, shards);
            assert_true(per >= 1 && per <= limit);
            assert_true((unsigned long)per * shards <= 2ul * limit + 2ul * shards + 8ul * shards);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_answer),
        cmocka_unit_test(test_image_answer_malformed),
        cmocka_unit_test(test_image_answer_findings_workloads),
        cmocka_unit_test(test_exposure_keys),
        cmocka_unit_test(test_exposure_merge),
        cmocka_unit_test(test_image_cursor),
        cmocka_unit_test(test_image_params),
        cmocka_unit_test(test_mappings_answer),
        cmocka_unit_test(test_cursor_roundtrip),
        cmocka_unit_test(test_cursor_url_alphabet),
        cmocka_unit_test(test_cursor_invalid),
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_name_limit),
        cmocka_unit_test(test_merge_stops_at_unfinished_shard),
        cmocka_unit_test(test_merge_cut),
        cmocka_unit_test(test_merge_random_walks),
        cmocka_unit_test(test_shard_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
