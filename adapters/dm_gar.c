/* dm_gar.c - Google Artifact Registry notifications via Pub/Sub push (FORMATS.md §3). */
#include "dm_gar.h"

#include "dm_time.h"

#include <jansson.h>
#include <openssl/evp.h>
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

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/*
 * Decode the standard, padded base64 of message.data into a new buffer. EVP_DecodeBlock is
 * lenient (it skips surrounding whitespace and takes '=' anywhere) and counts padding as
 * decoded zero bytes, so the shape is checked first and the padding subtracted after.
 */
static int decode_data(const char *s, size_t n, unsigned char **buf, size_t *len, dm_error *err)
{
    *buf = NULL;
    *len = 0;
    if (n > GAR_MAX_DATA_B64)
        return dm_error_set(err, "message.data", "must decode to at most %d bytes", GAR_MAX_DATA);
    size_t pad = 0;
    while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
        pad++;
    bool ok = n % 4 == 0;
    for (size_t i = 0; ok && i < n - pad; i++)
        ok = is_b64(s[i]);
    if (!ok)
        return dm_error_set(err, "message.data", "must be base64");

    unsigned char *out = dm_xmalloc(n / 4 * 3 + 1);
    int r = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    if (r < 0 || (size_t)r != n / 4 * 3) {
        free(out);
        return dm_error_set(err, "message.data", "must be base64");
    }
    size_t m = (size_t)r - pad;
    if (m > GAR_MAX_DATA) {
        free(out);
        return dm_error_set(err, "message.data", "must decode to at most %d bytes", GAR_MAX_DATA);
    }
    *buf = out;
    *len = m;
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
    const char *r = name->repo;
    for (size_t i = 0; i < name->repo_len; i++) {
        char c = r[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == '/'))
            return dm_error_set(err, path,
                                "must have a repository of a-z, 0-9, '.', '_', "
                                "'-' and '/'");
        if (c == '/' && (i == 0 || i + 1 == name->repo_len || r[i + 1] == '/'))
            return dm_error_set(err, path, "must not have an empty path component");
    }
    return DM_OK;
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
/* API                                                                                          */
/* ------------------------------------------------------------------------------------------ */

int dm_gar_parse(const char *body, size_t len, dm_event_list *out, dm_error *err)
{
    dm_event_list list = {0};
    json_t *root = NULL, *data = NULL;
    unsigned char *raw = NULL;
    const char *s;
    size_t n;

    memset(out, 0, sizeof *out);
    if (dm_json_load_object(body, len, &root, err) != DM_OK)
        goto fail;

    json_t *message = json_object_get(root, "message");
    if (!message || json_is_null(message)) {
        dm_error_set(err, "message", "is required");
        goto fail;
    }
    if (!json_is_object(message)) {
        dm_error_set(err, "message", "must be an object");
        goto fail;
    }

    /* GAR's data has neither id nor time (FORMATS §3): Pub/Sub's stand in for them. */
    const char *id, *path;
    size_t id_len;
    int64_t time_ms;
    if (get_twin_string(message, "messageId", "message.messageId", "message_id",
                        "message.message_id", GAR_MAX_ID, &id, &id_len, &path, err) != DM_OK)
        goto fail;
    if (get_twin_string(message, "publishTime", "message.publishTime", "publish_time",
                        "message.publish_time", SIZE_MAX, &s, &n, &path, err) != DM_OK)
        goto fail;
    if (dm_time_parse_rfc3339(s, n, &time_ms) != DM_OK) {
        dm_error_set(err, path, "must be an RFC 3339 timestamp");
        goto fail;
    }

    if (dm_json_get_string(message, "data", "message.data", true, SIZE_MAX, &s, &n, err) != DM_OK)
        goto fail;
    size_t raw_len;
    if (decode_data(s, n, &raw, &raw_len, err) != DM_OK)
        goto fail;
    if (dm_json_load_object((const char *)raw, raw_len, &data, err) != DM_OK) {
        /* keep jansson's reason, but say where: the decoded data, not the body */
        if (err)
            snprintf(err->field, sizeof err->field, "%s", "message.data");
        goto fail;
    }

    if (dm_json_get_string(data, "action", "data.action", true, SIZE_MAX, &s, &n, err) != DM_OK)
        goto fail;
    dm_action action;
    if (strcmp(s, "INSERT") == 0) {
        action = DM_ACTION_PUSH;
    } else if (strcmp(s, "DELETE") == 0) {
        action = DM_ACTION_DELETE;
    } else {
        out->ignored = "unknown action";
        goto done;
    }

    /* Both members are full references: validate each, then check they name one image. */
    image_name dname = {0}, tname = {0};
    char digest[DM_DIGEST_BUFLEN] = "";
    const char *tag = NULL;
    size_t tag_len = 0;
    if (dm_json_get_string(data, "digest", "data.digest", false, GAR_MAX_REF, &s, &n, err) != DM_OK)
        goto fail;
    if (s && parse_digest_ref(s, n, &dname, digest, err) != DM_OK)
        goto fail;
    if (dm_json_get_string(data, "tag", "data.tag", false, GAR_MAX_REF, &s, &n, err) != DM_OK)
        goto fail;
    if (s && parse_tag_ref(s, n, &tname, &tag, &tag_len, err) != DM_OK)
        goto fail;
    if (dname.host && tname.host &&
        (dname.host_len != tname.host_len || dname.repo_len != tname.repo_len ||
         strncasecmp(dname.host, tname.host, dname.host_len) != 0 ||
         memcmp(dname.repo, tname.repo, dname.repo_len) != 0)) {
        dm_error_set(err, "data.tag", "must name the same image as data.digest");
        goto fail;
    }
    if (!dname.host) {
        /* A removed tag names no manifest: only our own (repo, tag) state could say which. */
        if (action == DM_ACTION_DELETE && tname.host) {
            out->ignored = "tag-only delete";
            goto done;
        }
        dm_error_set(err, "data.digest", "is required");
        goto fail;
    }

    dm_event *ev = dm_event_list_add(&list);
    ev->side = DM_SIDE_REGISTRY;
    ev->action = action;
    memcpy(ev->source, "gar", sizeof "gar");
    ev->relation = DM_REL_IMAGE;
    ev->event_id = dm_xstrndup(id, id_len);
    ev->event_time_ms = time_ms;
    memcpy(ev->digest, digest, DM_DIGEST_BUFLEN);
    ev->registry = dm_xstrndup(dname.host, dname.host_len);
    /* Host names are case-insensitive; the join keys on the lowercase form. */
    for (char *p = ev->registry; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }
    ev->repository = dm_xstrndup(dname.repo, dname.repo_len);
    /* A delete removes the manifest with all its tags: as for ACR, it carries none. */
    if (action == DM_ACTION_PUSH && tag) {
        ev->tags = dm_xmalloc(sizeof *ev->tags);
        ev->tags[0] = dm_xstrndup(tag, tag_len);
        ev->ntags = 1;
    }
    *out = list;

done:
    json_decref(data);
    free(raw);
    json_decref(root);
    return DM_OK;

fail:
    dm_event_list_dispose(&list);
    json_decref(data);
    free(raw);
    json_decref(root);
    memset(out, 0, sizeof *out);
    return DM_EINVAL;
}
