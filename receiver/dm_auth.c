/* dm_auth.c - request authentication: shared header values and HMAC-SHA256 body signatures.
 *
 * Every comparison of a received credential with a secret is constant-time in the content
 * and, for header values, in the length too: both sides are hashed first and the digests
 * compared, so the time taken tells nothing about how many leading bytes matched or how
 * long the secret is.
 */
#include "dm_auth.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#define SIG_PREFIX     "sha256="
#define SIG_PREFIX_LEN (sizeof(SIG_PREFIX) - 1)
#define SIG_HEX_LEN    (2 * SHA256_DIGEST_LENGTH)

/* What one entry concluded about the request. */
typedef enum {
    ENTRY_PASS,    /* the credential is valid */
    ENTRY_MISSING, /* the entry's header is absent: this entry does not apply */
    ENTRY_BAD,     /* the header is present but wrong */
} entry_result;

static entry_result check_header(const dm_auth_entry *e, const char *value, const char **reason)
{
    unsigned char want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];

    SHA256(e->secret, e->secret_len, want);
    SHA256((const unsigned char *)value, strlen(value), got);
    int diff = CRYPTO_memcmp(want, got, sizeof(want));
    OPENSSL_cleanse(want, sizeof(want));
    if (diff != 0) {
        *reason = "header value mismatch";
        return ENTRY_BAD;
    }
    return ENTRY_PASS;
}

static entry_result check_hmac(const dm_auth_entry *e, const char *value,
                               const unsigned char *body, size_t len, const char **reason)
{
    unsigned char got[SHA256_DIGEST_LENGTH], want[EVP_MAX_MD_SIZE];
    unsigned int want_len = 0;
    size_t got_len = 0;
    static const unsigned char empty[1];

    /* Check the shape before decoding: OPENSSL_hexstr2buf_ex alone would also accept
     * shorter input that happens to fit the buffer. */
    if (strlen(value) != SIG_PREFIX_LEN + SIG_HEX_LEN ||
        memcmp(value, SIG_PREFIX, SIG_PREFIX_LEN) != 0 ||
        OPENSSL_hexstr2buf_ex(got, sizeof(got), &got_len, value + SIG_PREFIX_LEN, '\0') != 1 ||
        got_len != sizeof(got)) {
        *reason = "malformed signature header";
        return ENTRY_BAD;
    }
    if (!HMAC(EVP_sha256(), e->secret, (int)e->secret_len, body ? body : empty, len, want,
              &want_len) ||
        want_len != SHA256_DIGEST_LENGTH) {
        /* Fail closed: a request we cannot verify is not authenticated. */
        *reason = "signature computation failed";
        return ENTRY_BAD;
    }
    int diff = CRYPTO_memcmp(want, got, SHA256_DIGEST_LENGTH);
    OPENSSL_cleanse(want, sizeof(want));
    if (diff != 0) {
        *reason = "signature mismatch";
        return ENTRY_BAD;
    }
    return ENTRY_PASS;
}

dm_auth_result dm_auth_check(const dm_auth_list *list, dm_header_fn get_header, void *ctx,
                             const unsigned char *body, size_t len, const char **reason)
{
    const char *unused, *bad_reason = NULL;

    if (!reason)
        reason = &unused;
    if (!list || list->n == 0) {
        *reason = "no auth entries configured";
        return DM_AUTH_MISSING;
    }
    for (size_t i = 0; i < list->n; i++) {
        const dm_auth_entry *e = &list->v[i];
        const char *why = NULL;
        entry_result r;

        if (e->type == DM_AUTH_NONE) {
            *reason = "ok";
            return DM_AUTH_OK;
        }
        const char *value = get_header(ctx, e->name);
        if (!value)
            continue;
        if (e->type == DM_AUTH_HEADER) {
            r = check_header(e, value, &why);
        } else if (e->type == DM_AUTH_HMAC) {
            r = check_hmac(e, value, body, len, &why);
        } else {
            r = ENTRY_BAD; /* fail closed on a corrupt list */
            why = "unknown auth type";
        }
        if (r == ENTRY_PASS) {
            *reason = "ok";
            return DM_AUTH_OK;
        }
        /* Report the first present-but-wrong credential: it is what the sender meant. */
        if (!bad_reason)
            bad_reason = why;
    }
    if (bad_reason) {
        *reason = bad_reason;
        return DM_AUTH_BAD;
    }
    *reason = "no credentials";
    return DM_AUTH_MISSING;
}

bool dm_auth_allows_anonymous(const dm_auth_list *list)
{
    if (!list)
        return false;
    for (size_t i = 0; i < list->n; i++)
        if (list->v[i].type == DM_AUTH_NONE)
            return true;
    return false;
}
