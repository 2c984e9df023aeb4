/* test_acr.c - ACR webhook bodies: every fixture, the invalid table, edge cases. */
#include "dm_common.h"
#include "dm_acr.h"
#include "dm_test.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#define D1 "sha256:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600"
#define D2 "sha256:7cf87f7bfc057740b20c2fbc79ee2cdc1a3b8d9d215131b7262e83c0a03dabf6"
#define D3 "sha256:d71c0c9f33ce0c8353da33e72a0f01d6d4e7ff58d796bd7984b82908f817fde7"
#define D4 "sha256:c860431e45170f74bed5c6447b1f22772e653212cd72e48ea23d85b91166e626"

/*---- helpers ------------------------------------------------------------------------------*/

/* Parse @p body placed so that its last byte is followed by an unreadable page: any read past
 * len faults, even without ASan (picohttpparser's test trick). */
static int parse_guarded(const char *body, size_t len, dm_event_list *out, dm_error *err)
{
    return dm_test_parse_guarded(dm_acr_parse, body, len, out, err);
}

/* Parse fixture @p name (relative to tests/fixtures/acr) and expect success. */
static void parse_fixture(const char *name, dm_event_list *out)
{
    dm_test_parse_fixture(parse_guarded, "acr", name, out);
}

static int parse_str(const char *s, dm_event_list *out, dm_error *err)
{
    memset(err, 0, sizeof *err);
    return parse_guarded(s, strlen(s), out, err);
}

static void expect_error(const char *body, const char *field, const char *text)
{
    dm_event_list l;
    dm_error err;
    memset(&l, 0x5a, sizeof l);
    assert_int_equal(parse_str(body, &l, &err), DM_EINVAL);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.field, field);
    assert_string_equal(err.text, text);
    dm_test_assert_empty(&l);
}

/*---- fixtures -----------------------------------------------------------------------------*/

static void test_push(void **state)
{
    (void)state;
    dm_event_list l;
    parse_fixture("push.json", &l);
    assert_null(l.ignored);
    assert_int_equal(l.n, 1);
    dm_event *ev = &l.v[0];
    assert_int_equal(ev->side, DM_SIDE_REGISTRY);
    assert_int_equal(ev->action, DM_ACTION_PUSH);
    assert_string_equal(ev->source, "acr");
    assert_string_equal(ev->event_id, "5d3e8f4a-7b21-4c6e-9f10-2a3b4c5d6e7f");
    assert_int_equal(ev->event_time_ms, 1795874531483); /* 14:02:11.483920117Z, truncated */
    assert_string_equal(ev->digest, D1);
    assert_string_equal(ev->registry, "contoso.azurecr.io");
    assert_string_equal(ev->repository, "team/api");
    assert_string_equal(ev->media_type, "application/vnd.oci.image.index.v1+json");
    assert_int_equal(ev->ntags, 1);
    assert_string_equal(ev->tags[0], "1.4.0");
    assert_int_equal(ev->relation, DM_REL_IMAGE);
    assert_string_equal(ev->index_digest, "");
    assert_null(ev->name);
    assert_null(ev->build.provider);
    assert_false(ev->build.verified);
    dm_test_expect_json(ev,
                        "{\"side\":\"registry\",\"action\":\"push\",\"source\":\"acr\","
                        "\"event_id\":\"5d3e8f4a-7b21-4c6e-9f10-2a3b4c5d6e7f\",\"t\":1795874531483,"
                        "\"digest\":\"" D1 "\",\"registry\":\"contoso.azurecr.io\","
                        "\"repository\":\"team/api\",\"tags\":[\"1.4.0\"],"
                        "\"media_type\":\"application/vnd.oci.image.index.v1+json\"}");
    dm_event_list_dispose(&l);
}

static void test_push_platform_manifest(void **state)
{
    (void)state;
    dm_event_list l;
    parse_fixture("push-platform-manifest.json", &l);
    assert_int_equal(l.n, 1);
    dm_event *ev = &l.v[0];
    assert_int_equal(ev->action, DM_ACTION_PUSH);
    assert_string_equal(ev->event_id, "6e4f9a5b-8c32-4d7f-a021-3b4c5d6e7f80");
    assert_int_equal(ev->event_time_ms, 1795874530901);
    assert_string_equal(ev->digest, D2);
    assert_string_equal(ev->registry, "contoso.azurecr.io");
    assert_string_equal(ev->repository, "team/api");
    assert_string_equal(ev->media_type, "application/vnd.oci.image.manifest.v1+json");
    assert_int_equal(ev->ntags, 0); /* pushed by digest */
    assert_null(ev->tags);
    dm_test_expect_json(ev,
                        "{\"side\":\"registry\",\"action\":\"push\",\"source\":\"acr\","
                        "\"event_id\":\"6e4f9a5b-8c32-4d7f-a021-3b4c5d6e7f80\",\"t\":1795874530901,"
                        "\"digest\":\"" D2 "\",\"registry\":\"contoso.azurecr.io\","
                        "\"repository\":\"team/api\",\"tags\":[],"
                        "\"media_type\":\"application/vnd.oci.image.manifest.v1+json\"}");
    dm_event_list_dispose(&l);
}

static void test_delete(void **state)
{
    (void)state;
    dm_event_list l;
    parse_fixture("delete.json", &l);
    assert_null(l.ignored);
    assert_int_equal(l.n, 1);
    dm_event *ev = &l.v[0];
    assert_int_equal(ev->side, DM_SIDE_REGISTRY);
    assert_int_equal(ev->action, DM_ACTION_DELETE);
    assert_string_equal(ev->source, "acr");
    assert_string_equal(ev->event_id, "7f5a0b6c-9d43-4e80-b132-4c5d6e7f8091");
    assert_int_equal(ev->event_time_ms, 1795891200000); /* 18:40:00.000000001Z */
    assert_string_equal(ev->digest, D1);
    assert_string_equal(ev->registry, "contoso.azurecr.io");
    assert_string_equal(ev->repository, "team/api");
    assert_string_equal(ev->media_type, "application/vnd.oci.image.index.v1+json");
    assert_int_equal(ev->ntags, 0);
    dm_test_expect_json(ev,
                        "{\"side\":\"registry\",\"action\":\"delete\",\"source\":\"acr\","
                        "\"event_id\":\"7f5a0b6c-9d43-4e80-b132-4c5d6e7f8091\",\"t\":1795891200000,"
                        "\"digest\":\"" D1 "\",\"registry\":\"contoso.azurecr.io\","
                        "\"repository\":\"team/api\",\"tags\":[],"
                        "\"media_type\":\"application/vnd.oci.image.index.v1+json\"}");
    dm_event_list_dispose(&l);
}

static void test_push_docker_v2(void **state)
{
    (void)state;
    dm_event_list l;
    parse_fixture("push-docker-v2.json", &l);
    assert_int_equal(l.n, 1);
    dm_event *ev = &l.v[0];
    assert_string_equal(ev->event_id, "3a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9");
    assert_int_equal(ev->event_time_ms, 1795874400500); /* 15:00:00.5+01:00 */
    assert_string_equal(ev->digest, D4);
    assert_string_equal(ev->registry, "contoso.azurecr.io"); /* from "Contoso.AzureCR.io" */
    assert_string_equal(ev->repository, "payments/worker");
    assert_string_equal(ev->media_type, "application/vnd.docker.distribution.manifest.v2+json");
    assert_int_equal(ev->ntags, 1);
    assert_string_equal(ev->tags[0], "2.0.1");
    dm_event_list_dispose(&l);
}

static void test_push_untagged_empty_tag(void **state)
{
    (void)state;
    dm_event_list l;
    parse_fixture("push-untagged-empty-tag.json", &l);
    assert_int_equal(l.n, 1);
    dm_event *ev = &l.v[0];
    assert_string_equal(ev->event_id, "4b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0");
    assert_int_equal(ev->event_time_ms, 1795874530000);
    assert_string_equal(ev->digest, D3);
    assert_string_equal(ev->media_type,
                        "application/vnd.docker.distribution.manifest.list.v2+json");
    assert_int_equal(ev->ntags, 0); /* "tag": "" is untagged */
    assert_null(ev->tags);
    dm_event_list_dispose(&l);
}

static void expect_ignored_fixture(const char *name, const char *reason)
{
    dm_test_expect_ignored_fixture(parse_guarded, "acr", name, reason);
}

static void test_ignored_fixtures(void **state)
{
    (void)state;
    expect_ignored_fixture("ping.json", "ping");
    expect_ignored_fixture("chart_push.json", "chart_push");
    expect_ignored_fixture("chart_delete.json", "chart_delete");
    expect_ignored_fixture("quarantine.json", "quarantine");
}

/* Every *.json directly under tests/fixtures/acr parses (the named tests check values). */
static void test_every_fixture_parses(void **state)
{
    (void)state;
    dm_test_every_fixture_parses(parse_guarded, "acr", "", 9);
}

/*---- invalid table ------------------------------------------------------------------------*/

/* tests/fixtures/acr/invalid/expected.tsv names every *.json there with its exact error. */
static void test_invalid_table(void **state)
{
    (void)state;
    dm_test_run_invalid_table("acr", parse_guarded, 40);
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
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        dm_event_list l;
        dm_error err;
        memset(&l, 0x5a, sizeof l);
        if (parse_str(cases[i].body, &l, &err) != DM_OK)
            fail_msg("%s: [%s] %s", cases[i].body, err.field, err.text);
        assert_non_null(l.ignored);
        assert_string_equal(l.ignored, cases[i].reason);
        assert_int_equal(l.n, 0);
        assert_null(l.v);
        dm_event_list_dispose(&l);
    }
}

static void test_optional_members(void **state)
{
    (void)state;
    dm_event_list l;
    dm_error err;
    /* no tag, no mediaType, null tag, mixed-case host, unknown members */
    const char *body = HEAD "\"action\":\"push\",\"target\":{\"digest\":\"" D2 "\","
                            "\"repository\":\"a/b\",\"tag\":null,\"size\":1,\"x\":{}},"
                            "\"request\":{\"host\":\"MyReg.AzureCR.IO\",\"method\":\"PUT\"},"
                            "\"future\":[1,2]}";
    assert_int_equal(parse_str(body, &l, &err), DM_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].registry, "myreg.azurecr.io");
    assert_null(l.v[0].media_type);
    assert_int_equal(l.v[0].ntags, 0);
    assert_int_equal(l.v[0].event_time_ms, 1795874600000);
    dm_test_expect_json(&l.v[0],
                        "{\"side\":\"registry\",\"action\":\"push\",\"source\":\"acr\","
                        "\"event_id\":\"e1\",\"t\":1795874600000,\"digest\":\"" D2 "\","
                        "\"registry\":\"myreg.azurecr.io\",\"repository\":\"a/b\",\"tags\":[]}");
    dm_event_list_dispose(&l);

    /* an empty mediaType says nothing */
    body = HEAD "\"action\":\"push\",\"target\":{\"digest\":\"" D2 "\",\"repository\":\"a\","
                "\"mediaType\":\"\",\"tag\":\"v1\"}" REQ "}";
    assert_int_equal(parse_str(body, &l, &err), DM_OK);
    assert_null(l.v[0].media_type);
    assert_string_equal(l.v[0].tags[0], "v1");
    dm_event_list_dispose(&l);

    /* any media type is accepted (OCI artifacts, Helm OCI charts) */
    body = HEAD "\"action\":\"push\",\"target\":{\"digest\":\"" D2 "\",\"repository\":\"a\","
                "\"mediaType\":\"application/vnd.cncf.helm.config.v1+json\"}" REQ "}";
    assert_int_equal(parse_str(body, &l, &err), DM_OK);
    assert_string_equal(l.v[0].media_type, "application/vnd.cncf.helm.config.v1+json");
    dm_event_list_dispose(&l);
}

static void test_delete_ignores_tag(void **state)
{
    (void)state;
    dm_event_list l;
    dm_error err;
    const char *body = HEAD "\"action\":\"delete\",\"target\":{\"digest\":\"" D1 "\","
                            "\"repository\":\"team/api\",\"tag\":42}" REQ "}";
    assert_int_equal(parse_str(body, &l, &err), DM_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.v[0].action, DM_ACTION_DELETE);
    assert_int_equal(l.v[0].ntags, 0);
    dm_event_list_dispose(&l);

    body = HEAD "\"action\":\"delete\",\"target\":{\"digest\":\"" D1 "\","
                "\"repository\":\"team/api\",\"tag\":\"1.4.0\"}" REQ "}";
    assert_int_equal(parse_str(body, &l, &err), DM_OK);
    assert_int_equal(l.v[0].ntags, 0);
    dm_event_list_dispose(&l);
}

static void test_limits(void **state)
{
    (void)state;
    /* exactly at each limit is accepted */
    char repo[257], host[256], tag[129], id[257];
    memset(repo, 'r', 256);
    repo[256] = '\0';
    memset(host, 'H', 255);
    host[255] = '\0';
    memset(tag, 't', 128);
    tag[128] = '\0';
    memset(id, 'i', 256);
    id[256] = '\0';
    size_t cap = 2048;
    char *body = dm_xmalloc(cap);
    snprintf(body, cap,
             "{\"id\":\"%s\",\"timestamp\":\"2026-11-28T14:03:20Z\",\"action\":\"push\","
             "\"target\":{\"digest\":\"" D1 "\",\"repository\":\"%s\",\"tag\":\"%s\"},"
             "\"request\":{\"host\":\"%s\"}}",
             id, repo, tag, host);
    dm_event_list l;
    dm_error err;
    assert_int_equal(parse_str(body, &l, &err), DM_OK);
    assert_int_equal(strlen(l.v[0].repository), 256);
    assert_int_equal(strlen(l.v[0].registry), 255);
    assert_int_equal(l.v[0].registry[0], 'h');
    assert_int_equal(strlen(l.v[0].tags[0]), 128);
    assert_int_equal(strlen(l.v[0].event_id), 256);
    dm_event_list_dispose(&l);
    free(body);
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

    /* an empty body, with or without a pointer */
    dm_event_list l;
    dm_error err = {0};
    memset(&l, 0x5a, sizeof l);
    assert_int_equal(dm_acr_parse("", 0, &l, &err), DM_EINVAL);
    assert_string_equal(err.text, "body is empty");
    dm_test_assert_empty(&l);
    assert_int_equal(dm_acr_parse(NULL, 0, &l, &err), DM_EINVAL);
    dm_test_assert_empty(&l);

    /* the body length is what counts: a valid body cut short is malformed */
    const char *ping = "{\"action\":\"ping\"}";
    assert_int_equal(parse_guarded(ping, strlen(ping) - 1, &l, &err), DM_EINVAL);
    assert_string_equal(err.field, "");
    dm_test_assert_empty(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push),
        cmocka_unit_test(test_push_platform_manifest),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_push_docker_v2),
        cmocka_unit_test(test_push_untagged_empty_tag),
        cmocka_unit_test(test_ignored_fixtures),
        cmocka_unit_test(test_every_fixture_parses),
        cmocka_unit_test(test_invalid_table),
        cmocka_unit_test(test_ignored_actions_inline),
        cmocka_unit_test(test_optional_members),
        cmocka_unit_test(test_delete_ignores_tag),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_errors_inline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
