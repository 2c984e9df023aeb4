/* dm_json.h - reading a sender's JSON document, with the errors every adapter answers.
 *
 * Each function that checks a value names its JSON path (e.g. "target.digest") in err->field
 * and says why in err->text ("is required", "must be a string", ...). Senders read these texts
 * and tests compare them byte for byte (tests/fixtures/<adapter>/invalid/expected.tsv), so
 * each is written here once. Borrowed values (json_t *, const char *) point into the document
 * and live as long as it; char ** outputs are new strings the caller frees.
 */
#ifndef DM_ADAPTERS_DM_JSON_H
#define DM_ADAPTERS_DM_JSON_H

#include "dm_event.h"

#include <jansson.h>

/**
 * Parse a request body as one JSON object (duplicate keys refused: two values for one field
 * must not mean different things to different readers). Returns DM_OK and a new reference
 * in *root, or DM_EINVAL with @p err saying why ("body is empty", "invalid JSON at …",
 * "must be a JSON object"). @p err may be NULL.
 */
int dm_json_load_object(const char *body, size_t len, json_t **root, dm_error *err);

/**
 * Member @p key of @p obj (borrowed), or NULL when it is absent or JSON null: senders'
 * serializers (.NET for ACR, CI templating tools) write null for unset members.
 */
json_t *dm_json_member(json_t *obj, const char *key);

/** Required member @p key of @p obj that must be an object: *out borrowed, or DM_EINVAL. */
int dm_json_get_object(json_t *obj, const char *key, const char *path, json_t **out, dm_error *err);

/**
 * Check that @p v (not NULL) is a string of at most @p max bytes, and not "" when
 * @p nonempty. DM_OK or DM_EINVAL with @p err naming @p path.
 */
int dm_json_check_string(const json_t *v, const char *path, bool nonempty, size_t max,
                         dm_error *err);

/**
 * Member @p key of @p obj as a string (borrowed from @p obj: *s, *n bytes); JSON null counts
 * as absent (dm_json_member). Absent and not @p required: DM_OK with *s NULL. Otherwise
 * DM_EINVAL with @p err naming @p path for a wrong type, an empty string when @p required, or
 * more than @p max bytes.
 */
int dm_json_get_string(json_t *obj, const char *key, const char *path, bool required, size_t max,
                       const char **s, size_t *n, dm_error *err);

/**
 * Optional string member @p key of @p obj copied into *dst (dm_json_copy_value). Absent, null
 * and "" say nothing and leave *dst NULL.
 */
int dm_json_copy_string(json_t *obj, const char *key, const char *path, size_t max, char **dst,
                        dm_error *err);

/**
 * @p v as a digest ("sha256:" and 64 lowercase hex digits; *out borrowed). NULL is "is
 * required"; JSON null, like any other non-digest, is not a digest.
 */
int dm_json_digest(const json_t *v, const char *path, const char **out, dm_error *err);

/** Required member @p key of @p obj as a digest, copied into @p out (NUL-terminated). */
int dm_json_get_digest(json_t *obj, const char *key, const char *path, char out[DM_DIGEST_BUFLEN],
                       dm_error *err);

/** How dm_json_copy_value reads a value. */
enum {
    /** a non-negative integer stands for its decimal string (CI systems number their runs) */
    DM_JSON_INTEGER = 1u << 0,
    /** part of the run key "<provider>/<run_id>/<attempt>" that identifies edges: a '/' or a
     *  control character would let two different runs share a key */
    DM_JSON_RUN_KEY = 1u << 1,
};

/**
 * @p v (not NULL) copied into *out: a string of at most @p max bytes without NUL or, with
 * DM_JSON_INTEGER in @p flags, a non-negative integer. "" leaves *out NULL with DM_OK: whether
 * a value may be empty is the caller's rule.
 */
int dm_json_copy_value(const json_t *v, const char *path, size_t max, unsigned flags, char **out,
                       dm_error *err);

/*
 * The parse arena (docs/hot-path.md). A request's JSON document lives only while its adapter
 * reads it, yet jansson allocates each value, key and string of it one by one. Between
 * dm_json_arena_begin and dm_json_arena_end on a thread, every jansson allocation of that
 * thread comes from a per-thread block (64 KiB, then malloc when it is full) and freeing one
 * costs nothing; end makes the whole block free again. Everything else, and every other
 * thread, allocates with malloc as before.
 *
 * Rules for a scope: no jansson value or string allocated in it may be used after its end (an
 * adapter's document is released before the adapter returns; the events it makes are copies),
 * and nothing allocated in it may be freed with free() (json_dumps' result is: call no
 * json_dumps there). Scopes do not nest.
 */

/** Route jansson's allocations through the arena's functions (json_set_alloc_funcs, which is
 *  process-wide): call once at startup, before other threads use jansson. Without it the
 *  scopes below change nothing. */
void dm_json_arena_install(void);

/** Start a scope on this thread. */
void dm_json_arena_begin(void);

/** End it: the arena's memory is reused by the next scope. */
void dm_json_arena_end(void);

#endif
