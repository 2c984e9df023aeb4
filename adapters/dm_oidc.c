/* dm_oidc.c - build identity from the verified claims of a CI platform's OIDC token (pure).
 *
 * Claim names: GitHub's "OIDC token claims" reference, GitLab's "ID token
 * authentication" page, and for Azure Pipelines the claims seen in real tokens
 * (sigstore/fulcio#1803): org_id, prj_id, def_id, rpo_id, rpo_uri, rpo_ver, rpo_ref, run_id.
 */
#include "dm_oidc.h"

#include "dm_json.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Same bounds as the body's "run" (dm_build.c): these strings end up in Redis keys/records. */
#define OIDC_MAX_RUN_ID      256
#define OIDC_MAX_RUN_ATTEMPT 64
#define OIDC_MAX_STRING      2048

#define GITHUB_ISSUER "https://token.actions.githubusercontent.com"
#define GITHUB_SERVER "https://github.com"

/* ------------------------------------------------------------------------------------------ */
/* Issuer detection                                                                             */
/* ------------------------------------------------------------------------------------------ */

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

dm_oidc_provider dm_oidc_detect(const char *issuer)
{
    if (!issuer)
        return DM_OIDC_GITLAB;
    /* github.com, GHEC enterprise-slug issuers (".../<slug>"), GHES ("https://HOST/_services/
     * token") and GHE.com data residency ("https://token.actions.<sub>.ghe.com"). */
    if (strcmp(issuer, GITHUB_ISSUER) == 0 || starts_with(issuer, GITHUB_ISSUER "/") ||
        ends_with(issuer, "/_services/token") ||
        (starts_with(issuer, "https://token.actions.") && ends_with(issuer, ".ghe.com") &&
         !strchr(issuer + strlen("https://"), '/')))
        return DM_OIDC_GITHUB;
    /* Azure DevOps issuer (retiring) and the Microsoft Entra issuer that replaces it. */
    if (starts_with(issuer, "https://vstoken.dev.azure.com/") ||
        starts_with(issuer, "https://login.microsoftonline.com/"))
        return DM_OIDC_AZURE_DEVOPS;
    /* Self-managed GitLab instances have arbitrary URLs. */
    return DM_OIDC_GITLAB;
}

/* ------------------------------------------------------------------------------------------ */
/* Claims                                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef enum {
    CLAIM_TEXT = 0, /* a string */
    CLAIM_ID,       /* a string or a non-negative integer */
    CLAIM_RUN_ID,   /* an id that is part of the run key: no '/' or control characters */
    CLAIM_ATTEMPT,  /* idem, shorter */
} claim_kind;

/* Read claim @p key as a new string into *@p out. Ids may be strings (GitHub, GitLab) or
 * integers (other issuers, older tokens) and are stored as decimal strings. Absent, JSON null
 * and "" leave *out NULL. Returns DM_EINVAL (field "token.<key>") when the value is
 * unusable. */
static int claim_string(const json_t *claims, const char *key, claim_kind kind, char **out,
                        dm_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "token.%s", key);
    *out = NULL;
    const json_t *v = json_object_get(claims, key);
    if (!v || json_is_null(v))
        return DM_OK;
    size_t max = kind == CLAIM_RUN_ID    ? OIDC_MAX_RUN_ID
                 : kind == CLAIM_ATTEMPT ? OIDC_MAX_RUN_ATTEMPT
                                         : OIDC_MAX_STRING;
    unsigned flags = kind == CLAIM_TEXT ? 0 : DM_JSON_INTEGER;
    if (kind == CLAIM_RUN_ID || kind == CLAIM_ATTEMPT)
        flags |= DM_JSON_RUN_KEY;
    return dm_json_copy_value(v, path, max, flags, out, err);
}

/* claim_string for a claim the provider cannot do without. */
static int claim_required(const json_t *claims, const char *key, claim_kind kind, char **out,
                          dm_error *err)
{
    if (claim_string(claims, key, kind, out, err) != DM_OK)
        return DM_EINVAL;
    if (!*out) {
        char path[64];
        snprintf(path, sizeof path, "token.%s", key);
        return dm_error_set(err, path, "is required");
    }
    return DM_OK;
}

/* A malloc'd concatenation of the NULL-terminated list of strings. */
static char *join(const char *first, ...)
{
    va_list ap;
    size_t n = 0;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *))
        n += strlen(s);
    va_end(ap);
    char *out = dm_xmalloc(n + 1), *p = out;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) {
        size_t m = strlen(s);
        memcpy(p, s, m);
        p += m;
    }
    va_end(ap);
    *p = '\0';
    return out;
}

/* @p url without its trailing '/'s, as a new string. */
static char *base_url(const char *url)
{
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    return dm_xstrndup(url, n);
}

/* ------------------------------------------------------------------------------------------ */
/* Providers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* GHES issues tokens as "https://HOST/_services/token": its run links live on https://HOST.
 * Returns NULL (github.com) for any other issuer. */
static const char *ghes_server(const char *issuer, char *buf, size_t size)
{
    static const char suffix[] = "/_services/token";
    size_t n = issuer ? strlen(issuer) : 0, sl = sizeof suffix - 1;
    if (n <= sl + 8 || strcmp(issuer + n - sl, suffix) != 0 || n - sl >= size)
        return NULL;
    memcpy(buf, issuer, n - sl);
    buf[n - sl] = '\0';
    return buf;
}

static int github_identity(const json_t *claims, const char *server_url, dm_build_info *out,
                           dm_error *err)
{
    out->provider = dm_xstrdup("github");
    if (claim_required(claims, "repository", CLAIM_TEXT, &out->repository, err) != DM_OK ||
        claim_required(claims, "run_id", CLAIM_RUN_ID, &out->run_id, err) != DM_OK ||
        claim_string(claims, "run_attempt", CLAIM_ATTEMPT, &out->run_attempt, err) != DM_OK ||
        claim_string(claims, "workflow", CLAIM_TEXT, &out->workflow, err) != DM_OK ||
        claim_string(claims, "workflow_ref", CLAIM_TEXT, &out->workflow_ref, err) != DM_OK ||
        claim_string(claims, "sha", CLAIM_TEXT, &out->commit, err) != DM_OK ||
        claim_string(claims, "ref", CLAIM_TEXT, &out->ref, err) != DM_OK ||
        claim_string(claims, "actor", CLAIM_TEXT, &out->actor, err) != DM_OK)
        return DM_EINVAL;
    if (!out->workflow_ref &&
        claim_string(claims, "job_workflow_ref", CLAIM_TEXT, &out->workflow_ref, err) != DM_OK)
        return DM_EINVAL;
    if (!out->run_attempt)
        out->run_attempt = dm_xstrdup("1");

    char *server = base_url(server_url && *server_url ? server_url : GITHUB_SERVER);
    out->repository_url = join(server, "/", out->repository, (const char *)NULL);
    out->run_url = join(server, "/", out->repository, "/actions/runs/", out->run_id, "/attempts/",
                        out->run_attempt, (const char *)NULL);
    free(server);
    return DM_OK;
}

static int gitlab_identity(const char *issuer, const json_t *claims, dm_build_info *out,
                           dm_error *err)
{
    out->provider = dm_xstrdup("gitlab");
    if (claim_required(claims, "project_path", CLAIM_TEXT, &out->repository, err) != DM_OK ||
        claim_required(claims, "pipeline_id", CLAIM_RUN_ID, &out->run_id, err) != DM_OK ||
        claim_string(claims, "ci_config_ref_uri", CLAIM_TEXT, &out->workflow, err) != DM_OK ||
        claim_string(claims, "sha", CLAIM_TEXT, &out->commit, err) != DM_OK ||
        claim_string(claims, "ref", CLAIM_TEXT, &out->ref, err) != DM_OK ||
        claim_string(claims, "user_login", CLAIM_TEXT, &out->actor, err) != DM_OK)
        return DM_EINVAL;
    /* A pipeline's jobs can be retried, the pipeline itself is not: one attempt. */
    out->run_attempt = dm_xstrdup("1");
    if (issuer) {
        char *base = base_url(issuer); /* iss is the instance URL */
        out->repository_url = join(base, "/", out->repository, (const char *)NULL);
        out->run_url =
            join(base, "/", out->repository, "/-/pipelines/", out->run_id, (const char *)NULL);
        free(base);
    }
    return DM_OK;
}

static void add_verified(dm_build_info *out, const char *field)
{
    out->verified_fields = dm_xrealloc(out->verified_fields,
                                       (out->nverified_fields + 1) * sizeof *out->verified_fields);
    out->verified_fields[out->nverified_fields++] = dm_xstrdup(field);
}

/* The Azure DevOps token proves the organization/project/service connection (iss, sub) and,
 * in current tokens, the pipeline run; whatever it carries replaces the body's value. */
static int azure_identity(const json_t *claims, const dm_build_info *body_run, dm_build_info *out,
                          dm_error *err)
{
    static const struct {
        const char *claim;
        const char *field; /* dm_build_info member, as named in verified_fields */
        claim_kind kind;
    } map[] = {
        /* in dm_build_info member order, so verified_fields has a stable order */
        {"rpo_uri", "repository_url", CLAIM_TEXT},
        {"def_id", "workflow", CLAIM_ID},
        {"run_id", "run_id", CLAIM_RUN_ID},
        {"rpo_ver", "commit", CLAIM_TEXT},
        {"rpo_ref", "ref", CLAIM_TEXT},
    };
    char **dst[] = {&out->repository_url, &out->workflow, &out->run_id, &out->commit, &out->ref};
    _Static_assert(DM_ARRAY_LEN(map) == DM_ARRAY_LEN(dst), "one destination per claim");

    out->provider = dm_xstrdup("azure-devops");
    /* Start from the body's run (display only, unverified); the token overrides it. The
     * body's own provider and verification state never carry over. */
    dm_build_info_copy_run(out, body_run);
    for (size_t i = 0; i < DM_ARRAY_LEN(map); i++) {
        char *v;
        if (claim_string(claims, map[i].claim, map[i].kind, &v, err) != DM_OK)
            return DM_EINVAL;
        if (!v)
            continue;
        free(*dst[i]);
        *dst[i] = v;
        add_verified(out, map[i].field);
    }
    /* A token without run claims (service-connection or Entra form) verifies only who sent
     * it; an empty list would read as "everything verified" (dm_event.h). */
    if (out->nverified_fields == 0)
        add_verified(out, "issuer");
    return DM_OK;
}

static int generic_identity(const json_t *claims, const dm_build_info *body_run, dm_build_info *out,
                            dm_error *err)
{
    out->provider = dm_xstrdup("generic");
    dm_build_info_copy_run(out, body_run);
    free(out->repository);
    out->repository = NULL;
    if (claim_required(claims, "sub", CLAIM_TEXT, &out->repository, err) != DM_OK)
        return DM_EINVAL;
    add_verified(out, "repository");
    return DM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* API                                                                                          */
/* ------------------------------------------------------------------------------------------ */

int dm_oidc_identity(dm_oidc_provider provider, const char *issuer, const json_t *claims,
                     const char *server_url, const dm_build_info *body_run, dm_build_info *out,
                     dm_error *err)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(claims))
        return dm_error_set(err, "token", "claims must be a JSON object");
    if (provider == DM_OIDC_AUTO)
        provider = dm_oidc_detect(issuer);

    char ghes[512];
    int rc;
    switch (provider) {
    case DM_OIDC_GITHUB:
        rc = github_identity(
            claims, server_url && *server_url ? server_url : ghes_server(issuer, ghes, sizeof ghes),
            out, err);
        break;
    case DM_OIDC_GITLAB:
        rc = gitlab_identity(issuer, claims, out, err);
        break;
    case DM_OIDC_AZURE_DEVOPS:
        rc = azure_identity(claims, body_run, out, err);
        break;
    case DM_OIDC_GENERIC:
        rc = generic_identity(claims, body_run, out, err);
        break;
    default:
        rc = dm_error_set(err, "token", "unknown OIDC provider %d", (int)provider);
        break;
    }
    if (rc != DM_OK) {
        dm_build_info_dispose(out);
        return DM_EINVAL;
    }
    /* "1 when the sender gave none" (dm_event.h), also when the body gave no run at all. */
    if (!out->run_attempt)
        out->run_attempt = dm_xstrdup("1");
    out->issuer = issuer ? dm_xstrdup(issuer) : NULL;
    out->verified = true;
    return DM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Claims allowlist                                                                             */
/* ------------------------------------------------------------------------------------------ */

/* One claim value against one allowed value. Types must agree: a string never equals a
 * number or a boolean (GitLab's "ref_protected" is the string "true"). */
static bool value_matches(const json_t *v, const json_t *want)
{
    if (json_is_string(want)) {
        if (!json_is_string(v))
            return false;
        const char *w = json_string_value(want), *s = json_string_value(v);
        size_t wn = json_string_length(want), sn = json_string_length(v);
        if (wn > 0 && w[wn - 1] == '*')
            return sn >= wn - 1 && memcmp(s, w, wn - 1) == 0;
        return sn == wn && memcmp(s, w, wn) == 0;
    }
    if (json_is_boolean(want))
        return json_is_boolean(v) && json_is_true(v) == json_is_true(want);
    if (json_is_number(want)) {
        if (!json_is_number(v))
            return false;
        if (json_is_integer(want) && json_is_integer(v))
            return json_integer_value(v) == json_integer_value(want);
        return json_number_value(v) == json_number_value(want);
    }
    return false; /* null, objects and arrays are never allowed values */
}

static bool any_allowed(const json_t *v, const json_t *allowed)
{
    size_t i;
    const json_t *want;
    json_array_foreach(allowed, i, want)
    {
        if (value_matches(v, want))
            return true;
    }
    return false;
}

bool dm_oidc_allowed(const json_t *claims, const json_t *allow, const char **why,
                     const char **problem)
{
    const char *dummy, *dummy_problem;
    if (!why)
        why = &dummy;
    if (!problem)
        problem = &dummy_problem;
    *why = NULL;
    *problem = NULL;
    if (!json_is_object(allow)) {
        *why = "claims";
        *problem = DM_OIDC_CLAIM_NOT_ALLOWED;
        return false;
    }
    const char *key;
    const json_t *allowed;
    json_object_foreach((json_t *)allow, key, allowed)
    {
        const json_t *v = json_is_object(claims) ? json_object_get(claims, key) : NULL;
        const char *p = NULL;
        if (!v || json_is_null(v))
            p = DM_OIDC_CLAIM_MISSING;
        /* A list claim is not checked element by element: ["evil", "acme"] must not pass an
         * allowlist of "acme", and what a list means (any? all?) differs per claim. */
        else if (json_is_array(v))
            p = DM_OIDC_CLAIM_ARRAY;
        else if (json_is_object(v))
            p = DM_OIDC_CLAIM_OBJECT;
        else if (!json_is_array(allowed) || !any_allowed(v, allowed))
            p = DM_OIDC_CLAIM_NOT_ALLOWED;
        if (p) {
            *why = key;
            *problem = p;
            return false;
        }
    }
    return true;
}
