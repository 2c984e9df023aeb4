/* test_build.c - CI build-event bodies: every fixture, the invalid table, identity, limits. */
#include "dm_common.h"
#include "dm_build.h"
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

/* Parse @p body placed so that its last byte is followed by an unreadable page. */
static int parse_guarded(const char *body, size_t len, const dm_build_info *verified,
                         dm_event_list *out, dm_error *err)
{
    char *map;
    size_t maplen;
    char *p = dm_test_guarded_copy(body, len, &map, &maplen);
    memset(out, 0x5a, sizeof *out); /* the parser must not rely on a zeroed list */
    int rc = dm_build_parse(len ? p : NULL, len, verified, out, err);
    munmap(map, maplen);
    return rc;
}

/* dm_build_parse without a verified identity, as a dm_test_parse_fn (which guards it). */
static int parse_unverified(const char *body, size_t len, dm_event_list *out, dm_error *err)
{
    return dm_build_parse(body, len, NULL, out, err);
}

/* Fixture @p name, a new buffer of *len bytes. */
static char *load_fixture(const char *name, size_t *len)
{
    char rel[256];
    snprintf(rel, sizeof rel, "build/%s", name);
    return dm_test_load_fixture(rel, len);
}

static void parse_fixture(const char *name, const dm_build_info *verified, dm_event_list *out)
{
    size_t len;
    char *body = load_fixture(name, &len);
    dm_error err = {0};
    int rc = parse_guarded(body, len, verified, out, &err);
    free(body);
    if (rc != DM_OK)
        fail_msg("%s: [%s] %s", name, err.field, err.text);
}

static int parse_str(const char *s, const dm_build_info *verified, dm_event_list *out,
                     dm_error *err)
{
    memset(err, 0, sizeof *err);
    return parse_guarded(s, strlen(s), verified, out, err);
}

/* @p body (@p len bytes) is refused with status 400, exactly @p field and @p text, and an
 * empty list. */
static void expect_refused(const char *body, size_t len, const dm_build_info *verified,
                           const char *field, const char *text)
{
    dm_event_list l;
    dm_error err = {0};
    assert_int_equal(parse_guarded(body, len, verified, &l, &err), DM_EINVAL);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.field, field);
    assert_string_equal(err.text, text);
    dm_test_assert_empty(&l);
}

static void expect_error(const char *body, const dm_build_info *verified, const char *field,
                         const char *text)
{
    expect_refused(body, strlen(body), verified, field, text);
}

static void expect_fixture_error(const char *name, const dm_build_info *verified, const char *field,
                                 const char *text)
{
    size_t len;
    char *body = load_fixture(name, &len);
    expect_refused(body, len, verified, field, text);
    free(body);
}

/* Growing string for generated bodies. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (b->p && (size_t)w < b->cap - b->n) {
            b->n += (size_t)w;
            return;
        }
        b->cap = (b->cap + (size_t)w + 1) * 2;
        b->p = dm_xrealloc(b->p, b->cap);
    }
}

/*---- fixtures -----------------------------------------------------------------------------*/

static void test_azure_pipelines(void **state)
{
    (void)state;
    dm_event_list l;
    parse_fixture("event-azure-pipelines.json", NULL, &l);
    assert_null(l.ignored);
    assert_int_equal(l.n, 1);
    dm_event *ev = &l.v[0];
    assert_int_equal(ev->side, DM_SIDE_BUILD);
    assert_int_equal(ev->action, DM_ACTION_BUILD);
    assert_string_equal(ev->source, "azure-devops");
    assert_string_equal(ev->event_id, "azure-devops/20418/1/" D4);
    assert_int_equal(ev->event_time_ms, 1795874600000); /* 2026-11-28T14:03:20Z */
    assert_string_equal(ev->digest, D4);
    assert_int_equal(ev->relation, DM_REL_IMAGE);
    assert_string_equal(ev->index_digest, "");
    assert_string_equal(ev->name, "111122223333.dkr.ecr.eu-west-1.amazonaws.com/payments/worker");
    assert_int_equal(ev->ntags, 1);
    assert_string_equal(ev->tags[0], "2.0.1");
    assert_null(ev->registry);
    assert_null(ev->repository);
    assert_null(ev->media_type);
    dm_test_expect_build_info(&ev->build, &dm_test_azure_run, NULL);
    dm_test_expect_json(
        ev,
        "{\"side\":\"build\",\"action\":\"build\",\"source\":\"azure-devops\","
        "\"event_id\":\"azure-devops/20418/1/" D4 "\",\"t\":1795874600000,\"digest\":\"" D4 "\","
        "\"relation\":\"image\","
        "\"name\":\"111122223333.dkr.ecr.eu-west-1.amazonaws.com/payments/worker\","
        "\"tags\":[\"2.0.1\"],\"build\":{\"provider\":\"azure-devops\","
        "\"repository\":\"payments/worker\","
        "\"repository_url\":\"https://dev.azure.com/contoso/payments/_git/worker\","
        "\"workflow\":\"worker-ci\",\"run_id\":\"20418\",\"run_attempt\":\"1\","
        "\"run_url\":\"https://dev.azure.com/contoso/payments/_build/results?buildId=20418\","
        "\"commit\":\"a1b2c3d4e5f60718293a4b5c6d7e8f9012345678\",\"ref\":\"refs/heads/main\","
        "\"actor\":\"build-service\",\"verified\":false}}");
    dm_event_list_dispose(&l);
}

static void check_multiarch_event(const dm_event *ev, const char *digest, dm_relation rel,
                                  const char *index)
{
    assert_int_equal(ev->side, DM_SIDE_BUILD);
    assert_int_equal(ev->action, DM_ACTION_BUILD);
    assert_string_equal(ev->source, "github");
    assert_string_equal(ev->digest, digest);
    char want_id[160];
    snprintf(want_id, sizeof want_id, "github/12094877312/1/%s", digest);
    assert_string_equal(ev->event_id, want_id);
    assert_int_equal(ev->event_time_ms, 1795874534000); /* 2026-11-28T14:02:14Z */
    assert_int_equal(ev->relation, rel);
    assert_string_equal(ev->index_digest, index);
    assert_string_equal(ev->name, "contoso.azurecr.io/team/api");
    dm_test_expect_build_info(&ev->build, &dm_test_github_identity, NULL);
    assert_ptr_not_equal(ev->build.issuer, dm_test_github_identity.issuer); /* a copy */
}

static void test_multiarch_verified(void **state)
{
    (void)state;
    dm_event_list l;
    parse_fixture("event-multiarch.json", &dm_test_github_identity, &l);
    assert_int_equal(l.n, 3);
    check_multiarch_event(&l.v[0], D1, DM_REL_IMAGE, "");
    assert_int_equal(l.v[0].ntags, 2);
    assert_string_equal(l.v[0].tags[0], "1.4.0");
    assert_string_equal(l.v[0].tags[1], "latest");
    check_multiarch_event(&l.v[1], D2, DM_REL_PLATFORM_MANIFEST, D1);
    check_multiarch_event(&l.v[2], D3, DM_REL_PLATFORM_MANIFEST, D1);
    assert_int_equal(l.v[1].ntags, 0);
    assert_null(l.v[1].tags);
    assert_int_equal(l.v[2].ntags, 0);
    dm_test_expect_json(
        &l.v[1], "{\"side\":\"build\",\"action\":\"build\",\"source\":\"github\","
                 "\"event_id\":\"github/12094877312/1/" D2 "\",\"t\":1795874534000,"
                 "\"digest\":\"" D2 "\",\"relation\":\"platform-manifest\",\"index\":\"" D1 "\","
                 "\"name\":\"contoso.azurecr.io/team/api\",\"tags\":[],"
                 "\"build\":{\"provider\":\"github\",\"repository\":\"acme/api\","
                 "\"repository_url\":\"https://github.com/acme/api\",\"workflow\":\"release\","
                 "\"workflow_ref\":\"acme/api/.github/workflows/release.yml@refs/heads/main\","
                 "\"run_id\":\"12094877312\",\"run_attempt\":\"1\","
                 "\"run_url\":\"https://github.com/acme/api/actions/runs/12094877312/attempts/1\","
                 "\"commit\":\"3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d\","
                 "\"ref\":\"refs/heads/main\",\"actor\":\"mona\","
                 "\"issuer\":\"https://token.actions.githubusercontent.com\",\"verified\":true}}");
    dm_event_list_dispose(&l);
}

static void test_multiarch_unverified_needs_run(void **state)
{
    (void)state;
    expect_fixture_error("event-multiarch.json", NULL, "run", "is required");
}

static void test_verified_overrides_run(void **state)
{
    (void)state;
    dm_event_list l;
    parse_fixture("event-azure-pipelines.json", &dm_test_github_identity, &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].source, "github");
    assert_string_equal(l.v[0].event_id, "github/12094877312/1/" D4);
    assert_string_equal(l.v[0].build.repository, "acme/api"); /* not payments/worker */
    assert_string_equal(l.v[0].build.actor, "mona");
    assert_true(l.v[0].build.verified);
    dm_event_list_dispose(&l);

    /* "run" is not even looked at */
    dm_error err;
    assert_int_equal(parse_str("{\"images\":[{\"digest\":\"" D1 "\"}],\"run\":17}",
                               &dm_test_github_identity, &l, &err),
                     DM_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.v[0].event_time_ms, 0);
    dm_event_list_dispose(&l);

    /* "verified" stays as given, and a sparse identity (no attempt) gets attempt 1 */
    dm_build_info sparse = {.provider = "gitlab", .run_id = "9", .verified = false};
    assert_int_equal(parse_str("{\"images\":[{\"digest\":\"" D1 "\"}]}", &sparse, &l, &err), DM_OK);
    assert_string_equal(l.v[0].source, "gitlab");
    assert_string_equal(l.v[0].event_id, "gitlab/9/1/" D1);
    assert_string_equal(l.v[0].build.run_attempt, "1");
    assert_false(l.v[0].build.verified);
    dm_event_list_dispose(&l);

    /* an identity without a run id (a token that does not name its run, and no body "run")
     * is refused with the field, never turned into an event the join script cannot key */
    dm_build_info no_run = {
        .provider = "generic", .repository = "sc://org/project/conn", .verified = true};
    memset(&err, 0, sizeof err);
    assert_int_equal(parse_str("{\"images\":[{\"digest\":\"" D1 "\"}]}", &no_run, &l, &err),
                     DM_EINVAL);
    assert_int_equal(l.n, 0);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.field, "run.run_id");
    assert_non_null(strstr(err.text, "is required"));
    dm_build_info no_provider = {.run_id = "1", .verified = true};
    assert_int_equal(parse_str("{\"images\":[{\"digest\":\"" D1 "\"}]}", &no_provider, &l, &err),
                     DM_EINVAL);
    assert_string_equal(err.field, "run.provider");

    /* a provider longer than source[] is cut, never overflowing */
    dm_build_info longp = {.provider = "a-very-long-provider-name", .run_id = "1"};
    assert_int_equal(parse_str("{\"images\":[{\"digest\":\"" D1 "\"}]}", &longp, &l, &err), DM_OK);
    assert_string_equal(l.v[0].source, "a-very-long-pro");
    assert_string_equal(l.v[0].build.provider, "a-very-long-provider-name");
    dm_event_list_dispose(&l);
}

static void test_gitlab_integer_run(void **state)
{
    (void)state;
    dm_event_list l;
    parse_fixture("event-gitlab-integer-run.json", NULL, &l);
    assert_int_equal(l.n, 1);
    dm_event *ev = &l.v[0];
    assert_string_equal(ev->source, "gitlab");
    assert_string_equal(ev->event_id, "gitlab/4711/1/" D2);
    assert_int_equal(ev->event_time_ms, 1795867800250); /* 14:10:00.250+02:00 */
    assert_string_equal(ev->name, "registry.gitlab.example/group/app");
    assert_int_equal(ev->ntags, 2); /* "v7" named twice */
    assert_string_equal(ev->tags[0], "v7");
    assert_string_equal(ev->tags[1], "stable");
    /* run_url null and actor "" are absent; the attempt defaults to "1" */
    static const dm_build_info want = {
        .provider = "gitlab",
        .repository = "group/app",
        .run_id = "4711",
        .run_attempt = "1",
        .commit = "0123456789abcdef0123456789abcdef01234567",
        .ref = "refs/tags/v7",
    };
    dm_test_expect_build_info(&ev->build, &want, NULL);
    dm_event_list_dispose(&l);
}

static void test_generic_minimal(void **state)
{
    (void)state;
    dm_event_list l;
    parse_fixture("event-generic-minimal.json", NULL, &l);
    assert_int_equal(l.n, 1);
    dm_test_expect_json(&l.v[0],
                        "{\"side\":\"build\",\"action\":\"build\",\"source\":\"generic\","
                        "\"event_id\":\"generic/nightly-2026-11-28/3/" D3 "\",\"t\":0,"
                        "\"digest\":\"" D3 "\",\"relation\":\"image\",\"tags\":[],"
                        "\"build\":{\"provider\":\"generic\",\"run_id\":\"nightly-2026-11-28\","
                        "\"run_attempt\":\"3\",\"verified\":false}}");
    assert_null(l.v[0].name);
    assert_int_equal(l.v[0].ntags, 0);
    dm_event_list_dispose(&l);
}

static void test_duplicates(void **state)
{
    (void)state;
    dm_event_list l;
    parse_fixture("event-duplicates.json", NULL, &l);
    /* D1 image, D2 and D3 under it (D2 and D1 repeated there are skipped), the second image
     * D2 already emitted so only its new manifest D4, the third image D1 again: nothing. */
    assert_int_equal(l.n, 4);
    assert_string_equal(l.v[0].digest, D1);
    assert_int_equal(l.v[0].relation, DM_REL_IMAGE);
    assert_int_equal(l.v[0].ntags, 1);
    assert_string_equal(l.v[0].tags[0], "1.4.0");
    assert_string_equal(l.v[1].digest, D2);
    assert_int_equal(l.v[1].relation, DM_REL_PLATFORM_MANIFEST);
    assert_string_equal(l.v[1].index_digest, D1);
    assert_string_equal(l.v[2].digest, D3);
    assert_string_equal(l.v[2].index_digest, D1);
    assert_string_equal(l.v[3].digest, D4);
    assert_int_equal(l.v[3].relation, DM_REL_PLATFORM_MANIFEST);
    assert_string_equal(l.v[3].index_digest, D2);
    assert_string_equal(l.v[3].name, "contoso.azurecr.io/team/api-arm");
    assert_int_equal(l.v[3].ntags, 0);
    for (size_t i = 0; i < l.n; i++) {
        assert_string_equal(l.v[i].source, "github");
        assert_string_equal(l.v[i].build.run_attempt, "2");
        /* the body cannot claim to be verified */
        assert_false(l.v[i].build.verified);
        assert_null(l.v[i].build.issuer);
        assert_int_equal(l.v[i].event_time_ms, 1795874534000);
    }
    assert_string_equal(l.v[3].event_id, "github/12094877312/2/" D4);
    dm_event_list_dispose(&l);
}

static void test_claims_file_is_not_a_body(void **state)
{
    (void)state;
    expect_fixture_error("github-oidc-claims.json", &dm_test_github_identity, "images",
                         "is required");
}

/*---- invalid table ------------------------------------------------------------------------*/

/* tests/fixtures/build/invalid/expected.tsv names every *.json there with its exact error
 * (parsed without a verified identity). */
static void test_invalid_table(void **state)
{
    (void)state;
    dm_test_run_invalid_table("build", parse_unverified, 40);
}

/*---- run identity -------------------------------------------------------------------------*/

#define IMG "{\"images\":[{\"digest\":\"" D1 "\"}],"

static void expect_run(const char *run, const char *source, const char *run_id, const char *attempt)
{
    char body[1024];
    snprintf(body, sizeof body, IMG "\"run\":%s}", run);
    dm_event_list l;
    dm_error err;
    if (parse_str(body, NULL, &l, &err) != DM_OK)
        fail_msg("%s: [%s] %s", run, err.field, err.text);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].source, source);
    assert_string_equal(l.v[0].build.provider, source);
    assert_string_equal(l.v[0].build.run_id, run_id);
    assert_string_equal(l.v[0].build.run_attempt, attempt);
    char want[256];
    snprintf(want, sizeof want, "%s/%s/%s/%s", source, run_id, attempt, D1);
    assert_string_equal(l.v[0].event_id, want);
    dm_event_list_dispose(&l);
}

static void test_run_identity(void **state)
{
    (void)state;
    expect_run("{\"provider\":\"github\",\"run_id\":\"1\"}", "github", "1", "1");
    expect_run("{\"provider\":\"azure-devops\",\"run_id\":0}", "azure-devops", "0", "1");
    expect_run("{\"provider\":\"gitlab\",\"run_id\":9007199254740993,\"run_attempt\":2}", "gitlab",
               "9007199254740993", "2");
    expect_run("{\"provider\":\"generic\",\"run_id\":\"x\",\"run_attempt\":\"\"}", "generic", "x",
               "1");
    expect_run("{\"provider\":\"generic\",\"run_id\":\"x\",\"run_attempt\":null}", "generic", "x",
               "1");
    expect_run("{\"provider\":\"generic\",\"run_id\":\"x\",\"run_attempt\":0}", "generic", "x",
               "0");

    /* the body cannot make itself verified or name an issuer */
    dm_event_list l;
    dm_error err;
    assert_int_equal(parse_str(IMG "\"run\":{\"provider\":\"github\",\"run_id\":\"1\","
                                   "\"verified\":true,\"issuer\":\"https://x\"}}",
                               NULL, &l, &err),
                     DM_OK);
    assert_false(l.v[0].build.verified);
    assert_null(l.v[0].build.issuer);
    dm_event_list_dispose(&l);

    expect_error(IMG "\"run\":null}", NULL, "run", "is required");
    expect_error(IMG "\"run\":{\"provider\":null,\"run_id\":\"1\"}}", NULL, "run.provider",
                 "is required");
    expect_error(IMG "\"run\":{\"provider\":\"github\",\"run_id\":\"1\",\"workflow\":{}}}", NULL,
                 "run.workflow", "must be a string");
    expect_error(IMG "\"run\":{\"provider\":\"github\",\"run_id\":\"1\",\"workflow_ref\":1}}", NULL,
                 "run.workflow_ref", "must be a string");
    expect_error(IMG "\"run\":{\"provider\":\"github\",\"run_id\":\"1\",\"run_url\":true}}", NULL,
                 "run.run_url", "must be a string");
    expect_error(IMG "\"run\":{\"provider\":\"github\",\"run_id\":\"1\",\"repository\":[]}}", NULL,
                 "run.repository", "must be a string");
    expect_error(IMG "\"run\":{\"provider\":\"github\",\"run_id\":1e3}}", NULL, "run.run_id",
                 "must be a string or a non-negative integer");
    expect_error(IMG "\"run\":{\"provider\":\"github \",\"run_id\":\"1\"}}", NULL, "run.provider",
                 "must be one of github, azure-devops, gitlab, generic");
}

/*---- limits and structure ----------------------------------------------------------------*/

static void test_limits_accepted(void **state)
{
    (void)state;
    sbuf b = {0};
    /* 64 images x (1 + 128 manifests), all distinct: the largest body, 8256 events */
    sb_add(&b, "{\"images\":[");
    unsigned k = 0;
    for (int i = 0; i < DM_BUILD_MAX_IMAGES; i++) {
        sb_add(&b, "%s{\"digest\":\"sha256:%064x\",\"manifests\":[", i ? "," : "", k++);
        for (int m = 0; m < DM_BUILD_MAX_MANIFESTS; m++)
            sb_add(&b, "%s\"sha256:%064x\"", m ? "," : "", k++);
        sb_add(&b, "]}");
    }
    sb_add(&b, "],\"run\":{\"provider\":\"generic\",\"run_id\":\"big\"}}");
    dm_event_list l;
    dm_error err;
    assert_int_equal(parse_str(b.p, NULL, &l, &err), DM_OK);
    assert_int_equal(l.n, DM_BUILD_MAX_IMAGES * (1 + DM_BUILD_MAX_MANIFESTS));
    for (size_t i = 0; i < l.n; i++) {
        char want[DM_DIGEST_BUFLEN];
        snprintf(want, sizeof want, "sha256:%064zx", i);
        assert_string_equal(l.v[i].digest, want);
        dm_relation want_rel =
            i % (1 + DM_BUILD_MAX_MANIFESTS) ? DM_REL_PLATFORM_MANIFEST : DM_REL_IMAGE;
        assert_int_equal(l.v[i].relation, want_rel);
    }
    assert_string_equal(l.v[1].index_digest, l.v[0].digest);
    dm_event_list_dispose(&l);
    free(b.p);

    /* 64 tags of 128 bytes, a 512-byte name, 2048-byte run strings */
    b = (sbuf){0};
    char tag[129], name[513], big[2049];
    dm_test_fill(name, 'n', 512);
    dm_test_fill(big, 'c', 2048);
    sb_add(&b, "{\"images\":[{\"digest\":\"" D1 "\",\"name\":\"%s\",\"tags\":[", name);
    for (int i = 0; i < DM_BUILD_MAX_TAGS; i++) {
        snprintf(tag, sizeof tag, "%03d", i); /* distinct */
        memset(tag + 3, 'x', 125);
        tag[128] = '\0';
        sb_add(&b, "%s\"%s\"", i ? "," : "", tag);
    }
    sb_add(&b, "]}],\"run\":{\"provider\":\"github\",\"run_id\":\"1\",\"commit\":\"%s\"}}", big);
    assert_int_equal(parse_str(b.p, NULL, &l, &err), DM_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.v[0].ntags, DM_BUILD_MAX_TAGS);
    assert_int_equal(strlen(l.v[0].tags[63]), 128);
    assert_int_equal(strlen(l.v[0].name), 512);
    assert_int_equal(strlen(l.v[0].build.commit), 2048);
    dm_event_list_dispose(&l);
    free(b.p);
}

static void test_error_after_events_leaves_out_empty(void **state)
{
    (void)state;
    /* the first image's events are already built when the second one fails */
    expect_error("{\"images\":[{\"digest\":\"" D1 "\",\"tags\":[\"a\"],\"manifests\":[\"" D2 "\"]},"
                 "{\"digest\":\"" D3 "\",\"manifests\":[\"" D4 "\",\"sha256:\"]}],"
                 "\"run\":{\"provider\":\"github\",\"run_id\":\"1\"}}",
                 NULL, "images[1].manifests[1]",
                 "must be sha256: followed by 64 lowercase hex digits");
    expect_error("{\"images\":[{\"digest\":\"" D1 "\"},{\"digest\":\"" D2 "\",\"name\":\"\"}]}",
                 &dm_test_github_identity, "images[1].name", "must not be empty");
}

static void test_errors_inline(void **state)
{
    (void)state;
    expect_error("{\"images\":[]}", &dm_test_github_identity, "images", "must not be empty");
    expect_error("{\"images\":[null]}", &dm_test_github_identity, "images[0]", "must be an object");
    expect_error("{\"images\":[{}]}", &dm_test_github_identity, "images[0].digest", "is required");
    expect_error("{\"images\":[{\"digest\":\"" D1 "\",\"tags\":null,\"manifests\":null,"
                 "\"name\":null}],\"built_at\":\"2026-11-28T14:02:14\"}",
                 &dm_test_github_identity, "built_at", "must be an RFC 3339 timestamp");
    expect_error("{\"images\":[{\"digest\":\"" D1 "\",\"tags\":[\"a\",null]}]}",
                 &dm_test_github_identity, "images[0].tags[1]", "must be a string");
    expect_error("[]", NULL, "", "must be a JSON object");
    expect_error("{\"images\":[{\"digest\":\"" D1 "\"}]", NULL, "",
                 "invalid JSON at line 1 column 96: '}' expected near end of file");

    dm_event_list l;
    dm_error err = {0};
    memset(&l, 0x5a, sizeof l);
    assert_int_equal(dm_build_parse(NULL, 0, &dm_test_github_identity, &l, &err), DM_EINVAL);
    assert_string_equal(err.text, "body is empty");
    dm_test_assert_empty(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_azure_pipelines),
        cmocka_unit_test(test_multiarch_verified),
        cmocka_unit_test(test_multiarch_unverified_needs_run),
        cmocka_unit_test(test_verified_overrides_run),
        cmocka_unit_test(test_gitlab_integer_run),
        cmocka_unit_test(test_generic_minimal),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_claims_file_is_not_a_body),
        cmocka_unit_test(test_invalid_table),
        cmocka_unit_test(test_run_identity),
        cmocka_unit_test(test_limits_accepted),
        cmocka_unit_test(test_error_after_events_leaves_out_empty),
        cmocka_unit_test(test_errors_inline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
