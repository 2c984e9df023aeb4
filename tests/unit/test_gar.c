/* test_gar.c - Artifact Registry notifications via Pub/Sub push: every fixture, the decoded
 * data samples re-wrapped, the invalid table, references, base64 and edge cases. */
#include "dm_common.h"
#include "dm_gar.h"
#include "dm_test.h"

#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define D_BILLING "sha256:7cfeb49edad264b1b30942ecd6970344c841a50b52560b9f3842c7a7d526d401"
#define D_OTHER   "sha256:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600"
#define HOST      "europe-west4-docker.pkg.dev"
#define NAME      HOST "/acme-prod/apps/billing"

/*---- helpers ------------------------------------------------------------------------------*/

/* Standard padded base64 of @p data (@p len bytes), made by OpenSSL. */
static char *b64(const void *data, size_t len)
{
    char *out = dm_xmalloc((len + 2) / 3 * 4 + 1);
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    assert_true(n >= 0);
    return out;
}

/* A push envelope whose message.data is the base64 of @p data (@p len bytes). */
static char *envelope_n(const void *data, size_t len)
{
    char *d = b64(data, len);
    size_t cap = strlen(d) + 512;
    char *s = dm_xmalloc(cap);
    snprintf(s, cap,
             "{\"message\":{\"attributes\":{\"k\":\"v\"},\"data\":\"%s\","
             "\"messageId\":\"m-1\",\"message_id\":\"m-1\","
             "\"publishTime\":\"2026-11-28T14:04:21.337Z\","
             "\"publish_time\":\"2026-11-28T14:04:21.337Z\"},"
             "\"subscription\":\"projects/acme-prod/subscriptions/gar-to-digestmap\","
             "\"deliveryAttempt\":2}",
             d);
    free(d);
    return s;
}

static char *envelope(const char *data_json)
{
    return envelope_n(data_json, strlen(data_json));
}

/* Wrap @p data_json and expect one event (returned in @p l, which the caller disposes). */
static dm_event *expect_one(const char *data_json, dm_event_list *l)
{
    char *body = envelope(data_json);
    dm_event *ev = dm_test_expect_one(dm_gar_parse, body, l);
    free(body);
    return ev;
}

static void expect_ignored(const char *data_json, const char *reason)
{
    char *body = envelope(data_json);
    dm_test_expect_ignored(dm_gar_parse, body, reason);
    free(body);
}

static void expect_body_error(const char *body, const char *field, const char *text)
{
    dm_test_expect_error(dm_gar_parse, body, field, text);
}

static void expect_error(const char *data_json, const char *field, const char *text)
{
    char *body = envelope(data_json);
    expect_body_error(body, field, text);
    free(body);
}

/*---- fixtures -----------------------------------------------------------------------------*/

static const dm_test_registry_event fixtures[] = {
    {"pubsub-insert-tagged.json", DM_ACTION_PUSH, "17730518093427361",
     1795874661337, /* 2026-11-28T14:04:21.337Z */
     D_BILLING, HOST, "acme-prod/apps/billing", "3.2.0", NULL},
    {"pubsub-insert-digest-only.json", DM_ACTION_PUSH, "17730518093427360", 1795874661102,
     D_BILLING, HOST, "acme-prod/apps/billing", NULL, NULL},
    {"pubsub-delete-digest.json", DM_ACTION_DELETE, "17730518093427401",
     1795946402500, /* 2026-11-29T10:00:02.500Z */
     D_BILLING, HOST, "acme-prod/apps/billing", NULL, NULL},
    /* a removed tag names no manifest */
    {"pubsub-delete-tag.json", .ignored = "tag-only delete"},
};

/* The named fixtures give exactly what the table says; every pubsub-*.json under
 * tests/fixtures/gar parses. */
static void test_fixtures(void **state)
{
    (void)state;
    dm_test_expect_registry_fixtures(dm_gar_parse, "gar", "gar", fixtures, DM_ARRAY_LEN(fixtures));
    dm_test_every_fixture_parses(dm_gar_parse, "gar", "pubsub-", 4);
}

/* The decoded samples (data-*.json, pretty-printed) wrapped by the test give the same events
 * as the captured envelopes (pubsub-*.json), apart from the envelope's id and time. */
static void test_decoded_samples(void **state)
{
    (void)state;
    static const char *const names[] = {"insert-tagged", "insert-digest-only", "delete-digest",
                                        "delete-tag"};
    for (size_t i = 0; i < DM_ARRAY_LEN(names); i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/gar/data-%s.json", DM_FIXTURES, names[i]);
        size_t len;
        char *data = dm_test_read_file(path, &len);
        char *body = envelope_n(data, len);
        free(data);
        dm_event_list got, want;
        dm_error err;
        if (dm_test_parse_str(dm_gar_parse, body, &got, &err) != DM_OK)
            fail_msg("data-%s.json: [%s] %s", names[i], err.field, err.text);
        free(body);
        snprintf(path, sizeof path, "pubsub-%s.json", names[i]);
        dm_test_parse_fixture(dm_gar_parse, "gar", path, &want);

        assert_int_equal(got.n, want.n);
        if (want.ignored)
            assert_string_equal(got.ignored, want.ignored);
        else
            assert_null(got.ignored);
        for (size_t k = 0; k < got.n; k++) {
            assert_string_equal(got.v[k].event_id, "m-1");
            assert_int_equal(got.v[k].event_time_ms, 1795874661337);
            free(got.v[k].event_id);
            got.v[k].event_id = dm_xstrdup(want.v[k].event_id);
            got.v[k].event_time_ms = want.v[k].event_time_ms;
            char *a = dm_event_to_json(&got.v[k]), *b = dm_event_to_json(&want.v[k]);
            assert_string_equal(a, b);
            free(a);
            free(b);
        }
        dm_event_list_dispose(&got);
        dm_event_list_dispose(&want);
    }
}

/*---- invalid table ------------------------------------------------------------------------*/

/* tests/fixtures/gar/invalid/expected.tsv names every *.json there with its exact error. */
static void test_invalid_table(void **state)
{
    (void)state;
    dm_test_run_invalid_table("gar", dm_gar_parse, 100);
}

/*---- edge cases ---------------------------------------------------------------------------*/

static void test_ignored_inline(void **state)
{
    (void)state;
    expect_ignored("{\"action\":\"UPDATE\",\"digest\":\"" NAME "@" D_BILLING "\"}",
                   "unknown action");
    expect_ignored("{\"action\":\"insert\"}", "unknown action");
    /* the action decides first: nothing else is looked at for an unknown one */
    expect_ignored("{\"action\":\"PURGE\",\"digest\":7,\"tag\":[]}", "unknown action");
    expect_ignored("{\"action\":\"DELETE\",\"tag\":\"" NAME ":3.2.0\"}", "tag-only delete");
    expect_ignored("{\"action\":\"DELETE\",\"digest\":null,\"tag\":\"" NAME ":3.2.0\"}",
                   "tag-only delete");
    expect_ignored("{\"action\":\"DELETE\",\"tag\":\"localhost:5000/a:b\"}", "tag-only delete");
}

/* host = before the first '/', repository = up to '@' or the tag's ':', digest after the last
 * '@', tag after the last ':' behind the last '/'. */
static void test_references(void **state)
{
    (void)state;
    static const struct {
        const char *data, *registry, *repository, *tag;
    } cases[] = {
        {"{\"action\":\"INSERT\",\"digest\":\"us-docker.pkg.dev/p/r/i@" D_OTHER "\","
         "\"tag\":\"us-docker.pkg.dev/p/r/i:latest\"}",
         "us-docker.pkg.dev", "p/r/i", "latest"},
        /* gcr.io repositories hosted in Artifact Registry */
        {"{\"action\":\"INSERT\",\"digest\":\"gcr.io/acme/api@" D_OTHER "\","
         "\"tag\":\"gcr.io/acme/api:v1.2_3-rc.4\"}",
         "gcr.io", "acme/api", "v1.2_3-rc.4"},
        /* a host with a port: its ':' is not the tag's */
        {"{\"action\":\"INSERT\",\"digest\":\"localhost:5000/a@" D_OTHER "\","
         "\"tag\":\"localhost:5000/a:5000\"}",
         "localhost:5000", "a", "5000"},
        /* deep paths and every repository character */
        {"{\"action\":\"INSERT\",\"digest\":\"" HOST "/p-1/r.x/a_b/c--d/e@" D_OTHER "\"}", HOST,
         "p-1/r.x/a_b/c--d/e", NULL},
        /* host names are case-insensitive: lowercased, and compared so */
        {"{\"action\":\"INSERT\",\"digest\":\"Europe-West4-Docker.PKG.dev/acme-prod/apps/"
         "billing@" D_BILLING "\",\"tag\":\"europe-west4-docker.pkg.dev/acme-prod/apps/"
         "billing:Latest\"}",
         HOST, "acme-prod/apps/billing", "Latest"},
        /* a tag of '_' and a one-character everything */
        {"{\"action\":\"INSERT\",\"digest\":\"h/r@" D_OTHER "\",\"tag\":\"h/r:_\"}", "h", "r", "_"},
        /* members GAR does not send are ignored; null tag = no tag */
        {"{\"action\":\"INSERT\",\"digest\":\"" NAME "@" D_BILLING "\",\"tag\":null,"
         "\"mediaType\":7,\"x\":{}}",
         HOST, "acme-prod/apps/billing", NULL},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        dm_event_list l;
        dm_event *ev = expect_one(cases[i].data, &l);
        assert_int_equal(ev->action, DM_ACTION_PUSH);
        assert_string_equal(ev->registry, cases[i].registry);
        assert_string_equal(ev->repository, cases[i].repository);
        if (cases[i].tag) {
            assert_int_equal(ev->ntags, 1);
            assert_string_equal(ev->tags[0], cases[i].tag);
        } else {
            assert_int_equal(ev->ntags, 0);
            assert_null(ev->tags);
        }
        assert_null(ev->media_type);
        dm_event_list_dispose(&l);
    }

    /* a delete of a tagged image carries no tag */
    char *body = envelope("{\"action\":\"DELETE\",\"digest\":\"" NAME "@" D_BILLING "\","
                          "\"tag\":\"" NAME ":3.2.0\"}");
    dm_test_expect_untagged_delete(dm_gar_parse, body);
    free(body);

    /* the digest is the text after the last '@', the host the text before the first '/' */
    expect_error("{\"action\":\"INSERT\",\"digest\":\"h/r@" D_OTHER "@" D_BILLING "\"}",
                 "data.digest", "must have a repository of a-z, 0-9, '.', '_', '-' and '/'");
    expect_error("{\"action\":\"INSERT\",\"digest\":\"h/r@" D_OTHER "\",\"tag\":\"h/r/:t\"}",
                 "data.tag", "must not have an empty path component");
    expect_error("{\"action\":\"INSERT\",\"digest\":\"h/r@" D_OTHER "\",\"tag\":\"H/R:t\"}",
                 "data.tag", "must have a repository of a-z, 0-9, '.', '_', '-' and '/'");
}

/* Pub/Sub sends ids and times in both spellings; either alone is enough. */
static void test_twin_members(void **state)
{
    (void)state;
    char *d = b64("{\"action\":\"INSERT\",\"digest\":\"h/r@" D_OTHER "\"}",
                  strlen("{\"action\":\"INSERT\",\"digest\":\"h/r@" D_OTHER "\"}"));
    static const struct {
        const char *members, *id;
        int64_t t;
    } cases[] = {
        {"\"messageId\":\"1\",\"publishTime\":\"2026-11-28T14:04:21.337Z\"", "1", 1795874661337},
        {"\"message_id\":\"2\",\"publish_time\":\"2026-11-28T14:04:21Z\"", "2", 1795874661000},
        {"\"messageId\":\"3\",\"publish_time\":\"2026-11-28T15:04:21.5+01:00\"", "3",
         1795874661500},
        {"\"messageId\":\"4\",\"message_id\":null,\"publishTime\":null,"
         "\"publish_time\":\"2026-11-28T14:04:21.123456789Z\"",
         "4", 1795874661123},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        char body[1024];
        snprintf(body, sizeof body, "{\"message\":{\"data\":\"%s\",%s}}", d, cases[i].members);
        dm_event_list l;
        dm_event *ev = dm_test_expect_one(dm_gar_parse, body, &l);
        assert_string_equal(ev->event_id, cases[i].id);
        assert_int_equal(ev->event_time_ms, cases[i].t);
        dm_event_list_dispose(&l);
    }
    free(d);
}

/* Base64 padding: decoded lengths of every residue mod 3, and whitespace around the JSON. */
static void test_base64_padding(void **state)
{
    (void)state;
    static const char *const pads[] = {"", " ", "  "};
    unsigned seen = 0;
    for (size_t i = 0; i < DM_ARRAY_LEN(pads); i++) {
        char data[256];
        snprintf(data, sizeof data, "{\"action\":\"INSERT\",\"digest\":\"h/r@" D_OTHER "\"}%s",
                 pads[i]);
        char *enc = b64(data, strlen(data));
        size_t n = strlen(enc);
        size_t eq = (n && enc[n - 1] == '=') + (n > 1 && enc[n - 2] == '=');
        free(enc);
        seen |= 1u << eq;
        dm_event_list l;
        dm_event *ev = expect_one(data, &l);
        assert_string_equal(ev->digest, D_OTHER);
        dm_event_list_dispose(&l);
    }
    assert_int_equal(seen, 7); /* one each of 0, 1 and 2 '=' */
    /* the last decoded byte is checked too: a '}' lost to bad padding arithmetic fails */
    expect_error("{\"action\":\"INSERT\",\"digest\":\"h/r@" D_OTHER "\"", "message.data",
                 "invalid JSON at line 1 column 105: '}' expected near end of file");
    /* explicit 1-, 2- and 0-'=' encodings of "{}" + padding spaces */
    expect_body_error("{\"message\":{\"data\":\"e30=\",\"messageId\":\"1\","
                      "\"publishTime\":\"2026-11-28T14:04:21Z\"}}",
                      "data.action", "is required");
    expect_body_error("{\"message\":{\"data\":\"e30gIA==\",\"messageId\":\"1\","
                      "\"publishTime\":\"2026-11-28T14:04:21Z\"}}",
                      "data.action", "is required");
    expect_body_error("{\"message\":{\"data\":\"e30g\",\"messageId\":\"1\","
                      "\"publishTime\":\"2026-11-28T14:04:21Z\"}}",
                      "data.action", "is required");
    /* a decoded NUL right after the object is not swallowed by the padding */
    expect_body_error("{\"message\":{\"data\":\"e30A\",\"messageId\":\"1\","
                      "\"publishTime\":\"2026-11-28T14:04:21Z\"}}",
                      "message.data",
                      "invalid JSON at line 1 column 3: end of file expected "
                      "near end of file");
}

static void test_limits(void **state)
{
    (void)state;
    /* decoded data of exactly 64 KiB is accepted, one byte more is not */
    const char *head = "{\"action\":\"INSERT\",\"digest\":\"h/r@" D_OTHER "\",\"x\":\"";
    size_t hl = strlen(head);
    char *data = dm_xmalloc(65537);
    memcpy(data, head, hl);
    memset(data + hl, 'a', 65536 - hl - 2);
    memcpy(data + 65536 - 2, "\"}", 2);
    char *body = envelope_n(data, 65536);
    dm_event_list l;
    dm_test_expect_one(dm_gar_parse, body, &l);
    dm_event_list_dispose(&l);
    free(body);

    memmove(data + 65536 - 1, "\"}", 2);
    data[65536 - 2] = 'a';
    body = envelope_n(data, 65537);
    expect_body_error(body, "message.data", "must decode to at most 65536 bytes");
    free(body);
    free(data);

    /* host 255, repository 256, tag 128, message id 256 */
    dm_test_limits m;
    dm_test_limits_fill(&m);
    char json[2048];
    snprintf(json, sizeof json,
             "{\"action\":\"INSERT\",\"digest\":\"%s/%s@" D_OTHER "\",\"tag\":\"%s/%s:%s\"}",
             m.host, m.repository, m.host, m.repository, m.tag);
    char *d = b64(json, strlen(json));
    size_t cap = strlen(d) + 1024;
    body = dm_xmalloc(cap);
    snprintf(body, cap,
             "{\"message\":{\"data\":\"%s\",\"messageId\":\"%s\","
             "\"publishTime\":\"2026-11-28T14:04:21Z\"}}",
             d, m.id);
    free(d);
    dm_test_registry_event want = dm_test_limits_event(&m, 1795874661000, D_OTHER, m.host, false);
    dm_test_expect_registry_event(dm_test_expect_one(dm_gar_parse, body, &l), "gar", &want);
    dm_event_list_dispose(&l);
    free(body);
}

static void test_errors_inline(void **state)
{
    (void)state;
    expect_body_error("{", "",
                      "invalid JSON at line 1 column 1: string or '}' expected near end of file");
    expect_body_error("{}", "message", "is required");
    /* envelope members are checked before the data is decoded */
    expect_body_error("{\"message\":{\"data\":\"!\"}}", "message.messageId", "is required");
    expect_body_error("{\"message\":{\"data\":\"!\",\"messageId\":\"1\"}}", "message.publishTime",
                      "is required");
    expect_body_error("{\"message\":{\"data\":\"!\",\"messageId\":\"1\","
                      "\"publishTime\":\"2026-11-28T14:04:21Z\"}}",
                      "message.data", "must be base64");
    /* the digest is checked before the tag, and both before the tag-only rule */
    expect_error("{\"action\":\"DELETE\",\"digest\":\"x\",\"tag\":\"y\"}", "data.digest",
                 "must be HOST/REPOSITORY@sha256:HEX");
    expect_error("{\"action\":\"INSERT\",\"tag\":\"" NAME ":3.2.0\"}", "data.digest",
                 "is required");

    char *body = envelope("{\"action\":\"INSERT\",\"digest\":\"h/r@" D_OTHER "\"}");
    dm_test_expect_short_bodies(dm_gar_parse, body);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),       cmocka_unit_test(test_decoded_samples),
        cmocka_unit_test(test_invalid_table),  cmocka_unit_test(test_ignored_inline),
        cmocka_unit_test(test_references),     cmocka_unit_test(test_twin_members),
        cmocka_unit_test(test_base64_padding), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_errors_inline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
