/* dm_json.c - reading a sender's JSON document, with the errors every adapter answers. */
#include "dm_json.h"

#include <inttypes.h> /* JSON_INTEGER_FORMAT may be PRId64 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*---------------------------------------------------------------- the parse arena ---*/

#define ARENA_SIZE (64 * 1024)

typedef struct arena {
    char *base; /**< the thread's block (freed when the thread ends), or NULL */
    size_t used;
    bool active;
} arena;

static _Thread_local arena tl_arena;
static pthread_key_t arena_key;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

static void arena_release(void *base)
{
    free(base);
}

static void arena_key_init(void)
{
    if (pthread_key_create(&arena_key, arena_release) != 0)
        abort();
}

static void *arena_malloc(size_t n)
{
    arena *a = &tl_arena;
    if (a->active) {
        size_t need = (n + 15) & ~(size_t)15;
        if (need >= n && need <= ARENA_SIZE - a->used) {
            void *p = a->base + a->used;
            a->used += need;
            return p;
        }
    }
    return malloc(n);
}

static void arena_free(void *p)
{
    const arena *a = &tl_arena;
    if (a->base && (char *)p >= a->base && (char *)p < a->base + ARENA_SIZE)
        return; /* reused by the next scope */
    free(p);
}

void dm_json_arena_install(void)
{
    pthread_once(&arena_once, arena_key_init);
    json_set_alloc_funcs(arena_malloc, arena_free);
}

void dm_json_arena_begin(void)
{
    arena *a = &tl_arena;
    if (!a->base) {
        pthread_once(&arena_once, arena_key_init);
        a->base = dm_xmalloc(ARENA_SIZE);
        pthread_setspecific(arena_key, a->base); /* freed with the thread */
    }
    a->used = 0;
    a->active = true;
}

void dm_json_arena_end(void)
{
    tl_arena.active = false;
    tl_arena.used = 0;
}

/*---------------------------------------------------------------- reading ---*/

int dm_json_load_object(const char *body, size_t len, json_t **root, dm_error *err)
{
    *root = NULL;
    if (!body || len == 0)
        return dm_error_set(err, "", "body is empty");
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        return dm_error_set(err, "", "invalid JSON at line %d column %d: %s", jerr.line,
                            jerr.column, jerr.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return dm_error_set(err, "", "must be a JSON object");
    }
    *root = j;
    return DM_OK;
}

json_t *dm_json_member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

int dm_json_get_object(json_t *obj, const char *key, const char *path, json_t **out, dm_error *err)
{
    json_t *v = dm_json_member(obj, key);
    *out = NULL;
    if (!v)
        return dm_error_set(err, path, "is required");
    if (!json_is_object(v))
        return dm_error_set(err, path, "must be an object");
    *out = v;
    return DM_OK;
}

int dm_json_check_string(const json_t *v, const char *path, bool nonempty, size_t max,
                         dm_error *err)
{
    if (!json_is_string(v))
        return dm_error_set(err, path, "must be a string");
    size_t len = json_string_length(v);
    if (nonempty && len == 0)
        return dm_error_set(err, path, "must not be empty");
    if (len > max)
        return dm_error_set(err, path, "must be at most %zu bytes", max);
    return DM_OK;
}

int dm_json_get_string(json_t *obj, const char *key, const char *path, bool required, size_t max,
                       const char **s, size_t *n, dm_error *err)
{
    *s = NULL;
    *n = 0;
    json_t *v = dm_json_member(obj, key);
    if (!v) {
        if (required)
            return dm_error_set(err, path, "is required");
        return DM_OK;
    }
    if (dm_json_check_string(v, path, required, max, err) != DM_OK)
        return DM_EINVAL;
    *s = json_string_value(v);
    *n = json_string_length(v);
    return DM_OK;
}

int dm_json_copy_string(json_t *obj, const char *key, const char *path, size_t max, char **dst,
                        dm_error *err)
{
    *dst = NULL;
    json_t *v = dm_json_member(obj, key);
    if (!v)
        return DM_OK;
    return dm_json_copy_value(v, path, max, 0, dst, err);
}

int dm_json_digest(const json_t *v, const char *path, const char **out, dm_error *err)
{
    if (!v)
        return dm_error_set(err, path, "is required");
    if (!json_is_string(v) || !dm_digest_valid(json_string_value(v), json_string_length(v)))
        return dm_error_set(err, path, "must be sha256: followed by 64 lowercase hex digits");
    *out = json_string_value(v);
    return DM_OK;
}

int dm_json_get_digest(json_t *obj, const char *key, const char *path, char out[DM_DIGEST_BUFLEN],
                       dm_error *err)
{
    const char *d = NULL;
    if (dm_json_digest(dm_json_member(obj, key), path, &d, err) != DM_OK)
        return DM_EINVAL;
    memcpy(out, d, DM_DIGEST_BUFLEN);
    return DM_OK;
}

int dm_json_copy_value(const json_t *v, const char *path, size_t max, unsigned flags, char **out,
                       dm_error *err)
{
    *out = NULL;
    if ((flags & DM_JSON_INTEGER) && json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return dm_error_set(err, path, "must not be negative");
        char buf[32];
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, i);
        *out = dm_xstrdup(buf);
        return DM_OK;
    }
    if (!json_is_string(v))
        return dm_error_set(err, path,
                            (flags & DM_JSON_INTEGER) ? "must be a string or a non-negative integer"
                                                      : "must be a string");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0)
        return DM_OK;
    if (n > max)
        return dm_error_set(err, path, "must be at most %zu bytes", max);
    /* jansson refuses "\u0000" unless JSON_ALLOW_NUL is given; checked anyway, because later
     * uses of the value go by strlen(). */
    if (strlen(s) != n)
        return dm_error_set(err, path, "must not contain NUL characters");
    if (flags & DM_JSON_RUN_KEY) {
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (ch == '/' || ch < 0x20 || ch == 0x7f)
                return dm_error_set(err, path, "must not contain '/' or control characters");
        }
    }
    *out = dm_xstrndup(s, n);
    return DM_OK;
}
