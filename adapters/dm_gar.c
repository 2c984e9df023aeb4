/* dm_gar.c - Google Artifact Registry notifications via Pub/Sub push (docs/registries.md). */
#include "dm_gar.h"

#include "dm_base64.h"
#include "dm_json.h"
#include "dm_time.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Sender-controlled strings end up in Redis keys and records: bound them. */
#define GAR_MAX_ID         256
#define GAR_MAX_DATA       65536                          /* decoded message.data */
#define GAR_MAX_DATA_B64   (((GAR_MAX_DATA + 2) / 3) * 4) /* its padded base64 length */
#define GAR_MAX_REF        1024 /* a whole reference; its parts have their own limits */
#define GAR_MAX_HOST       255
#define GAR_MAX_REPOSITORY 256
#define GAR_MAX_TAG        128 /* the distribution spec's tag grammar allows 128 characters */

#define DIGEST_REF_SHAPE "HOST/REPOSITORY@sha256:HEX"
#define TAG_REF_SHAPE    "HOST/REPOSITORY:TAG"

/* The image a reference names, pointing into the reference. */
typedef struct image_name {
    const char *host, *repo;
    size_t host_len, repo_len;
} image_name;

/* ------------------------------------------------------------------------------------------ */
/* JSON helpers                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/*
 * Pub/Sub writes some members twice, camelCase and snake_case ("messageId", "message_id").
 * Either is enough; when both are present they must agree, or two readers of one message
 * could take different ids.
 */
static int get_twin_string(json_t *obj, const char *camel, const char *camel_path,
                           const char *snake, const char *snake_path, size_t max, const char **s,
                           size_t *n, const char **path, dm_error *err)
{
    const char *a, *b;
    size_t alen, blen;
    if (dm_json_get_string(obj, camel, camel_path, false, max, &a, &alen, err) != DM_OK ||
        dm_json_get_string(obj, snake, snake_path, false, max, &b, &blen, err) != DM_OK)
        return DM_EINVAL;
    if (!a && !b)
        return dm_error_set(err, camel_path, "is required");
    if (a && b && (alen != blen || memcmp(a, b, alen) != 0))
        return dm_error_set(err, snake_path, "must equal %s", camel_path);
    *s = a ? a : b;
    *n = a ? alen : blen;
    *path = a ? camel_path : snake_path;
    if (*n == 0)
        return dm_error_set(err, *path, "must not be empty");
    return DM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* message.data                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* The standard, padded base64 of message.data decoded into a new buffer. */
static int decode_data(const char *s, size_t n, unsigned char **buf, size_t *len, dm_error *err)
{
    if (n > GAR_MAX_DATA_B64)
        return dm_error_set(err, "message.data", "must decode to at most %d bytes", GAR_MAX_DATA);
    if (!dm_base64_decode(s, n, 0, buf, len))
        return dm_error_set(err, "message.data", "must be base64");
    if (*len > GAR_MAX_DATA) {
        free(*buf);
        *buf = NULL;
        *len = 0;
        return dm_error_set(err, "message.data", "must decode to at most %d bytes", GAR_MAX_DATA);
    }
    return DM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* References                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static const char *last_char(const char *s, size_t n, char c)
{
    for (size_t i = n; i > 0; i--) {
        if (s[i - 1] == c)
            return s + i - 1;
    }
    return NULL;
}

/*
 * Split "HOST/REPOSITORY" (the part of a reference before '@' or ':TAG') at its first '/'.
 * The host is a DNS name with an optional port; the repository is lowercase path components
 * ([a-z0-9._-]) separated by single '/', so one image has one spelling.
 */
static int split_name(const char *s, size_t n, const char *path, const char *shape,
                      image_name *name, dm_error *err)
{
    const char *slash = memchr(s, '/', n);
    if (!slash || slash == s || slash + 1 == s + n)
        return dm_error_set(err, path, "must be %s", shape);
    name->host = s;
    name->host_len = (size_t)(slash - s);
    name->repo = slash + 1;
    name->repo_len = n - name->host_len - 1;

    if (name->host_len > GAR_MAX_HOST)
        return dm_error_set(err, path, "must have a host of at most %d bytes", GAR_MAX_HOST);
    for (size_t i = 0; i < name->host_len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':'))
            return dm_error_set(err, path,
                                "must start with a host name (A-Z, a-z, 0-9, '.', "
                                "'-', ':')");
    }

    if (name->repo_len > GAR_MAX_REPOSITORY)
        return dm_error_set(err, path, "must have a repository of at most %d bytes",
                            GAR_MAX_REPOSITORY);
    return dm_repository_check(name->repo, name->repo_len, path,
                               "must have a repository of a-z, 0-9, '.', '_', '-' and '/'", err);
}

/* "HOST/REPOSITORY@sha256:HEX": the digest follows the last '@'. */
static int parse_digest_ref(const char *s, size_t n, image_name *name, char *digest, dm_error *err)
{
    const char *at = last_char(s, n, '@');
    if (!at)
        return dm_error_set(err, "data.digest", "must be " DIGEST_REF_SHAPE);
    size_t dlen = n - (size_t)(at - s) - 1;
    if (!dm_digest_valid(at + 1, dlen))
        return dm_error_set(err, "data.digest",
                            "must end in @sha256: followed by 64 lowercase hex digits");
    size_t nlen = (size_t)(at - s);
    /* "…/image:tag@sha256:…" is a valid pull reference but not what GAR sends: taking
     * "image:tag" as the repository would invent an image. (Anything else odd in the name,
     * such as a second '@', is left to the repository check.) */
    const char *slash = last_char(s, nlen, '/');
    if (slash && memchr(slash, ':', nlen - (size_t)(slash - s)) && !memchr(s, '@', nlen))
        return dm_error_set(err, "data.digest", "must not name a tag before '@'");
    if (split_name(s, nlen, "data.digest", DIGEST_REF_SHAPE, name, err) != DM_OK)
        return DM_EINVAL;
    memcpy(digest, at + 1, DM_DIGEST_LEN);
    digest[DM_DIGEST_LEN] = '\0';
    return DM_OK;
}

static bool is_tag_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           (!first && (c == '.' || c == '-'));
}

/* "HOST/REPOSITORY:TAG": the tag follows the last ':', which must follow the last '/' (a
 * ':' before it belongs to the host's port). */
static int parse_tag_ref(const char *s, size_t n, image_name *name, const char **tag,
                         size_t *tag_len, dm_error *err)
{
    const char *slash = last_char(s, n, '/');
    const char *colon = last_char(s, n, ':');
    if (memchr(s, '@', n) || !slash || !colon || colon < slash)
        return dm_error_set(err, "data.tag", "must be " TAG_REF_SHAPE);
    *tag = colon + 1;
    *tag_len = n - (size_t)(colon - s) - 1;
    bool ok = *tag_len > 0 && *tag_len <= GAR_MAX_TAG;
    for (size_t i = 0; ok && i < *tag_len; i++)
        ok = is_tag_char((*tag)[i], i == 0);
    if (!ok)
        return dm_error_set(err, "data.tag",
                            "must end in a tag of at most %d characters "
                            "([A-Za-z0-9_][A-Za-z0-9_.-]*)",
                            GAR_MAX_TAG);
    return split_name(s, (size_t)(colon - s), "data.tag", TAG_REF_SHAPE, name, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Steps                                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* What the Pub/Sub envelope says: GAR's data has neither id nor time, so Pub/Sub's stand in
 * for them. */
typedef struct gar_message {
    const char *id; /* borrowed from the document */
    size_t id_len;
    int64_t time_ms;
    unsigned char *raw; /* decoded message.data, owned */
    json_t *data;       /* raw parsed, owned */
} gar_message;

static void message_dispose(gar_message *m)
{
    json_decref(m->data);
    free(m->raw);
    memset(m, 0, sizeof *m);
}

/* The envelope's id and time, then message.data decoded and parsed as a JSON object. */
static int parse_message(json_t *root, gar_message *m, dm_error *err)
{
    json_t *message;
    const char *s, *path;
    size_t n;
    if (dm_json_get_object(root, "message", "message", &message, err) != DM_OK ||
        get_twin_string(message, "messageId", "message.messageId", "message_id",
                        "message.message_id", GAR_MAX_ID, &m->id, &m->id_len, &path,
                        err) != DM_OK ||
        get_twin_string(message, "publishTime", "message.publishTime", "publish_time",
                        "message.publish_time", SIZE_MAX, &s, &n, &path, err) != DM_OK)
        return DM_EINVAL;
    if (dm_time_parse_rfc3339(s, n, &m->time_ms) != DM_OK)
        return dm_error_set(err, path, "must be an RFC 3339 timestamp");

    size_t raw_len;
    if (dm_json_get_string(message, "data", "message.data", true, SIZE_MAX, &s, &n, err) != DM_OK ||
        decode_data(s, n, &m->raw, &raw_len, err) != DM_OK)
        return DM_EINVAL;
    if (dm_json_load_object((const char *)m->raw, raw_len, &m->data, err) != DM_OK) {
        /* keep jansson's reason, but say where: the decoded data, not the body */
        if (err)
            snprintf(err->field, sizeof err->field, "%s", "message.data");
        return DM_EINVAL;
    }
    return DM_OK;
}

/* The image the data names: both members are full references, each validated, and when both
 * are given they must name one image. */
typedef struct gar_image {
    image_name dname, tname; /* .host NULL when the member is absent */
    char digest[DM_DIGEST_BUFLEN];
    const char *tag;
    size_t tag_len;
} gar_image;

static int parse_refs(json_t *data, gar_image *img, dm_error *err)
{
    const char *s;
    size_t n;
    if (dm_json_get_string(data, "digest", "data.digest", false, GAR_MAX_REF, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (s && parse_digest_ref(s, n, &img->dname, img->digest, err) != DM_OK)
        return DM_EINVAL;
    if (dm_json_get_string(data, "tag", "data.tag", false, GAR_MAX_REF, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (s && parse_tag_ref(s, n, &img->tname, &img->tag, &img->tag_len, err) != DM_OK)
        return DM_EINVAL;
    const image_name *d = &img->dname, *t = &img->tname;
    if (d->host && t->host &&
        (d->host_len != t->host_len || d->repo_len != t->repo_len ||
         strncasecmp(d->host, t->host, d->host_len) != 0 ||
         memcmp(d->repo, t->repo, d->repo_len) != 0))
        return dm_error_set(err, "data.tag", "must name the same image as data.digest");
    return DM_OK;
}

/* The decoded data: its action and image, then the event; *ignored set for what is
 * acknowledged without one. */
static int parse_data(const gar_message *m, dm_event_list *out, dm_error *err)
{
    const char *s;
    size_t n;
    if (dm_json_get_string(m->data, "action", "data.action", true, SIZE_MAX, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    dm_action action;
    if (strcmp(s, "INSERT") == 0) {
        action = DM_ACTION_PUSH;
    } else if (strcmp(s, "DELETE") == 0) {
        action = DM_ACTION_DELETE;
    } else {
        out->ignored = "unknown action";
        return DM_OK;
    }

    gar_image img = {0};
    if (parse_refs(m->data, &img, err) != DM_OK)
        return DM_EINVAL;
    if (!img.dname.host) {
        /* A removed tag names no manifest: only our own (repo, tag) state could say which. */
        if (action == DM_ACTION_DELETE && img.tname.host) {
            out->ignored = "tag-only delete";
            return DM_OK;
        }
        return dm_error_set(err, "data.digest", "is required");
    }

    dm_event *ev = dm_event_list_add_registry(out, "gar", action);
    ev->event_id = dm_xstrndup(m->id, m->id_len);
    ev->event_time_ms = m->time_ms;
    memcpy(ev->digest, img.digest, DM_DIGEST_BUFLEN);
    dm_event_set_registry(ev, img.dname.host, img.dname.host_len);
    ev->repository = dm_xstrndup(img.dname.repo, img.dname.repo_len);
    /* A delete removes the manifest with all its tags: as for ACR, it carries none. */
    if (action == DM_ACTION_PUSH && img.tag)
        dm_event_add_tag(ev, img.tag, img.tag_len);
    return DM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* API                                                                                          */
/* ------------------------------------------------------------------------------------------ */

int dm_gar_parse(const char *body, size_t len, dm_event_list *out, dm_error *err)
{
    json_t *root = NULL;
    memset(out, 0, sizeof *out);
    if (dm_json_load_object(body, len, &root, err) != DM_OK)
        return DM_EINVAL;

    gar_message m = {0};
    int rc = parse_message(root, &m, err);
    if (rc == DM_OK)
        rc = parse_data(&m, out, err);
    message_dispose(&m);
    json_decref(root);
    if (rc != DM_OK)
        dm_event_list_dispose(out); /* leaves it zeroed */
    return rc;
}
