/* dm_build.c - CI build-event bodies (docs/ci.md): one build event per digest named. */
#include "dm_build.h"

#include "dm_json.h"
#include "dm_time.h"

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

/* ------------------------------------------------------------------------------------------ */
/* Build identity from the body's "run"                                                         */
/* ------------------------------------------------------------------------------------------ */

static const char *const providers[] = {"github", "azure-devops", "gitlab", "generic"};

static int run_string(json_t *run, const char *key, char **dst, dm_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "run.%s", key);
    json_t *v = dm_json_member(run, key);
    /* "" says nothing; leaving it NULL keeps it out of the record. */
    return v ? dm_json_copy_value(v, path, BUILD_MAX_RUN_STRING, 0, dst, err) : DM_OK;
}

/* Fill @p b from the body's "run"; on error @p b may be partly filled (the caller disposes). */
static int parse_run(json_t *root, dm_build_info *b, dm_error *err)
{
    json_t *run;
    if (dm_json_get_object(root, "run", "run", &run, err) != DM_OK)
        return DM_EINVAL;

    json_t *p = dm_json_member(run, "provider");
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

    json_t *id = dm_json_member(run, "run_id");
    if (!id)
        return dm_error_set(err, "run.run_id", "is required");
    if (dm_json_copy_value(id, "run.run_id", BUILD_MAX_RUN_ID, DM_JSON_INTEGER | DM_JSON_RUN_KEY,
                           &b->run_id, err) != DM_OK)
        return DM_EINVAL;
    if (!b->run_id)
        return dm_error_set(err, "run.run_id", "must not be empty");

    /* An absent or empty attempt is the first attempt. */
    json_t *att = dm_json_member(run, "run_attempt");
    if (att && dm_json_copy_value(att, "run.run_attempt", BUILD_MAX_RUN_ATTEMPT,
                                  DM_JSON_INTEGER | DM_JSON_RUN_KEY, &b->run_attempt, err) != DM_OK)
        return DM_EINVAL;

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
    const char *provider = c->id->provider; /* both checked by get_identity */
    const char *run_id = c->id->run_id;
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

/* ------------------------------------------------------------------------------------------ */
/* Images                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* One entry of "images" once checked: the members are borrowed, NULL when absent. */
typedef struct image_in {
    const char *digest;
    json_t *name, *tags, *manifests;
} image_in;

static int check_array(const json_t *v, const char *path, size_t max, dm_error *err)
{
    if (!json_is_array(v))
        return dm_error_set(err, path, "must be an array");
    if (json_array_size(v) > max)
        return dm_error_set(err, path, "must have at most %zu entries", max);
    return DM_OK;
}

/* images[i].<key>: an array of at most @p max entries, each a tag (a non-empty string) or,
 * with @p digests, a digest. */
static int check_list(const json_t *a, size_t i, const char *key, size_t max, bool digests,
                      dm_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "images[%zu].%s", i, key);
    if (check_array(a, path, max, err) != DM_OK)
        return DM_EINVAL;
    size_t k;
    const json_t *v;
    const char *d;
    json_array_foreach(a, k, v)
    {
        snprintf(path, sizeof path, "images[%zu].%s[%zu]", i, key, k);
        int rc = digests ? dm_json_digest(v, path, &d, err)
                         : dm_json_check_string(v, path, true, BUILD_MAX_TAG, err);
        if (rc != DM_OK)
            return DM_EINVAL;
    }
    return DM_OK;
}

/* Check image @p i completely, so that nothing is emitted for a body with an error. */
static int check_image(json_t *img, size_t i, image_in *in, dm_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "images[%zu]", i);
    if (!json_is_object(img))
        return dm_error_set(err, path, "must be an object");

    snprintf(path, sizeof path, "images[%zu].digest", i);
    if (dm_json_digest(dm_json_member(img, "digest"), path, &in->digest, err) != DM_OK)
        return DM_EINVAL;

    snprintf(path, sizeof path, "images[%zu].name", i);
    in->name = dm_json_member(img, "name");
    if (in->name && dm_json_check_string(in->name, path, true, BUILD_MAX_NAME, err) != DM_OK)
        return DM_EINVAL;

    in->tags = dm_json_member(img, "tags");
    if (in->tags && check_list(in->tags, i, "tags", DM_BUILD_MAX_TAGS, false, err) != DM_OK)
        return DM_EINVAL;

    in->manifests = dm_json_member(img, "manifests");
    if (in->manifests &&
        check_list(in->manifests, i, "manifests", DM_BUILD_MAX_MANIFESTS, true, err) != DM_OK)
        return DM_EINVAL;
    return DM_OK;
}

static char *name_copy(const json_t *name)
{
    return name ? dm_xstrndup(json_string_value(name), json_string_length(name)) : NULL;
}

/* The events of a checked image: its own, then one per platform manifest. */
static void emit_image(build_ctx *c, const image_in *in)
{
    dm_event *ev = emit(c, in->digest);
    if (ev) {
        ev->relation = DM_REL_IMAGE;
        ev->index_digest[0] = '\0';
        ev->name = name_copy(in->name);
        size_t k;
        json_t *t;
        /* Tags are a set: a repeated tag is named once (dm_event_add_tag). */
        json_array_foreach(in->tags, k, t)
            dm_event_add_tag(ev, json_string_value(t), json_string_length(t));
    }
    size_t k;
    json_t *m;
    json_array_foreach(in->manifests, k, m)
    {
        dm_event *pm = emit(c, json_string_value(m));
        if (!pm)
            continue;
        pm->relation = DM_REL_PLATFORM_MANIFEST;
        memcpy(pm->index_digest, in->digest, DM_DIGEST_LEN);
        pm->index_digest[DM_DIGEST_LEN] = '\0';
        pm->name = name_copy(in->name);
    }
}

/* "images": a non-empty array of at most DM_BUILD_MAX_IMAGES entries. */
static int get_images(json_t *root, json_t **images, dm_error *err)
{
    *images = dm_json_member(root, "images");
    if (!*images)
        return dm_error_set(err, "images", "is required");
    if (check_array(*images, "images", DM_BUILD_MAX_IMAGES, err) != DM_OK)
        return DM_EINVAL;
    if (json_array_size(*images) == 0)
        return dm_error_set(err, "images", "must not be empty");
    return DM_OK;
}

/* "built_at", optional: the events' time (0, arrival time, when absent). */
static int get_built_at(json_t *root, int64_t *t, dm_error *err)
{
    json_t *built_at = dm_json_member(root, "built_at");
    if (!built_at)
        return DM_OK;
    if (!json_is_string(built_at))
        return dm_error_set(err, "built_at", "must be a string");
    if (dm_time_parse_rfc3339(json_string_value(built_at), json_string_length(built_at), t) !=
        DM_OK)
        return dm_error_set(err, "built_at", "must be an RFC 3339 timestamp");
    return DM_OK;
}

/* The identity every event copies. A verified token's identity wins; the body's "run" is then
 * not even looked at. */
static int get_identity(json_t *root, const dm_build_info *verified, dm_build_info *id,
                        dm_error *err)
{
    if (verified)
        dm_build_info_copy(id, verified);
    else if (parse_run(root, id, err) != DM_OK)
        return DM_EINVAL;
    /* A token that does not name its run (the generic provider, an Azure service connection)
     * leaves the run id to the body's "run"; without either the edge would have no identity
     * and the join script nothing to key the build by, so the sender must hear it now: a 400
     * is final, where a failure in Redis would make it retry forever. */
    if (!id->provider)
        return dm_error_set(err, "run.provider", "is required");
    if (!id->run_id)
        return dm_error_set(err, "run.run_id",
                            "is required: the %s token carries no run id, so the body's run "
                            "must give one",
                            id->provider);
    /* "1 when the sender gave none" (dm_event.h) holds for a sparse token's identity too. */
    if (!id->run_attempt)
        id->run_attempt = dm_xstrdup("1");
    return DM_OK;
}

/* Check each image, then emit its events; stops at the first error. */
static int emit_images(build_ctx *c, json_t *images, dm_error *err)
{
    c->seen.slot = dm_xcalloc(SEEN_SLOTS, sizeof *c->seen.slot);
    int rc = DM_OK;
    size_t i;
    json_t *img;
    json_array_foreach(images, i, img)
    {
        image_in in;
        rc = check_image(img, i, &in, err);
        if (rc != DM_OK)
            break;
        emit_image(c, &in);
    }
    free(c->seen.slot);
    c->seen.slot = NULL;
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* API                                                                                          */
/* ------------------------------------------------------------------------------------------ */

int dm_build_parse(const char *body, size_t len, const dm_build_info *verified, dm_event_list *out,
                   dm_error *err)
{
    json_t *root = NULL, *images = NULL;
    memset(out, 0, sizeof *out);
    if (dm_json_load_object(body, len, &root, err) != DM_OK)
        return DM_EINVAL;

    dm_build_info id = {0};
    build_ctx c = {.id = &id, .list = out};
    int rc = get_images(root, &images, err);
    if (rc == DM_OK)
        rc = get_built_at(root, &c.t, err);
    if (rc == DM_OK)
        rc = get_identity(root, verified, &id, err);
    if (rc == DM_OK)
        rc = emit_images(&c, images, err);
    dm_build_info_dispose(&id);
    json_decref(root);
    if (rc != DM_OK)
        dm_event_list_dispose(out); /* leaves it zeroed */
    return rc;
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
    if (dm_json_member(root, "run")) {
        *present = true;
        rc = parse_run(root, out, err);
        if (rc != DM_OK)
            dm_build_info_dispose(out);
    }
    json_decref(root);
    return rc;
}
