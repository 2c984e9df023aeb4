/* test_ecr.c - ECR "ECR Image Action" EventBridge events: every fixture, the invalid table,
 * the SNS-wrapped form, derived hosts and edge cases; and the findings events (ECR Image
 * Scan, Inspector2 Scan, Inspector2 Finding) through dm_ecr_parse_finding. */
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
#include <sys/mman.h>

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

/*---- findings events (dm_ecr_parse_finding) ------------------------------------------------*/

#define D_SCANNED "sha256:7d2f6b6f3a0b8d5c6e1f4a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d"
#define ARN_FINDING \
    "arn:aws:inspector2:eu-west-1:111122223333:finding/5b1e9c7d3a2f48e6b0d4c8a1f7e3b9d2"

/* dm_ecr_parse_finding on a guarded copy of @p len bytes, over a report poisoned with 0x5a. */
static int parse_finding_n(const char *body, size_t len, dm_finding_report *r, dm_error *err)
{
    memset(r, 0x5a, sizeof *r);
    memset(err, 0, sizeof *err);
    if (len == 0)
        return dm_ecr_parse_finding(NULL, 0, r, err);
    char *map;
    size_t maplen;
    char *copy = dm_test_guarded_copy(body, len, &map, &maplen);
    int rc = dm_ecr_parse_finding(copy, len, r, err);
    munmap(map, maplen);
    return rc;
}

static void assert_report_zeroed(const dm_finding_report *r)
{
    static const dm_finding_report zero;
    assert_memory_equal(r, &zero, sizeof zero);
}

/* Set the member at dotted @p path ("detail.resources.0.type"; numbers index arrays, the size
 * appends) of @p root to @p v (stolen), or remove it when @p v is NULL. */
static void set_path(json_t *root, const char *path, json_t *v)
{
    char *copy = dm_xstrdup(path), *save = NULL;
    json_t *cur = root;
    char *seg = strtok_r(copy, ".", &save);
    for (char *next; (next = strtok_r(NULL, ".", &save)); seg = next) {
        cur = json_is_array(cur) ? json_array_get(cur, strtoul(seg, NULL, 10))
                                 : json_object_get(cur, seg);
        assert_non_null(cur);
    }
    if (json_is_array(cur)) {
        size_t i = strtoul(seg, NULL, 10);
        if (v && i == json_array_size(cur))
            assert_int_equal(json_array_append_new(cur, v), 0);
        else if (v)
            assert_int_equal(json_array_set_new(cur, i, v), 0);
        else
            assert_int_equal(json_array_remove(cur, i), 0);
    } else if (v) {
        assert_int_equal(json_object_set_new(cur, seg, v), 0);
    } else {
        json_object_del(cur, seg);
    }
    free(copy);
}

/* Fixture ecr/findings/@p name with member @p path set to @p v (JSON text; NULL removes it):
 * the body as a string. @p path NULL: the fixture as is. */
static char *variant(const char *name, const char *path, const char *v)
{
    char rel[256];
    snprintf(rel, sizeof rel, "ecr/findings/%s", name);
    json_t *root = dm_test_load_json(rel);
    if (path) {
        json_t *val = NULL;
        if (v) {
            json_error_t jerr;
            val = json_loads(v, JSON_DECODE_ANY, &jerr);
            assert_non_null(val);
        }
        set_path(root, path, val);
    }
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

static void finding_ok(const char *body, dm_finding_report *r)
{
    dm_error err;
    int rc = parse_finding_n(body, strlen(body), r, &err);
    if (rc != DM_OK)
        fail_msg("rc %d: [%s] %s", rc, err.field, err.text);
}

static void finding_error(const char *body, const char *field, const char *text)
{
    dm_finding_report r;
    dm_error err;
    int rc = parse_finding_n(body, strlen(body), &r, &err);
    if (rc != DM_EINVAL)
        fail_msg("rc %d for %.300s", rc, body);
    if (err.status != 400 || strcmp(err.field, field) != 0 || strcmp(err.text, text) != 0)
        fail_msg("got [%s] %s, want [%s] %s", err.field, err.text, field, text);
    assert_report_zeroed(&r);
}

static void variant_error(const char *name, const char *path, const char *v, const char *field,
                          const char *text)
{
    char *body = variant(name, path, v);
    finding_error(body, field, text);
    free(body);
}

static void finding_ignored(const char *body, const char *reason)
{
    dm_finding_report r;
    finding_ok(body, &r);
    assert_non_null(r.ignored);
    assert_string_equal(r.ignored, reason);
    dm_finding_report copy = r;
    copy.ignored = NULL;
    assert_report_zeroed(&copy); /* nothing else set */
    dm_finding_report_dispose(&r);
}

static void expect_counts5(const dm_finding_report *r, uint32_t c, uint32_t h, uint32_t m,
                           uint32_t l, uint32_t u)
{
    const uint32_t want[DM_SEV_COUNT] = {c, h, m, l, u};
    for (int i = 0; i < DM_SEV_COUNT; i++) {
        if (r->counts[i] != want[i])
            fail_msg("counts[%s] = %u, want %u", dm_severity_name((dm_severity)i), r->counts[i],
                     want[i]);
    }
}

static void expect_target(const dm_finding_report *r, const char *registry)
{
    assert_int_equal(r->ndigests, 1);
    assert_string_equal(r->digests[0].digest, D_SCANNED);
    assert_int_equal(r->digests[0].relation, DM_REL_IMAGE);
    assert_string_equal(r->digests[0].registry, registry);
    assert_string_equal(r->digests[0].repository, "payments/worker");
    assert_int_equal(r->ntags, 1);
    assert_string_equal(r->tags[0], "2.1.0");
}

static void test_finding_fixtures(void **state)
{
    (void)state;
    dm_finding_report r;
    char *body = variant("eventbridge-scan-basic.json", NULL, NULL);
    finding_ok(body, &r);
    assert_null(r.ignored);
    assert_int_equal(r.kind, DM_REPORT_COUNTS);
    assert_string_equal(r.scanner, "ecr-basic");
    assert_string_equal(r.event_id, "4a7e2c91-6b3d-4f08-9e15-2d8c7b6a5f40");
    assert_int_equal(r.event_time_ms, 1796112941000); /* 2026-12-01T08:15:41Z */
    expect_target(&r, HOST_EU);
    /* LOW 11 + INFORMATIONAL 4; UNDEFINED is unknown */
    expect_counts5(&r, 0, 2, 6, 15, 1);
    assert_int_equal(r.nfindings, 0);
    dm_finding_report_dispose(&r);
    /* dm_ecr_parse still acknowledges it without an event, as before */
    dm_test_expect_ignored(dm_ecr_parse, body, "detail-type not handled");
    free(body);

    body = variant("eventbridge-inspector2-scan.json", NULL, NULL);
    finding_ok(body, &r);
    assert_int_equal(r.kind, DM_REPORT_COUNTS);
    assert_string_equal(r.scanner, "inspector");
    assert_string_equal(r.event_id, "9c3b1f27-5d8e-4a60-b2f4-71e0c9d8a6b5");
    assert_int_equal(r.event_time_ms, 1796113023000);
    expect_target(&r, HOST_EU); /* the repository from the ARN */
    /* TOTAL 19 - (0 + 3 + 7) folded into low */
    expect_counts5(&r, 0, 3, 7, 9, 0);
    dm_finding_report_dispose(&r);
    /* dm_ecr_parse refuses another service's events, as before */
    expect_error(body, "source", "must be \"aws.ecr\"");
    free(body);

    body = variant("eventbridge-inspector2-finding.json", NULL, NULL);
    finding_ok(body, &r);
    assert_int_equal(r.kind, DM_REPORT_UPDATE);
    assert_string_equal(r.scanner, "inspector");
    assert_string_equal(r.event_id, "e2b8d4f6-1a3c-4e57-8b9d-0f2a4c6e8a13");
    assert_int_equal(r.event_time_ms, 1796539212000); /* envelope time, not updatedAt */
    assert_string_equal(r.updated_at, "Sun Dec 06 06:40:12.517 UTC 2026");
    assert_string_equal(r.ref, ARN_FINDING);
    assert_false(r.removed);
    expect_target(&r, HOST_EU);
    assert_int_equal(r.nfindings, 1);
    const dm_finding *f = &r.findings[0];
    assert_string_equal(f->id, "CVE-2024-45490");
    assert_string_equal(f->package, "libexpat1");
    assert_string_equal(f->installed, "2.6.1-2build1"); /* epoch 0 is not written */
    assert_string_equal(f->fixed, "0:2.6.1-2ubuntu0.1");
    assert_string_equal(f->status, "ACTIVE");
    assert_null(f->path);
    assert_int_equal(f->severity, DM_SEV_HIGH);
    expect_counts5(&r, 0, 1, 0, 0, 0);
    char *json = dm_finding_report_to_json(&r);
    assert_string_equal(
        json, "{\"kind\":\"update\",\"scanner\":\"inspector\",\"event_id\":"
              "\"e2b8d4f6-1a3c-4e57-8b9d-0f2a4c6e8a13\",\"t\":1796539212000,\"digests\":[{"
              "\"digest\":\"" D_SCANNED "\",\"relation\":\"image\",\"registry\":\"" HOST_EU "\","
              "\"repository\":\"payments/worker\"}],\"tags\":[\"2.1.0\"],\"counts\":{"
              "\"critical\":0,\"high\":1,\"medium\":0,\"low\":0,\"unknown\":0},\"findings\":[{"
              "\"id\":\"CVE-2024-45490\",\"package\":\"libexpat1\",\"severity\":\"high\","
              "\"installed\":\"2.6.1-2build1\",\"fixed\":\"0:2.6.1-2ubuntu0.1\","
              "\"status\":\"ACTIVE\"}],\"dropped\":0,\"removed\":false,\"ref\":\"" ARN_FINDING
              "\",\"updated_at\":\"Sun Dec 06 06:40:12.517 UTC 2026\"}");
    free(json);
    dm_finding_report_dispose(&r);
    free(body);
}

/* Push, delete and everything dm_ecr_parse handles are not findings events: the ingest hands
 * them on, and nothing is allocated. */
static void test_not_finding(void **state)
{
    (void)state;
    static const char *const names[] = {"eventbridge-push.json", "eventbridge-delete.json",
                                        "eventbridge-push-failure.json",
                                        "invalid/source-missing.json", "invalid/source-other.json"};
    for (size_t i = 0; i < DM_ARRAY_LEN(names); i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "ecr/%s", names[i]);
        size_t len;
        char *body = dm_test_load_fixture(rel, &len);
        dm_finding_report r;
        dm_error err;
        assert_int_equal(parse_finding_n(body, len, &r, &err), DM_ECR_NOT_FINDING);
        assert_report_zeroed(&r);
        free(body);
    }
    static const char *const inline_bodies[] = {
        "{}",
        "{\"source\":7,\"detail-type\":\"ECR Image Scan\"}",
        "{\"source\":\"aws.ecr\",\"detail-type\":\"ECR Image Action\"}",
        "{\"source\":\"aws.ecr\",\"detail-type\":\"ecr image scan\"}",
        "{\"source\":\"aws.ecr\"}",
        "{\"source\":\"aws.ecr2\",\"detail-type\":\"Inspector2 Finding\"}",
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(inline_bodies); i++) {
        dm_finding_report r;
        dm_error err;
        assert_int_equal(parse_finding_n(inline_bodies[i], strlen(inline_bodies[i]), &r, &err),
                         DM_ECR_NOT_FINDING);
        assert_report_zeroed(&r);
    }
    /* not JSON: the same error either parser would give */
    finding_error("{", "",
                  "invalid JSON at line 1 column 1: string or '}' expected near end of file");
    finding_error("[1]", "", "must be a JSON object");
    dm_finding_report r;
    dm_error err;
    assert_int_equal(parse_finding_n(NULL, 0, &r, &err), DM_EINVAL);
    assert_string_equal(err.text, "body is empty");
}

static void test_finding_ignored(void **state)
{
    (void)state;
    static const struct {
        const char *name, *path, *value, *reason;
    } cases[] = {
        {"eventbridge-scan-basic.json", "detail.scan-status", "\"FAILED\"", "scan not complete"},
        {"eventbridge-scan-basic.json", "detail.scan-status", "\"IN_PROGRESS\"",
         "scan not complete"},
        /* a failed scan may lack everything else */
        {"eventbridge-scan-basic.json", "detail.finding-severity-counts", NULL, NULL},
        {"eventbridge-inspector2-scan.json", "detail.scan-status", "\"COMPLETE\"",
         "scan not complete"},
        {"eventbridge-inspector2-finding.json", "detail.type", "\"NETWORK_REACHABILITY\"",
         "finding type not handled"},
        {"eventbridge-inspector2-finding.json", "detail.type", "\"CODE_VULNERABILITY\"",
         "finding type not handled"},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        if (!cases[i].reason)
            continue;
        char *body = variant(cases[i].name, cases[i].path, cases[i].value);
        finding_ignored(body, cases[i].reason);
        free(body);
    }
    /* a failed basic scan without counts */
    char *body = variant("eventbridge-scan-basic.json", "detail.scan-status", "\"FAILED\"");
    json_t *j = json_loads(body, 0, NULL);
    json_object_del(json_object_get(j, "detail"), "finding-severity-counts");
    json_object_del(json_object_get(j, "detail"), "image-digest");
    free(body);
    body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    finding_ignored(body, "scan not complete");
    free(body);
    /* ignored events still have an envelope */
    variant_error("eventbridge-inspector2-finding.json", "id", NULL, "id", "is required");
    body = variant("eventbridge-inspector2-finding.json", "detail.type", "\"OTHER\"");
    j = json_loads(body, 0, NULL);
    json_object_set_new(j, "region", json_string("EU"));
    free(body);
    body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    finding_error(body, "region", "must be a region name (a-z, 0-9 and inner '-')");
    free(body);
    /* other Inspector events are dm_ecr_parse's to refuse */
    static const char *const others[] = {"\"Inspector2 Coverage\"", "\"inspector2 finding\""};
    for (size_t i = 0; i < DM_ARRAY_LEN(others); i++) {
        body = variant("eventbridge-inspector2-finding.json", "detail-type", others[i]);
        dm_finding_report r;
        dm_error err;
        assert_int_equal(parse_finding_n(body, strlen(body), &r, &err), DM_ECR_NOT_FINDING);
        assert_report_zeroed(&r);
        expect_error(body, "source", "must be \"aws.ecr\"");
        free(body);
    }
}

static void test_scan_counts(void **state)
{
    (void)state;
    static const struct {
        const char *name, *counts;
        uint32_t want[DM_SEV_COUNT];
    } ok[] = {
        /* a key appears only if non-zero */
        {"eventbridge-scan-basic.json", "{}", {0, 0, 0, 0, 0}},
        {"eventbridge-scan-basic.json", "{\"CRITICAL\":1,\"INFORMATIONAL\":2}", {1, 0, 0, 2, 0}},
        {"eventbridge-scan-basic.json", "{\"UNDEFINED\":1000000000}", {0, 0, 0, 0, 1000000000}},
        {"eventbridge-inspector2-scan.json",
         "{\"CRITICAL\":1,\"HIGH\":2,\"MEDIUM\":3,"
         "\"TOTAL\":6}",
         {1, 2, 3, 0, 0}},
        {"eventbridge-inspector2-scan.json",
         "{\"CRITICAL\":1,\"LOW\":2,\"UNTRIAGED\":3,"
         "\"INFORMATIONAL\":4,\"TOTAL\":12}",
         {1, 0, 0, 8, 3}},
        {"eventbridge-inspector2-scan.json", "{\"HIGH\":2}", {0, 2, 0, 0, 0}}, /* no TOTAL */
        {"eventbridge-inspector2-scan.json", "{\"TOTAL\":5}", {0, 0, 0, 5, 0}},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(ok); i++) {
        char *body = variant(ok[i].name, "detail.finding-severity-counts", ok[i].counts);
        dm_finding_report r;
        finding_ok(body, &r);
        assert_memory_equal(r.counts, ok[i].want, sizeof ok[i].want);
        dm_finding_report_dispose(&r);
        free(body);
    }

    /* a plain name where Inspector gives an ARN, and other partitions' ARNs */
    static const char *const repos[] = {
        "\"payments/worker\"",
        "\"arn:aws-cn:ecr:cn-north-1:111122223333:repository/payments/worker\"",
        "\"arn:aws:ecr:eu-west-1:111122223333:repository/payments/worker\""};
    for (size_t i = 0; i < DM_ARRAY_LEN(repos); i++) {
        char *body =
            variant("eventbridge-inspector2-scan.json", "detail.repository-name", repos[i]);
        dm_finding_report r;
        finding_ok(body, &r);
        assert_string_equal(r.digests[0].repository, "payments/worker");
        dm_finding_report_dispose(&r);
        free(body);
    }
    /* tags are optional, "" entries say nothing */
    char *body = variant("eventbridge-scan-basic.json", "detail.image-tags", "[\"\",\"a\",\"a\"]");
    dm_finding_report r;
    finding_ok(body, &r);
    assert_int_equal(r.ntags, 1);
    dm_finding_report_dispose(&r);
    free(body);
    body = variant("eventbridge-scan-basic.json", "detail.image-tags", NULL);
    finding_ok(body, &r);
    assert_int_equal(r.ntags, 0);
    dm_finding_report_dispose(&r);
    free(body);

#define CNT "detail.finding-severity-counts"
    static const struct {
        const char *name, *path, *value, *field, *text;
    } bad[] = {
        {"eventbridge-scan-basic.json", CNT, NULL, CNT, "is required"},
        {"eventbridge-scan-basic.json", CNT, "[]", CNT, "must be an object"},
        {"eventbridge-scan-basic.json", CNT, "{\"TOTAL\":1}", CNT,
         "must have only the keys CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNDEFINED"},
        {"eventbridge-scan-basic.json", CNT, "{\"critical\":1}", CNT,
         "must have only the keys CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNDEFINED"},
        {"eventbridge-inspector2-scan.json", CNT, "{\"UNDEFINED\":1}", CNT,
         "must have only the keys CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNTRIAGED, TOTAL"},
        {"eventbridge-scan-basic.json", CNT, "{\"HIGH\":-1}", CNT ".HIGH",
         "must be a non-negative integer"},
        {"eventbridge-scan-basic.json", CNT, "{\"HIGH\":\"2\"}", CNT ".HIGH",
         "must be a non-negative integer"},
        {"eventbridge-scan-basic.json", CNT, "{\"HIGH\":1.5}", CNT ".HIGH",
         "must be a non-negative integer"},
        {"eventbridge-scan-basic.json", CNT, "{\"LOW\":1000000001}", CNT ".LOW",
         "must be at most 1000000000"},
        {"eventbridge-inspector2-scan.json", CNT, "{\"HIGH\":3,\"MEDIUM\":7,\"TOTAL\":9}",
         CNT ".TOTAL", "must be at least the sum of the other counts"},
        {"eventbridge-scan-basic.json", "detail.scan-status", NULL, "detail.scan-status",
         "is required"},
        {"eventbridge-scan-basic.json", "detail.image-digest", "\"sha256:7D2F\"",
         "detail.image-digest", "must be sha256: followed by 64 lowercase hex digits"},
        {"eventbridge-scan-basic.json", "detail.repository-name", "\"Payments\"",
         "detail.repository-name", "must contain only a-z, 0-9, '.', '_', '-' and '/'"},
        {"eventbridge-scan-basic.json", "detail.image-tags", "\"2.1.0\"", "detail.image-tags",
         "must be an array"},
        {"eventbridge-scan-basic.json", "detail.image-tags", "[1]", "detail.image-tags[0]",
         "must be a string"},
        {"eventbridge-scan-basic.json", "detail", NULL, "detail", "is required"},
        {"eventbridge-inspector2-scan.json", "detail.repository-name",
         "\"arn:aws:ecr:eu-west-1:111122223333:repo/payments\"", "detail.repository-name",
         "must be a repository ARN (arn:...:repository/NAME) or a name"},
        {"eventbridge-inspector2-scan.json", "detail.repository-name",
         "\"arn:aws:ecr:eu-west-1:111122223333:repository/\"", "detail.repository-name",
         "must name a repository of 1 to 256 bytes"},
        {"eventbridge-inspector2-scan.json", "detail.repository-name",
         "\"arn:aws:ecr:eu-west-1:111122223333:repository/a b\"", "detail.repository-name",
         "must contain only a-z, 0-9, '.', '_', '-' and '/'"},
    };
#undef CNT
    for (size_t i = 0; i < DM_ARRAY_LEN(bad); i++)
        variant_error(bad[i].name, bad[i].path, bad[i].value, bad[i].field, bad[i].text);
}

static void test_inspector_finding(void **state)
{
    (void)state;
    static const char name[] = "eventbridge-inspector2-finding.json";
    static const struct {
        const char *status;
        bool removed;
    } statuses[] = {{"ACTIVE", false}, {"SUPPRESSED", true}, {"CLOSED", true}};
    for (size_t i = 0; i < DM_ARRAY_LEN(statuses); i++) {
        char v[32];
        snprintf(v, sizeof v, "\"%s\"", statuses[i].status);
        char *body = variant(name, "detail.status", v);
        dm_finding_report r;
        finding_ok(body, &r);
        assert_int_equal(r.removed, statuses[i].removed);
        assert_string_equal(r.findings[0].status, statuses[i].status);
        dm_finding_report_dispose(&r);
        free(body);
    }
    static const struct {
        const char *word;
        dm_severity sev;
    } sevs[] = {
        {"CRITICAL", DM_SEV_CRITICAL}, {"HIGH", DM_SEV_HIGH},         {"MEDIUM", DM_SEV_MEDIUM},
        {"LOW", DM_SEV_LOW},           {"INFORMATIONAL", DM_SEV_LOW}, {"UNTRIAGED", DM_SEV_UNKNOWN},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(sevs); i++) {
        char v[32];
        snprintf(v, sizeof v, "\"%s\"", sevs[i].word);
        char *body = variant(name, "detail.severity", v);
        dm_finding_report r;
        finding_ok(body, &r);
        assert_int_equal(r.findings[0].severity, sevs[i].sev);
        dm_finding_report_dispose(&r);
        free(body);
    }

    /* several packages: one finding each, in package order within one severity */
    char *body = variant(
        name, "detail.packageVulnerabilityDetails.vulnerablePackages",
        "[{\"name\":\"openssl\",\"version\":\"3.0.13\",\"release\":\"0ubuntu3.4\",\"epoch\":1,"
        "\"fixedInVersion\":\"NotAvailable\",\"filePath\":null},"
        "{\"name\":\"libssl3t64\",\"version\":\"3.0.13\",\"filePath\":\"/usr/lib/x\"},"
        "{\"name\":\"libssl3t64\",\"version\":\"3.0.14\"},{\"name\":\"nover\",\"release\":\"1\"}]");
    dm_finding_report r;
    finding_ok(body, &r);
    assert_int_equal(r.nfindings, 3);
    assert_string_equal(r.findings[0].package, "libssl3t64");
    assert_string_equal(r.findings[0].installed, "3.0.13");
    assert_string_equal(r.findings[0].path, "/usr/lib/x");
    assert_string_equal(r.findings[1].package, "nover");
    assert_null(r.findings[1].installed);
    assert_string_equal(r.findings[2].package, "openssl");
    assert_string_equal(r.findings[2].installed, "1:3.0.13-0ubuntu3.4");
    assert_null(r.findings[2].fixed); /* NotAvailable */
    for (size_t i = 0; i < r.nfindings; i++)
        assert_string_equal(r.findings[i].id, "CVE-2024-45490");
    dm_finding_report_dispose(&r);
    free(body);

    /* the image's own registry account names the host */
    body = variant(name, "detail.resources.0.details.awsEcrContainerImage.registry",
                   "\"444455556666\"");
    finding_ok(body, &r);
    assert_string_equal(r.digests[0].registry, "444455556666.dkr.ecr.eu-west-1.amazonaws.com");
    dm_finding_report_dispose(&r);
    free(body);
    /* resources that are not ECR images are passed over */
    body = variant(name, "detail.resources.1",
                   "{\"type\":\"AWS_EC2_INSTANCE\",\"details\":{\"awsEc2Instance\":{}}}");
    finding_ok(body, &r);
    assert_int_equal(r.ndigests, 1);
    dm_finding_report_dispose(&r);
    free(body);
    /* no updatedAt: none kept */
    body = variant(name, "detail.updatedAt", NULL);
    finding_ok(body, &r);
    assert_null(r.updated_at);
    dm_finding_report_dispose(&r);
    free(body);
}

static void test_finding_errors(void **state)
{
    (void)state;
    static const char name[] = "eventbridge-inspector2-finding.json";
#define PVD  "detail.packageVulnerabilityDetails"
#define PKGS PVD ".vulnerablePackages"
#define IMG  "detail.resources.0.details.awsEcrContainerImage"
#define IMGP "detail.resources[0].details.awsEcrContainerImage"
    static const struct {
        const char *path, *value, *field, *text;
    } bad[] = {
        {"detail.type", NULL, "detail.type", "is required"},
        {"detail.findingArn", NULL, "detail.findingArn", "is required"},
        {"detail.findingArn", "7", "detail.findingArn", "must be a string"},
        {"detail.status", "\"active\"", "detail.status",
         "must be one of ACTIVE, SUPPRESSED, CLOSED"},
        {"detail.status", NULL, "detail.status", "is required"},
        {"detail.severity", "\"SEVERE\"", "detail.severity",
         "must be one of CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNTRIAGED"},
        {"detail.severity", "\"TOTAL\"", "detail.severity",
         "must be one of CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNTRIAGED"},
        {"detail.updatedAt", "[]", "detail.updatedAt", "must be a string"},
        {"detail.resources", NULL, "detail.resources", "is required"},
        {"detail.resources", "{}", "detail.resources", "must be an array"},
        {"detail.resources", "[]", "detail.resources",
         "must name an ECR container image (details.awsEcrContainerImage)"},
        {"detail.resources.0", "7", "detail.resources[0]", "must be an object"},
        {"detail.resources.0.details", NULL, "detail.resources",
         "must name an ECR container image (details.awsEcrContainerImage)"},
        {IMG, "[]", IMGP, "must be an object"},
        {IMG ".imageHash", NULL, IMGP, "imageHash is required"},
        {IMG ".imageHash", "\"sha256:abc\"", IMGP,
         "imageHash must be sha256: followed by 64 lowercase hex digits"},
        {IMG ".repositoryName", "\"a//b\"", IMGP,
         "repositoryName must not have an empty path component"},
        {IMG ".registry", "\"1234\"", IMGP, "registry must be 12 digits"},
        {IMG ".imageTags", "[false]", IMGP, "imageTags[0] must be a string"},
        {PVD, NULL, PVD, "is required"},
        {PVD ".vulnerabilityId", NULL, PVD ".vulnerabilityId", "is required"},
        {PVD ".vulnerabilityId", "\"\"", PVD ".vulnerabilityId", "must not be empty"},
        {PKGS, NULL, PKGS, "is required"},
        {PKGS, "{}", PKGS, "must be an array"},
        {PKGS, "[]", PKGS, "must not be empty"},
        {PKGS ".0", "\"libexpat1\"", PKGS "[0]", "must be an object"},
        {PKGS ".0.name", NULL, PKGS "[0]", "name is required"},
        {PKGS ".0.version", "2", PKGS "[0]", "version must be a string"},
        {PKGS ".0.epoch", "-1", PKGS "[0]", "epoch must be a non-negative integer"},
        {PKGS ".0.epoch", "\"0\"", PKGS "[0]", "epoch must be a non-negative integer"},
        {PKGS ".0.fixedInVersion", "{}", PKGS "[0]", "fixedInVersion must be a string"},
        {PKGS ".0.filePath", "1", PKGS "[0]", "filePath must be a string"},
        {"detail", "\"x\"", "detail", "must be an object"},
        {"time", "\"Sun Dec 06 06:40:12.517 UTC 2026\"", "time", "must be an RFC 3339 timestamp"},
        {"account", "\"1111\"", "account", "must be 12 digits"},
    };
#undef PVD
#undef PKGS
#undef IMG
#undef IMGP
    for (size_t i = 0; i < DM_ARRAY_LEN(bad); i++)
        variant_error(name, bad[i].path, bad[i].value, bad[i].field, bad[i].text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),           cmocka_unit_test(test_sns_message),
        cmocka_unit_test(test_invalid_table),      cmocka_unit_test(test_ignored_inline),
        cmocka_unit_test(test_region_hosts),       cmocka_unit_test(test_optional_members),
        cmocka_unit_test(test_delete_ignores_tag), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_errors_inline),      cmocka_unit_test(test_finding_fixtures),
        cmocka_unit_test(test_not_finding),        cmocka_unit_test(test_finding_ignored),
        cmocka_unit_test(test_scan_counts),        cmocka_unit_test(test_inspector_finding),
        cmocka_unit_test(test_finding_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
