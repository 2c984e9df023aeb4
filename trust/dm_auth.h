/* dm_auth.h - request authentication for ingest and query routes (the auth entries:
 * configs/README.md, "auth entries").
 *
 * No I/O: headers are read through a callback so the module is unit-testable without
 * libevent, and OIDC keys and fetched SNS certificates come from the entry's keyring and cache
 * in a dm_trust (dm_trust.h). All secret comparisons are constant-time.
 */
#ifndef DM_TRUST_DM_AUTH_H
#define DM_TRUST_DM_AUTH_H

#include "dm_config.h"
#include "dm_trust.h"

typedef enum {
    DM_AUTH_OK = 0,          /**< an entry passed */
    DM_AUTH_MISSING = 1,     /**< no entry's header was present → 401 */
    DM_AUTH_BAD = 2,         /**< a credential was present but wrong → 401 */
    DM_AUTH_FORBIDDEN = 3,   /**< a valid token whose claims are not allowed → 403 */
    DM_AUTH_UNAVAILABLE = 4, /**< cannot decide yet (an SNS certificate is being fetched)
                                  → 503 + Retry-After, so the sender retries */
} dm_auth_result;

/** Returns the value of header @p name (case-insensitive) or NULL. Borrowed. */
typedef const char *(*dm_header_fn)(void *ctx, const char *name);

/** Everything a check concluded. */
typedef struct dm_auth_outcome {
    dm_auth_result result;
    const char *reason;            /**< static string for the log line */
    const dm_auth_entry *entry;    /**< the entry that passed (borrowed from the list), or NULL */
    json_t *claims;                /**< OIDC: the verified claims (owned), else NULL */
    char kid[128];                 /**< OIDC: the token's kid, if parsed (for logs) */
    char forbidden_claim[64];      /**< FORBIDDEN: the claim that was not allowed */
    const char *forbidden_problem; /**< FORBIDDEN by a claims allowlist: why (DM_OIDC_CLAIM_*,
                                        static), else NULL */
    struct dm_sns_message *sns;    /**< SNS: the verified envelope (owned), else NULL */
    dm_sns_cache *sns_cache;       /**< SNS: the passing entry's certificate cache (borrowed from
                                     the trust; it queues subscription confirmations), or NULL */
    char detail[272];              /**< extra log detail (e.g. an unknown SigningCertURL) */
} dm_auth_outcome;

/**
 * Check a request against @p list (any entry may pass; a NONE entry always does): header,
 * HMAC over @p body, or OIDC bearer token verified at time @p now_s. The entries' keyrings and
 * certificate caches are looked up in @p trust (built from the configuration that holds
 * @p list; NULL: none, so an oidc entry refuses every token as "unknown key id" and an sns
 * entry knows only its "certs"). Fills @p out; dispose it with dm_auth_outcome_dispose.
 * Thread-safe. A token naming a kid its entry's keyring does not hold is refused ("unknown key
 * id") and asks the keyring for a refresh (dm_keyring_request_refresh: rate-limited, never
 * waited for).
 * An SNS envelope from an allowed topic whose (valid) SigningCertURL is neither in "certs" nor
 * in the entry's cache, with fetch_certs, asks for a fetch (dm_sns_cache_want: rate-limited
 * per URL, never waited for) and gives DM_AUTH_UNAVAILABLE; a later retry finds the
 * certificate. Precedence over the list: OK, then UNAVAILABLE, FORBIDDEN, BAD, MISSING.
 */
void dm_auth_verify(const dm_trust *trust, const dm_auth_list *list, dm_header_fn get_header,
                    void *ctx, const unsigned char *body, size_t len, int64_t now_s,
                    dm_auth_outcome *out);

/** Release what an outcome owns. */
void dm_auth_outcome_dispose(dm_auth_outcome *out);

/**
 * dm_auth_verify at the current time, keeping only the result and reason: it passes if any
 * entry passes. @p body/@p len is the raw body (for HMAC). *reason (may be NULL) is set to a
 * static string for the log line: "ok" on success, else e.g. "no credentials", "header value
 * mismatch", "malformed signature header", "signature mismatch" (never sent verbatim beyond
 * "missing credentials"/"bad credentials"). An empty list never passes (DM_AUTH_MISSING).
 */
dm_auth_result dm_auth_check(const dm_trust *trust, const dm_auth_list *list,
                             dm_header_fn get_header, void *ctx, const unsigned char *body,
                             size_t len, const char **reason);

/** True when some entry of @p list is {"type": "none"}. */
bool dm_auth_allows_anonymous(const dm_auth_list *list);

#endif
