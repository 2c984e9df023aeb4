/* dm_ecr.c - Amazon ECR "ECR Image Action" EventBridge events (FORMATS.md §2). */
#include "dm_ecr.h"

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

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/*
 * An ECR repository name: lowercase letters, digits, '.', '_', '-', in path components
 * separated by single '/'. The name follows the host in "<host>/<repository>" locations, so an
 * empty component ("a//b", "/a", "a/") would make two spellings of one location.
 */
static int check_repository(const char *s, size_t n, const char *path, dm_error *err)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!is_lower_alnum(c) && c != '.' && c != '_' && c != '-' && c != '/')
            return dm_error_set(err, path, "must contain only a-z, 0-9, '.', '_', '-' and '/'");
        if (c == '/' && (i == 0 || i + 1 == n || s[i + 1] == '/'))
            return dm_error_set(err, path, "must not have an empty path component");
    }
    return DM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* API                                                                                          */
/* ------------------------------------------------------------------------------------------ */

int dm_ecr_parse(const char *body, size_t len, dm_event_list *out, dm_error *err)
{
    dm_event_list list = {0};
    json_t *root = NULL;
    const char *s;
    size_t n;

    memset(out, 0, sizeof *out);
    if (dm_json_load_object(body, len, &root, err) != DM_OK)
        goto fail;

    /* A rule that forwards another service's events here is a misconfiguration the operator
     * should see as an error, not a silent "ignored". */
    if (dm_json_get_string(root, "source", "source", true, SIZE_MAX, &s, &n, err) != DM_OK)
        goto fail;
    if (strcmp(s, "aws.ecr") != 0) {
        dm_error_set(err, "source", "must be \"aws.ecr\"");
        goto fail;
    }
    const char *detail_type;
    if (dm_json_get_string(root, "detail-type", "detail-type", true, SIZE_MAX, &detail_type, &n,
                           err) != DM_OK)
        goto fail;

    /* The envelope is the same for every EventBridge event, so it is checked even for events
     * that are then ignored: a body without it is not from EventBridge. */
    const char *id, *account, *region;
    size_t id_len, account_len, region_len;
    int64_t time_ms;
    if (dm_json_get_string(root, "id", "id", true, ECR_MAX_ID, &id, &id_len, err) != DM_OK)
        goto fail;
    if (dm_json_get_string(root, "time", "time", true, SIZE_MAX, &s, &n, err) != DM_OK)
        goto fail;
    if (dm_time_parse_rfc3339(s, n, &time_ms) != DM_OK) {
        dm_error_set(err, "time", "must be an RFC 3339 timestamp");
        goto fail;
    }
    /* account and region become the registry host: nothing else may slip into it. */
    if (dm_json_get_string(root, "account", "account", true, SIZE_MAX, &account, &account_len,
                           err) != DM_OK)
        goto fail;
    bool digits = account_len == ECR_ACCOUNT_LEN;
    for (size_t i = 0; digits && i < account_len; i++)
        digits = account[i] >= '0' && account[i] <= '9';
    if (!digits) {
        dm_error_set(err, "account", "must be 12 digits");
        goto fail;
    }
    if (dm_json_get_string(root, "region", "region", true, ECR_MAX_REGION, &region, &region_len,
                           err) != DM_OK)
        goto fail;
    /* One or more DNS labels' worth of [a-z0-9-], not starting or ending with '-'. */
    bool region_ok = is_lower_alnum(region[0]) && is_lower_alnum(region[region_len - 1]);
    for (size_t i = 0; region_ok && i < region_len; i++)
        region_ok = is_lower_alnum(region[i]) || region[i] == '-';
    if (!region_ok) {
        dm_error_set(err, "region", "must be a region name (a-z, 0-9 and inner '-')");
        goto fail;
    }

    if (strcmp(detail_type, "ECR Image Action") != 0) {
        out->ignored = "detail-type not handled";
        json_decref(root);
        return DM_OK;
    }

    json_t *detail = json_object_get(root, "detail");
    if (!detail || json_is_null(detail)) {
        dm_error_set(err, "detail", "is required");
        goto fail;
    }
    if (!json_is_object(detail)) {
        dm_error_set(err, "detail", "must be an object");
        goto fail;
    }

    /* A failed push names no digest (nothing was stored): acknowledge it before asking for
     * one. */
    if (dm_json_get_string(detail, "result", "detail.result", true, SIZE_MAX, &s, &n, err) != DM_OK)
        goto fail;
    if (strcmp(s, "SUCCESS") != 0) {
        out->ignored = "failed action";
        json_decref(root);
        return DM_OK;
    }
    if (dm_json_get_string(detail, "action-type", "detail.action-type", true, SIZE_MAX, &s, &n,
                           err) != DM_OK)
        goto fail;
    dm_action action;
    if (strcmp(s, "PUSH") == 0) {
        action = DM_ACTION_PUSH;
    } else if (strcmp(s, "DELETE") == 0) {
        action = DM_ACTION_DELETE;
    } else {
        out->ignored = "action-type not handled";
        json_decref(root);
        return DM_OK;
    }

    dm_event *ev = dm_event_list_add(&list);
    ev->side = DM_SIDE_REGISTRY;
    ev->action = action;
    memcpy(ev->source, "ecr", sizeof "ecr");
    ev->relation = DM_REL_IMAGE;
    ev->event_id = dm_xstrndup(id, id_len);
    ev->event_time_ms = time_ms;

    /* The registry host is not in the event (FORMATS §2): China partitions use their own
     * top-level domain. */
    bool china = region_len > 3 && memcmp(region, "cn-", 3) == 0;
    size_t cap = account_len + region_len + sizeof ".dkr.ecr..amazonaws.com.cn";
    ev->registry = dm_xmalloc(cap);
    snprintf(ev->registry, cap, "%.*s.dkr.ecr.%.*s.amazonaws.com%s", (int)account_len, account,
             (int)region_len, region, china ? ".cn" : "");

    if (dm_json_get_string(detail, "repository-name", "detail.repository-name", true,
                           ECR_MAX_REPOSITORY, &s, &n, err) != DM_OK)
        goto fail;
    if (check_repository(s, n, "detail.repository-name", err) != DM_OK)
        goto fail;
    ev->repository = dm_xstrndup(s, n);

    json_t *digest = json_object_get(detail, "image-digest");
    if (!digest || json_is_null(digest)) {
        dm_error_set(err, "detail.image-digest", "is required");
        goto fail;
    }
    if (!json_is_string(digest) ||
        !dm_digest_valid(json_string_value(digest), json_string_length(digest))) {
        dm_error_set(err, "detail.image-digest",
                     "must be sha256: followed by 64 lowercase hex digits");
        goto fail;
    }
    memcpy(ev->digest, json_string_value(digest), DM_DIGEST_BUFLEN);

    /* Deletes are per manifest; FORMATS §2 warns not to rely on a delete's image-tag, so, as
     * for ACR, a delete carries no tag. Pushes by digest (platform manifests) have none. */
    if (action == DM_ACTION_PUSH) {
        if (dm_json_get_string(detail, "image-tag", "detail.image-tag", false, ECR_MAX_TAG, &s, &n,
                               err) != DM_OK)
            goto fail;
        if (s && n > 0) {
            ev->tags = dm_xmalloc(sizeof *ev->tags);
            ev->tags[0] = dm_xstrndup(s, n);
            ev->ntags = 1;
        }
    }

    if (dm_json_get_string(detail, "manifest-media-type", "detail.manifest-media-type", false,
                           ECR_MAX_MEDIA_TYPE, &s, &n, err) != DM_OK)
        goto fail;
    if (s && n > 0)
        ev->media_type = dm_xstrndup(s, n);

    json_decref(root);
    *out = list;
    return DM_OK;

fail:
    dm_event_list_dispose(&list);
    json_decref(root);
    memset(out, 0, sizeof *out);
    return DM_EINVAL;
}
