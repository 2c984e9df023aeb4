/* test_oidc.c - OIDC claims to build identity: issuer detection, each provider's mapping from
 * its claims fixture, required and malformed claims, body merge, and the claims allowlist. */
#include "dm_common.h"
#include "dm_oidc.h"
#include "dm_test.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define GITHUB_ISS "https://token.actions.githubusercontent.com"
#define GHES_ISS   "https://ghes.example.com/_services/token"
#define GITLAB_ISS "https://gitlab.example.com"
#define AZURE_ISS  "https://vstoken.dev.azure.com/0f3c9a52-6b1e-4d7a-9c2f-5e8d1b7a4c60"
#define ENTRA_ISS  "https://login.microsoftonline.com/6d2f8e14-3a5b-4c7d-8e9f-0a1b2c3d4e5f/v2.0"

/* A body that lies about everything: a token-backed provider must ignore it. */
static const dm_build_info lying_body = {
    .provider = "github",
    .repository = "evil/repo",
    .repository_url = "https://evil.example.com/evil/repo",
    .workflow = "evil",
    .workflow_ref = "evil/repo/.github/workflows/x.yml@refs/heads/main",
    .run_id = "1",
    .run_attempt = "9",
    .run_url = "https://evil.example.com/run",
    .commit = "0000000000000000000000000000000000000000",
    .ref = "refs/heads/evil",
    .actor = "mallory",
    .issuer = "https://evil.example.com",
    .verified = true,
};

/*---- helpers ------------------------------------------------------------------------------*/

static json_t *parse_json(const char *s)
{
    json_error_t jerr;
    /* JSON_ALLOW_NUL: the adapter must cope with "\u0000" even if the verifier lets it in */
    json_t *j = json_loads(s, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!j)
        fail_msg("bad test JSON: %s", jerr.text);
    return j;
}

static void identity_ok(dm_oidc_provider p, const char *iss, const json_t *claims,
                        const char *server_url, const dm_build_info *body, dm_build_info *out)
{
    dm_error err = {0};
    memset(out, 0x5a, sizeof *out); /* dm_oidc_identity must not rely on a zeroed out */
    int rc = dm_oidc_identity(p, iss, claims, server_url, body, out, &err);
    if (rc != DM_OK)
        fail_msg("identity: [%s] %s", err.field, err.text);
}

/* dm_oidc_identity succeeds and gives exactly @p want (verified_fields: @p fields). */
static void expect_identity(dm_oidc_provider p, const char *iss, const json_t *claims,
                            const char *server_url, const dm_build_info *body,
                            const dm_build_info *want, const char *const *fields)
{
    dm_build_info b;
    identity_ok(p, iss, claims, server_url, body, &b);
    dm_test_expect_build_info(&b, want, fields);
    dm_build_info_dispose(&b);
}

static void expect_error(dm_oidc_provider p, const char *iss, const char *claims_json,
                         const char *field, const char *text)
{
    json_t *claims = parse_json(claims_json);
    dm_build_info out;
    dm_error err = {0};
    memset(&out, 0x5a, sizeof out);
    assert_int_equal(dm_oidc_identity(p, iss, claims, NULL, &dm_test_azure_run, &out, &err),
                     DM_EINVAL);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.field, field);
    assert_string_equal(err.text, text);
    /* nothing is left for the caller to free */
    assert_null(out.provider);
    assert_null(out.repository);
    assert_null(out.run_id);
    assert_null(out.verified_fields);
    assert_int_equal(out.nverified_fields, 0);
    dm_build_info_dispose(&out);
    json_decref(claims);
}

/*---- detection ----------------------------------------------------------------------------*/

static void test_detect(void **state)
{
    (void)state;
    assert_int_equal(dm_oidc_detect(GITHUB_ISS), DM_OIDC_GITHUB);
    assert_int_equal(dm_oidc_detect(GITHUB_ISS "/acme-corp"), DM_OIDC_GITHUB); /* GHEC slug */
    assert_int_equal(dm_oidc_detect(GHES_ISS), DM_OIDC_GITHUB);
    assert_int_equal(dm_oidc_detect("https://token.actions.octocorp.ghe.com"), DM_OIDC_GITHUB);
    assert_int_equal(dm_oidc_detect(AZURE_ISS), DM_OIDC_AZURE_DEVOPS);
    assert_int_equal(dm_oidc_detect(ENTRA_ISS), DM_OIDC_AZURE_DEVOPS);
    assert_int_equal(dm_oidc_detect("https://gitlab.com"), DM_OIDC_GITLAB);
    assert_int_equal(dm_oidc_detect(GITLAB_ISS), DM_OIDC_GITLAB);
    assert_int_equal(dm_oidc_detect("https://git.example.org/gitlab"), DM_OIDC_GITLAB);
    /* look-alikes are not GitHub or Azure */
    assert_int_equal(dm_oidc_detect(GITHUB_ISS ".evil.example"), DM_OIDC_GITLAB);
    assert_int_equal(dm_oidc_detect("https://evil.example/_services/token/x"), DM_OIDC_GITLAB);
    assert_int_equal(dm_oidc_detect("https://token.actions.evil.example/x.ghe.com"),
                     DM_OIDC_GITLAB);
    assert_int_equal(dm_oidc_detect("https://vstoken.dev.azure.com.evil.example/x"),
                     DM_OIDC_GITLAB);
    assert_int_equal(dm_oidc_detect("http://vstoken.dev.azure.com/x"), DM_OIDC_GITLAB);
    assert_int_equal(dm_oidc_detect(""), DM_OIDC_GITLAB);
    assert_int_equal(dm_oidc_detect(NULL), DM_OIDC_GITLAB);
}

/*---- GitHub -------------------------------------------------------------------------------*/

static void test_github(void **state)
{
    (void)state;
    json_t *claims = dm_test_load_json("build/github-oidc-claims.json");
    /* detected from the issuer; the body's run is ignored */
    expect_identity(DM_OIDC_AUTO, GITHUB_ISS, claims, NULL, &lying_body, &dm_test_github_identity,
                    NULL);

    /* configured explicitly, server URL given with a trailing '/' */
    expect_identity(DM_OIDC_GITHUB, GITHUB_ISS, claims, "https://github.com/", NULL,
                    &dm_test_github_identity, NULL);
    json_decref(claims);
}

static void test_github_enterprise_slug(void **state)
{
    (void)state;
    json_t *claims = dm_test_load_json("build/github-oidc-claims.json");
    dm_build_info want = dm_test_github_identity;
    want.issuer = GITHUB_ISS "/acme-corp";
    expect_identity(DM_OIDC_AUTO, want.issuer, claims, NULL, NULL, &want, NULL);
    json_decref(claims);
}

static void test_ghes(void **state)
{
    (void)state;
    json_t *claims = dm_test_load_json("oidc/ghes-claims.json");
    static const dm_build_info want = {
        .provider = "github",
        .repository = "platform/builder",
        .repository_url = "https://ghes.example.com/platform/builder",
        .workflow = "release",
        /* no workflow_ref claim: the reusable workflow's ref stands in */
        .workflow_ref = "platform/ci-templates/.github/workflows/build.yml@refs/tags/v3",
        .run_id = "88012",
        .run_attempt = "2",
        .run_url = "https://ghes.example.com/platform/builder/actions/runs/88012/attempts/2",
        .commit = "0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d",
        .ref = "refs/tags/v2.3.0",
        .actor = "ci-bot",
        .issuer = GHES_ISS,
        .verified = true,
    };
    expect_identity(DM_OIDC_AUTO, GHES_ISS, claims, "https://ghes.example.com//", &lying_body,
                    &want, NULL);
    /* Without server_url, a GHES issuer's own host serves the run links, not github.com. */
    expect_identity(DM_OIDC_AUTO, GHES_ISS, claims, NULL, &lying_body, &want, NULL);
    json_decref(claims);
}

static void test_github_numeric_run(void **state)
{
    (void)state;
    json_t *claims = parse_json("{\"repository\":\"acme/api\",\"run_id\":12094877312,"
                                "\"run_attempt\":3}");
    static const dm_build_info want = {
        .provider = "github",
        .repository = "acme/api",
        .repository_url = "https://github.com/acme/api",
        .run_id = "12094877312",
        .run_attempt = "3",
        .run_url = "https://github.com/acme/api/actions/runs/12094877312/attempts/3",
        .issuer = GITHUB_ISS,
        .verified = true,
    };
    dm_build_info b;
    expect_identity(DM_OIDC_GITHUB, GITHUB_ISS, claims, NULL, NULL, &want, NULL);
    json_decref(claims);

    /* empty or null optional claims are absent; run_attempt then defaults to "1" */
    claims = parse_json("{\"repository\":\"acme/api\",\"run_id\":\"7\",\"run_attempt\":\"\","
                        "\"actor\":null,\"sha\":\"\"}");
    identity_ok(DM_OIDC_GITHUB, GITHUB_ISS, claims, NULL, NULL, &b);
    assert_string_equal(b.run_attempt, "1");
    assert_string_equal(b.run_url, "https://github.com/acme/api/actions/runs/7/attempts/1");
    assert_null(b.actor);
    assert_null(b.commit);
    dm_build_info_dispose(&b);
    json_decref(claims);
}

/*---- GitLab -------------------------------------------------------------------------------*/

static const dm_build_info gitlab_want = {
    .provider = "gitlab",
    .repository = "acme/platform/api",
    .repository_url = "https://gitlab.example.com/acme/platform/api",
    .workflow = "gitlab.example.com/acme/platform/api//.gitlab-ci.yml@refs/heads/main",
    .run_id = "1843377",
    .run_attempt = "1",
    .run_url = "https://gitlab.example.com/acme/platform/api/-/pipelines/1843377",
    .commit = "9a8b7c6d5e4f30211a2b3c4d5e6f708192a3b4c5",
    .ref = "main",
    .actor = "jdoe",
    .issuer = GITLAB_ISS,
    .verified = true,
};

static void test_gitlab(void **state)
{
    (void)state;
    json_t *claims = dm_test_load_json("oidc/gitlab-claims.json");
    expect_identity(DM_OIDC_AUTO, GITLAB_ISS, claims, NULL, &lying_body, &gitlab_want, NULL);

    /* an issuer with a trailing '/' still gives clean URLs (issuer kept as configured) */
    dm_build_info want = gitlab_want;
    want.issuer = GITLAB_ISS "/";
    expect_identity(DM_OIDC_GITLAB, GITLAB_ISS "/", claims, NULL, NULL, &want, NULL);
    json_decref(claims);
}

static void test_gitlab_numeric_run(void **state)
{
    (void)state;
    json_t *claims = parse_json("{\"project_path\":\"grp/proj\",\"pipeline_id\":1843377}");
    static const dm_build_info want = {
        .provider = "gitlab",
        .repository = "grp/proj",
        .repository_url = "https://gitlab.com/grp/proj",
        .run_id = "1843377",
        .run_attempt = "1",
        .run_url = "https://gitlab.com/grp/proj/-/pipelines/1843377",
        .issuer = "https://gitlab.com",
        .verified = true,
    };
    expect_identity(DM_OIDC_AUTO, "https://gitlab.com", claims, NULL, NULL, &want, NULL);
    json_decref(claims);
}

/*---- Azure DevOps -------------------------------------------------------------------------*/

static void test_azure_full_token(void **state)
{
    (void)state;
    json_t *claims = dm_test_load_json("oidc/azure-devops-claims.json");
    /* the body claims another run, commit and repository URL: the token wins on those */
    dm_build_info body = dm_test_azure_run;
    body.repository_url = "https://dev.azure.com/contoso/payments/_git/other";
    body.run_id = "1";
    body.commit = "ffffffffffffffffffffffffffffffffffffffff";
    body.ref = "refs/heads/evil";
    static const dm_build_info want = {
        .provider = "azure-devops",
        .repository = "payments/worker",                                        /* body */
        .repository_url = "https://dev.azure.com/contoso/payments/_git/worker", /* rpo_uri */
        .workflow = "12",                                                       /* def_id */
        .run_id = "20418",                                                      /* run_id */
        .run_attempt = "1",                                                     /* body */
        .run_url = "https://dev.azure.com/contoso/payments/_build/results?buildId=20418",
        .commit = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", /* rpo_ver */
        .ref = "refs/heads/main",                             /* rpo_ref */
        .actor = "build-service",                             /* body */
        .issuer = AZURE_ISS,
        .verified = true,
    };
    static const char *const fields[] = {"repository_url", "workflow", "run_id",
                                         "commit",         "ref",      NULL};
    expect_identity(DM_OIDC_AUTO, AZURE_ISS, claims, NULL, &body, &want, fields);

    /* no body at all: only what the token proves, attempt 1 */
    static const dm_build_info want_token_only = {
        .provider = "azure-devops",
        .repository_url = "https://dev.azure.com/contoso/payments/_git/worker",
        .workflow = "12",
        .run_id = "20418",
        .run_attempt = "1",
        .commit = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
        .ref = "refs/heads/main",
        .issuer = AZURE_ISS,
        .verified = true,
    };
    expect_identity(DM_OIDC_AZURE_DEVOPS, AZURE_ISS, claims, NULL, NULL, &want_token_only, fields);
    json_decref(claims);
}

static void test_azure_partial_token(void **state)
{
    (void)state;
    /* numeric run and definition ids; only two fields come from the token */
    json_t *claims = parse_json("{\"sub\":\"p://contoso/payments/worker-ci\","
                                "\"rpo_uri\":\"https://dev.azure.com/contoso/payments/_git/w2\","
                                "\"run_id\":20419,\"rpo_ver\":\"\",\"def_id\":null}");
    dm_build_info want = dm_test_azure_run;
    want.repository_url = "https://dev.azure.com/contoso/payments/_git/w2";
    want.run_id = "20419";
    want.issuer = AZURE_ISS;
    want.verified = true;
    static const char *const fields[] = {"repository_url", "run_id", NULL};
    dm_build_info b;
    expect_identity(DM_OIDC_AUTO, AZURE_ISS, claims, NULL, &dm_test_azure_run, &want, fields);
    json_decref(claims);

    claims = parse_json("{\"def_id\":12}");
    identity_ok(DM_OIDC_AZURE_DEVOPS, AZURE_ISS, claims, NULL, &dm_test_azure_run, &b);
    assert_string_equal(b.workflow, "12");
    assert_int_equal(b.nverified_fields, 1);
    assert_string_equal(b.verified_fields[0], "workflow");
    dm_build_info_dispose(&b);
    json_decref(claims);
}

static void test_azure_service_connection_token(void **state)
{
    (void)state;
    /* sc:// (vstoken) and Entra tokens name the service connection, not the run: the run is
     * the body's, and only the issuer is verified */
    static const char *const fields[] = {"issuer", NULL};
    const char *files[] = {"oidc/azure-devops-sc-claims.json",
                           "oidc/azure-devops-entra-claims.json"};
    char *issuers[] = {AZURE_ISS, ENTRA_ISS};
    for (size_t i = 0; i < 2; i++) {
        json_t *claims = dm_test_load_json(files[i]);
        dm_build_info want = dm_test_azure_run;
        want.issuer = issuers[i];
        want.verified = true;
        expect_identity(DM_OIDC_AUTO, issuers[i], claims, NULL, &dm_test_azure_run, &want, fields);
        json_decref(claims);
    }

    /* the body gave no attempt: "1" */
    json_t *claims = dm_test_load_json("oidc/azure-devops-sc-claims.json");
    dm_build_info body = dm_test_azure_run;
    body.run_attempt = NULL;
    dm_build_info b;
    identity_ok(DM_OIDC_AUTO, AZURE_ISS, claims, NULL, &body, &b);
    assert_string_equal(b.run_attempt, "1");
    assert_string_equal(b.provider, "azure-devops");
    dm_build_info_dispose(&b);
    json_decref(claims);
}

/*---- generic ------------------------------------------------------------------------------*/

static void test_generic(void **state)
{
    (void)state;
    json_t *claims = dm_test_load_json("oidc/generic-claims.json");
    dm_build_info want = dm_test_azure_run;
    want.provider = "generic";
    want.repository = "104857342918374650123"; /* sub */
    want.issuer = "https://accounts.google.com";
    want.verified = true;
    static const char *const fields[] = {"repository", NULL};
    expect_identity(DM_OIDC_GENERIC, "https://accounts.google.com", claims, NULL,
                    &dm_test_azure_run, &want, fields);

    static const dm_build_info want_no_body = {
        .provider = "generic",
        .repository = "104857342918374650123",
        .run_attempt = "1",
        .issuer = "https://accounts.google.com",
        .verified = true,
    };
    expect_identity(DM_OIDC_GENERIC, "https://accounts.google.com", claims, NULL, NULL,
                    &want_no_body, fields);
    json_decref(claims);
}

/*---- errors -------------------------------------------------------------------------------*/

static void test_missing_claims(void **state)
{
    (void)state;
    expect_error(DM_OIDC_GITHUB, GITHUB_ISS, "{\"run_id\":\"1\"}", "token.repository",
                 "is required");
    expect_error(DM_OIDC_GITHUB, GITHUB_ISS, "{\"repository\":\"\",\"run_id\":\"1\"}",
                 "token.repository", "is required");
    expect_error(DM_OIDC_AUTO, GITHUB_ISS, "{\"repository\":\"acme/api\"}", "token.run_id",
                 "is required");
    expect_error(DM_OIDC_AUTO, GITHUB_ISS, "{\"repository\":\"acme/api\",\"run_id\":null}",
                 "token.run_id", "is required");
    expect_error(DM_OIDC_AUTO, GITLAB_ISS, "{\"pipeline_id\":\"5\"}", "token.project_path",
                 "is required");
    expect_error(DM_OIDC_AUTO, GITLAB_ISS, "{\"project_path\":\"g/p\"}", "token.pipeline_id",
                 "is required");
    expect_error(DM_OIDC_GENERIC, "https://accounts.google.com", "{\"email\":\"a@b\"}", "token.sub",
                 "is required");
}

static void test_malformed_claims(void **state)
{
    (void)state;
    expect_error(DM_OIDC_GITHUB, GITHUB_ISS, "{\"repository\":42,\"run_id\":\"1\"}",
                 "token.repository", "must be a string");
    expect_error(DM_OIDC_GITHUB, GITHUB_ISS, "{\"repository\":\"a/b\",\"run_id\":[1]}",
                 "token.run_id", "must be a string or a non-negative integer");
    expect_error(DM_OIDC_GITHUB, GITHUB_ISS, "{\"repository\":\"a/b\",\"run_id\":1.5}",
                 "token.run_id", "must be a string or a non-negative integer");
    expect_error(DM_OIDC_GITHUB, GITHUB_ISS, "{\"repository\":\"a/b\",\"run_id\":-3}",
                 "token.run_id", "must not be negative");
    expect_error(DM_OIDC_GITHUB, GITHUB_ISS, "{\"repository\":\"a/b\",\"run_id\":\"1/2\"}",
                 "token.run_id", "must not contain '/' or control characters");
    expect_error(DM_OIDC_GITHUB, GITHUB_ISS,
                 "{\"repository\":\"a/b\",\"run_id\":\"1\",\"run_attempt\":\"1\\n\"}",
                 "token.run_attempt", "must not contain '/' or control characters");
    expect_error(DM_OIDC_GITHUB, GITHUB_ISS,
                 "{\"repository\":\"a/b\",\"run_id\":\"1\",\"run_attempt\":\"2/\"}",
                 "token.run_attempt", "must not contain '/' or control characters");
    expect_error(DM_OIDC_GITHUB, GITHUB_ISS,
                 "{\"repository\":\"a/b\",\"run_id\":\"1\",\"actor\":true}", "token.actor",
                 "must be a string");
    expect_error(DM_OIDC_GITHUB, GITHUB_ISS, "{\"repository\":\"a\\u0000b\",\"run_id\":\"1\"}",
                 "token.repository", "must not contain NUL characters");
    expect_error(DM_OIDC_GITLAB, GITLAB_ISS, "{\"project_path\":\"g/p\",\"pipeline_id\":\"1/2\"}",
                 "token.pipeline_id", "must not contain '/' or control characters");
    expect_error(DM_OIDC_GITLAB, GITLAB_ISS,
                 "{\"project_path\":\"g/p\",\"pipeline_id\":\"1\\u007f\"}", "token.pipeline_id",
                 "must not contain '/' or control characters");
    expect_error(DM_OIDC_AZURE_DEVOPS, AZURE_ISS, "{\"run_id\":\"20418/1\"}", "token.run_id",
                 "must not contain '/' or control characters");
    expect_error(DM_OIDC_AZURE_DEVOPS, AZURE_ISS, "{\"rpo_uri\":7}", "token.rpo_uri",
                 "must be a string");

    /* length bounds */
    char big[400];
    memset(big, '9', 300);
    big[300] = '\0';
    char json[512];
    snprintf(json, sizeof json, "{\"repository\":\"a/b\",\"run_id\":\"%s\"}", big);
    expect_error(DM_OIDC_GITHUB, GITHUB_ISS, json, "token.run_id", "must be at most 256 bytes");
    big[256] = '\0';
    snprintf(json, sizeof json, "{\"repository\":\"a/b\",\"run_id\":\"%s\"}", big);
    json_t *claims = parse_json(json);
    dm_build_info b;
    identity_ok(DM_OIDC_GITHUB, GITHUB_ISS, claims, NULL, NULL, &b);
    assert_string_equal(b.run_id, big);
    dm_build_info_dispose(&b);
    json_decref(claims);

    /* claims that are not an object */
    claims = json_array();
    dm_error err = {0};
    memset(&b, 0x5a, sizeof b);
    assert_int_equal(dm_oidc_identity(DM_OIDC_GITHUB, GITHUB_ISS, claims, NULL, NULL, &b, &err),
                     DM_EINVAL);
    assert_string_equal(err.field, "token");
    assert_null(b.provider);
    json_decref(claims);
}

/*---- allowlist ----------------------------------------------------------------------------*/

static const char *last_problem;

static bool allowed(const json_t *claims, const char *allow_json, const char **why)
{
    json_t *allow = parse_json(allow_json);
    bool ok = dm_oidc_allowed(claims, allow, why, &last_problem);
    /* why points into allow, which is freed below: copy what the assertions need */
    static char buf[64];
    if (why && *why) {
        snprintf(buf, sizeof buf, "%s", *why);
        *why = buf;
    }
    json_decref(allow);
    return ok;
}

static void test_allowlist(void **state)
{
    (void)state;
    json_t *gh = dm_test_load_json("build/github-oidc-claims.json");
    json_t *gen = dm_test_load_json("oidc/generic-claims.json");
    json_t *gl = dm_test_load_json("oidc/gitlab-claims.json");
    const char *why = "unset";

    /* exact */
    assert_true(allowed(gh, "{\"repository\":[\"acme/api\"]}", &why));
    assert_null(why);
    assert_true(allowed(gh, "{\"repository\":[\"other/x\",\"acme/api\"]}", &why));
    assert_false(allowed(gh, "{\"repository\":[\"acme/ap\"]}", &why));
    assert_string_equal(why, "repository");
    assert_false(allowed(gh, "{\"repository\":[\"acme/api/\"]}", &why));
    assert_false(allowed(gh, "{\"repository\":[\"ACME/api\"]}", &why));

    /* prefix */
    assert_true(allowed(gh, "{\"sub\":[\"repo:acme/*\"]}", &why));
    assert_true(allowed(gh, "{\"sub\":[\"repo:acme/api:ref:refs/heads/main*\"]}", &why));
    assert_true(allowed(gh, "{\"repository\":[\"*\"]}", &why));
    assert_false(allowed(gh, "{\"sub\":[\"repo:acme-evil/*\"]}", &why));
    assert_string_equal(why, "sub");
    assert_false(allowed(gh, "{\"sub\":[\"repo:acme/api:ref:refs/heads/main/*\"]}", &why));

    /* boolean */
    assert_true(allowed(gen, "{\"email_verified\":[true]}", &why));
    assert_false(allowed(gen, "{\"email_verified\":[false]}", &why));
    assert_string_equal(why, "email_verified");
    assert_false(allowed(gen, "{\"email_verified\":[\"true\"]}", &why)); /* types must agree */
    assert_false(allowed(gl, "{\"ref_protected\":[true]}", &why));       /* GitLab: "true" */
    assert_true(allowed(gl, "{\"ref_protected\":[\"true\"]}", &why));

    /* numbers */
    assert_true(allowed(gl, "{\"runner_id\":[42]}", &why));
    assert_true(allowed(gl, "{\"runner_id\":[1,42.0]}", &why));
    assert_false(allowed(gl, "{\"runner_id\":[43]}", &why));
    assert_string_equal(why, "runner_id");
    assert_false(allowed(gl, "{\"runner_id\":[\"42\"]}", &why));
    assert_false(allowed(gh, "{\"repository_id\":[712398456]}", &why)); /* GitHub: string */
    assert_true(allowed(gh, "{\"repository_id\":[\"712398456\"]}", &why));

    /* a claim missing from the token (or null) fails */
    assert_false(allowed(gh, "{\"environment\":[\"production\"]}", &why));
    assert_string_equal(why, "environment");
    assert_false(allowed(gh, "{\"environment\":[\"*\"]}", &why));
    json_t *with_null = parse_json("{\"environment\":null}");
    assert_false(allowed(with_null, "{\"environment\":[\"*\"]}", &why));
    json_decref(with_null);

    /* every member is required; why names the first that fails */
    assert_true(allowed(gh,
                        "{\"repository_owner\":[\"acme\"],\"repository\":[\"acme/*\"],"
                        "\"ref\":[\"refs/heads/main\",\"refs/tags/v*\"]}",
                        &why));
    assert_false(allowed(gh,
                         "{\"repository_owner\":[\"acme\"],\"repository\":[\"acme/*\"],"
                         "\"ref\":[\"refs/tags/v*\"]}",
                         &why));
    assert_string_equal(why, "ref");
    assert_false(allowed(gl, "{\"project_path\":[\"acme/*\"],\"ref_type\":[\"tag\"]}", &why));
    assert_string_equal(why, "ref_type");

    assert_string_equal(last_problem, DM_OIDC_CLAIM_NOT_ALLOWED);
    assert_false(allowed(gh, "{\"environment\":[\"*\"]}", &why));
    assert_string_equal(last_problem, DM_OIDC_CLAIM_MISSING);

    /* a list or object claim never passes, even when an element is allowed: ["evil","acme"]
     * is not "acme" */
    json_t *lists = parse_json("{\"aud\":[\"other\",\"digestmap\"],\"owner\":[\"evil\",\"acme\"],"
                               "\"one\":[\"acme\"],\"obj\":{\"acme\":true}}");
    assert_false(allowed(lists, "{\"aud\":[\"digestmap\"]}", &why));
    assert_string_equal(why, "aud");
    assert_string_equal(last_problem, DM_OIDC_CLAIM_ARRAY);
    assert_false(allowed(lists, "{\"owner\":[\"acme\"]}", &why));
    assert_string_equal(last_problem, DM_OIDC_CLAIM_ARRAY);
    assert_false(allowed(lists, "{\"one\":[\"acme\"]}", &why));
    assert_false(allowed(lists, "{\"owner\":[\"*\"]}", &why));
    assert_false(allowed(lists, "{\"obj\":[\"*\"]}", &why));
    assert_string_equal(why, "obj");
    assert_string_equal(last_problem, DM_OIDC_CLAIM_OBJECT);
    json_decref(lists);

    /* objects, arrays and null are never allowed values; no values allows nothing */
    assert_false(allowed(gh, "{\"repository\":[null]}", &why));
    assert_false(allowed(gh, "{\"repository\":[]}", &why));
    assert_false(allowed(gh, "{\"repository\":\"acme/api\"}", &why)); /* not a list */

    /* an empty allowlist constrains nothing; a non-object allows nothing */
    assert_true(allowed(gh, "{}", &why));
    assert_false(allowed(gh, "[]", &why));
    assert_non_null(why);
    assert_false(dm_oidc_allowed(gh, NULL, &why, NULL));
    assert_non_null(why);
    json_t *allow = parse_json("{\"repository\":[\"acme/api\"]}");
    assert_true(dm_oidc_allowed(gh, allow, NULL, NULL)); /* why is optional */
    assert_false(dm_oidc_allowed(NULL, allow, &why, NULL));
    assert_string_equal(why, "repository");
    json_decref(allow);

    json_decref(gh);
    json_decref(gen);
    json_decref(gl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_github),
        cmocka_unit_test(test_github_enterprise_slug),
        cmocka_unit_test(test_ghes),
        cmocka_unit_test(test_github_numeric_run),
        cmocka_unit_test(test_gitlab),
        cmocka_unit_test(test_gitlab_numeric_run),
        cmocka_unit_test(test_azure_full_token),
        cmocka_unit_test(test_azure_partial_token),
        cmocka_unit_test(test_azure_service_connection_token),
        cmocka_unit_test(test_generic),
        cmocka_unit_test(test_missing_claims),
        cmocka_unit_test(test_malformed_claims),
        cmocka_unit_test(test_allowlist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
