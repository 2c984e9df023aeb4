/* dm_jsonw.h - writing the JSON documents adapters hand on (dm_event's to the spool,
 * dm_finding's to findings.lua; park.lua takes an event as arguments: dm_event_park.h).
 *
 * jansson fails to build a value only when out of memory, which is fatal by policy (like
 * dm_xmalloc): these functions abort then, so a document is never written with a field
 * silently missing.
 */
#ifndef DM_ADAPTERS_DM_JSONW_H
#define DM_ADAPTERS_DM_JSONW_H

#include <jansson.h>

/** Set @p key of @p obj to @p val (a new reference, taken over); abort when @p val is NULL. */
void dm_jsonw_put(json_t *obj, const char *key, json_t *val);

/**
 * A JSON string of @p s (NULL: ""). Adapters only store strings jansson decoded (valid UTF-8,
 * no NUL), so this cannot fail for them; a caller that built a struct by hand with other bytes
 * still gets a well-formed document, non-ASCII bytes replaced by '?'.
 */
json_t *dm_jsonw_str(const char *s);

/** dm_jsonw_put of dm_jsonw_str(@p s). */
void dm_jsonw_put_str(json_t *obj, const char *key, const char *s);

/** As dm_jsonw_put_str, but nothing for @p s NULL (an absent member). */
void dm_jsonw_put_opt_str(json_t *obj, const char *key, const char *s);

#endif
