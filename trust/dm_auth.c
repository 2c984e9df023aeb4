/* dm_auth.c - request authentication: shared header values, HMAC-SHA256 body signatures,
 * OIDC bearer tokens and signed SNS envelopes.
 *
 * Every comparison of a received credential with a secret is constant-time in the content
 * and, for header values, in the length too: both sides are hashed first (a configured secret
 * once, when its dm_trust is built) and the digests compared, so the time taken tells nothing about how many leading bytes matched or how
 * long the secret is.
 */
#include "dm_auth.h"
#include "dm_jwt.h"
#include "dm_keyring.h"
#include "dm_metrics.h"
#include "dm_sns.h"
#include "dm_oidc.h"
#include "dm_time.h"

#include <pthread.h>
#include <stdio.h>
#include <strings.h>

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
    ENTRY_PASS,      /* the credential is valid */
    ENTRY_MISSING,   /* the entry's header is absent: this entry does not apply */
    ENTRY_BAD,       /* the header is present but wrong */
    ENTRY_FORBIDDEN, /* a valid token whose claims the entry does not allow */
    ENTRY_RETRY,     /* cannot decide yet: the signing certificate is being fetched */
} entry_result;

/* SHA-256 fetched once: the one-shot SHA256() looks the algorithm up in the providers on every
 * call, which cost more than the hashing itself. Each thread hashes with a context of its own,
 * made on its first hash and freed when the thread ends: EVP_Digest would allocate and free a
 * context (and the algorithm's state) for every request (docs/hot-path.md). */
static EVP_MD *sha256_md;
static pthread_key_t sha256_ctx_key;
static bool sha256_ctx_keyed;

static void free_sha256_ctx(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void fetch_sha256(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    sha256_ctx_keyed = pthread_key_create(&sha256_ctx_key, free_sha256_ctx) == 0;
}

static EVP_MD_CTX *thread_sha256_ctx(void)
{
    if (!sha256_ctx_keyed)
        return NULL;
    EVP_MD_CTX *ctx = pthread_getspecific(sha256_ctx_key);
    if (!ctx) {
        ctx = EVP_MD_CTX_new();
        if (ctx && pthread_setspecific(sha256_ctx_key, ctx) != 0) {
            EVP_MD_CTX_free(ctx);
            ctx = NULL;
        }
    }
    return ctx;
}

static void sha256(const void *data, size_t len, unsigned char out[SHA256_DIGEST_LENGTH])
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, fetch_sha256);
    EVP_MD_CTX *ctx = sha256_md ? thread_sha256_ctx() : NULL;
    if (!ctx || !EVP_DigestInit_ex2(ctx, sha256_md, NULL) || !EVP_DigestUpdate(ctx, data, len) ||
        !EVP_DigestFinal_ex(ctx, out, NULL))
        SHA256(data, len, out);
}

static entry_result check_header(const dm_auth_entry *e, const unsigned char *secret_sha256,
                                 const char *value, const char **reason)
{
    unsigned char want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];

    if (secret_sha256)
        memcpy(want, secret_sha256, sizeof want);
    else
        sha256(e->secret, e->secret_len, want);
    sha256(value, strlen(value), got);
    int diff = CRYPTO_memcmp(want, got, sizeof(want));
    OPENSSL_cleanse(want, sizeof(want));
    if (diff != 0) {
        *reason = "header value mismatch";
        return ENTRY_BAD;
    }
    return ENTRY_PASS;
}

static entry_result check_hmac(const dm_auth_entry *e, const char *value, const unsigned char *body,
                               size_t len, const char **reason)
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

/* "Bearer <token>" (scheme case-insensitive, RFC 6750) → the token, or NULL. */
static const char *bearer_token(const char *value)
{
    if (strncasecmp(value, "Bearer ", 7) != 0)
        return NULL;
    value += 7;
    while (*value == ' ')
        value++;
    return *value ? value : NULL;
}

#define OIDC_MAX_LIFETIME_S 86400

static entry_result check_oidc(const dm_auth_entry *e, dm_keyring *keyring, const char *value,
                               int64_t now_s, dm_auth_outcome *out, const char **reason)
{
    const char *token = bearer_token(value);
    if (!token) {
        *reason = "not a bearer token";
        return ENTRY_BAD;
    }
    dm_jwt_policy pol = {
        .issuers = (const char *const *)e->issuers,
        .nissuers = e->nissuers,
        .audience = e->audience,
        .now_s = now_s,
        .leeway_s = 60,
    };
    json_t *claims = NULL;
    /* The reference keeps the set alive while a refresh may swap in another one. */
    dm_keyset *ks = keyring ? dm_keyring_acquire(keyring) : NULL;
    dm_jwt_status st =
        dm_jwt_verify(token, strlen(token), dm_keyset_jwks(ks), &pol, &claims, out->kid);
    dm_keyset_release(ks);
    /* The issuer may have rotated its keys: ask for a refetch (rate-limited, a no-op without
     * jwks_url) and answer this request now; a later one will find the new key. */
    if (st == DM_JWT_UNKNOWN_KID && keyring)
        dm_keyring_request_refresh(keyring, dm_mono_ms());
    if (st != DM_JWT_OK) {
        *reason = dm_jwt_status_str(st);
        return ENTRY_BAD;
    }
    /* CI and Pub/Sub tokens live minutes to an hour; a day-long one is not what we expect,
     * and its replay marker could not outlive it. */
    if (json_number_value(json_object_get(claims, "exp")) > (double)now_s + OIDC_MAX_LIFETIME_S) {
        json_decref(claims);
        *reason = "token lifetime too long";
        return ENTRY_BAD;
    }
    /* The replay check remembers a string or a number (dm_jwt_jti_text); anything else could
     * not be remembered, so the token could be replayed: refuse it. */
    const json_t *jti = json_object_get(claims, "jti");
    if (jti && !json_is_string(jti) && !json_is_number(jti)) {
        json_decref(claims);
        *reason = "jti is not a string or a number";
        return ENTRY_BAD;
    }
    const char *why = NULL, *problem = NULL;
    if (e->claims && !dm_oidc_allowed(claims, e->claims, &why, &problem)) {
        snprintf(out->forbidden_claim, sizeof out->forbidden_claim, "%s", why ? why : "?");
        out->forbidden_problem = problem;
        json_decref(claims);
        *reason = "claims not allowed";
        return ENTRY_FORBIDDEN;
    }
    json_decref(out->claims);
    out->claims = claims;
    return ENTRY_PASS;
}

static void dispose_sns(dm_auth_outcome *out)
{
    if (out->sns) {
        dm_sns_message_dispose(out->sns);
        free(out->sns);
        out->sns = NULL;
        out->sns_cache = NULL;
    }
}

/* No certificate for a valid SigningCertURL: with fetch_certs (and a topic we serve, so that
 * only plausible messages cause fetches), ask for one and have the sender retry. */
static entry_result sns_missing_cert(const dm_auth_entry *e, dm_sns_cache *cache,
                                     const dm_sns_message *m, bool topic_ok, dm_auth_outcome *out,
                                     const char **reason)
{
    if (!e->fetch_certs || !cache) {
        *reason = "unknown SNS signing certificate (add it to \"certs\")";
        snprintf(out->detail, sizeof out->detail, "%.150s", m->signing_cert_url);
        return ENTRY_BAD;
    }
    if (!topic_ok) {
        /* Unverifiable, and refused 403 once verified anyway: not worth a fetch. */
        *reason = "unknown SNS signing certificate (topic not allowed: not fetched)";
        snprintf(out->detail, sizeof out->detail, "%.150s", m->signing_cert_url);
        return ENTRY_BAD;
    }
    /* Only AWS's own form is fetched: a sender that knows a listed topic could otherwise make
     * us GET any path and query of the SNS host (dm_sns_cert_url_canonical). */
    if (!dm_sns_cert_url_canonical(m->signing_cert_url)) {
        dm_metrics_inc(DM_M_SNS_FETCH_REFUSED);
        *reason = "SigningCertURL is not of the form https://sns.<region>.amazonaws.com/"
                  "SimpleNotificationService-<hex>.pem: not fetched";
        snprintf(out->detail, sizeof out->detail, "%.150s", m->signing_cert_url);
        return ENTRY_BAD;
    }
    char why[100];
    switch (dm_sns_cache_want(cache, m->signing_cert_url, dm_mono_ms(), why, sizeof why)) {
    case DM_SNS_FETCH_LIMITED:
        dm_metrics_inc(DM_M_SNS_FETCH_REFUSED);
        *reason = "SNS signing certificate not cached: fetches from this host are rate-limited";
        snprintf(out->detail, sizeof out->detail, "%.150s (%s)", m->signing_cert_url, why);
        return ENTRY_RETRY;
    case DM_SNS_FETCH_REQUESTED:
        *reason = "SNS signing certificate not cached: fetch requested";
        break;
    case DM_SNS_FETCH_PENDING:
        *reason = "SNS signing certificate not cached: fetch in progress";
        break;
    case DM_SNS_FETCH_FAILED:
        *reason = "SNS signing certificate fetch failed: retried later";
        snprintf(out->detail, sizeof out->detail, "%.150s (last fetch: %s)", m->signing_cert_url,
                 why);
        return ENTRY_RETRY;
    case DM_SNS_FETCH_BUSY:
    default:
        *reason = "SNS signing certificate not cached: too many fetches pending";
        break;
    }
    snprintf(out->detail, sizeof out->detail, "%.150s", m->signing_cert_url);
    return ENTRY_RETRY;
}

/* An SNS envelope: parsed, from an expected topic, signed with a certificate we were given or
 * fetched. */
#define SNS_MAX_AGE_MS    (2 * 3600 * 1000)
#define SNS_MAX_FUTURE_MS (5 * 60 * 1000)

/* "https://sns.<region>.amazonaws.com…" must serve the topic's region
 * ("arn:aws[-cn]:sns:<region>:…"): a certificate URL of any other region is never trusted or
 * fetched, which also bounds what an unauthenticated sender can make us fetch. */
static bool same_region(const dm_sns_message *m)
{
    const char *host = m->signing_cert_url + strlen("https://sns.");
    const char *dot = strchr(host, '.');
    const char *arn = m->topic_arn;
    for (int i = 0; i < 3 && arn; i++) { /* skip "arn", partition, "sns" */
        arn = strchr(arn, ':');
        if (arn)
            arn++;
    }
    const char *end = arn ? strchr(arn, ':') : NULL;
    return dot && end && (size_t)(dot - host) == (size_t)(end - arn) &&
           strncasecmp(host, arn, (size_t)(end - arn)) == 0;
}

static entry_result check_sns(const dm_auth_entry *e, dm_sns_cache *cache,
                              const unsigned char *body, size_t len, int64_t now_s,
                              dm_auth_outcome *out, const char **reason)
{
    dm_sns_message *m = dm_xcalloc(1, sizeof *m);
    dm_error err = {0};
    dm_sns_pem *fetched = NULL;
    entry_result r = ENTRY_BAD;
    if (dm_sns_parse((const char *)body, len, m, &err) != DM_OK) {
        *reason = "malformed SNS envelope";
        snprintf(out->detail, sizeof out->detail, "%s: %s", err.field, err.text);
        goto done;
    }
    bool topic_ok = false;
    for (size_t i = 0; i < e->ntopic_arns && !topic_ok; i++)
        topic_ok = strcmp(m->topic_arn, e->topic_arns[i]) == 0;
    if (!dm_sns_url_ok(m->signing_cert_url, true) || !same_region(m)) {
        *reason = "SigningCertURL is not an SNS certificate URL of the topic's region";
        snprintf(out->detail, sizeof out->detail, "%.150s", m->signing_cert_url);
        goto done;
    }
    const char *pem = NULL;
    size_t pem_len = 0;
    for (size_t i = 0; i < e->ncerts && !pem; i++)
        if (strcmp(m->signing_cert_url, e->certs[i].url) == 0) {
            pem = e->certs[i].pem;
            pem_len = e->certs[i].pem_len;
        }
    if (!pem && e->fetch_certs && cache &&
        (fetched = dm_sns_cache_get(cache, m->signing_cert_url, dm_mono_ms())))
        pem = dm_sns_pem_data(fetched, &pem_len);
    if (!pem) {
        r = sns_missing_cert(e, cache, m, topic_ok, out, reason);
        goto done;
    }
    if (dm_sns_verify(m, pem, pem_len, &err) != DM_OK) {
        *reason = "SNS signature mismatch";
        snprintf(out->detail, sizeof out->detail, "%s", err.text);
        goto done;
    }
    /* A signed envelope stays valid forever; refuse old ones so a captured message (or a
     * subscription confirmation after an unsubscribe) cannot be replayed later. SNS stops
     * retrying a delivery within an hour. */
    int64_t ts_ms = 0;
    int64_t now_ms = now_s * 1000;
    if (dm_time_parse_rfc3339(m->timestamp, strlen(m->timestamp), &ts_ms) != DM_OK ||
        ts_ms < now_ms - SNS_MAX_AGE_MS || ts_ms > now_ms + SNS_MAX_FUTURE_MS) {
        *reason = "SNS message too old or from the future (Timestamp)";
        snprintf(out->detail, sizeof out->detail, "%.64s", m->timestamp);
        goto done;
    }
    /* Signed by AWS, but for a topic we do not serve: valid credentials, not allowed. */
    if (!topic_ok) {
        *reason = "SNS topic not allowed";
        snprintf(out->forbidden_claim, sizeof out->forbidden_claim, "TopicArn");
        snprintf(out->detail, sizeof out->detail, "%.150s", m->topic_arn);
        r = ENTRY_FORBIDDEN;
        goto done;
    }
    dm_sns_pem_release(fetched);
    dispose_sns(out);
    out->sns = m;
    out->sns_cache = cache;
    return ENTRY_PASS;
done:
    dm_sns_pem_release(fetched);
    dm_sns_message_dispose(m);
    free(m);
    return r;
}

void dm_auth_verify(const dm_trust *trust, const dm_auth_list *list, dm_header_fn get_header,
                    void *ctx, const unsigned char *body, size_t len, int64_t now_s,
                    dm_auth_outcome *out)
{
    const char *bad_reason = NULL, *retry_reason = NULL;
    bool forbidden = false, retry = false;
    memset(out, 0, sizeof *out);
    if (!list || list->n == 0) {
        out->result = DM_AUTH_MISSING;
        out->reason = "no auth entries configured";
        return;
    }
    for (size_t i = 0; i < list->n; i++) {
        const dm_auth_entry *e = &list->v[i];
        const char *why = NULL;
        entry_result r;
        if (e->type == DM_AUTH_NONE) {
            out->result = DM_AUTH_OK;
            out->reason = "ok";
            out->entry = e;
            return;
        }
        const char *value = get_header(ctx, e->name);
        if (!value)
            continue;
        if (e->type == DM_AUTH_HEADER) {
            r = check_header(e, dm_trust_header_digest(trust, e), value, &why);
        } else if (e->type == DM_AUTH_HMAC) {
            r = check_hmac(e, value, body, len, &why);
        } else if (e->type == DM_AUTH_OIDC) {
            const dm_trust_entry *te = dm_trust_find(trust, e);
            r = check_oidc(e, te ? te->keyring : NULL, value, now_s, out, &why);
        } else if (e->type == DM_AUTH_SNS) {
            const dm_trust_entry *te = dm_trust_find(trust, e);
            r = check_sns(e, te ? te->sns_cache : NULL, body, len, now_s, out, &why);
        } else {
            r = ENTRY_BAD; /* fail closed on a corrupt list */
            why = "unknown auth type";
        }
        if (r == ENTRY_PASS) {
            out->result = DM_AUTH_OK;
            out->reason = "ok";
            out->entry = e;
            return;
        }
        /* A certificate being fetched outranks everything else: a retry may pass. A valid
         * token whose claims are refused outranks a wrong credential: it is the precise
         * answer (403) for that sender. Otherwise report the first wrong one. */
        if (r == ENTRY_RETRY) {
            if (!retry) {
                retry = true;
                retry_reason = why;
            }
        } else if (r == ENTRY_FORBIDDEN && !forbidden) {
            forbidden = true;
            bad_reason = why;
        } else if (!bad_reason) {
            bad_reason = why;
        }
    }
    if (retry) {
        out->result = DM_AUTH_UNAVAILABLE;
        out->reason = retry_reason;
    } else if (forbidden) {
        out->result = DM_AUTH_FORBIDDEN;
        out->reason = bad_reason;
    } else if (bad_reason) {
        out->result = DM_AUTH_BAD;
        out->reason = bad_reason;
    } else {
        out->result = DM_AUTH_MISSING;
        out->reason = "no credentials";
    }
}

void dm_auth_outcome_dispose(dm_auth_outcome *out)
{
    json_decref(out->claims);
    out->claims = NULL;
    dispose_sns(out);
}

dm_auth_result dm_auth_check(const dm_trust *trust, const dm_auth_list *list,
                             dm_header_fn get_header, void *ctx, const unsigned char *body,
                             size_t len, const char **reason)
{
    dm_auth_outcome o;
    dm_auth_verify(trust, list, get_header, ctx, body, len, dm_now_ms() / 1000, &o);
    if (reason)
        *reason = o.reason;
    dm_auth_outcome_dispose(&o);
    return o.result;
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
