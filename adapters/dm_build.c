/* dm_build.c - CI build-event bodies (DESIGN §6.3): one build event per digest named. */
#include "dm_build.h"

#include "dm_time.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sender-controlled strings end up in Redis keys and records: bound them. */
#define BUILD_MAX_NAME        512
#define BUILD_MAX_TAG         128 /* the distribution spec's tag grammar allows 128 characters */
#define BUILD_MAX_RUN_ID      256
#define BUILD_MAX_RUN_ATTEMPT 64
#define BUILD_MAX_RUN_STRING  2048

/* Every digest one body can name, so the duplicate check below can be sized once. */
#define BUILD_MAX_DIGESTS (DM_BUILD_MAX_IMAGES * (1 + DM_BUILD_MAX_MANIFESTS))

#define DIGEST_TEXT "must be sha256: followed by 64 lowercase hex digits"

/* ------------------------------------------------------------------------------------------ */
/* JSON helpers                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* JSON null counts as absent for optional members: many CI templating tools write null for
 * an unset variable. */
static json_t *member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* A string or a non-negative integer (CI systems number their runs), as a new string. */
static int id_string(json_t *v, const char *path, size_t max, char **out, dm_error *err)
{
    *out = NULL;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return dm_error_set(err, path, "must not be negative");
        char buf[32];
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, i);
        *out = dm_xstrdup(buf);
        return DM_OK;
    }
    if (!json_is_string(v))
        return dm_error_set(err, path, "must be a string or a non-negative integer");
    size_t n = json_string_length(v);
    if (n == 0)
        return dm_error_set(err, path, "must not be empty");
    if (n > max)
        return dm_error_set(err, path, "must be at most %zu bytes", max);
    /* Run ids are parts of the run key "<provider>/<run_id>/<attempt>" that identifies edges:
     * a '/' would let two different runs share a key. */
    const char *str = json_string_value(v);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)str[i];
        if (ch == '/' || ch < 0x20 || ch == 0x7f)
            return dm_error_set(err, path, "must not contain '/' or control characters");
    }
    *out = dm_xstrndup(str, n);
    return DM_OK;
}

static int digest_at(json_t *v, const char *path, const char **out, dm_error *err)
{
    if (!v)
        return dm_error_set(err, path, "is required");
    if (!json_is_string(v) || !dm_digest_valid(json_string_value(v), json_string_length(v)))
        return dm_error_set(err, path, DIGEST_TEXT);
    *out = json_string_value(v);
    return DM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Build identity from the body's "run"                                                         */
/* ------------------------------------------------------------------------------------------ */

static const char *const providers[] = {"github", "azure-devops", "gitlab", "generic"};

static int run_string(json_t *run, const char *key, char **dst, dm_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "run.%s", key);
    json_t *v = member(run, key);
    if (!v)
        return DM_OK;
    if (!json_is_string(v))
        return dm_error_set(err, path, "must be a string");
    size_t n = json_string_length(v);
    if (n > BUILD_MAX_RUN_STRING)
        return dm_error_set(err, path, "must be at most %d bytes", BUILD_MAX_RUN_STRING);
    /* "" says nothing; leaving it NULL keeps it out of the record. */
    if (n > 0)
        *dst = dm_xstrndup(json_string_value(v), n);
    return DM_OK;
}

/* Fill @p b from the body's "run"; on error @p b may be partly filled (the caller disposes). */
static int parse_run(json_t *root, dm_build_info *b, dm_error *err)
{
    json_t *run = member(root, "run");
    if (!run)
        return dm_error_set(err, "run", "is required");
    if (!json_is_object(run))
        return dm_error_set(err, "run", "must be an object");

    json_t *p = member(run, "provider");
    if (!p)
        return dm_error_set(err, "run.provider", "is required");
    if (!json_is_string(p))
        return dm_error_set(err, "run.provider", "must be a string");
    for (size_t i = 0; i < DM_ARRAY_LEN(providers) && !b->provider; i++) {
        if (strcmp(json_string_value(p), providers[i]) == 0)
            b->provider = dm_xstrdup(providers[i]);
    }
    if (!b->provider)
        return dm_error_set(err, "run.provider",
                            "must be one of github, azure-devops, gitlab, generic");

    json_t *id = member(run, "run_id");
    if (!id)
        return dm_error_set(err, "run.run_id", "is required");
    if (id_string(id, "run.run_id", BUILD_MAX_RUN_ID, &b->run_id, err) != DM_OK)
        return DM_EINVAL;

    /* An absent or empty attempt is the first attempt. */
    json_t *att = member(run, "run_attempt");
    if (att && !(json_is_string(att) && json_string_length(att) == 0)) {
        if (id_string(att, "run.run_attempt", BUILD_MAX_RUN_ATTEMPT, &b->run_attempt, err) != DM_OK)
            return DM_EINVAL;
    }

    static const char *const keys[] = {"repository", "repository_url", "workflow", "workflow_ref",
                                       "run_url",    "commit",         "ref",      "actor"};
    char **dsts[] = {&b->repository, &b->repository_url, &b->workflow, &b->workflow_ref,
                     &b->run_url,    &b->commit,         &b->ref,      &b->actor};
    for (size_t i = 0; i < DM_ARRAY_LEN(keys); i++) {
        if (run_string(run, keys[i], dsts[i], err) != DM_OK)
            return DM_EINVAL;
    }
    b->verified = false;
    b->issuer = NULL;
    return DM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Duplicate digests                                                                            */
/* ------------------------------------------------------------------------------------------ */

/* Open-addressing set of digests already emitted. A body may name thousands of digests, so a
 * pairwise scan would cost millions of comparisons per request. Slots index into the event
 * list (+1, 0 = empty); the table is at least twice the largest possible count. */
#define SEEN_SLOTS 32768u
_Static_assert(SEEN_SLOTS >= 2 * BUILD_MAX_DIGESTS, "seen set must stay at most half full");

typedef struct seen_set {
    uint32_t *slot;
} seen_set;

static uint32_t digest_hash(const char *d)
{
    uint32_t h = 2166136261u; /* FNV-1a over the hex part */
    for (int i = 7; i < DM_DIGEST_LEN; i++)
        h = (h ^ (unsigned char)d[i]) * 16777619u;
    return h;
}

/* True if @p d was already in the set; otherwise records it as event @p idx. */
static bool seen_check_add(seen_set *s, const dm_event_list *list, const char *d, size_t idx)
{
    uint32_t i = digest_hash(d) & (SEEN_SLOTS - 1);
    while (s->slot[i] != 0) {
        if (memcmp(list->v[s->slot[i] - 1].digest, d, DM_DIGEST_LEN) == 0)
            return true;
        i = (i + 1) & (SEEN_SLOTS - 1);
    }
    s->slot[i] = (uint32_t)idx + 1;
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* Events                                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef struct build_ctx {
    const dm_build_info *id; /* the identity every event copies */
    int64_t t;
    dm_event_list *list;
    seen_set seen;
} build_ctx;

/* Append the event for digest @p d unless this body already named it; NULL when skipped. */
static dm_event *emit(build_ctx *c, const char *d)
{
    if (seen_check_add(&c->seen, c->list, d, c->list->n))
        return NULL;
    dm_event *ev = dm_event_list_add(c->list);
    ev->side = DM_SIDE_BUILD;
    ev->action = DM_ACTION_BUILD;
    const char *provider = c->id->provider ? c->id->provider : "";
    const char *run_id = c->id->run_id ? c->id->run_id : ""; /* only a sparse token lacks it */
    snprintf(ev->source, sizeof ev->source, "%s", provider);
    ev->event_time_ms = c->t;
    memcpy(ev->digest, d, DM_DIGEST_LEN);
    ev->digest[DM_DIGEST_LEN] = '\0';
    dm_build_info_copy(&ev->build, c->id);
    size_t n = strlen(provider) + strlen(run_id) + strlen(c->id->run_attempt) + DM_DIGEST_LEN + 4;
    ev->event_id = dm_xmalloc(n);
    snprintf(ev->event_id, n, "%s/%s/%s/%s", provider, run_id, c->id->run_attempt, ev->digest);
    return ev;
}

static bool tag_seen(char **tags, size_t n, const char *t)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(tags[i], t) == 0)
            return true;
    }
    return false;
}

/* Validate image @p i completely, then emit its events; nothing is emitted on error. */
static int parse_image(build_ctx *c, json_t *img, size_t i, dm_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "images[%zu]", i);
    if (!json_is_object(img))
        return dm_error_set(err, path, "must be an object");

    const char *digest;
    snprintf(path, sizeof path, "images[%zu].digest", i);
    if (digest_at(member(img, "digest"), path, &digest, err) != DM_OK)
        return DM_EINVAL;

    json_t *name = member(img, "name");
    if (name) {
        snprintf(path, sizeof path, "images[%zu].name", i);
        if (!json_is_string(name))
            return dm_error_set(err, path, "must be a string");
        if (json_string_length(name) == 0)
            return dm_error_set(err, path, "must not be empty");
        if (json_string_length(name) > BUILD_MAX_NAME)
            return dm_error_set(err, path, "must be at most %d bytes", BUILD_MAX_NAME);
    }

    json_t *tags = member(img, "tags");
    if (tags) {
        snprintf(path, sizeof path, "images[%zu].tags", i);
        if (!json_is_array(tags))
            return dm_error_set(err, path, "must be an array");
        if (json_array_size(tags) > DM_BUILD_MAX_TAGS)
            return dm_error_set(err, path, "must have at most %d entries", DM_BUILD_MAX_TAGS);
        size_t k;
        json_t *t;
        json_array_foreach(tags, k, t)
        {
            snprintf(path, sizeof path, "images[%zu].tags[%zu]", i, k);
            if (!json_is_string(t))
                return dm_error_set(err, path, "must be a string");
            if (json_string_length(t) == 0)
                return dm_error_set(err, path, "must not be empty");
            if (json_string_length(t) > BUILD_MAX_TAG)
                return dm_error_set(err, path, "must be at most %d bytes", BUILD_MAX_TAG);
        }
    }

    json_t *mans = member(img, "manifests");
    if (mans) {
        snprintf(path, sizeof path, "images[%zu].manifests", i);
        if (!json_is_array(mans))
            return dm_error_set(err, path, "must be an array");
        if (json_array_size(mans) > DM_BUILD_MAX_MANIFESTS)
            return dm_error_set(err, path, "must have at most %d entries", DM_BUILD_MAX_MANIFESTS);
        size_t k;
        json_t *m;
        const char *md;
        json_array_foreach(mans, k, m)
        {
            snprintf(path, sizeof path, "images[%zu].manifests[%zu]", i, k);
            if (digest_at(m, path, &md, err) != DM_OK)
                return DM_EINVAL;
        }
    }

    dm_event *ev = emit(c, digest);
    if (ev) {
        ev->relation = DM_REL_IMAGE;
        ev->index_digest[0] = '\0';
        if (name)
            ev->name = dm_xstrndup(json_string_value(name), json_string_length(name));
        size_t nt = tags ? json_array_size(tags) : 0;
        if (nt > 0) {
            ev->tags = dm_xcalloc(nt, sizeof *ev->tags);
            for (size_t k = 0; k < nt; k++) {
                json_t *t = json_array_get(tags, k);
                /* Tags are a set (FORMATS §0.4): a repeated tag is named once. */
                if (!tag_seen(ev->tags, ev->ntags, json_string_value(t)))
                    ev->tags[ev->ntags++] =
                        dm_xstrndup(json_string_value(t), json_string_length(t));
            }
        }
    }
    for (size_t k = 0; mans && k < json_array_size(mans); k++) {
        dm_event *pm = emit(c, json_string_value(json_array_get(mans, k)));
        if (!pm)
            continue;
        pm->relation = DM_REL_PLATFORM_MANIFEST;
        memcpy(pm->index_digest, digest, DM_DIGEST_LEN);
        pm->index_digest[DM_DIGEST_LEN] = '\0';
        if (name)
            pm->name = dm_xstrndup(json_string_value(name), json_string_length(name));
    }
    return DM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* API                                                                                          */
/* ------------------------------------------------------------------------------------------ */

int dm_build_parse(const char *body, size_t len, const dm_build_info *verified, dm_event_list *out,
                   dm_error *err)
{
    dm_event_list list = {0};
    dm_build_info id = {0};
    build_ctx c = {.list = &list};
    json_t *root = NULL;

    memset(out, 0, sizeof *out);
    if (dm_json_load_object(body, len, &root, err) != DM_OK)
        goto fail;

    json_t *images = member(root, "images");
    if (!images) {
        dm_error_set(err, "images", "is required");
        goto fail;
    }
    if (!json_is_array(images)) {
        dm_error_set(err, "images", "must be an array");
        goto fail;
    }
    if (json_array_size(images) == 0) {
        dm_error_set(err, "images", "must not be empty");
        goto fail;
    }
    if (json_array_size(images) > DM_BUILD_MAX_IMAGES) {
        dm_error_set(err, "images", "must have at most %d entries", DM_BUILD_MAX_IMAGES);
        goto fail;
    }

    json_t *built_at = member(root, "built_at");
    if (built_at) {
        if (!json_is_string(built_at)) {
            dm_error_set(err, "built_at", "must be a string");
            goto fail;
        }
        if (dm_time_parse_rfc3339(json_string_value(built_at), json_string_length(built_at),
                                  &c.t) != DM_OK) {
            dm_error_set(err, "built_at", "must be an RFC 3339 timestamp");
            goto fail;
        }
    }

    /* A verified token's identity wins; the body's "run" is then not even looked at. */
    if (verified) {
        dm_build_info_copy(&id, verified);
    } else if (parse_run(root, &id, err) != DM_OK) {
        goto fail;
    }
    /* "1 when the sender gave none" (dm_event.h) holds for a sparse token's identity too. */
    if (!id.run_attempt)
        id.run_attempt = dm_xstrdup("1");
    c.id = &id;

    c.seen.slot = dm_xcalloc(SEEN_SLOTS, sizeof *c.seen.slot);
    size_t i;
    json_t *img;
    json_array_foreach(images, i, img)
    {
        if (parse_image(&c, img, i, err) != DM_OK)
            goto fail;
    }

    free(c.seen.slot);
    dm_build_info_dispose(&id);
    json_decref(root);
    *out = list;
    return DM_OK;

fail:
    free(c.seen.slot);
    dm_event_list_dispose(&list);
    dm_build_info_dispose(&id);
    json_decref(root);
    memset(out, 0, sizeof *out);
    return DM_EINVAL;
}

int dm_build_parse_run(const char *body, size_t len, dm_build_info *out, bool *present,
                       dm_error *err)
{
    json_t *root = NULL;
    memset(out, 0, sizeof *out);
    *present = false;
    if (dm_json_load_object(body, len, &root, err) != DM_OK)
        return DM_EINVAL;
    int rc = DM_OK;
    if (member(root, "run")) {
        *present = true;
        rc = parse_run(root, out, err);
        if (rc != DM_OK)
            dm_build_info_dispose(out);
    }
    json_decref(root);
    return rc;
}
