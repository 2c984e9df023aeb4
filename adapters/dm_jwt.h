/* dm_jwt.h - JWT (JWS compact serialization) verification against a JWKS. Pure: no I/O.
 *
 * Only RS256 (RSA keys) and ES256 (EC P-256 keys) are accepted. The header's "alg" is checked
 * against an allowlist before any key is looked up ("none", HS256/384/512 and everything else
 * are refused), and the key found by "kid" must be of the type the algorithm needs, so a
 * public key can never be used as an HMAC secret (algorithm confusion). All cryptography and
 * base64 decoding is OpenSSL's; JSON is jansson's.
 */
#ifndef DM_ADAPTERS_DM_JWT_H
#define DM_ADAPTERS_DM_JWT_H

#include "dm_event.h"

#include <jansson.h>

/** Most keys a JWKS document may list (a larger one is refused as malformed). */
#define DM_JWKS_MAX_KEYS 100

/** A set of verification keys (from one or more JWKS documents). Immutable once built. */
typedef struct dm_jwks dm_jwks;

/**
 * Parse a JWKS document ({"keys": [...]}) of @p len bytes. RSA keys ("kty":"RSA", "n", "e")
 * and EC P-256 keys ("kty":"EC", "crv":"P-256", "x", "y") with a "kid" are kept; keys with
 * "use" other than "sig", other key types, curves or an "alg" we do not accept are skipped
 * (not an error). Returns DM_OK and a new set (possibly empty: check dm_jwks_count), or
 * DM_EINVAL with @p err filled for a malformed document.
 */
int dm_jwks_parse(const char *json, size_t len, dm_jwks **out, dm_error *err);

/** Number of usable keys. */
size_t dm_jwks_count(const dm_jwks *keys);

/** True if a key with this kid is in the set. */
bool dm_jwks_has_kid(const dm_jwks *keys, const char *kid);

/** Free the set. NULL is fine. */
void dm_jwks_free(dm_jwks *keys);

/** What a token must satisfy besides its signature. */
typedef struct dm_jwt_policy {
    const char *const *issuers; /**< accepted "iss" values (exact match); n >= 1 */
    size_t nissuers;
    const char *audience; /**< required: "aud" equals it, or is an array containing it */
    int64_t now_s;        /**< current time, seconds since the epoch */
    int64_t leeway_s;     /**< allowed clock difference for exp / nbf / iat (60) */
} dm_jwt_policy;

typedef enum {
    DM_JWT_OK = 0,
    DM_JWT_MALFORMED,   /**< not three base64url parts, bad JSON, missing/ill-typed claims */
    DM_JWT_BAD_ALG,     /**< alg missing, "none", HS*, or not allowed for the key */
    DM_JWT_UNKNOWN_KID, /**< no key with the header's kid (callers may refresh the JWKS) */
    DM_JWT_BAD_SIGNATURE,
    DM_JWT_BAD_ISSUER,
    DM_JWT_BAD_AUDIENCE,
    DM_JWT_EXPIRED,       /**< exp + leeway <= now, or exp missing */
    DM_JWT_NOT_YET_VALID, /**< nbf or iat later than now + leeway */
} dm_jwt_status;

/** Short constant description for log lines. */
const char *dm_jwt_status_str(dm_jwt_status s);

/** Largest kid reported back through @p kid. */
#define DM_JWT_KID_BUFLEN 128

/**
 * Verify @p token (@p len bytes, the part after "Bearer "). On DM_JWT_OK, *claims is a new
 * jansson reference to the payload object (the caller json_decref's it). @p kid (may be NULL)
 * receives the header's kid when one was parsed, for DM_JWT_UNKNOWN_KID handling and logs.
 */
dm_jwt_status dm_jwt_verify(const char *token, size_t len, const dm_jwks *keys,
                            const dm_jwt_policy *policy, json_t **claims,
                            char kid[DM_JWT_KID_BUFLEN]);

/** Room for the replay text of a numeric jti (dm_jwt_jti_text). */
#define DM_JWT_JTI_NUMBER_BUFLEN 40

/**
 * The text a token's "jti" claim @p jti (borrowed from its claims) is remembered by for replay
 * checks: a string is its own bytes; a number (RFC 7519 says "string", some issuers send
 * numbers) is canonicalized, so every spelling of one value is one text: integers, and reals
 * with an integral value up to 2^53, in decimal ("1e3", "1000.0" and 1000 are "1000"), other
 * reals as "%.17g"; it is preceded by a NUL byte, which no jansson string holds, so a number
 * is never taken for a string. Sets *@p text (into @p jti or @p buf) and *@p len and returns
 * true; false for any other type (NULL included).
 */
bool dm_jwt_jti_text(const json_t *jti, char buf[DM_JWT_JTI_NUMBER_BUFLEN], const char **text,
                     size_t *len);

#endif
