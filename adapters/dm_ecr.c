/* dm_ecr.c - Amazon ECR "ECR Image Action" EventBridge events (docs/registries.md). */
#include "dm_ecr.h"

#include "dm_json.h"
#include "dm_time.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sender-controlled strings end up in Redis keys and records: bound them. */
#define ECR_MAX_ID         256
#define ECR_MAX_REPOSITORY 256 /* ECR's own limit for repository names */
#define ECR_MAX_TAG        128 /* the distribution spec's tag grammar allows 128 characters */
#define ECR_MAX_MEDIA_TYPE 255
#define ECR_MAX_REGION     32 /* the longest region names today are about 15 characters */
#define ECR_ACCOUNT_LEN    12

/* The EventBridge envelope: the same for every service's events. */
typedef struct ecr_envelope {
    const char *detail_type, *id, *account, *region; /* borrowed from the document */
    size_t id_len, account_len, region_len;
    int64_t time_ms;
} ecr_envelope;

/* ------------------------------------------------------------------------------------------ */
/* Envelope                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* account and region become the registry host: nothing else may slip into it. */
static int parse_account_region(json_t *root, ecr_envelope *env, dm_error *err)
{
    if (dm_json_get_string(root, "account", "account", true, SIZE_MAX, &env->account,
                           &env->account_len, err) != DM_OK)
        return DM_EINVAL;
    bool digits = env->account_len == ECR_ACCOUNT_LEN;
    for (size_t i = 0; digits && i < env->account_len; i++)
        digits = env->account[i] >= '0' && env->account[i] <= '9';
    if (!digits)
        return dm_error_set(err, "account", "must be 12 digits");

    if (dm_json_get_string(root, "region", "region", true, ECR_MAX_REGION, &env->region,
                           &env->region_len, err) != DM_OK)
        return DM_EINVAL;
    /* One or more DNS labels' worth of [a-z0-9-], not starting or ending with '-'. */
    const char *region = env->region;
    size_t n = env->region_len;
    bool region_ok = is_lower_alnum(region[0]) && is_lower_alnum(region[n - 1]);
    for (size_t i = 0; region_ok && i < n; i++)
        region_ok = is_lower_alnum(region[i]) || region[i] == '-';
    if (!region_ok)
        return dm_error_set(err, "region", "must be a region name (a-z, 0-9 and inner '-')");
    return DM_OK;
}

/*
 * The envelope is checked even for events that are then ignored: a body without it is not
 * from EventBridge. A rule that forwards another service's events here is a misconfiguration
 * the operator should see as an error, not a silent "ignored".
 */
static int parse_envelope(json_t *root, ecr_envelope *env, dm_error *err)
{
    const char *s;
    size_t n;
    if (dm_json_get_string(root, "source", "source", true, SIZE_MAX, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (strcmp(s, "aws.ecr") != 0)
        return dm_error_set(err, "source", "must be \"aws.ecr\"");
    if (dm_json_get_string(root, "detail-type", "detail-type", true, SIZE_MAX, &env->detail_type,
                           &n, err) != DM_OK ||
        dm_json_get_string(root, "id", "id", true, ECR_MAX_ID, &env->id, &env->id_len, err) !=
            DM_OK ||
        dm_json_get_string(root, "time", "time", true, SIZE_MAX, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (dm_time_parse_rfc3339(s, n, &env->time_ms) != DM_OK)
        return dm_error_set(err, "time", "must be an RFC 3339 timestamp");
    return parse_account_region(root, env, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Detail                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/*
 * The action of an "ECR Image Action" event, or *ignored set. A failed push names no digest
 * (nothing was stored): it is acknowledged before one is asked for.
 */
static int parse_action(json_t *detail, dm_action *action, const char **ignored, dm_error *err)
{
    const char *s;
    size_t n;
    if (dm_json_get_string(detail, "result", "detail.result", true, SIZE_MAX, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (strcmp(s, "SUCCESS") != 0) {
        *ignored = "failed action";
        return DM_OK;
    }
    if (dm_json_get_string(detail, "action-type", "detail.action-type", true, SIZE_MAX, &s, &n,
                           err) != DM_OK)
        return DM_EINVAL;
    if (strcmp(s, "PUSH") == 0)
        *action = DM_ACTION_PUSH;
    else if (strcmp(s, "DELETE") == 0)
        *action = DM_ACTION_DELETE;
    else
        *ignored = "action-type not handled";
    return DM_OK;
}

/* The registry host is not in the event: "<account>.dkr.ecr.<region>.amazonaws.com", and
 * China partitions use their own top-level domain. */
static char *registry_host(const ecr_envelope *env)
{
    bool china = env->region_len > 3 && memcmp(env->region, "cn-", 3) == 0;
    size_t cap = env->account_len + env->region_len + sizeof ".dkr.ecr..amazonaws.com.cn";
    char *host = dm_xmalloc(cap);
    snprintf(host, cap, "%.*s.dkr.ecr.%.*s.amazonaws.com%s", (int)env->account_len, env->account,
             (int)env->region_len, env->region, china ? ".cn" : "");
    return host;
}

/* The one event of a push or delete: the envelope's id, time and host, the detail's image. */
static int parse_event(const ecr_envelope *env, json_t *detail, dm_action action,
                       dm_event_list *list, dm_error *err)
{
    dm_event *ev = dm_event_list_add_registry(list, "ecr", action);
    ev->event_id = dm_xstrndup(env->id, env->id_len);
    ev->event_time_ms = env->time_ms;
    ev->registry = registry_host(env);

    const char *s;
    size_t n;
    if (dm_json_get_string(detail, "repository-name", "detail.repository-name", true,
                           ECR_MAX_REPOSITORY, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (dm_repository_check(s, n, "detail.repository-name",
                            "must contain only a-z, 0-9, '.', '_', '-' and '/'", err) != DM_OK)
        return DM_EINVAL;
    ev->repository = dm_xstrndup(s, n);

    if (dm_json_get_digest(detail, "image-digest", "detail.image-digest", ev->digest, err) != DM_OK)
        return DM_EINVAL;

    /* Deletes are per manifest, and AWS's own delete example still carries an image-tag that
     * must not be relied on: as for ACR, a delete carries no tag. Pushes by digest (platform
     * manifests) have none. */
    if (action == DM_ACTION_PUSH) {
        if (dm_json_get_string(detail, "image-tag", "detail.image-tag", false, ECR_MAX_TAG, &s, &n,
                               err) != DM_OK)
            return DM_EINVAL;
        if (s && n > 0)
            dm_event_add_tag(ev, s, n);
    }
    return dm_json_copy_string(detail, "manifest-media-type", "detail.manifest-media-type",
                               ECR_MAX_MEDIA_TYPE, &ev->media_type, err);
}

/* Everything after the envelope; *ignored set for what is acknowledged without an event. */
static int parse_detail(json_t *root, const ecr_envelope *env, dm_event_list *out, dm_error *err)
{
    if (strcmp(env->detail_type, "ECR Image Action") != 0) {
        out->ignored = "detail-type not handled";
        return DM_OK;
    }
    json_t *detail;
    if (dm_json_get_object(root, "detail", "detail", &detail, err) != DM_OK)
        return DM_EINVAL;
    dm_action action = DM_ACTION_PUSH;
    if (parse_action(detail, &action, &out->ignored, err) != DM_OK)
        return DM_EINVAL;
    if (out->ignored)
        return DM_OK;
    return parse_event(env, detail, action, out, err);
}

/* ------------------------------------------------------------------------------------------ */
/* API                                                                                          */
/* ------------------------------------------------------------------------------------------ */

int dm_ecr_parse(const char *body, size_t len, dm_event_list *out, dm_error *err)
{
    json_t *root = NULL;
    memset(out, 0, sizeof *out);
    if (dm_json_load_object(body, len, &root, err) != DM_OK)
        return DM_EINVAL;

    ecr_envelope env = {0};
    int rc = parse_envelope(root, &env, err);
    if (rc == DM_OK)
        rc = parse_detail(root, &env, out, err);
    json_decref(root);
    if (rc != DM_OK)
        dm_event_list_dispose(out); /* leaves it zeroed */
    return rc;
}
