/* test_acr.c - ACR webhook bodies: every fixture, the invalid table, edge cases. */
#include "dm_common.h"
#include "dm_acr.h"
#include "dm_test.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define D1 "sha256:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600"
#define D2 "sha256:7cf87f7bfc057740b20c2fbc79ee2cdc1a3b8d9d215131b7262e83c0a03dabf6"
#define D3 "sha256:d71c0c9f33ce0c8353da33e72a0f01d6d4e7ff58d796bd7984b82908f817fde7"
#define D4 "sha256:c860431e45170f74bed5c6447b1f22772e653212cd72e48ea23d85b91166e626"

/*---- helpers ------------------------------------------------------------------------------*/

static dm_event *expect_one(const char *body, dm_event_list *l)
{
    return dm_test_expect_one(dm_acr_parse, body, l);
}

static void expect_error(const char *body, const char *field, const char *text)
{
    dm_test_expect_error(dm_acr_parse, body, field, text);
}

/*---- fixtures -----------------------------------------------------------------------------*/

static const dm_test_registry_event fixtures[] = {
    {"push.json", DM_ACTION_PUSH, "5d3e8f4a-7b21-4c6e-9f10-2a3b4c5d6e7f",
     1795874531483, /* 14:02:11.483920117Z, truncated */
     D1, "contoso.azurecr.io", "team/api", "1.4.0", "application/vnd.oci.image.index.v1+json"},
    /* pushed by digest: no tag */
    {"push-platform-manifest.json", DM_ACTION_PUSH, "6e4f9a5b-8c32-4d7f-a021-3b4c5d6e7f80",
     1795874530901, D2, "contoso.azurecr.io", "team/api", NULL,
     "application/vnd.oci.image.manifest.v1+json"},
    {"delete.json", DM_ACTION_DELETE, "7f5a0b6c-9d43-4e80-b132-4c5d6e7f8091",
     1795891200000, /* 18:40:00.000000001Z */
     D1, "contoso.azurecr.io", "team/api", NULL, "application/vnd.oci.image.index.v1+json"},
    /* 15:00:00.5+01:00; the host is sent as "Contoso.AzureCR.io" */
    {"push-docker-v2.json", DM_ACTION_PUSH, "3a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9", 1795874400500,
     D4, "contoso.azurecr.io", "payments/worker", "2.0.1",
     "application/vnd.docker.distribution.manifest.v2+json"},
    /* "tag": "" is untagged */
    {"push-untagged-empty-tag.json", DM_ACTION_PUSH, "4b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0",
     1795874530000, D3, "contoso.azurecr.io", "team/api", NULL,
     "application/vnd.docker.distribution.manifest.list.v2+json"},
    {"ping.json", .ignored = "ping"},
    {"chart_push.json", .ignored = "chart_push"},
    {"chart_delete.json", .ignored = "chart_delete"},
    {"quarantine.json", .ignored = "quarantine"},
};

/* The named fixtures give exactly what the table says; every *.json under
 * tests/fixtures/acr parses. */
static void test_fixtures(void **state)
{
    (void)state;
    dm_test_expect_registry_fixtures(dm_acr_parse, "acr", "acr", fixtures, DM_ARRAY_LEN(fixtures));
    dm_test_every_fixture_parses(dm_acr_parse, "acr", "", 9);
}

/*---- invalid table ------------------------------------------------------------------------*/

/* tests/fixtures/acr/invalid/expected.tsv names every *.json there with its exact error. */
static void test_invalid_table(void **state)
{
    (void)state;
    dm_test_run_invalid_table("acr", dm_acr_parse, 40);
}

/*---- edge cases ---------------------------------------------------------------------------*/

#define REQ  ",\"request\":{\"host\":\"contoso.azurecr.io\"}"
#define HEAD "{\"id\":\"e1\",\"timestamp\":\"2026-11-28T14:03:20Z\","

static void test_ignored_actions_inline(void **state)
{
    (void)state;
    static const struct {
        const char *body, *reason;
    } cases[] = {
        {"{\"action\":\"ping\"}", "ping"},
        {"{\"action\":\"ping\",\"target\":7,\"timestamp\":\"never\"}", "ping"},
        {"{\"action\":\"chart_delete\",\"id\":[]}", "chart_delete"},
        {"{\"action\":\"quarantine\"}", "quarantine"},
        {"{\"action\":\"scan_complete\"}", "unknown action"},
        {"{\"action\":\"\"}", "unknown action"},
        {"{\"action\":\"PUSH\",\"id\":\"e1\",\"target\":{}}", "unknown action"},
        {" \n{\"action\":\"Push\"}\n ", "unknown action"},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++)
        dm_test_expect_ignored(dm_acr_parse, cases[i].body, cases[i].reason);
}

static void test_optional_members(void **state)
{
    (void)state;
    dm_event_list l;
    /* no tag, no mediaType, null tag, mixed-case host, unknown members */
    dm_event *ev = expect_one(HEAD "\"action\":\"push\",\"target\":{\"digest\":\"" D2 "\","
                                   "\"repository\":\"a/b\",\"tag\":null,\"size\":1,\"x\":{}},"
                                   "\"request\":{\"host\":\"MyReg.AzureCR.IO\",\"method\":\"PUT\"},"
                                   "\"future\":[1,2]}",
                              &l);
    assert_string_equal(ev->registry, "myreg.azurecr.io");
    assert_null(ev->media_type);
    assert_int_equal(ev->ntags, 0);
    assert_int_equal(ev->event_time_ms, 1795874600000);
    dm_test_expect_json(ev,
                        "{\"side\":\"registry\",\"action\":\"push\",\"source\":\"acr\","
                        "\"event_id\":\"e1\",\"t\":1795874600000,\"digest\":\"" D2 "\","
                        "\"registry\":\"myreg.azurecr.io\",\"repository\":\"a/b\",\"tags\":[]}");
    dm_event_list_dispose(&l);

    /* an empty mediaType says nothing */
    ev = expect_one(HEAD "\"action\":\"push\",\"target\":{\"digest\":\"" D2
                         "\",\"repository\":\"a\","
                         "\"mediaType\":\"\",\"tag\":\"v1\"}" REQ "}",
                    &l);
    assert_null(ev->media_type);
    assert_string_equal(ev->tags[0], "v1");
    dm_event_list_dispose(&l);

    /* any media type is accepted (OCI artifacts, Helm OCI charts) */
    ev = expect_one(HEAD "\"action\":\"push\",\"target\":{\"digest\":\"" D2
                         "\",\"repository\":\"a\","
                         "\"mediaType\":\"application/vnd.cncf.helm.config.v1+json\"}" REQ "}",
                    &l);
    assert_string_equal(ev->media_type, "application/vnd.cncf.helm.config.v1+json");
    dm_event_list_dispose(&l);
}

static void test_delete_ignores_tag(void **state)
{
    (void)state;
    static const char *const tags[] = {"42", "\"1.4.0\""};
    for (size_t i = 0; i < DM_ARRAY_LEN(tags); i++) {
        char body[512];
        snprintf(body, sizeof body,
                 HEAD "\"action\":\"delete\",\"target\":{\"digest\":\"" D1 "\","
                      "\"repository\":\"team/api\",\"tag\":%s}" REQ "}",
                 tags[i]);
        dm_test_expect_untagged_delete(dm_acr_parse, body);
    }
}

static void test_limits(void **state)
{
    (void)state;
    /* exactly at each limit is accepted; the host is sent in uppercase */
    dm_test_limits m;
    dm_test_limits_fill(&m);
    char host[sizeof m.host];
    dm_test_fill(host, 'H', sizeof host - 1);
    char body[2048];
    snprintf(body, sizeof body,
             "{\"id\":\"%s\",\"timestamp\":\"2026-11-28T14:03:20Z\",\"action\":\"push\","
             "\"target\":{\"digest\":\"" D1 "\",\"repository\":\"%s\",\"tag\":\"%s\"},"
             "\"request\":{\"host\":\"%s\"}}",
             m.id, m.repository, m.tag, host);
    dm_event_list l;
    dm_test_registry_event want = dm_test_limits_event(&m, 1795874600000, D1, m.host, false);
    dm_test_expect_registry_event(expect_one(body, &l), "acr", &want);
    dm_event_list_dispose(&l);
}

static void test_errors_inline(void **state)
{
    (void)state;
    expect_error("{", "",
                 "invalid JSON at line 1 column 1: string or '}' expected near end of file");
    expect_error("null", "", "invalid JSON at line 1 column 4: '[' or '{' expected near 'null'");
    expect_error("{\"action\":\"ping\"} x", "",
                 "invalid JSON at line 1 column 19: end of file "
                 "expected near 'x'");
    expect_error("[{\"action\":\"ping\"}]", "", "must be a JSON object");
    expect_error("{}", "action", "is required");
    expect_error("{\"action\":[\"push\"]}", "action", "must be a string");
    /* the timestamp is checked before the target */
    expect_error("{\"id\":\"x\",\"action\":\"push\",\"timestamp\":\"2026-11-28T14:03:20\"}",
                 "timestamp", "must be an RFC 3339 timestamp");
    expect_error(HEAD "\"action\":\"push\",\"target\":{\"digest\":\"" D1 "\","
                      "\"repository\":\"a\"},\"request\":{}}",
                 "request.host", "is required");
    expect_error(HEAD "\"action\":\"push\",\"target\":{\"digest\":\"" D1 "\","
                      "\"repository\":\"a\"},\"request\":[]}",
                 "request", "must be an object");

    dm_test_expect_short_bodies(dm_acr_parse, "{\"action\":\"ping\"}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_invalid_table),
        cmocka_unit_test(test_ignored_actions_inline),
        cmocka_unit_test(test_optional_members),
        cmocka_unit_test(test_delete_ignores_tag),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_errors_inline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
