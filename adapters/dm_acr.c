/* dm_acr.c - Azure Container Registry webhook bodies (FORMATS.md §1). */
#include "dm_acr.h"

#include "dm_time.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Sender-controlled strings end up in Redis keys and records: bound them. */
#define ACR_MAX_ID         256
#define ACR_MAX_REPOSITORY 256
#define ACR_MAX_HOST       255 /* a DNS name, plus room for ":port" is not needed by ACR */
#define ACR_MAX_TAG        128 /* the distribution spec's tag grammar allows 128 characters */
#define ACR_MAX_MEDIA_TYPE 255

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static int get_object(json_t *obj, const char *key, json_t **out, dm_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return dm_error_set(err, key, "is required");
    if (!json_is_object(v))
        return dm_error_set(err, key, "must be an object");
    *out = v;
    return DM_OK;
}

/* Actions that are acknowledged without an event; the strings outlive every list. */
static const char *ignored_reason(const char *action)
{
    static const char *const known[] = {"ping", "chart_push", "chart_delete", "quarantine"};
    for (size_t i = 0; i < DM_ARRAY_LEN(known); i++) {
        if (strcmp(action, known[i]) == 0)
            return known[i];
    }
    return "unknown action";
}

/* ------------------------------------------------------------------------------------------ */
/* API                                                                                          */
/* ------------------------------------------------------------------------------------------ */

int dm_acr_parse(const char *body, size_t len, dm_event_list *out, dm_error *err)
{
    dm_event_list list = {0};
    json_t *root = NULL;
    const char *s;
    size_t n;

    memset(out, 0, sizeof *out);
    if (dm_json_load_object(body, len, &root, err) != DM_OK)
        goto fail;

    /* The action decides everything else: a ping may carry nothing but its action, and an
     * action we do not know (even "") is acknowledged, as FORMATS §1 asks. */
    if (dm_json_get_string(root, "action", "action", false, SIZE_MAX, &s, &n, err) != DM_OK)
        goto fail;
    if (!s) {
        dm_error_set(err, "action", "is required");
        goto fail;
    }
    dm_action action;
    if (strcmp(s, "push") == 0) {
        action = DM_ACTION_PUSH;
    } else if (strcmp(s, "delete") == 0) {
        action = DM_ACTION_DELETE;
    } else {
        out->ignored = ignored_reason(s);
        json_decref(root);
        return DM_OK;
    }

    dm_event *ev = dm_event_list_add(&list);
    ev->side = DM_SIDE_REGISTRY;
    ev->action = action;
    memcpy(ev->source, "acr", sizeof "acr");
    ev->relation = DM_REL_IMAGE;

    if (dm_json_get_string(root, "id", "id", true, ACR_MAX_ID, &s, &n, err) != DM_OK)
        goto fail;
    ev->event_id = dm_xstrndup(s, n);

    if (dm_json_get_string(root, "timestamp", "timestamp", true, SIZE_MAX, &s, &n, err) != DM_OK)
        goto fail;
    if (dm_time_parse_rfc3339(s, n, &ev->event_time_ms) != DM_OK) {
        dm_error_set(err, "timestamp", "must be an RFC 3339 timestamp");
        goto fail;
    }

    json_t *target;
    if (get_object(root, "target", &target, err) != DM_OK)
        goto fail;

    json_t *digest = json_object_get(target, "digest");
    if (!digest || json_is_null(digest)) {
        dm_error_set(err, "target.digest", "is required");
        goto fail;
    }
    if (!json_is_string(digest) ||
        !dm_digest_valid(json_string_value(digest), json_string_length(digest))) {
        dm_error_set(err, "target.digest", "must be sha256: followed by 64 lowercase hex digits");
        goto fail;
    }
    memcpy(ev->digest, json_string_value(digest), DM_DIGEST_BUFLEN);

    if (dm_json_get_string(target, "repository", "target.repository", true, ACR_MAX_REPOSITORY, &s,
                           &n, err) != DM_OK)
        goto fail;
    ev->repository = dm_xstrndup(s, n);

    /* Deletes are per manifest, never per tag (ACR sends no delete on untag): ignore "tag". */
    if (action == DM_ACTION_PUSH) {
        if (dm_json_get_string(target, "tag", "target.tag", false, ACR_MAX_TAG, &s, &n, err) !=
            DM_OK)
            goto fail;
        /* Child manifests of an index are pushed by digest: no tag, or an empty one. */
        if (s && n > 0) {
            ev->tags = dm_xmalloc(sizeof *ev->tags);
            ev->tags[0] = dm_xstrndup(s, n);
            ev->ntags = 1;
        }
    }

    if (dm_json_get_string(target, "mediaType", "target.mediaType", false, ACR_MAX_MEDIA_TYPE, &s,
                           &n, err) != DM_OK)
        goto fail;
    if (s && n > 0)
        ev->media_type = dm_xstrndup(s, n);

    json_t *request;
    if (get_object(root, "request", &request, err) != DM_OK)
        goto fail;
    if (dm_json_get_string(request, "host", "request.host", true, ACR_MAX_HOST, &s, &n, err) !=
        DM_OK)
        goto fail;
    /* A registry host[:port]: letters, digits, '.', '-', ':' (and [] for IPv6). It is the
     * first part of the location "<host>/<repository>", so a '/' would make locations
     * ambiguous. */
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']')) {
            dm_error_set(err, "request.host", "must be a host name with an optional port");
            goto fail;
        }
    }
    ev->registry = dm_xstrndup(s, n);
    /* Host names are case-insensitive; the join keys on the lowercase form. */
    for (char *p = ev->registry; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }

    json_decref(root);
    *out = list;
    return DM_OK;

fail:
    dm_event_list_dispose(&list);
    json_decref(root);
    memset(out, 0, sizeof *out);
    return DM_EINVAL;
}
