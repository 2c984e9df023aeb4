/* dm_event.c - the normalized event: validation helpers, list ownership, its JSON document
 * (the spool's form) and what the join script takes of it (correlator/lua/park.lua). */
#include "dm_event.h"
#include "dm_jsonw.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Errors and digests                                                                           */
/* ------------------------------------------------------------------------------------------ */

int dm_error_set(dm_error *err, const char *field, const char *fmt, ...)
{
    if (!err)
        return DM_EINVAL;
    err->status = 400;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    /* The text may quote the sender's bytes (jansson's "near '…'") and is cut at a fixed size,
     * possibly inside a UTF-8 sequence; it goes into JSON answers and log lines, so keep it
     * printable ASCII. */
    for (char *p = err->text; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c >= 0x7f)
            *p = '?';
    }
    return DM_EINVAL;
}

/* The bytes of a digest's hex part: a table and one pass without an early exit, which costs a
 * third of a test per byte (every push checks its digest twice, docs/hot-path.md). */
static const unsigned char lower_hex[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
};

bool dm_digest_valid(const char *s, size_t len)
{
    if (!s || len != DM_DIGEST_LEN || memcmp(s, "sha256:", 7) != 0)
        return false;
    unsigned ok = 1;
    for (size_t i = 7; i < DM_DIGEST_LEN; i++)
        ok &= lower_hex[(unsigned char)s[i]];
    return ok != 0;
}

unsigned dm_digest_shard(const char *digest, unsigned shards)
{
    if (shards == 0)
        shards = 1;
    /* Callers pass validated digests; anything else lands on shard 0 rather than reading past
     * a short string. */
    if (!digest || strnlen(digest, DM_DIGEST_LEN + 1) != DM_DIGEST_LEN ||
        !dm_digest_valid(digest, DM_DIGEST_LEN))
        return 0;
    unsigned v = 0;
    for (int i = 7; i < 11; i++) {
        char c = digest[i];
        v = v * 16 + (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return v % shards;
}

/* ------------------------------------------------------------------------------------------ */
/* Ownership                                                                                    */
/* ------------------------------------------------------------------------------------------ */

dm_event *dm_event_list_add(dm_event_list *list)
{
    /* The list has no capacity field: capacity is the next power of two >= n, so growing when
     * n is 0 or a power of two keeps appends amortized O(1). */
    size_t n = list->n;
    if (n == 0 || (n & (n - 1)) == 0) {
        size_t cap = n ? n * 2 : 1;
        list->v = dm_xrealloc(list->v, cap * sizeof *list->v);
    }
    dm_event *ev = &list->v[n];
    memset(ev, 0, sizeof *ev);
    list->n = n + 1;
    return ev;
}

dm_event *dm_event_list_add_registry(dm_event_list *list, const char *source, dm_action action)
{
    dm_event *ev = dm_event_list_add(list);
    ev->side = DM_SIDE_REGISTRY;
    ev->action = action;
    /* A bounded copy (every push comes here: no snprintf). The list entry is zeroed. */
    size_t n = strnlen(source, sizeof ev->source - 1);
    memcpy(ev->source, source, n);
    ev->relation = DM_REL_IMAGE;
    return ev;
}

void dm_event_set_registry(dm_event *ev, const char *host, size_t n)
{
    free(ev->registry);
    ev->registry = dm_xstrndup(host, n);
    for (char *p = ev->registry; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }
}

void dm_event_add_tag(dm_event *ev, const char *tag, size_t n)
{
    for (size_t i = 0; i < ev->ntags; i++) {
        if (strlen(ev->tags[i]) == n && memcmp(ev->tags[i], tag, n) == 0)
            return;
    }
    ev->tags = dm_xrealloc(ev->tags, (ev->ntags + 1) * sizeof *ev->tags);
    ev->tags[ev->ntags++] = dm_xstrndup(tag, n);
}

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int dm_repository_check(const char *s, size_t n, const char *path, const char *bad_char_text,
                        dm_error *err)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!is_lower_alnum(c) && c != '.' && c != '_' && c != '-' && c != '/')
            return dm_error_set(err, path, "%s", bad_char_text);
        if (c == '/' && (i == 0 || i + 1 == n || s[i + 1] == '/'))
            return dm_error_set(err, path, "must not have an empty path component");
    }
    return DM_OK;
}

void dm_event_dispose(dm_event *ev)
{
    free(ev->event_id);
    free(ev->registry);
    free(ev->repository);
    free(ev->media_type);
    for (size_t i = 0; i < ev->ntags; i++)
        free(ev->tags[i]);
    free(ev->tags);
    free(ev->name);
    dm_build_info_dispose(&ev->build);
    memset(ev, 0, sizeof *ev);
}

void dm_event_list_dispose(dm_event_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->n; i++)
        dm_event_dispose(&list->v[i]);
    free(list->v);
    memset(list, 0, sizeof *list);
}

static char *dup_or_null(const char *s)
{
    return s ? dm_xstrdup(s) : NULL;
}

void dm_build_info_copy_run(dm_build_info *dst, const dm_build_info *src)
{
    if (!src)
        return;
    dst->repository = dup_or_null(src->repository);
    dst->repository_url = dup_or_null(src->repository_url);
    dst->workflow = dup_or_null(src->workflow);
    dst->workflow_ref = dup_or_null(src->workflow_ref);
    dst->run_id = dup_or_null(src->run_id);
    dst->run_attempt = dup_or_null(src->run_attempt);
    dst->run_url = dup_or_null(src->run_url);
    dst->commit = dup_or_null(src->commit);
    dst->ref = dup_or_null(src->ref);
    dst->actor = dup_or_null(src->actor);
}

void dm_build_info_copy(dm_build_info *dst, const dm_build_info *src)
{
    memset(dst, 0, sizeof *dst);
    if (!src)
        return;
    dst->provider = dup_or_null(src->provider);
    dm_build_info_copy_run(dst, src);
    dst->issuer = dup_or_null(src->issuer);
    dst->verified = src->verified;
    dst->verified_fields = NULL;
    dst->nverified_fields = src->nverified_fields;
    if (src->nverified_fields) {
        dst->verified_fields = dm_xcalloc(src->nverified_fields, sizeof *dst->verified_fields);
        for (size_t i = 0; i < src->nverified_fields; i++)
            dst->verified_fields[i] = dm_xstrdup(src->verified_fields[i]);
    }
}

void dm_build_info_dispose(dm_build_info *b)
{
    if (!b)
        return;
    free(b->provider);
    free(b->repository);
    free(b->repository_url);
    free(b->workflow);
    free(b->workflow_ref);
    free(b->run_id);
    free(b->run_attempt);
    free(b->run_url);
    free(b->commit);
    free(b->ref);
    free(b->actor);
    free(b->issuer);
    for (size_t i = 0; i < b->nverified_fields; i++)
        free(b->verified_fields[i]);
    free(b->verified_fields);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------------------------------ */
/* JSON document for park.lua                                                                  */
/* ------------------------------------------------------------------------------------------ */

static json_t *tags_array(const dm_event *ev)
{
    json_t *a = json_array();
    if (!a)
        abort();
    for (size_t i = 0; i < ev->ntags; i++) {
        if (json_array_append_new(a, dm_jsonw_str(ev->tags[i])) != 0)
            abort();
    }
    return a;
}

static json_t *build_object(const dm_build_info *b)
{
    json_t *o = json_object();
    if (!o)
        abort();
    dm_jsonw_put_opt_str(o, "provider", b->provider);
    dm_jsonw_put_opt_str(o, "repository", b->repository);
    dm_jsonw_put_opt_str(o, "repository_url", b->repository_url);
    dm_jsonw_put_opt_str(o, "workflow", b->workflow);
    dm_jsonw_put_opt_str(o, "workflow_ref", b->workflow_ref);
    dm_jsonw_put_opt_str(o, "run_id", b->run_id);
    dm_jsonw_put_opt_str(o, "run_attempt", b->run_attempt);
    dm_jsonw_put_opt_str(o, "run_url", b->run_url);
    dm_jsonw_put_opt_str(o, "commit", b->commit);
    dm_jsonw_put_opt_str(o, "ref", b->ref);
    dm_jsonw_put_opt_str(o, "actor", b->actor);
    dm_jsonw_put_opt_str(o, "issuer", b->issuer);
    dm_jsonw_put(o, "verified", json_boolean(b->verified));
    if (b->nverified_fields) {
        json_t *a = json_array();
        if (!a)
            abort();
        for (size_t i = 0; i < b->nverified_fields; i++)
            json_array_append_new(a, json_string(b->verified_fields[i]));
        dm_jsonw_put(o, "verified_fields", a);
    }
    return o;
}

static const char *action_name(dm_action a)
{
    switch (a) {
    case DM_ACTION_PUSH:
        return "push";
    case DM_ACTION_DELETE:
        return "delete";
    case DM_ACTION_BUILD:
        return "build";
    }
    return "push";
}

char *dm_event_to_json(const dm_event *ev)
{
    json_t *o = json_object();
    if (!o)
        abort();
    /* Bounded copies: source and digest are fixed arrays that a hand-built event might not
     * have terminated. */
    char source[sizeof ev->source + 1];
    char digest[DM_DIGEST_BUFLEN + 1];
    snprintf(source, sizeof source, "%.*s", (int)sizeof ev->source, ev->source);
    snprintf(digest, sizeof digest, "%.*s", (int)DM_DIGEST_BUFLEN, ev->digest);

    bool build = ev->side == DM_SIDE_BUILD;
    dm_jsonw_put_str(o, "side", build ? "build" : "registry");
    dm_jsonw_put_str(o, "action", action_name(ev->action));
    dm_jsonw_put_str(o, "source", source);
    dm_jsonw_put_str(o, "event_id", ev->event_id);
    dm_jsonw_put(o, "t", json_integer(ev->event_time_ms));
    dm_jsonw_put_str(o, "digest", digest);
    if (!build) {
        dm_jsonw_put_str(o, "registry", ev->registry);
        dm_jsonw_put_str(o, "repository", ev->repository);
        dm_jsonw_put(o, "tags", tags_array(ev));
        dm_jsonw_put_opt_str(o, "media_type", ev->media_type);
    } else {
        bool pm = ev->relation == DM_REL_PLATFORM_MANIFEST;
        dm_jsonw_put_str(o, "relation", pm ? "platform-manifest" : "image");
        if (pm) {
            char index[DM_DIGEST_BUFLEN + 1];
            snprintf(index, sizeof index, "%.*s", (int)DM_DIGEST_BUFLEN, ev->index_digest);
            dm_jsonw_put_str(o, "index", index);
        }
        dm_jsonw_put_opt_str(o, "name", ev->name);
        dm_jsonw_put(o, "tags", tags_array(ev));
        dm_jsonw_put(o, "build", build_object(&ev->build));
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        abort(); /* allocation failure inside jansson: fatal, see dm_jsonw_put() */
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading the JSON document back (the spool's replayer)                                        */
/* ------------------------------------------------------------------------------------------ */

/* A string member of @p o: DM_OK with *out a copy (or left NULL when absent and !required);
 * DM_EINVAL when it is not a string, holds a NUL, or is required and absent. */
static int member_str(const json_t *o, const char *key, bool required, char **out)
{
    const json_t *v = json_object_get(o, key);
    if (!v)
        return required ? DM_EINVAL : DM_OK;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return DM_EINVAL;
    *out = dm_xstrndup(json_string_value(v), json_string_length(v));
    return DM_OK;
}

/* A string member copied into a fixed buffer of @p size bytes (at most size - 1 of them). */
static int member_fixed(const json_t *o, const char *key, char *buf, size_t size)
{
    char *s = NULL;
    if (member_str(o, key, true, &s) != DM_OK)
        return DM_EINVAL;
    bool fits = strlen(s) < size;
    if (fits)
        memcpy(buf, s, strlen(s) + 1);
    free(s);
    return fits ? DM_OK : DM_EINVAL;
}

/* An array of strings (absent: none) into *list / *n. */
static int member_strs(const json_t *o, const char *key, char ***list, size_t *n)
{
    const json_t *a = json_object_get(o, key);
    if (!a)
        return DM_OK;
    if (!json_is_array(a))
        return DM_EINVAL;
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
            return DM_EINVAL;
    }
    if (json_array_size(a) == 0)
        return DM_OK;
    *list = dm_xcalloc(json_array_size(a), sizeof **list);
    json_array_foreach(a, i, v)
    {
        (*list)[i] = dm_xstrdup(json_string_value(v));
        *n = i + 1;
    }
    return DM_OK;
}

static int build_from_json(const json_t *o, dm_build_info *b)
{
    if (!json_is_object(o))
        return DM_EINVAL;
    const json_t *verified = json_object_get(o, "verified");
    if (verified && !json_is_boolean(verified))
        return DM_EINVAL;
    b->verified = json_is_true(verified);
    if (member_str(o, "provider", true, &b->provider) != DM_OK ||
        member_str(o, "repository", false, &b->repository) != DM_OK ||
        member_str(o, "repository_url", false, &b->repository_url) != DM_OK ||
        member_str(o, "workflow", false, &b->workflow) != DM_OK ||
        member_str(o, "workflow_ref", false, &b->workflow_ref) != DM_OK ||
        member_str(o, "run_id", true, &b->run_id) != DM_OK ||
        member_str(o, "run_attempt", true, &b->run_attempt) != DM_OK ||
        member_str(o, "run_url", false, &b->run_url) != DM_OK ||
        member_str(o, "commit", false, &b->commit) != DM_OK ||
        member_str(o, "ref", false, &b->ref) != DM_OK ||
        member_str(o, "actor", false, &b->actor) != DM_OK ||
        member_str(o, "issuer", false, &b->issuer) != DM_OK ||
        member_strs(o, "verified_fields", &b->verified_fields, &b->nverified_fields) != DM_OK)
        return DM_EINVAL;
    return DM_OK;
}

static int event_from_json(const json_t *doc, dm_event *ev)
{
    if (!json_is_object(doc))
        return DM_EINVAL;
    const char *side = json_string_value(json_object_get(doc, "side"));
    const char *action = json_string_value(json_object_get(doc, "action"));
    const json_t *t = json_object_get(doc, "t");
    if (!side || !action || (t && !json_is_integer(t)))
        return DM_EINVAL;
    ev->event_time_ms = t ? (int64_t)json_integer_value(t) : 0;
    if (member_fixed(doc, "source", ev->source, sizeof ev->source) != DM_OK ||
        member_fixed(doc, "digest", ev->digest, sizeof ev->digest) != DM_OK ||
        !dm_digest_valid(ev->digest, strlen(ev->digest)) ||
        member_str(doc, "event_id", true, &ev->event_id) != DM_OK ||
        member_strs(doc, "tags", &ev->tags, &ev->ntags) != DM_OK)
        return DM_EINVAL;
    if (strcmp(side, "registry") == 0) {
        ev->side = DM_SIDE_REGISTRY;
        if (strcmp(action, "push") == 0)
            ev->action = DM_ACTION_PUSH;
        else if (strcmp(action, "delete") == 0)
            ev->action = DM_ACTION_DELETE;
        else
            return DM_EINVAL;
        return member_str(doc, "registry", true, &ev->registry) == DM_OK &&
                       member_str(doc, "repository", true, &ev->repository) == DM_OK &&
                       member_str(doc, "media_type", false, &ev->media_type) == DM_OK
                   ? DM_OK
                   : DM_EINVAL;
    }
    if (strcmp(side, "build") != 0 || strcmp(action, "build") != 0)
        return DM_EINVAL;
    ev->side = DM_SIDE_BUILD;
    ev->action = DM_ACTION_BUILD;
    const char *relation = json_string_value(json_object_get(doc, "relation"));
    if (relation && strcmp(relation, "platform-manifest") == 0) {
        ev->relation = DM_REL_PLATFORM_MANIFEST;
        if (member_fixed(doc, "index", ev->index_digest, sizeof ev->index_digest) != DM_OK)
            return DM_EINVAL;
    } else if (relation && strcmp(relation, "image") != 0) {
        return DM_EINVAL;
    }
    if (member_str(doc, "name", false, &ev->name) != DM_OK)
        return DM_EINVAL;
    return build_from_json(json_object_get(doc, "build"), &ev->build);
}

int dm_event_from_json(const json_t *doc, dm_event *ev)
{
    memset(ev, 0, sizeof *ev);
    if (event_from_json(doc, ev) == DM_OK)
        return DM_OK;
    dm_event_dispose(ev);
    return DM_EINVAL;
}
