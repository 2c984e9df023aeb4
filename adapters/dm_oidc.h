/* dm_oidc.h - build identity from the verified claims of a CI platform's OIDC token (pure). */
#ifndef DM_ADAPTERS_DM_OIDC_H
#define DM_ADAPTERS_DM_OIDC_H

#include "dm_event.h"

#include <jansson.h>

typedef enum {
    DM_OIDC_AUTO = 0, /**< from the issuer: GitHub, Azure DevOps (vstoken / Entra), else GitLab */
    DM_OIDC_GITHUB,
    DM_OIDC_GITLAB,
    DM_OIDC_AZURE_DEVOPS,
    DM_OIDC_GENERIC, /**< no mapping: repository = sub, run from the body */
} dm_oidc_provider;

/** Provider for an issuer URL when configured as DM_OIDC_AUTO. */
dm_oidc_provider dm_oidc_detect(const char *issuer);

/**
 * Fill @p out (zeroed by the caller; dispose with dm_build_info_dispose) from verified
 * @p claims of a token issued by @p issuer:
 * - GitHub: repository, repository_url (= server_url/repository), workflow, workflow_ref (or
 *   job_workflow_ref), run_id, run_attempt, run_url (= server_url/<repository>/actions/runs/
 *   <run_id>/attempts/<run_attempt>), commit (= sha), ref, actor; provider "github".
 *   @p server_url defaults to "https://HOST" for a GHES issuer
 *   ("https://HOST/_services/token"), else "https://github.com".
 * - GitLab: repository = project_path, repository_url = iss/project_path, run_id =
 *   pipeline_id, run_attempt "1", workflow = ci_config_ref_uri, commit = sha, ref, actor =
 *   user_login, run_url = iss/project_path/-/pipelines/<pipeline_id>; provider "gitlab".
 * - Azure DevOps: whatever the token proves (e.g. rpo_uri → repository_url, run_id, def_id →
 *   workflow, prj_id / org_id), the rest from @p body_run (the body's "run", may be NULL);
 *   provider "azure-devops".
 * verified = true and issuer = @p issuer always. When only some fields come from the token
 * (Azure DevOps), out->verified_fields lists them (the edge's "build.verified_fields").
 * Returns DM_OK, or DM_EINVAL (err filled) when a claim the provider needs (GitHub:
 * repository and run_id; GitLab: project_path and pipeline_id) is missing or not a string.
 */
int dm_oidc_identity(dm_oidc_provider provider, const char *issuer, const json_t *claims,
                     const char *server_url, const dm_build_info *body_run, dm_build_info *out,
                     dm_error *err);

/* Why a claim failed its allowlist (dm_oidc_allowed's *problem): constant strings, safe to
 * send to the token's holder. */
#define DM_OIDC_CLAIM_MISSING     "is missing"
#define DM_OIDC_CLAIM_NOT_ALLOWED "is not an allowed value"
#define DM_OIDC_CLAIM_ARRAY       "is an array: an allowlisted claim must be a single value"
#define DM_OIDC_CLAIM_OBJECT      "is an object: an allowlisted claim must be a single value"

/**
 * Check the "claims" allowlist of an auth entry: @p allow is an object whose every member
 * names a claim and lists the allowed values (strings, booleans or numbers; a string ending
 * in '*' matches any value starting with what precedes it). All members must match, and a
 * claim matches only when it is a single value (a string, a boolean or a number) equal to one
 * of them: a claim that is an array or an object never matches, whatever its elements.
 * Returns true when allowed; otherwise *why (may be NULL) names the first claim that did not
 * match and *problem (may be NULL) says why (one of DM_OIDC_CLAIM_*).
 */
bool dm_oidc_allowed(const json_t *claims, const json_t *allow, const char **why,
                     const char **problem);

#endif
