/* test_ecr.c - ECR "ECR Image Action" EventBridge events: every fixture, the invalid table,
 * the SNS-wrapped form, derived hosts and edge cases. */
#include "dm_common.h"
#include "dm_ecr.h"
#include "dm_test.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define D_WORKER "sha256:c860431e45170f74bed5c6447b1f22772e653212cd72e48ea23d85b91166e626"
#define D_CHILD  "sha256:c88e5aaa01eea22e7cd7268b0f2733f99cab3065f1392f19808e96909b7a102b"
#define D_CN     "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
#define HOST_EU  "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
#define HOST_CN  "210987654321.dkr.ecr.cn-northwest-1.amazonaws.com.cn"

/*---- helpers ------------------------------------------------------------------------------*/

static void expect_error(const char *body, const char *field, const char *text)
{
    dm_test_expect_error(dm_ecr_parse, body, field, text);
}

static dm_event *expect_one(const char *body, dm_event_list *l)
{
    return dm_test_expect_one(dm_ecr_parse, body, l);
}

/* An ECR Image Action event around @p detail (a JSON object's members) in @p region. */
static char *event_in(const char *region, const char *detail)
{
    size_t cap = strlen(region) + strlen(detail) + 512;
    char *s = dm_xmalloc(cap);
    snprintf(
        s, cap,
        "{\"version\":\"0\",\"id\":\"ev-1\",\"detail-type\":\"ECR Image Action\","
        "\"source\":\"aws.ecr\",\"account\":\"111122223333\",\"time\":\"2026-11-28T14:03:05Z\","
        "\"region\":\"%s\",\"resources\":[],\"detail\":{%s}}",
        region, detail);
    return s;
}

#define PUSH_OK       "\"result\":\"SUCCESS\",\"action-type\":\"PUSH\",\"repository-name\":\"a/b\","
#define DIGEST_MEMBER "\"image-digest\":\"" D_WORKER "\""

/*---- fixtures -----------------------------------------------------------------------------*/

static const dm_test_registry_event fixtures[] = {
    {"eventbridge-push.json", DM_ACTION_PUSH, "c8d1e2f3-a4b5-4c6d-8e7f-9012a3b4c5d6",
     1795874585000, /* 2026-11-28T14:03:05Z */
     D_WORKER, HOST_EU, "payments/worker", "2.0.1", "application/vnd.oci.image.manifest.v1+json"},
    /* pushed by digest: no image-tag */
    {"eventbridge-push-untagged.json", DM_ACTION_PUSH, "d9e2f3a4-b5c6-4d7e-9f80-0123b4c5d6e7",
     1795874584000, D_CHILD, HOST_EU, "payments/worker", NULL, NULL},
    /* the delete's image-tag is not relied on */
    {"eventbridge-delete.json", DM_ACTION_DELETE, "fb04b5c6-d7e8-4f90-b1a2-2345d6e7f809",
     1795942800000, /* 2026-11-29T09:00:00Z */
     D_WORKER, HOST_EU, "payments/worker", NULL, NULL},
    {"eventbridge-push-cn.json", DM_ACTION_PUSH, "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
     1795874700000, D_CN, HOST_CN, "team/api-gateway", "v3",
     "application/vnd.docker.distribution.manifest.list.v2+json"},
    {"eventbridge-push-failure.json", .ignored = "failed action"},
    {"eventbridge-image-scan.json", .ignored = "detail-type not handled"},
};

/* The named fixtures give exactly what the table says; every eventbridge-*.json under
 * tests/fixtures/ecr parses. */
static void test_fixtures(void **state)
{
    (void)state;
    dm_test_expect_registry_fixtures(dm_ecr_parse, "ecr", "ecr", fixtures, DM_ARRAY_LEN(fixtures));
    dm_test_every_fixture_parses(dm_ecr_parse, "ecr", "eventbridge-", 6);
}

/* SNS delivery: the notification's "Message" string is the EventBridge event, parsed by the
 * same function (dm_sns unwraps and verifies the envelope). */
static void test_sns_message(void **state)
{
    (void)state;
    json_t *env = dm_test_load_json("ecr/sns-notification.unsigned.json");
    json_t *msg = json_object_get(env, "Message");
    assert_true(json_is_string(msg));

    dm_event_list l;
    dm_error err = {0};
    memset(&l, 0x5a, sizeof l);
    assert_int_equal(dm_test_parse_guarded(dm_ecr_parse, json_string_value(msg),
                                           json_string_length(msg), &l, &err),
                     DM_OK);
    assert_int_equal(l.n, 1);
    /* the same event as the API-destination delivery of eventbridge-push.json */
    dm_test_expect_registry_event(&l.v[0], "ecr", &fixtures[0]);
    dm_event_list_dispose(&l);
    json_decref(env);
}

/*---- invalid table ------------------------------------------------------------------------*/

/* tests/fixtures/ecr/invalid/expected.tsv names every *.json there with its exact error. */
static void test_invalid_table(void **state)
{
    (void)state;
    dm_test_run_invalid_table("ecr", dm_ecr_parse, 90);
}

/*---- edge cases ---------------------------------------------------------------------------*/

#define ENV_HEAD                                                          \
    "{\"id\":\"e1\",\"source\":\"aws.ecr\",\"account\":\"111122223333\"," \
    "\"time\":\"2026-11-28T14:03:05Z\",\"region\":\"eu-west-1\","

static void test_ignored_inline(void **state)
{
    (void)state;
    static const struct {
        const char *body, *reason;
    } cases[] = {
        /* sibling detail-types from aws.ecr; their detail is not looked at */
        {ENV_HEAD "\"detail-type\":\"ECR Image Scan\",\"detail\":{\"image-tags\":[]}}",
         "detail-type not handled"},
        {ENV_HEAD "\"detail-type\":\"ECR Replication Action\"}", "detail-type not handled"},
        {ENV_HEAD "\"detail-type\":\"ECR Pull Through Cache Action\",\"detail\":7}",
         "detail-type not handled"},
        {ENV_HEAD "\"detail-type\":\"ECR Referrer Action\"}", "detail-type not handled"},
        {ENV_HEAD "\"detail-type\":\"ecr image action\"}", "detail-type not handled"},
        {ENV_HEAD "\"detail-type\":\"ECR Image Action \"}", "detail-type not handled"},
        /* failures name no digest; only SUCCESS counts */
        {ENV_HEAD "\"detail-type\":\"ECR Image Action\",\"detail\":{\"result\":\"FAILURE\"}}",
         "failed action"},
        {ENV_HEAD "\"detail-type\":\"ECR Image Action\",\"detail\":{\"result\":\"success\","
                  "\"action-type\":\"PUSH\"}}",
         "failed action"},
        {ENV_HEAD "\"detail-type\":\"ECR Image Action\",\"detail\":{\"result\":\"FAILURE\","
                  "\"action-type\":\"DELETE\",\"image-digest\":7,\"repository-name\":\"A\"}}",
         "failed action"},
        /* action types we do not join (archive/restore, future ones) */
        {ENV_HEAD "\"detail-type\":\"ECR Image Action\",\"detail\":{\"result\":\"SUCCESS\","
                  "\"action-type\":\"ARCHIVE\",\"repository-name\":\"a\"}}",
         "action-type not handled"},
        {ENV_HEAD "\"detail-type\":\"ECR Image Action\",\"detail\":{\"result\":\"SUCCESS\","
                  "\"action-type\":\"push\"}}",
         "action-type not handled"},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++)
        dm_test_expect_ignored(dm_ecr_parse, cases[i].body, cases[i].reason);
}

/* The registry host is derived from account and region; China regions use .amazonaws.com.cn. */
static void test_region_hosts(void **state)
{
    (void)state;
    static const struct {
        const char *region, *host;
    } cases[] = {
        {"eu-west-1", HOST_EU},
        {"us-east-1", "111122223333.dkr.ecr.us-east-1.amazonaws.com"},
        {"cn-north-1", "111122223333.dkr.ecr.cn-north-1.amazonaws.com.cn"},
        {"cn-northwest-1", "111122223333.dkr.ecr.cn-northwest-1.amazonaws.com.cn"},
        {"us-gov-west-1", "111122223333.dkr.ecr.us-gov-west-1.amazonaws.com"},
        {"ap-southeast-7", "111122223333.dkr.ecr.ap-southeast-7.amazonaws.com"},
        {"acn-north-1", "111122223333.dkr.ecr.acn-north-1.amazonaws.com"},
        {"cn", "111122223333.dkr.ecr.cn.amazonaws.com"},
        {"x", "111122223333.dkr.ecr.x.amazonaws.com"},
        {"eu-west-1xxxxxxxxxxxxxxxxxxxxxxx",
         "111122223333.dkr.ecr.eu-west-1xxxxxxxxxxxxxxxxxxxxxxx.amazonaws.com"}, /* 32 bytes */
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        char *body = event_in(cases[i].region, PUSH_OK DIGEST_MEMBER);
        dm_event_list l;
        dm_event *ev = expect_one(body, &l);
        assert_string_equal(ev->registry, cases[i].host);
        dm_event_list_dispose(&l);
        free(body);
    }
}

static void test_optional_members(void **state)
{
    (void)state;
    dm_event_list l;
    dm_event *ev;

    /* null and empty optional members say nothing; unknown members are ignored */
    char *body = event_in("eu-west-1", PUSH_OK DIGEST_MEMBER
                          ",\"image-tag\":\"\","
                          "\"manifest-media-type\":\"\",\"artifact-media-type\":7,"
                          "\"last-activated-at\":null,\"future\":{\"x\":[1]}");
    ev = expect_one(body, &l);
    assert_int_equal(ev->ntags, 0);
    assert_null(ev->tags);
    assert_null(ev->media_type);
    dm_test_expect_json(ev, "{\"side\":\"registry\",\"action\":\"push\",\"source\":\"ecr\","
                            "\"event_id\":\"ev-1\",\"t\":1795874585000,\"digest\":\"" D_WORKER "\","
                            "\"registry\":\"" HOST_EU "\",\"repository\":\"a/b\",\"tags\":[]}");
    dm_event_list_dispose(&l);
    free(body);

    body = event_in("eu-west-1", PUSH_OK DIGEST_MEMBER ",\"image-tag\":null,"
                                                       "\"manifest-media-type\":null");
    ev = expect_one(body, &l);
    assert_int_equal(ev->ntags, 0);
    assert_null(ev->media_type);
    dm_event_list_dispose(&l);
    free(body);

    /* any media type is taken as is (OCI artifacts, Helm charts) */
    body = event_in("eu-west-1", PUSH_OK DIGEST_MEMBER
                    ",\"image-tag\":\"chart-1.0.0\","
                    "\"manifest-media-type\":\"application/vnd.cncf.helm.config."
                    "v1+json\"");
    ev = expect_one(body, &l);
    assert_string_equal(ev->tags[0], "chart-1.0.0");
    assert_string_equal(ev->media_type, "application/vnd.cncf.helm.config.v1+json");
    dm_event_list_dispose(&l);
    free(body);

    /* a fractional time with an offset; EventBridge sends seconds, RFC 3339 allows more */
    body = dm_xstrdup("{\"version\":\"0\",\"id\":\"e2\",\"detail-type\":\"ECR Image Action\","
                      "\"source\":\"aws.ecr\",\"account\":\"000000000000\","
                      "\"time\":\"2026-11-28T15:03:05.250+01:00\",\"region\":\"eu-west-1\","
                      "\"detail\":{" PUSH_OK DIGEST_MEMBER "}}");
    ev = expect_one(body, &l);
    assert_int_equal(ev->event_time_ms, 1795874585250);
    assert_string_equal(ev->registry, "000000000000.dkr.ecr.eu-west-1.amazonaws.com");
    dm_event_list_dispose(&l);
    free(body);

    /* member order does not matter: detail before the envelope, no resources or version */
    body = dm_xstrdup("{\"detail\":{\"image-digest\":\"" D_WORKER "\",\"repository-name\":"
                      "\"x.y_z-1/w\",\"action-type\":\"DELETE\",\"result\":\"SUCCESS\"},"
                      "\"region\":\"eu-west-1\",\"time\":\"2026-11-28T14:03:05Z\","
                      "\"account\":\"111122223333\",\"id\":\"e3\","
                      "\"detail-type\":\"ECR Image Action\",\"source\":\"aws.ecr\"}");
    ev = expect_one(body, &l);
    assert_int_equal(ev->action, DM_ACTION_DELETE);
    assert_string_equal(ev->repository, "x.y_z-1/w");
    dm_event_list_dispose(&l);
    free(body);
}

static void test_delete_ignores_tag(void **state)
{
    (void)state;
    static const char *const tags[] = {"\"image-tag\":42", "\"image-tag\":\"2.0.1\"",
                                       "\"image-tag\":[]"};
    for (size_t i = 0; i < DM_ARRAY_LEN(tags); i++) {
        char detail[512];
        snprintf(detail, sizeof detail,
                 "\"result\":\"SUCCESS\",\"action-type\":\"DELETE\",\"repository-name\":"
                 "\"a\"," DIGEST_MEMBER ",%s",
                 tags[i]);
        char *body = event_in("eu-west-1", detail);
        dm_test_expect_untagged_delete(dm_ecr_parse, body);
        free(body);
    }
}

static void test_limits(void **state)
{
    (void)state;
    /* exactly at each limit is accepted */
    dm_test_limits m;
    dm_test_limits_fill(&m);
    char body[4096];
    snprintf(body, sizeof body,
             "{\"id\":\"%s\",\"source\":\"aws.ecr\",\"detail-type\":\"ECR Image Action\","
             "\"account\":\"999999999999\",\"time\":\"2026-11-28T14:03:05Z\","
             "\"region\":\"eu-west-1\",\"detail\":{\"result\":\"SUCCESS\","
             "\"action-type\":\"PUSH\",\"image-digest\":\"" D_WORKER "\","
             "\"repository-name\":\"%s\",\"image-tag\":\"%s\",\"manifest-media-type\":\"%s\"}}",
             m.id, m.repository, m.tag, m.media_type);
    dm_event_list l;
    dm_test_registry_event want = dm_test_limits_event(
        &m, 1795874585000, D_WORKER, "999999999999.dkr.ecr.eu-west-1.amazonaws.com", true);
    dm_test_expect_registry_event(expect_one(body, &l), "ecr", &want);
    dm_event_list_dispose(&l);
}

static void test_errors_inline(void **state)
{
    (void)state;
    expect_error("{", "",
                 "invalid JSON at line 1 column 1: string or '}' expected near end of file");
    expect_error("[]", "", "must be a JSON object");
    expect_error("{}", "source", "is required");
    /* the source is checked before the detail-type: another service's events are an error */
    expect_error("{\"source\":\"aws.s3\",\"detail-type\":\"Object Created\"}", "source",
                 "must be \"aws.ecr\"");
    expect_error("{\"source\":\"aws.ecr\"}", "detail-type", "is required");
    /* the envelope is checked before an event is ignored */
    expect_error("{\"source\":\"aws.ecr\",\"detail-type\":\"ECR Image Scan\"}", "id",
                 "is required");
    expect_error(ENV_HEAD "\"detail-type\":\"ECR Image Action\"}", "detail", "is required");
    /* a repository name is checked before the digest */
    char *body = event_in("eu-west-1", "\"result\":\"SUCCESS\",\"action-type\":\"PUSH\","
                                       "\"repository-name\":\"a b\"");
    expect_error(body, "detail.repository-name",
                 "must contain only a-z, 0-9, '.', '_', '-' and '/'");
    free(body);
    body = event_in("eu-west-1", PUSH_OK "\"image-digest\":\"sha256:\"");
    expect_error(body, "detail.image-digest",
                 "must be sha256: followed by 64 lowercase hex digits");
    free(body);
    body = event_in("cn-", PUSH_OK DIGEST_MEMBER);
    expect_error(body, "region", "must be a region name (a-z, 0-9 and inner '-')");
    free(body);
    body = event_in("eu-west-1xxxxxxxxxxxxxxxxxxxxxxxx", PUSH_OK DIGEST_MEMBER); /* 33 */
    expect_error(body, "region", "must be at most 32 bytes");
    free(body);

    body = event_in("eu-west-1", PUSH_OK DIGEST_MEMBER);
    dm_test_expect_short_bodies(dm_ecr_parse, body);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),           cmocka_unit_test(test_sns_message),
        cmocka_unit_test(test_invalid_table),      cmocka_unit_test(test_ignored_inline),
        cmocka_unit_test(test_region_hosts),       cmocka_unit_test(test_optional_members),
        cmocka_unit_test(test_delete_ignores_tag), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_errors_inline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
