/* dm_auth.h - request authentication for ingest and query routes (DESIGN §6.2).
 *
 * Pure: headers are read through a callback so the module is unit-testable without libevent.
 * All secret comparisons are constant-time.
 */
#ifndef DM_RECEIVER_DM_AUTH_H
#define DM_RECEIVER_DM_AUTH_H

#include "dm_config.h"

typedef enum {
    DM_AUTH_OK = 0,      /**< an entry passed */
    DM_AUTH_MISSING = 1, /**< no entry's header was present → 401 */
    DM_AUTH_BAD = 2,     /**< a credential was present but wrong → 401 */
} dm_auth_result;

/** Returns the value of header @p name (case-insensitive) or NULL. Borrowed. */
typedef const char *(*dm_header_fn)(void *ctx, const char *name);

/**
 * Check a request against @p list: it passes if any entry passes. @p body/@p len is the raw
 * body (for HMAC). *reason (may be NULL) is set to a static string for the log line: "ok"
 * on success, else e.g. "no credentials", "header value mismatch", "malformed signature
 * header", "signature mismatch" (never sent verbatim beyond "missing credentials"/"bad
 * credentials").
 * An empty list never passes (DM_AUTH_MISSING).
 */
dm_auth_result dm_auth_check(const dm_auth_list *list, dm_header_fn get_header, void *ctx,
                             const unsigned char *body, size_t len, const char **reason);

/** True when some entry of @p list is {"type": "none"}. */
bool dm_auth_allows_anonymous(const dm_auth_list *list);

#endif
