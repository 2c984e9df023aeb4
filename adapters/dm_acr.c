/* dm_acr.c - Azure Container Registry webhook bodies (docs/registries.md). */
#include "dm_acr.h"

#include "dm_json.h"
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

/*
 * The action decides everything else: a ping may carry nothing but its action, and an action
 * we do not know (even "") is acknowledged, since Azure does not document the ping's body.
 * DM_OK with *ignored set for those.
 */
static int parse_action(json_t *root, dm_action *action, const char **ignored, dm_error *err)
{
    const char *s;
    size_t n;
    if (dm_json_get_string(root, "action", "action", false, SIZE_MAX, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (!s)
        return dm_error_set(err, "action", "is required");
    if (strcmp(s, "push") == 0)
        *action = DM_ACTION_PUSH;
    else if (strcmp(s, "delete") == 0)
        *action = DM_ACTION_DELETE;
    else
        *ignored = ignored_reason(s);
    return DM_OK;
}

/* "target": the manifest's digest, repository, tag and media type. */
static int parse_target(json_t *root, dm_event *ev, dm_error *err)
{
    json_t *target;
    const char *s;
    size_t n;
    if (dm_json_get_object(root, "target", "target", &target, err) != DM_OK ||
        dm_json_get_digest(target, "digest", "target.digest", ev->digest, err) != DM_OK)
        return DM_EINVAL;

    if (dm_json_get_string(target, "repository", "target.repository", true, ACR_MAX_REPOSITORY, &s,
                           &n, err) != DM_OK)
        return DM_EINVAL;
    ev->repository = dm_xstrndup(s, n);

    /* Deletes are per manifest, never per tag (ACR sends no delete on untag): ignore "tag".
     * Child manifests of an index are pushed by digest: no tag, or an empty one. */
    if (ev->action == DM_ACTION_PUSH) {
        if (dm_json_get_string(target, "tag", "target.tag", false, ACR_MAX_TAG, &s, &n, err) !=
            DM_OK)
            return DM_EINVAL;
        if (s && n > 0)
            dm_event_add_tag(ev, s, n);
    }
    return dm_json_copy_string(target, "mediaType", "target.mediaType", ACR_MAX_MEDIA_TYPE,
                               &ev->media_type, err);
}

/* "request.host": the registry. */
static int parse_host(json_t *root, dm_event *ev, dm_error *err)
{
    json_t *request;
    const char *s;
    size_t n;
    if (dm_json_get_object(root, "request", "request", &request, err) != DM_OK ||
        dm_json_get_string(request, "host", "request.host", true, ACR_MAX_HOST, &s, &n, err) !=
            DM_OK)
        return DM_EINVAL;
    /* A registry host[:port]: letters, digits, '.', '-', ':' (and [] for IPv6). It is the
     * first part of the location "<host>/<repository>", so a '/' would make locations
     * ambiguous. */
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']'))
            return dm_error_set(err, "request.host", "must be a host name with an optional port");
    }
    dm_event_set_registry(ev, s, n);
    return DM_OK;
}

/* The one event of a push or delete, in the order the members are checked. */
static int parse_event(json_t *root, dm_action action, dm_event_list *list, dm_error *err)
{
    dm_event *ev = dm_event_list_add_registry(list, "acr", action);
    const char *s;
    size_t n;
    if (dm_json_get_string(root, "id", "id", true, ACR_MAX_ID, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    ev->event_id = dm_xstrndup(s, n);

    if (dm_json_get_string(root, "timestamp", "timestamp", true, SIZE_MAX, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (dm_time_parse_rfc3339(s, n, &ev->event_time_ms) != DM_OK)
        return dm_error_set(err, "timestamp", "must be an RFC 3339 timestamp");

    if (parse_target(root, ev, err) != DM_OK)
        return DM_EINVAL;
    return parse_host(root, ev, err);
}

/* ------------------------------------------------------------------------------------------ */
/* API                                                                                          */
/* ------------------------------------------------------------------------------------------ */

int dm_acr_parse(const char *body, size_t len, dm_event_list *out, dm_error *err)
{
    json_t *root = NULL;
    memset(out, 0, sizeof *out);
    if (dm_json_load_object(body, len, &root, err) != DM_OK)
        return DM_EINVAL;

    dm_action action = DM_ACTION_PUSH;
    int rc = parse_action(root, &action, &out->ignored, err);
    if (rc == DM_OK && !out->ignored)
        rc = parse_event(root, action, out, err);
    json_decref(root);
    if (rc != DM_OK)
        dm_event_list_dispose(out); /* leaves it zeroed */
    return rc;
}
