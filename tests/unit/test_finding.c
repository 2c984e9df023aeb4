/* test_finding.c - the normalized findings report: severity names, distinct (id, package),
 * the bound (most severe kept, the rest counted), the summary and the JSON document. */
#include "dm_common.h"
#include "dm_finding.h"
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

#define D_INDEX "sha256:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600"
#define D_AMD64 "sha256:7cf87f7bfc057740b20c2fbc79ee2cdc1a3b8d9d215131b7262e83c0a03dabf6"

static dm_finding *add(dm_finding_report *r, const char *id, const char *pkg, dm_severity sev,
                       const char *installed)
{
    dm_finding *f = dm_finding_report_add(r);
    f->id = dm_xstrdup(id);
    f->package = dm_xstrdup(pkg);
    f->severity = sev;
    f->installed = installed ? dm_xstrdup(installed) : NULL;
    return f;
}

static void expect_counts(const uint32_t *got, uint32_t c, uint32_t h, uint32_t m, uint32_t l,
                          uint32_t u)
{
    const uint32_t want[DM_SEV_COUNT] = {c, h, m, l, u};
    for (int i = 0; i < DM_SEV_COUNT; i++) {
        if (got[i] != want[i])
            fail_msg("counts[%s] = %u, want %u", dm_severity_name((dm_severity)i), got[i], want[i]);
    }
}

/*---- severities ---------------------------------------------------------------------------*/

static void test_severity_names(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        dm_severity sev;
    } table[] = {
        {"critical", DM_SEV_CRITICAL}, {"high", DM_SEV_HIGH},       {"medium", DM_SEV_MEDIUM},
        {"low", DM_SEV_LOW},           {"unknown", DM_SEV_UNKNOWN},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(table); i++) {
        assert_string_equal(dm_severity_name(table[i].sev), table[i].name);
        dm_severity s = (dm_severity)-1;
        assert_true(dm_severity_from_name(table[i].name, strlen(table[i].name), &s));
        assert_int_equal(s, table[i].sev);
    }
    /* most severe first: the order the bound keeps */
    assert_true(DM_SEV_CRITICAL < DM_SEV_HIGH && DM_SEV_HIGH < DM_SEV_MEDIUM &&
                DM_SEV_MEDIUM < DM_SEV_LOW && DM_SEV_LOW < DM_SEV_UNKNOWN);
    assert_string_equal(dm_severity_name((dm_severity)7), "unknown");

    static const char *const not_names[] = {
        "CRITICAL", "High", "", "critical ", "crit", "negligible", "informational", "none"};
    for (size_t i = 0; i < DM_ARRAY_LEN(not_names); i++) {
        dm_severity s = DM_SEV_HIGH;
        assert_false(dm_severity_from_name(not_names[i], strlen(not_names[i]), &s));
        assert_int_equal(s, DM_SEV_HIGH);
    }
    /* the length counts, not a NUL */
    dm_severity s;
    assert_true(dm_severity_from_name("lowest", 3, &s));
    assert_int_equal(s, DM_SEV_LOW);
    assert_false(dm_severity_from_name(NULL, 0, &s));
}

/*---- distinct findings, the bound, the summary ---------------------------------------------*/

static void test_distinct_highest_severity(void **state)
{
    (void)state;
    dm_finding_report r = {0};
    add(&r, "CVE-1", "libssl3", DM_SEV_LOW, "3.0.1");
    add(&r, "CVE-1", "libcrypto3", DM_SEV_MEDIUM, "3.0.1"); /* another package: another one */
    add(&r, "CVE-1", "libssl3", DM_SEV_HIGH, "3.0.2");      /* same pair, higher: kept */
    add(&r, "CVE-1", "libssl3", DM_SEV_HIGH, "3.0.3");      /* equal: the first listing wins */
    add(&r, "CVE-2", "zlib1g", DM_SEV_UNKNOWN, NULL);
    add(&r, "CVE-0", "zlib1g", DM_SEV_CRITICAL, NULL);

    uint32_t sum[DM_SEV_COUNT];
    dm_finding_summary(r.findings, r.nfindings, sum);
    expect_counts(sum, 1, 1, 1, 0, 1);

    dm_finding_report_finish(&r, 0);
    assert_int_equal(r.nfindings, 4);
    assert_int_equal(r.dropped, 0);
    expect_counts(r.counts, 1, 1, 1, 0, 1);
    static const char *const order[][3] = {{"CVE-0", "zlib1g", NULL},
                                           {"CVE-1", "libssl3", "3.0.2"},
                                           {"CVE-1", "libcrypto3", "3.0.1"},
                                           {"CVE-2", "zlib1g", NULL}};
    for (size_t i = 0; i < DM_ARRAY_LEN(order); i++) {
        assert_string_equal(r.findings[i].id, order[i][0]);
        assert_string_equal(r.findings[i].package, order[i][1]);
        if (order[i][2])
            assert_string_equal(r.findings[i].installed, order[i][2]);
        else
            assert_null(r.findings[i].installed);
    }
    dm_finding_report_dispose(&r);
    assert_null(r.findings);
    assert_int_equal(r.nfindings, 0);
    dm_finding_report_dispose(&r); /* safe twice */
    dm_finding_report_dispose(NULL);
}

/* Over the bound: the most severe are kept, ties by id then package; counts cover all. */
static void test_bound(void **state)
{
    (void)state;
    dm_finding_report r = {0};
    r.kind = DM_REPORT_SNAPSHOT;
    /* 2600 distinct findings: 100 critical, 400 high, 2100 low, listed least severe first */
    char id[32];
    for (int i = 0; i < 2100; i++) {
        snprintf(id, sizeof id, "CVE-L-%04d", i);
        add(&r, id, "p", DM_SEV_LOW, NULL);
    }
    for (int i = 0; i < 400; i++) {
        snprintf(id, sizeof id, "CVE-H-%04d", i);
        add(&r, id, "p", DM_SEV_HIGH, NULL);
    }
    for (int i = 99; i >= 0; i--) {
        snprintf(id, sizeof id, "CVE-C-%04d", i);
        add(&r, id, "p", DM_SEV_CRITICAL, NULL);
        add(&r, id, "p", DM_SEV_LOW, NULL); /* a duplicate: not a finding of its own */
    }
    dm_finding_report_finish(&r, 0); /* default: 2000 */
    assert_int_equal(r.nfindings, DM_FINDINGS_MAX_DEFAULT);
    assert_int_equal(r.dropped, 600);
    expect_counts(r.counts, 100, 400, 0, 2100, 0);
    assert_string_equal(r.findings[0].id, "CVE-C-0000");
    assert_int_equal(r.findings[99].severity, DM_SEV_CRITICAL);
    assert_string_equal(r.findings[100].id, "CVE-H-0000");
    assert_int_equal(r.findings[499].severity, DM_SEV_HIGH);
    assert_string_equal(r.findings[500].id, "CVE-L-0000");
    assert_string_equal(r.findings[1999].id, "CVE-L-1499");
    dm_finding_report_dispose(&r);

    /* a caller-given bound; exactly at it nothing is dropped */
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "CVE-%d", i);
        add(&r, id, "p", (dm_severity)i, NULL);
    }
    dm_finding_report_finish(&r, 3);
    assert_int_equal(r.nfindings, 3);
    assert_int_equal(r.dropped, 0);
    dm_finding_report_finish(&r, 1);
    assert_int_equal(r.nfindings, 1);
    assert_int_equal(r.dropped, 2);
    assert_string_equal(r.findings[0].id, "CVE-0");
    expect_counts(r.counts, 1, 1, 1, 0, 0); /* the counts cover what the bound left out */
    dm_finding_report_dispose(&r);

    /* nothing to keep */
    dm_finding_report_finish(&r, 1);
    assert_int_equal(r.nfindings, 0);
    assert_int_equal(r.dropped, 0);
    uint32_t sum[DM_SEV_COUNT] = {9, 9, 9, 9, 9};
    dm_finding_summary(NULL, 0, sum);
    expect_counts(sum, 0, 0, 0, 0, 0);
}

/* COUNTS reports keep the counts they were given when finished. */
static void test_counts_kept(void **state)
{
    (void)state;
    dm_finding_report r = {0};
    r.kind = DM_REPORT_COUNTS;
    r.counts[DM_SEV_HIGH] = 3;
    dm_finding_report_finish(&r, 0);
    expect_counts(r.counts, 0, 3, 0, 0, 0);
    dm_finding_report_dispose(&r);
}

static void test_digests_and_tags(void **state)
{
    (void)state;
    dm_finding_report r = {0};
    dm_finding_digest *d =
        dm_finding_report_add_digest(&r, D_INDEX, DM_REL_IMAGE, "contoso.azurecr.io", "team/api");
    assert_string_equal(d->digest, D_INDEX);
    /* listed again: the first listing keeps its relation and names */
    d = dm_finding_report_add_digest(&r, D_INDEX, DM_REL_PLATFORM_MANIFEST, NULL, NULL);
    assert_int_equal(d->relation, DM_REL_IMAGE);
    assert_string_equal(d->registry, "contoso.azurecr.io");
    d = dm_finding_report_add_digest(&r, D_AMD64, DM_REL_PLATFORM_MANIFEST, NULL, NULL);
    assert_null(d->registry);
    assert_int_equal(r.ndigests, 2);
    dm_finding_report_add_tag(&r, "1.4.0", 5);
    dm_finding_report_add_tag(&r, "1.4.0x", 5); /* the length counts */
    dm_finding_report_add_tag(&r, "latest", 6);
    assert_int_equal(r.ntags, 2);
    dm_finding_report_dispose(&r);
}

/*---- JSON ---------------------------------------------------------------------------------*/

static void expect_json(const dm_finding_report *r, const char *want)
{
    char *got = dm_finding_report_to_json(r);
    assert_string_equal(got, want);
    free(got);
}

static void test_json(void **state)
{
    (void)state;
    dm_finding_report r = {0};
    r.kind = DM_REPORT_SNAPSHOT;
    snprintf(r.scanner, sizeof r.scanner, "trivy");
    r.event_id = dm_xstrdup("rep-1");
    r.event_time_ms = 1796548364503;
    dm_finding_report_add_digest(&r, D_INDEX, DM_REL_IMAGE, "contoso.azurecr.io", "team/api");
    dm_finding_report_add_digest(&r, D_AMD64, DM_REL_PLATFORM_MANIFEST, NULL, NULL);
    dm_finding_report_add_tag(&r, "1.4.0", 5);
    dm_finding *f = add(&r, "CVE-2024-45296", "path-to-regexp", DM_SEV_HIGH, "0.1.7");
    f->fixed = dm_xstrdup(">= 0.1.10, < 1.0 & \"x\"");
    f->status = dm_xstrdup("fixed");
    f->path = dm_xstrdup("app/node_modules/path-to-regexp/package.json");
    add(&r, "CVE-2023-45853", "zlib1g", DM_SEV_CRITICAL, NULL);
    dm_finding_report_finish(&r, 1);
    expect_json(&r, "{\"kind\":\"snapshot\",\"scanner\":\"trivy\",\"event_id\":\"rep-1\","
                    "\"t\":1796548364503,\"digests\":[{\"digest\":\"" D_INDEX "\","
                    "\"relation\":\"image\",\"registry\":\"contoso.azurecr.io\","
                    "\"repository\":\"team/api\"},{\"digest\":\"" D_AMD64 "\","
                    "\"relation\":\"platform-manifest\"}],\"tags\":[\"1.4.0\"],"
                    "\"counts\":{\"critical\":1,\"high\":1,\"medium\":0,\"low\":0,\"unknown\":0},"
                    "\"findings\":[{\"id\":\"CVE-2023-45853\",\"package\":\"zlib1g\","
                    "\"severity\":\"critical\"}],\"dropped\":1}");
    dm_finding_report_dispose(&r);

    dm_finding_report_finish(&r, 0);
    r.kind = DM_REPORT_UPDATE;
    snprintf(r.scanner, sizeof r.scanner, "inspector");
    r.removed = true;
    r.ref = dm_xstrdup("arn:aws:inspector2:eu-west-1:111122223333:finding/5b");
    add(&r, "CVE-1", "p", DM_SEV_LOW, "1");
    r.findings[0].fixed = dm_xstrdup("2");
    r.findings[0].status = dm_xstrdup("CLOSED");
    r.findings[0].path = dm_xstrdup("/p");
    dm_finding_report_finish(&r, 0);
    expect_json(&r, "{\"kind\":\"update\",\"scanner\":\"inspector\",\"event_id\":\"\",\"t\":0,"
                    "\"digests\":[],\"tags\":[],\"counts\":{\"critical\":0,\"high\":0,"
                    "\"medium\":0,\"low\":1,\"unknown\":0},\"findings\":[{\"id\":\"CVE-1\","
                    "\"package\":\"p\",\"severity\":\"low\",\"installed\":\"1\",\"fixed\":\"2\","
                    "\"status\":\"CLOSED\",\"path\":\"/p\"}],\"dropped\":0,\"removed\":true,"
                    "\"ref\":\"arn:aws:inspector2:eu-west-1:111122223333:finding/5b\"}");
    dm_finding_report_dispose(&r);

    r.kind = DM_REPORT_COUNTS;
    snprintf(r.scanner, sizeof r.scanner, "ecr-basic");
    r.event_id = dm_xstrdup("e");
    r.counts[DM_SEV_MEDIUM] = 6;
    r.counts[DM_SEV_UNKNOWN] = 1;
    dm_finding_report_add_tag(&r, "2.1.0", 5);
    expect_json(&r, "{\"kind\":\"counts\",\"scanner\":\"ecr-basic\",\"event_id\":\"e\",\"t\":0,"
                    "\"digests\":[],\"tags\":[\"2.1.0\"],\"counts\":{\"critical\":0,\"high\":0,"
                    "\"medium\":6,\"low\":0,\"unknown\":1}}");
    /* the script's document: no digests, no tags (one call per digest names its own) */
    dm_finding_report_add_digest(&r, D_INDEX, DM_REL_IMAGE, NULL, NULL);
    char *st = dm_finding_report_to_store_json(&r);
    assert_string_equal(st, "{\"kind\":\"counts\",\"scanner\":\"ecr-basic\",\"event_id\":\"e\","
                            "\"t\":0,\"counts\":{\"critical\":0,\"high\":0,\"medium\":6,\"low\":0,"
                            "\"unknown\":1}}");
    free(st);
    dm_finding_report_dispose(&r);

    /* bytes jansson would refuse still give a well-formed document */
    r.kind = DM_REPORT_SNAPSHOT;
    r.event_id = dm_xstrdup("\xff\xfe");
    add(&r, "CVE-\xc3", "p", DM_SEV_LOW, NULL);
    char *s = dm_finding_report_to_json(&r);
    json_error_t jerr;
    json_t *j = json_loads(s, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "event_id")), "??");
    json_decref(j);
    free(s);
    dm_finding_report_dispose(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_severity_names),
        cmocka_unit_test(test_distinct_highest_severity),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_counts_kept),
        cmocka_unit_test(test_digests_and_tags),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
