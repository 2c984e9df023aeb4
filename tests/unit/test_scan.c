/* test_scan.c - Trivy and Grype reports: both fixtures field by field, the invalid table,
 * severity vocabularies, digests (every RepoDigest, Grype's manifestDigest), the bound and
 * edge cases. */
#include "dm_common.h"
#include "dm_scan.h"
#include "dm_test.h"

#include <dirent.h>
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

#define D_INDEX "sha256:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600"
#define D_AMD64 "sha256:7cf87f7bfc057740b20c2fbc79ee2cdc1a3b8d9d215131b7262e83c0a03dabf6"
#define D_OTHER "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

/*---- helpers ------------------------------------------------------------------------------*/

/* Parse @p len bytes of @p body from a guarded copy (reads past the end fault) into a report
 * poisoned with 0x5a: the parser must not rely on a zeroed one. */
static int parse_n(const char *body, size_t len, size_t max, dm_finding_report *r, dm_error *err)
{
    memset(r, 0x5a, sizeof *r);
    memset(err, 0, sizeof *err);
    if (len == 0)
        return dm_scan_parse(NULL, 0, max, r, err);
    char *map;
    size_t maplen;
    char *copy = dm_test_guarded_copy(body, len, &map, &maplen);
    int rc = dm_scan_parse(copy, len, max, r, err);
    munmap(map, maplen);
    return rc;
}

static void expect_ok(const char *body, size_t max, dm_finding_report *r)
{
    dm_error err;
    int rc = parse_n(body, strlen(body), max, r, &err);
    if (rc != DM_OK)
        fail_msg("refused: [%s] %s", err.field, err.text);
}

static void assert_zeroed(const dm_finding_report *r)
{
    static const dm_finding_report zero;
    assert_memory_equal(r, &zero, sizeof zero);
}

static void expect_error(const char *body, const char *field, const char *text)
{
    dm_finding_report r;
    dm_error err;
    int rc = parse_n(body, strlen(body), 0, &r, &err);
    if (rc != DM_EINVAL)
        fail_msg("accepted: %.200s", body);
    if (err.status != 400 || strcmp(err.field, field) != 0 || strcmp(err.text, text) != 0)
        fail_msg("got [%s] %s, want [%s] %s (body %.200s)", err.field, err.text, field, text, body);
    assert_zeroed(&r);
}

static void parse_fixture(const char *name, dm_finding_report *r)
{
    char rel[256];
    snprintf(rel, sizeof rel, "scan/%s", name);
    size_t len;
    char *body = dm_test_load_fixture(rel, &len);
    dm_error err;
    int rc = parse_n(body, len, 0, r, &err);
    free(body);
    if (rc != DM_OK)
        fail_msg("%s: [%s] %s", name, err.field, err.text);
}

typedef struct want_finding {
    const char *id, *package, *installed, *fixed, *status, *path;
    dm_severity sev;
} want_finding;

static void expect_findings(const dm_finding_report *r, const want_finding *want, size_t n)
{
    assert_int_equal(r->nfindings, n);
    for (size_t i = 0; i < n; i++) {
        const dm_finding *f = &r->findings[i];
        const want_finding *w = &want[i];
#define SAME(m)                                                                        \
    do {                                                                               \
        if ((w->m == NULL) != (f->m == NULL) || (w->m && strcmp(w->m, f->m) != 0))     \
            fail_msg("finding %zu " #m ": got %s, want %s", i, f->m ? f->m : "(null)", \
                     w->m ? w->m : "(null)");                                          \
    } while (0)
        SAME(id);
        SAME(package);
        SAME(installed);
        SAME(fixed);
        SAME(status);
        SAME(path);
#undef SAME
        assert_int_equal(f->severity, w->sev);
    }
}

/* A minimal Trivy report around @p vulns (the members of one Vulnerabilities entry each,
 * comma-joined objects) and RepoDigests @p digests (JSON array text). */
static char *trivy_doc(const char *digests, const char *vulns)
{
    size_t cap = strlen(digests) + strlen(vulns) + 512;
    char *s = dm_xmalloc(cap);
    snprintf(s, cap,
             "{\"SchemaVersion\":2,\"ArtifactName\":\"x\",\"ArtifactType\":\"container_image\","
             "\"Metadata\":{\"RepoDigests\":%s},\"Results\":[{\"Target\":\"t\","
             "\"Class\":\"os-pkgs\",\"Vulnerabilities\":[%s]}]}",
             digests, vulns);
    return s;
}

#define TRIVY_DIGESTS "[\"contoso.azurecr.io/team/api@" D_INDEX "\"]"

/* A minimal Grype report: target members @p target, matches @p matches (JSON array text). */
static char *grype_doc(const char *target, const char *matches)
{
    size_t cap = strlen(target) + strlen(matches) + 512;
    char *s = dm_xmalloc(cap);
    snprintf(s, cap,
             "{\"matches\":%s,\"source\":{\"type\":\"image\",\"target\":{%s}},"
             "\"descriptor\":{\"name\":\"grype\",\"timestamp\":\"2026-12-06T09:13:02.118Z\"}}",
             matches, target);
    return s;
}

#define GRYPE_TARGET "\"repoDigests\":[\"contoso.azurecr.io/team/api@" D_INDEX "\"]"

static char *grype_match(const char *id, const char *sev, const char *pkg)
{
    char *s = dm_xmalloc(512);
    snprintf(s, 512,
             "[{\"vulnerability\":{\"id\":\"%s\",\"severity\":\"%s\"},"
             "\"artifact\":{\"name\":\"%s\"}}]",
             id, sev, pkg);
    return s;
}

/*---- fixtures -----------------------------------------------------------------------------*/

static void test_trivy_fixture(void **state)
{
    (void)state;
    dm_finding_report r;
    parse_fixture("trivy-report.json", &r);
    assert_int_equal(r.kind, DM_REPORT_SNAPSHOT);
    assert_string_equal(r.scanner, "trivy");
    assert_string_equal(r.event_id, "019af2d8-3e57-7b21-9c4d-5e6f7a8b9c0d"); /* ReportID */
    assert_int_equal(r.event_time_ms, 1796548364503); /* CreatedAt, ns cut to ms */
    /* RepoDigests names the index; ImageID (the config) and ArtifactID are not joined on */
    assert_int_equal(r.ndigests, 1);
    assert_string_equal(r.digests[0].digest, D_INDEX);
    assert_int_equal(r.digests[0].relation, DM_REL_IMAGE);
    assert_string_equal(r.digests[0].registry, "contoso.azurecr.io");
    assert_string_equal(r.digests[0].repository, "team/api");
    assert_int_equal(r.ntags, 1);
    assert_string_equal(r.tags[0], "1.4.0");
    static const want_finding want[] = {
        {"CVE-2023-45853", "zlib1g", "1:1.2.13.dfsg-1", NULL, "will_not_fix", NULL,
         DM_SEV_CRITICAL},
        {"CVE-2024-45296", "path-to-regexp", "0.1.7", "1.9.0, 0.1.10, 8.0.0, 3.3.0, 6.3.0", "fixed",
         "app/node_modules/path-to-regexp/package.json", DM_SEV_HIGH},
        {"CVE-2024-45590", "body-parser", "1.20.2", "1.20.3", "fixed",
         "app/node_modules/body-parser/package.json", DM_SEV_HIGH},
        {"CVE-2024-6119", "libssl3", "3.0.14-1~deb12u1", "3.0.14-1~deb12u2", "fixed", NULL,
         DM_SEV_MEDIUM},
        {"CVE-2024-47764", "cookie", "0.6.0", "0.7.0", "fixed",
         "app/node_modules/cookie/package.json", DM_SEV_LOW},
        {"CVE-2024-9143", "libssl3", "3.0.14-1~deb12u1", "3.0.15-1~deb12u1", "fixed", NULL,
         DM_SEV_LOW},
    };
    expect_findings(&r, want, DM_ARRAY_LEN(want));
    assert_int_equal(r.dropped, 0);
    const uint32_t counts[DM_SEV_COUNT] = {1, 2, 1, 2, 0};
    assert_memory_equal(r.counts, counts, sizeof counts);
    dm_finding_report_dispose(&r);
}

static void test_grype_fixture(void **state)
{
    (void)state;
    dm_finding_report r;
    parse_fixture("grype-report.json", &r);
    assert_int_equal(r.kind, DM_REPORT_SNAPSHOT);
    assert_string_equal(r.scanner, "grype");
    assert_int_equal(r.event_time_ms, 1796548382118); /* descriptor.timestamp */
    /* no sender id: the body's own digest */
    assert_int_equal(strlen(r.event_id), DM_DIGEST_LEN);
    assert_true(dm_digest_valid(r.event_id, DM_DIGEST_LEN));
    /* repoDigests: the index; manifestDigest: the amd64 manifest actually read */
    assert_int_equal(r.ndigests, 2);
    assert_string_equal(r.digests[0].digest, D_INDEX);
    assert_int_equal(r.digests[0].relation, DM_REL_IMAGE);
    assert_string_equal(r.digests[1].digest, D_AMD64);
    assert_int_equal(r.digests[1].relation, DM_REL_PLATFORM_MANIFEST);
    assert_string_equal(r.digests[1].registry, "contoso.azurecr.io");
    assert_string_equal(r.digests[1].repository, "team/api");
    assert_int_equal(r.ntags, 1);
    assert_string_equal(r.tags[0], "1.4.0");
    static const want_finding want[] = {
        {"CVE-2023-45853", "zlib1g", "1:1.2.13.dfsg-1", NULL, "wont-fix", "/var/lib/dpkg/status",
         DM_SEV_CRITICAL},
        {"GHSA-9wv6-86v2-598j", "path-to-regexp", "0.1.7", "0.1.10", "fixed",
         "/app/node_modules/path-to-regexp/package.json", DM_SEV_HIGH},
        {"CVE-2024-6119", "libssl3", "3.0.14-1~deb12u1", "3.0.14-1~deb12u2", "fixed",
         "/var/lib/dpkg/status", DM_SEV_MEDIUM},
        /* Negligible is low */
        {"CVE-2016-2781", "coreutils", "9.1-1", NULL, "not-fixed", "/var/lib/dpkg/status",
         DM_SEV_LOW},
        {"GHSA-pxg6-pf52-xh8x", "cookie", "0.6.0", "0.7.0", "fixed",
         "/app/node_modules/cookie/package.json", DM_SEV_LOW},
    };
    expect_findings(&r, want, DM_ARRAY_LEN(want));
    const uint32_t counts[DM_SEV_COUNT] = {1, 1, 1, 2, 0};
    assert_memory_equal(r.counts, counts, sizeof counts);

    /* the same bytes have the same id; one byte more, another */
    char *id = dm_xstrdup(r.event_id);
    dm_finding_report_dispose(&r);
    size_t len;
    char *body = dm_test_load_fixture("scan/grype-report.json", &len);
    dm_error err;
    assert_int_equal(parse_n(body, len, 0, &r, &err), DM_OK);
    assert_string_equal(r.event_id, id);
    dm_finding_report_dispose(&r);
    body = dm_xrealloc(body, len + 1);
    body[len] = '\n';
    assert_int_equal(parse_n(body, len + 1, 0, &r, &err), DM_OK);
    assert_string_not_equal(r.event_id, id);
    dm_finding_report_dispose(&r);
    free(body);
    free(id);
}

/* The report's JSON document, as the findings script reads it. */
static void test_fixture_json(void **state)
{
    (void)state;
    dm_finding_report r;
    parse_fixture("trivy-report.json", &r);
    char *s = dm_finding_report_to_json(&r);
    json_error_t jerr;
    json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "snapshot");
    assert_int_equal(json_array_size(json_object_get(j, "findings")), 6);
    json_t *f0 = json_array_get(json_object_get(j, "findings"), 0);
    assert_string_equal(json_string_value(json_object_get(f0, "severity")), "critical");
    assert_string_equal(json_string_value(json_object_get(f0, "status")), "will_not_fix");
    assert_null(json_object_get(f0, "fixed"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "counts"), "high")), 2);
    json_decref(j);
    free(s);
    dm_finding_report_dispose(&r);
}

/*---- invalid table ------------------------------------------------------------------------*/

/* tests/fixtures/scan/invalid/expected.tsv names every *.json there with its exact error. */
static void test_invalid_table(void **state)
{
    (void)state;
    size_t tlen;
    char *table = dm_test_load_fixture("scan/invalid/expected.tsv", &tlen);
    table = dm_xrealloc(table, tlen + 1);
    table[tlen] = '\0';
    int cases = 0;
    char *save = NULL;
    for (char *line = strtok_r(table, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *file = line, *field = strchr(file, '\t'), *text;
        assert_non_null(field);
        *field++ = '\0';
        text = strchr(field, '\t');
        assert_non_null(text);
        *text++ = '\0';
        char rel[512];
        snprintf(rel, sizeof rel, "scan/invalid/%s", file);
        size_t len;
        char *body = dm_test_load_fixture(rel, &len);
        dm_finding_report r;
        dm_error err;
        int rc = parse_n(body, len, 0, &r, &err);
        free(body);
        if (rc != DM_EINVAL)
            fail_msg("%s: accepted", file);
        if (err.status != 400 || strcmp(err.field, field) != 0 || strcmp(err.text, text) != 0)
            fail_msg("%s: got %d [%s] %s, want [%s] %s", file, err.status, err.field, err.text,
                     field, text);
        assert_zeroed(&r);
        cases++;
    }
    free(table);
    DIR *d = opendir(DM_FIXTURES "/scan/invalid");
    assert_non_null(d);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        files += n >= 5 && strcmp(de->d_name + n - 5, ".json") == 0;
    }
    closedir(d);
    assert_int_equal(files, cases);
    assert_true(cases >= 5);
}

/*---- severity vocabularies ----------------------------------------------------------------*/

static void test_trivy_severities(void **state)
{
    (void)state;
    static const struct {
        const char *word;
        dm_severity sev;
    } ok[] = {
        {"CRITICAL", DM_SEV_CRITICAL}, {"HIGH", DM_SEV_HIGH},       {"MEDIUM", DM_SEV_MEDIUM},
        {"LOW", DM_SEV_LOW},           {"UNKNOWN", DM_SEV_UNKNOWN},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(ok); i++) {
        char v[256];
        snprintf(v, sizeof v,
                 "{\"VulnerabilityID\":\"CVE-1\",\"PkgName\":\"p\",\"Severity\":\"%s\"}",
                 ok[i].word);
        char *body = trivy_doc(TRIVY_DIGESTS, v);
        dm_finding_report r;
        expect_ok(body, 0, &r);
        assert_int_equal(r.nfindings, 1);
        assert_int_equal(r.findings[0].severity, ok[i].sev);
        dm_finding_report_dispose(&r);
        free(body);
    }
    /* another scanner's words, other spellings and nothing at all are refused */
    static const char *const bad[] = {
        "\"Critical\"", "\"high\"", "\"NEGLIGIBLE\"", "\"INFORMATIONAL\"", "\"\"",
        "\"HIGH \"",    "3"};
    for (size_t i = 0; i < DM_ARRAY_LEN(bad); i++) {
        char v[256];
        snprintf(v, sizeof v, "{\"VulnerabilityID\":\"CVE-1\",\"PkgName\":\"p\",\"Severity\":%s}",
                 bad[i]);
        char *body = trivy_doc(TRIVY_DIGESTS, v);
        const char *text = bad[i][0] == '3'   ? "must be a string"
                           : bad[i][1] == '"' ? "must not be empty"
                                              : "must be one of CRITICAL, HIGH, MEDIUM, LOW, "
                                                "UNKNOWN";
        expect_error(body, "Results[0].Vulnerabilities[0].Severity", text);
        free(body);
    }
    char *body = trivy_doc(TRIVY_DIGESTS, "{\"VulnerabilityID\":\"CVE-1\",\"PkgName\":\"p\"}");
    expect_error(body, "Results[0].Vulnerabilities[0].Severity", "is required");
    free(body);
}

static void test_grype_severities(void **state)
{
    (void)state;
    static const struct {
        const char *word;
        dm_severity sev;
    } ok[] = {
        {"Critical", DM_SEV_CRITICAL}, {"High", DM_SEV_HIGH},      {"Medium", DM_SEV_MEDIUM},
        {"Low", DM_SEV_LOW},           {"Negligible", DM_SEV_LOW}, {"Unknown", DM_SEV_UNKNOWN},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(ok); i++) {
        char *m = grype_match("CVE-1", ok[i].word, "p");
        char *body = grype_doc(GRYPE_TARGET, m);
        dm_finding_report r;
        expect_ok(body, 0, &r);
        assert_int_equal(r.nfindings, 1);
        assert_int_equal(r.findings[0].severity, ok[i].sev);
        dm_finding_report_dispose(&r);
        free(body);
        free(m);
    }
    static const char *const bad[] = {"CRITICAL", "critical", "None", "Informational", "Severe"};
    for (size_t i = 0; i < DM_ARRAY_LEN(bad); i++) {
        char *m = grype_match("CVE-1", bad[i], "p");
        char *body = grype_doc(GRYPE_TARGET, m);
        expect_error(body, "matches[0].vulnerability.severity",
                     "must be one of Critical, High, Medium, Low, Negligible, Unknown");
        free(body);
        free(m);
    }
}

/*---- digests ------------------------------------------------------------------------------*/

static void test_trivy_digests(void **state)
{
    (void)state;
    /* a Docker-daemon scan lists every repository the image was pulled from: all attach,
     * each digest once; names read as registry and repository where they can */
    char *body = trivy_doc("[\"contoso.azurecr.io/team/api@" D_INDEX "\","
                           "\"mirror.example.com:5000/Team/API@" D_INDEX "\","
                           "\"alpine@" D_OTHER "\",\"docker.io/library/alpine@" D_OTHER "\","
                           "\"localhost/x@" D_AMD64 "\"]",
                           "");
    dm_finding_report r;
    expect_ok(body, 0, &r);
    assert_int_equal(r.ndigests, 3);
    assert_string_equal(r.digests[0].digest, D_INDEX);
    assert_string_equal(r.digests[1].digest, D_OTHER);
    assert_string_equal(r.digests[1].registry, "docker.io");
    assert_string_equal(r.digests[1].repository, "library/alpine");
    assert_string_equal(r.digests[2].digest, D_AMD64);
    assert_string_equal(r.digests[2].registry, "localhost");
    assert_string_equal(r.digests[2].repository, "x");
    for (size_t i = 0; i < r.ndigests; i++)
        assert_int_equal(r.digests[i].relation, DM_REL_IMAGE);
    assert_int_equal(r.nfindings, 0);
    dm_finding_report_dispose(&r);
    free(body);

    /* a name that is not a reference still gives its digest, without names */
    body = trivy_doc("[\"Not A Name@" D_INDEX "\"]", "");
    expect_ok(body, 0, &r);
    assert_string_equal(r.digests[0].digest, D_INDEX);
    assert_null(r.digests[0].registry);
    assert_null(r.digests[0].repository);
    dm_finding_report_dispose(&r);
    free(body);

    static const struct {
        const char *digests, *field, *text;
    } bad[] = {
        {"[]", "Metadata.RepoDigests", "must not be empty"},
        {"null", "Metadata.RepoDigests", "is required"},
        {"{}", "Metadata.RepoDigests", "must be an array"},
        {"[7]", "Metadata.RepoDigests[0]", "must be a string"},
        {"[\"" D_INDEX "\"]", "Metadata.RepoDigests[0]",
         "must be NAME@sha256: followed by 64 lowercase hex digits"},
        {"[\"@" D_INDEX "\"]", "Metadata.RepoDigests[0]",
         "must be NAME@sha256: followed by 64 lowercase hex digits"},
        {"[\"a/b@" D_INDEX "\",\"a/b@sha256:abc\"]", "Metadata.RepoDigests[1]",
         "must be NAME@sha256: followed by 64 lowercase hex digits"},
        {"[\"a/b@" D_INDEX "@x\"]", "Metadata.RepoDigests[0]",
         "must be NAME@sha256: followed by 64 lowercase hex digits"},
        {"[\"a/b@sha512:" D_INDEX "\"]", "Metadata.RepoDigests[0]",
         "must be NAME@sha256: followed by 64 lowercase hex digits"},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(bad); i++) {
        body = trivy_doc(bad[i].digests, "");
        expect_error(body, bad[i].field, bad[i].text);
        free(body);
    }
}

static void test_grype_digests(void **state)
{
    (void)state;
    dm_finding_report r;
    /* a single-platform image: manifestDigest is the repo digest, listed once as the image */
    char *body = grype_doc(GRYPE_TARGET ",\"manifestDigest\":\"" D_INDEX "\"", "[]");
    expect_ok(body, 0, &r);
    assert_int_equal(r.ndigests, 1);
    assert_int_equal(r.digests[0].relation, DM_REL_IMAGE);
    dm_finding_report_dispose(&r);
    free(body);

    /* no manifestDigest: the repo digests alone */
    body = grype_doc(GRYPE_TARGET ",\"imageID\":\"" D_OTHER "\"", "[]");
    expect_ok(body, 0, &r);
    assert_int_equal(r.ndigests, 1);
    assert_int_equal(r.event_time_ms, 1796548382118);
    dm_finding_report_dispose(&r);
    free(body);

    static const struct {
        const char *target, *field, *text;
    } bad[] = {
        /* a manifestDigest alone may name a manifest no registry holds */
        {"\"repoDigests\":[],\"manifestDigest\":\"" D_AMD64 "\"", "source.target.repoDigests",
         "must not be empty"},
        {"\"manifestDigest\":\"" D_AMD64 "\"", "source.target.repoDigests", "is required"},
        {GRYPE_TARGET ",\"manifestDigest\":\"sha256:ABC\"", "source.target.manifestDigest",
         "must be sha256: followed by 64 lowercase hex digits"},
        {GRYPE_TARGET ",\"tags\":\"x\"", "source.target.tags", "must be an array"},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(bad); i++) {
        body = grype_doc(bad[i].target, "[]");
        expect_error(body, bad[i].field, bad[i].text);
        free(body);
    }
}

/*---- shapes and members -------------------------------------------------------------------*/

static void test_errors_inline(void **state)
{
    (void)state;
    static const struct {
        const char *body, *field, *text;
    } cases[] = {
        {"{", "", "invalid JSON at line 1 column 1: string or '}' expected near end of file"},
        {"[]", "", "must be a JSON object"},
        {"{}", "",
         "is neither a Trivy report (SchemaVersion, ArtifactType, Metadata, Results) nor a Grype "
         "report (matches, source)"},
        {"{\"SchemaVersion\":2,\"matches\":[]}", "",
         "mixes Trivy (SchemaVersion, ArtifactType, Metadata, Results) and Grype (matches, "
         "source, descriptor) members"},
        {"{\"SchemaVersion\":1,\"ArtifactType\":\"container_image\"}", "SchemaVersion",
         "must be 2"},
        {"{\"SchemaVersion\":\"2\"}", "SchemaVersion", "must be 2"},
        {"{\"SchemaVersion\":2}", "ArtifactType", "is required"},
        {"{\"ArtifactType\":\"repository\"}", "ArtifactType", "must be container_image"},
        {"{\"ArtifactType\":\"cyclonedx\",\"Metadata\":{}}", "ArtifactType",
         "must be container_image"},
        {"{\"ArtifactType\":\"container_image\"}", "Metadata", "is required"},
        {"{\"ArtifactType\":\"container_image\",\"Metadata\":[]}", "Metadata", "must be an object"},
        {"{\"ArtifactType\":\"container_image\",\"Metadata\":{\"RepoDigests\":[\"a@" D_INDEX
         "\"]},\"CreatedAt\":\"yesterday\"}",
         "CreatedAt", "must be an RFC 3339 timestamp"},
        {"{\"ArtifactType\":\"container_image\",\"Metadata\":{\"RepoDigests\":[\"a@" D_INDEX
         "\"]},\"Results\":[7]}",
         "Results[0]", "must be an object"},
        {"{\"ArtifactType\":\"container_image\",\"Metadata\":{\"RepoDigests\":[\"a@" D_INDEX
         "\"]},\"Results\":[{\"Vulnerabilities\":{}}]}",
         "Results[0].Vulnerabilities", "must be an array"},
        {"{\"ArtifactType\":\"container_image\",\"Metadata\":{\"RepoDigests\":[\"a@" D_INDEX
         "\"]},\"Results\":[{\"Vulnerabilities\":[\"CVE\"]}]}",
         "Results[0].Vulnerabilities[0]", "must be an object"},
        {"{\"ArtifactType\":\"container_image\",\"Metadata\":{\"RepoDigests\":[\"a@" D_INDEX
         "\"],\"RepoTags\":7}}",
         "Metadata.RepoTags", "must be an array"},
        /* Grype */
        {"{\"matches\":[]}", "source", "is required"},
        {"{\"matches\":[],\"source\":{\"type\":\"directory\",\"target\":\"/src\"}}", "source.type",
         "must be image"},
        {"{\"matches\":[],\"source\":{\"type\":\"file\",\"target\":{}}}", "source.type",
         "must be image"},
        {"{\"matches\":[],\"source\":{\"type\":\"image\",\"target\":\"x\"}}", "source.target",
         "must be an object"},
        {"{\"source\":{\"type\":\"image\",\"target\":{" GRYPE_TARGET "}}}", "matches",
         "is required"},
        {"{\"matches\":{},\"source\":{\"type\":\"image\",\"target\":{" GRYPE_TARGET "}}}",
         "matches", "must be an array"},
        {"{\"matches\":[],\"descriptor\":[],\"source\":{\"type\":\"image\",\"target\":"
         "{" GRYPE_TARGET "}}}",
         "descriptor", "must be an object"},
        {"{\"matches\":[{}],\"source\":{\"type\":\"image\",\"target\":{" GRYPE_TARGET "}}}",
         "matches[0].vulnerability", "is required"},
        {"{\"matches\":[{\"vulnerability\":{\"id\":\"C\",\"severity\":\"Low\"}}],\"source\":{"
         "\"type\":\"image\",\"target\":{" GRYPE_TARGET "}}}",
         "matches[0].artifact", "is required"},
        {"{\"matches\":[{\"vulnerability\":{\"id\":\"C\",\"severity\":\"Low\",\"fix\":{"
         "\"versions\":[\"\"]}},\"artifact\":{\"name\":\"p\"}}],\"source\":{"
         "\"type\":\"image\",\"target\":{" GRYPE_TARGET "}}}",
         "matches[0].vulnerability.fix.versions[0]", "must not be empty"},
        {"{\"matches\":[{\"vulnerability\":{\"id\":\"C\",\"severity\":\"Low\",\"fix\":7},"
         "\"artifact\":{\"name\":\"p\"}}],\"source\":{\"type\":\"image\",\"target\":{" GRYPE_TARGET
         "}}}",
         "matches[0].vulnerability.fix", "must be an object"},
        {"{\"matches\":[{\"vulnerability\":{\"id\":\"C\",\"severity\":\"Low\"},"
         "\"artifact\":{\"name\":\"p\",\"locations\":[7]}}],\"source\":{\"type\":\"image\","
         "\"target\":{" GRYPE_TARGET "}}}",
         "matches[0].artifact.locations[0]", "must be an object"},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++)
        expect_error(cases[i].body, cases[i].field, cases[i].text);

    /* what is too short to be a body */
    dm_finding_report r;
    dm_error err;
    assert_int_equal(parse_n(NULL, 0, 0, &r, &err), DM_EINVAL);
    assert_string_equal(err.text, "body is empty");
    assert_zeroed(&r);
}

static void test_trivy_members(void **state)
{
    (void)state;
    static const struct {
        const char *vuln, *field, *text;
    } bad[] = {
        {"{\"PkgName\":\"p\",\"Severity\":\"LOW\"}",
         "Results[0].Vulnerabilities[0].VulnerabilityID", "is required"},
        {"{\"VulnerabilityID\":\"\",\"PkgName\":\"p\",\"Severity\":\"LOW\"}",
         "Results[0].Vulnerabilities[0].VulnerabilityID", "must not be empty"},
        {"{\"VulnerabilityID\":\"C\",\"Severity\":\"LOW\"}",
         "Results[0].Vulnerabilities[0].PkgName", "is required"},
        {"{\"VulnerabilityID\":\"C\",\"PkgName\":7,\"Severity\":\"LOW\"}",
         "Results[0].Vulnerabilities[0].PkgName", "must be a string"},
        {"{\"VulnerabilityID\":\"C\",\"PkgName\":\"p\",\"FixedVersion\":[],\"Severity\":\"LOW\"}",
         "Results[0].Vulnerabilities[0].FixedVersion", "must be a string"},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(bad); i++) {
        char *body = trivy_doc(TRIVY_DIGESTS, bad[i].vuln);
        expect_error(body, bad[i].field, bad[i].text);
        free(body);
    }

    /* limits: exactly at them is taken, one over is refused */
    char id[258], pkg[514];
    dm_test_fill(id, 'c', 256);
    dm_test_fill(pkg, 'p', 512);
    char *v = dm_xmalloc(2048);
    snprintf(v, 2048, "{\"VulnerabilityID\":\"%s\",\"PkgName\":\"%s\",\"Severity\":\"LOW\"}", id,
             pkg);
    char *body = trivy_doc(TRIVY_DIGESTS, v);
    dm_finding_report r;
    expect_ok(body, 0, &r);
    assert_int_equal(strlen(r.findings[0].id), 256);
    assert_int_equal(strlen(r.findings[0].package), 512);
    dm_finding_report_dispose(&r);
    free(body);
    dm_test_fill(id, 'c', 257);
    snprintf(v, 2048, "{\"VulnerabilityID\":\"%s\",\"PkgName\":\"p\",\"Severity\":\"LOW\"}", id);
    body = trivy_doc(TRIVY_DIGESTS, v);
    expect_error(body, "Results[0].Vulnerabilities[0].VulnerabilityID",
                 "must be at most 256 bytes");
    free(body);
    free(v);

    /* results without vulnerabilities (config, secret) and absent Results are fine; empty
     * optional members say nothing; the same (id, package) twice is one finding */
    body = dm_xstrdup("{\"ArtifactType\":\"container_image\",\"Metadata\":{\"RepoDigests\":"
                      "[\"a@" D_INDEX "\"]},\"Results\":[{\"Class\":\"secret\",\"Secrets\":[]},"
                      "{\"Class\":\"lang-pkgs\",\"Vulnerabilities\":null},{\"Vulnerabilities\":["
                      "{\"VulnerabilityID\":\"C\",\"PkgName\":\"p\",\"PkgPath\":\"a/p\","
                      "\"FixedVersion\":\"\",\"Status\":null,\"Severity\":\"LOW\"},"
                      "{\"VulnerabilityID\":\"C\",\"PkgName\":\"p\",\"PkgPath\":\"b/p\","
                      "\"Severity\":\"HIGH\"}]}]}");
    expect_ok(body, 0, &r);
    assert_int_equal(r.nfindings, 1);
    assert_int_equal(r.findings[0].severity, DM_SEV_HIGH);
    assert_string_equal(r.findings[0].path, "b/p");
    assert_null(r.findings[0].fixed);
    assert_null(r.findings[0].status);
    assert_int_equal(r.event_time_ms, 0);
    assert_true(dm_digest_valid(r.event_id, strlen(r.event_id)));
    dm_finding_report_dispose(&r);
    free(body);

    body = dm_xstrdup("{\"ArtifactType\":\"container_image\",\"Metadata\":{\"RepoDigests\":"
                      "[\"a@" D_INDEX "\"],\"RepoTags\":[\"a:1\",\"a\",\"h:5000/a\",\"a:-x\","
                      "\"a:2\",\"a:1\"]}}");
    expect_ok(body, 0, &r);
    assert_int_equal(r.nfindings, 0);
    assert_int_equal(r.ntags, 2); /* names without a tag, or with a bad one, are passed over */
    assert_string_equal(r.tags[0], "1");
    assert_string_equal(r.tags[1], "2");
    dm_finding_report_dispose(&r);
    free(body);
}

static void test_grype_fix_versions(void **state)
{
    (void)state;
    char *body = grype_doc(GRYPE_TARGET, "[{\"vulnerability\":{\"id\":\"G\",\"severity\":\"High\","
                                         "\"fix\":{\"versions\":[\"1.2\",\"2.0.1\"],"
                                         "\"state\":\"fixed\"}},\"artifact\":{\"name\":\"n\","
                                         "\"version\":\"1.0\",\"locations\":[]}},"
                                         "{\"vulnerability\":{\"id\":\"G\",\"severity\":\"Low\","
                                         "\"fix\":{\"versions\":[]}},"
                                         "\"artifact\":{\"name\":\"m\"}}]");
    dm_finding_report r;
    expect_ok(body, 0, &r);
    assert_int_equal(r.nfindings, 2);
    assert_string_equal(r.findings[0].fixed, "1.2, 2.0.1");
    assert_string_equal(r.findings[0].status, "fixed");
    assert_null(r.findings[0].path);
    assert_null(r.findings[1].fixed);
    assert_null(r.findings[1].status);
    dm_finding_report_dispose(&r);
    free(body);
}

/*---- the bound ----------------------------------------------------------------------------*/

/* A Trivy report of @p n low findings and 10 critical ones listed last. */
static char *big_trivy(int n)
{
    size_t cap = (size_t)(n + 10) * 96 + 512;
    char *vulns = dm_xmalloc(cap);
    size_t w = 0;
    for (int i = 0; i < n + 10; i++)
        w += (size_t)snprintf(vulns + w, cap - w,
                              "%s{\"VulnerabilityID\":\"CVE-%d\",\"PkgName\":\"pkg\","
                              "\"Severity\":\"%s\"}",
                              i ? "," : "", i, i < n ? "LOW" : "CRITICAL");
    char *body = trivy_doc(TRIVY_DIGESTS, vulns);
    free(vulns);
    return body;
}

static void test_bound(void **state)
{
    (void)state;
    char *body = big_trivy(2500);
    dm_finding_report r;
    expect_ok(body, 0, &r); /* default 2000 */
    assert_int_equal(r.nfindings, 2000);
    assert_int_equal(r.dropped, 510);
    assert_int_equal(r.counts[DM_SEV_CRITICAL], 10);
    assert_int_equal(r.counts[DM_SEV_LOW], 2500);
    for (int i = 0; i < 10; i++)
        assert_int_equal(r.findings[i].severity, DM_SEV_CRITICAL);
    assert_int_equal(r.findings[10].severity, DM_SEV_LOW);
    dm_finding_report_dispose(&r);

    expect_ok(body, 5, &r); /* a caller's bound */
    assert_int_equal(r.nfindings, 5);
    assert_int_equal(r.dropped, 2505);
    for (int i = 0; i < 5; i++)
        assert_int_equal(r.findings[i].severity, DM_SEV_CRITICAL);
    dm_finding_report_dispose(&r);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trivy_fixture),      cmocka_unit_test(test_grype_fixture),
        cmocka_unit_test(test_fixture_json),       cmocka_unit_test(test_invalid_table),
        cmocka_unit_test(test_trivy_severities),   cmocka_unit_test(test_grype_severities),
        cmocka_unit_test(test_trivy_digests),      cmocka_unit_test(test_grype_digests),
        cmocka_unit_test(test_errors_inline),      cmocka_unit_test(test_trivy_members),
        cmocka_unit_test(test_grype_fix_versions), cmocka_unit_test(test_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
