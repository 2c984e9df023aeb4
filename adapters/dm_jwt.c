/* dm_jwt.c - JWS compact tokens (RS256, ES256) verified against a JWKS (the "oidc" auth entry,
 * configs/README.md).
 *
 * Everything cryptographic (base64, bignums, keys, signatures) is OpenSSL 3's non-deprecated
 * API; JSON is jansson's. The order of checks is part of the contract: structure, then "alg"
 * against the allowlist, then the key, then the signature, and only then the claims, so
 * nothing in an unverified payload is ever interpreted.
 */
#include "dm_jwt.h"

#include "dm_base64.h"
#include "dm_json.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <inttypes.h> /* JSON_INTEGER_FORMAT may be PRId64 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A bearer token travels in one HTTP header; real ones are 1-2 KiB. */
#define JWT_MAX_LEN     16384
/* Longest base64url text decoded anywhere (token parts are bounded by JWT_MAX_LEN, JWK
 * members by the key sizes below). */
#define B64_MAX_LEN     JWT_MAX_LEN
#define RSA_MIN_BITS    2048
/* Verification cost grows with the modulus; nobody signs tokens with more than this. */
#define RSA_MAX_BITS    8192
/* JWK "e": 65537 in practice; a few bytes keeps verification cheap. */
#define RSA_MAX_E_BYTES 8
#define P256_COORD_LEN  32

/* ------------------------------------------------------------------------------------------ */
/* Types                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* The algorithms we accept. A key is bound to exactly one of them when it is parsed. */
typedef enum {
    ALG_RS256 = 1, /* RSASSA-PKCS1-v1_5 with SHA-256, RSA key >= 2048 bits */
    ALG_ES256,     /* ECDSA P-256 with SHA-256, raw r||s signature */
} jwt_alg;

typedef struct jwk {
    char *kid;
    jwt_alg alg;
    EVP_PKEY *pkey;
} jwk;

struct dm_jwks {
    jwk *v;
    size_t n;
};

/* ------------------------------------------------------------------------------------------ */
/* base64url (RFC 4648 §5, unpadded as RFC 7515 §2 requires)                                  */
/* ------------------------------------------------------------------------------------------ */

/*
 * Decode @p len bytes of unpadded base64url into a new buffer (*out, freed by the caller;
 * never NULL on success, even for 0 bytes). Refuses characters outside the alphabet (so
 * '=', whitespace and standard-alphabet '+' '/' too), impossible lengths, and non-canonical
 * encodings: a token has exactly one spelling, so a signature cannot be re-spelled to slip
 * past a cache keyed by the token text.
 */
static bool b64url_decode(const char *in, size_t len, unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (len > B64_MAX_LEN)
        return false;
    return dm_base64_decode(in, len, DM_BASE64_URL | DM_BASE64_CANONICAL, out, outlen);
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* jansson strings may hold "\u0000" only with JSON_ALLOW_NUL (which we never pass), but the
 * comparison is still done on lengths so no embedded byte can shorten a value. */
static bool jstr_equal(const json_t *v, const char *s)
{
    if (!json_is_string(v) || !s)
        return false;
    size_t n = strlen(s);
    return json_string_length(v) == n && memcmp(json_string_value(v), s, n) == 0;
}

/* A decoded part as a JSON object, or NULL. */
static json_t *load_object(const unsigned char *p, size_t n)
{
    json_t *j;
    return dm_json_load_object((const char *)p, n, &j, NULL) == DM_OK ? j : NULL;
}

/* Optional string member: true with *s NULL when absent, false when present but not a
 * string. */
static bool opt_string(const json_t *obj, const char *key, const char **s)
{
    const json_t *v = json_object_get(obj, key);
    *s = NULL;
    if (!v)
        return true;
    if (!json_is_string(v))
        return false;
    *s = json_string_value(v);
    return true;
}

static bool parse_alg(const json_t *v, jwt_alg *alg)
{
    /* Exact, case-sensitive match against the allowlist: "none", "None", "HS256", "RS384",
     * "PS256" … all fall through to false. */
    if (jstr_equal(v, "RS256")) {
        *alg = ALG_RS256;
        return true;
    }
    if (jstr_equal(v, "ES256")) {
        *alg = ALG_ES256;
        return true;
    }
    return false;
}

static const jwk *find_key(const dm_jwks *keys, const char *kid)
{
    if (!keys || !kid)
        return NULL;
    for (size_t i = 0; i < keys->n; i++) {
        if (strcmp(keys->v[i].kid, kid) == 0)
            return &keys->v[i];
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* JWK → EVP_PKEY                                                                             */
/* ------------------------------------------------------------------------------------------ */

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

/* Decode base64url member @p key of @p obj into a BIGNUM (big-endian, unsigned). */
static BIGNUM *b64url_bn(const json_t *obj, const char *key, size_t max_bytes)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v) || json_string_length(v) == 0)
        return NULL;
    unsigned char *bin;
    size_t n;
    if (!b64url_decode(json_string_value(v), json_string_length(v), &bin, &n))
        return NULL;
    BIGNUM *bn = n <= max_bytes ? BN_bin2bn(bin, (int)n, NULL) : NULL;
    free(bin);
    return bn;
}

static EVP_PKEY *rsa_key(const json_t *k)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    /* Leading zero octets are not allowed by RFC 7518 but harmless; the size check below is
     * on the value. */
    BIGNUM *n = b64url_bn(k, "n", RSA_MAX_BITS / 8 + 1);
    BIGNUM *e = b64url_bn(k, "e", RSA_MAX_E_BYTES);
    if (!n || !e)
        goto done;
    int bits = BN_num_bits(n);
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS || !BN_is_odd(n))
        goto done;
    /* e = 1 would make every "signature" its own message; even e is not RSA. */
    if (!BN_is_odd(e) || BN_num_bits(e) < 2)
        goto done;
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        goto done;
    pkey = pkey_fromdata("RSA", bld);
done:
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

static bool b64url_fixed(const json_t *obj, const char *key, unsigned char *dst, size_t want)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        return false;
    unsigned char *bin;
    size_t n;
    if (!b64url_decode(json_string_value(v), json_string_length(v), &bin, &n))
        return false;
    bool ok = n == want;
    if (ok)
        memcpy(dst, bin, n);
    free(bin);
    return ok;
}

static EVP_PKEY *ec_p256_key(const json_t *k)
{
    /* SEC 1 uncompressed point: 0x04 || x || y, each coordinate exactly 32 bytes (RFC 7518
     * §6.2.1.2 forbids shortened coordinates). */
    unsigned char point[1 + 2 * P256_COORD_LEN];
    point[0] = 0x04;
    if (!b64url_fixed(k, "x", point + 1, P256_COORD_LEN) ||
        !b64url_fixed(k, "y", point + 1 + P256_COORD_LEN, P256_COORD_LEN))
        return NULL;

    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point))
        pkey = pkey_fromdata("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    if (!pkey)
        return NULL;

    /* Import already refuses points off the curve; the full public-key check also refuses
     * the point at infinity and points outside the prime-order subgroup. */
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    bool valid = ctx && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!valid) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey;
}

/* True when "key_ops", if present, allows verification (RFC 7517 §4.3). */
static bool key_ops_allow_verify(const json_t *k)
{
    const json_t *ops = json_object_get(k, "key_ops");
    if (!ops)
        return true;
    if (!json_is_array(ops))
        return false;
    size_t i;
    const json_t *op;
    json_array_foreach(ops, i, op)
    {
        if (jstr_equal(op, "verify"))
            return true;
    }
    return false;
}

/* Turn one member of "keys" into a usable key, or return false to skip it. */
static bool parse_jwk(const json_t *k, jwk *out)
{
    if (!json_is_object(k))
        return false;
    const char *kty, *kid, *use, *alg;
    if (!opt_string(k, "kty", &kty) || !kty || !opt_string(k, "kid", &kid) || !kid ||
        !opt_string(k, "use", &use) || !opt_string(k, "alg", &alg))
        return false;
    size_t kid_len = json_string_length(json_object_get(k, "kid"));
    /* A kid that a token could not name (empty, too long, or with a NUL) is useless. */
    if (kid_len == 0 || kid_len >= DM_JWT_KID_BUFLEN || strlen(kid) != kid_len)
        return false;
    if (use && strcmp(use, "sig") != 0)
        return false;
    if (!key_ops_allow_verify(k))
        return false;

    jwt_alg type;
    EVP_PKEY *pkey;
    if (strcmp(kty, "RSA") == 0) {
        if (alg && strcmp(alg, "RS256") != 0)
            return false;
        type = ALG_RS256;
        pkey = rsa_key(k);
    } else if (strcmp(kty, "EC") == 0) {
        const char *crv;
        if (!opt_string(k, "crv", &crv) || !crv || strcmp(crv, "P-256") != 0)
            return false;
        if (alg && strcmp(alg, "ES256") != 0)
            return false;
        type = ALG_ES256;
        pkey = ec_p256_key(k);
    } else {
        return false; /* "oct" (shared secrets) never verifies a token, nor OKP for now */
    }
    if (!pkey)
        return false;
    out->kid = dm_xstrndup(kid, kid_len);
    out->alg = type;
    out->pkey = pkey;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Signatures                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* JWS ES256 signatures are r||s, 32 bytes each (RFC 7518 §3.4); OpenSSL verifies DER. */
static bool es256_to_der(const unsigned char *sig, size_t len, unsigned char **der, size_t *der_len)
{
    *der = NULL;
    if (len != 2 * P256_COORD_LEN)
        return false;
    BIGNUM *r = BN_bin2bn(sig, P256_COORD_LEN, NULL);
    BIGNUM *s = BN_bin2bn(sig + P256_COORD_LEN, P256_COORD_LEN, NULL);
    ECDSA_SIG *es = ECDSA_SIG_new();
    if (!r || !s || !es || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return false;
    }
    /* es owns r and s now. */
    int n = i2d_ECDSA_SIG(es, der);
    ECDSA_SIG_free(es);
    if (n <= 0) {
        OPENSSL_free(*der);
        *der = NULL;
        return false;
    }
    *der_len = (size_t)n;
    return true;
}

static bool verify_signature(const jwk *key, const char *input, size_t input_len,
                             const unsigned char *sig, size_t sig_len)
{
    unsigned char *der = NULL;
    if (key->alg == ALG_ES256) {
        size_t der_len;
        if (!es256_to_der(sig, sig_len, &der, &der_len))
            return false;
        sig = der;
        sig_len = der_len;
    } else if (sig_len != (size_t)EVP_PKEY_get_size(key->pkey)) {
        return false; /* RSASSA-PKCS1-v1_5 signatures are exactly the modulus size */
    }

    bool ok = false;
    EVP_PKEY_CTX *pctx = NULL; /* owned by mdctx */
    EVP_MD_CTX *mdctx = EVP_MD_CTX_new();
    if (mdctx &&
        EVP_DigestVerifyInit_ex(mdctx, &pctx, "SHA256", NULL, NULL, key->pkey, NULL) == 1 &&
        (key->alg != ALG_RS256 || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1))
        ok = EVP_DigestVerify(mdctx, sig, sig_len, (const unsigned char *)input, input_len) == 1;
    EVP_MD_CTX_free(mdctx);
    OPENSSL_free(der);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* Claims                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static bool issuer_allowed(const json_t *iss, const dm_jwt_policy *p)
{
    for (size_t i = 0; p->issuers && i < p->nissuers; i++) {
        if (jstr_equal(iss, p->issuers[i]))
            return true;
    }
    return false;
}

static bool audience_ok(const json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return jstr_equal(aud, want);
    size_t i;
    const json_t *a;
    json_array_foreach(aud, i, a)
    {
        if (jstr_equal(a, want))
            return true;
    }
    return false;
}

/* A NumericDate (RFC 7519 §2): integer or real. Comparisons are done in double, which is
 * exact for every integer a clock will show for the next few million years, and free of
 * overflow for the absurd ones. Returns false when present but not a number. */
static bool numeric_date(const json_t *payload, const char *name, bool *present, double *v)
{
    const json_t *j = json_object_get(payload, name);
    *present = j != NULL;
    *v = 0;
    if (!j)
        return true;
    if (!json_is_number(j))
        return false;
    *v = json_number_value(j);
    return true;
}

static dm_jwt_status check_claims(const json_t *payload, const dm_jwt_policy *p)
{
    if (!issuer_allowed(json_object_get(payload, "iss"), p))
        return DM_JWT_BAD_ISSUER;
    if (!audience_ok(json_object_get(payload, "aud"), p->audience))
        return DM_JWT_BAD_AUDIENCE;

    bool has_exp, has_nbf, has_iat;
    double exp, nbf, iat;
    if (!numeric_date(payload, "exp", &has_exp, &exp) ||
        !numeric_date(payload, "nbf", &has_nbf, &nbf) ||
        !numeric_date(payload, "iat", &has_iat, &iat))
        return DM_JWT_MALFORMED;
    double now = (double)p->now_s, leeway = (double)p->leeway_s;
    if (!has_exp || exp + leeway <= now)
        return DM_JWT_EXPIRED;
    if (has_nbf && nbf - leeway > now)
        return DM_JWT_NOT_YET_VALID;
    if (has_iat && iat - leeway > now)
        return DM_JWT_NOT_YET_VALID;
    return DM_JWT_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Tokens                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* The three decoded parts of a token and where the signed text ends. */
typedef struct jwt_parts {
    unsigned char *header, *payload, *sig;
    size_t header_len, payload_len, sig_len;
    size_t signed_len; /* bytes of "b64header.b64payload" */
} jwt_parts;

static bool split_decode(const char *token, size_t len, jwt_parts *p)
{
    const char *dot1 = memchr(token, '.', len);
    if (!dot1)
        return false;
    const char *rest = dot1 + 1;
    const char *end = token + len;
    const char *dot2 = memchr(rest, '.', (size_t)(end - rest));
    if (!dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
        return false; /* two parts, or four and more (JWE has five) */
    p->signed_len = (size_t)(dot2 - token);
    return b64url_decode(token, (size_t)(dot1 - token), &p->header, &p->header_len) &&
           b64url_decode(rest, (size_t)(dot2 - rest), &p->payload, &p->payload_len) &&
           b64url_decode(dot2 + 1, (size_t)(end - dot2 - 1), &p->sig, &p->sig_len);
}

/* Everything up to the claims; *payload is the parsed, signature-checked payload on OK. */
static dm_jwt_status verify_token(const char *token, size_t len, const dm_jwks *keys, jwt_parts *p,
                                  json_t **header, json_t **payload, char *kid)
{
    if (!token || len == 0 || len > JWT_MAX_LEN || !split_decode(token, len, p))
        return DM_JWT_MALFORMED;
    if (!(*header = load_object(p->header, p->header_len)))
        return DM_JWT_MALFORMED;

    /* The kid is reported even when the token is refused, for the log line. */
    const json_t *jkid = json_object_get(*header, "kid");
    size_t kid_len = json_string_length(jkid);
    bool kid_ok = json_is_string(jkid) && kid_len > 0 && kid_len < DM_JWT_KID_BUFLEN &&
                  strlen(json_string_value(jkid)) == kid_len;
    if (kid_ok && kid)
        memcpy(kid, json_string_value(jkid), kid_len + 1);

    /* The allowlist is decided from the header alone, before any key is looked at. */
    jwt_alg alg;
    if (!parse_alg(json_object_get(*header, "alg"), &alg))
        return DM_JWT_BAD_ALG;
    if (!kid_ok)
        return DM_JWT_MALFORMED;
    /* RFC 7515 §4.1.11: an extension we do not understand must make the token invalid;
     * we understand none (notably not "b64": false). */
    if (json_object_get(*header, "crit"))
        return DM_JWT_MALFORMED;

    const jwk *key = find_key(keys, json_string_value(jkid));
    if (!key)
        return DM_JWT_UNKNOWN_KID;
    /* The key's type decides the verification, never the token: an RSA public key is not
     * an HMAC secret, and an RS256 header cannot borrow an EC key or the other way round. */
    if (key->alg != alg)
        return DM_JWT_BAD_ALG;
    if (!verify_signature(key, token, p->signed_len, p->sig, p->sig_len))
        return DM_JWT_BAD_SIGNATURE;

    if (!(*payload = load_object(p->payload, p->payload_len)))
        return DM_JWT_MALFORMED;
    return DM_JWT_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* API                                                                                        */
/* ------------------------------------------------------------------------------------------ */

int dm_jwks_parse(const char *json, size_t len, dm_jwks **out, dm_error *err)
{
    *out = NULL;
    if (!json || len == 0)
        return dm_error_set(err, "", "JWKS document is empty");
    json_t *root;
    if (dm_json_load_object(json, len, &root, err) != DM_OK)
        return DM_EINVAL;
    const json_t *arr = json_object_get(root, "keys");
    if (!json_is_array(arr)) {
        json_decref(root);
        return dm_error_set(err, "keys", "must be an array");
    }
    /* Issuers publish a handful of keys; a document with hundreds is hostile, and building
     * each key (and the duplicate-kid check) must stay cheap on the event loop. */
    if (json_array_size(arr) > DM_JWKS_MAX_KEYS) {
        json_decref(root);
        return dm_error_set(err, "keys", "must hold at most %d keys", DM_JWKS_MAX_KEYS);
    }

    /* OpenSSL leaves its reasons for refusing a key on the thread's error queue; the keys we
     * skip are not errors, and a stale entry would confuse the next SSL_get_error(). */
    ERR_set_mark();
    dm_jwks *set = dm_xcalloc(1, sizeof *set);
    size_t n = json_array_size(arr);
    set->v = dm_xcalloc(n ? n : 1, sizeof *set->v);
    for (size_t i = 0; i < n; i++) {
        jwk k;
        if (!parse_jwk(json_array_get(arr, i), &k))
            continue;
        if (find_key(set, k.kid)) { /* duplicate kid: the first one wins */
            free(k.kid);
            EVP_PKEY_free(k.pkey);
            continue;
        }
        set->v[set->n++] = k;
    }
    ERR_pop_to_mark();
    json_decref(root);
    *out = set;
    return DM_OK;
}

size_t dm_jwks_count(const dm_jwks *keys)
{
    return keys ? keys->n : 0;
}

bool dm_jwks_has_kid(const dm_jwks *keys, const char *kid)
{
    return find_key(keys, kid) != NULL;
}

void dm_jwks_free(dm_jwks *keys)
{
    if (!keys)
        return;
    for (size_t i = 0; i < keys->n; i++) {
        free(keys->v[i].kid);
        EVP_PKEY_free(keys->v[i].pkey);
    }
    free(keys->v);
    free(keys);
}

const char *dm_jwt_status_str(dm_jwt_status s)
{
    switch (s) {
    case DM_JWT_OK:
        return "ok";
    case DM_JWT_MALFORMED:
        return "malformed token";
    case DM_JWT_BAD_ALG:
        return "algorithm not allowed";
    case DM_JWT_UNKNOWN_KID:
        return "unknown key id";
    case DM_JWT_BAD_SIGNATURE:
        return "bad signature";
    case DM_JWT_BAD_ISSUER:
        return "issuer not allowed";
    case DM_JWT_BAD_AUDIENCE:
        return "audience mismatch";
    case DM_JWT_EXPIRED:
        return "token expired";
    case DM_JWT_NOT_YET_VALID:
        return "token not yet valid";
    }
    return "unknown status";
}

dm_jwt_status dm_jwt_verify(const char *token, size_t len, const dm_jwks *keys,
                            const dm_jwt_policy *policy, json_t **claims,
                            char kid[DM_JWT_KID_BUFLEN])
{
    if (claims)
        *claims = NULL;
    if (kid)
        kid[0] = '\0';
    if (!policy)
        return DM_JWT_MALFORMED; /* fail closed on a caller's mistake */

    jwt_parts parts = {0};
    json_t *header = NULL, *payload = NULL;
    ERR_set_mark(); /* see dm_jwks_parse: refusals must not leave OpenSSL errors behind */
    dm_jwt_status st = verify_token(token, len, keys, &parts, &header, &payload, kid);
    ERR_pop_to_mark();
    if (st == DM_JWT_OK)
        st = check_claims(payload, policy);

    if (st == DM_JWT_OK && claims)
        *claims = payload;
    else
        json_decref(payload);
    json_decref(header);
    free(parts.header);
    free(parts.payload);
    free(parts.sig);
    return st;
}

bool dm_jwt_jti_text(const json_t *jti, char buf[DM_JWT_JTI_NUMBER_BUFLEN], const char **text,
                     size_t *len)
{
    if (json_is_string(jti)) {
        *text = json_string_value(jti);
        *len = json_string_length(jti);
        return true;
    }
    if (!json_is_number(jti))
        return false;
    int n;
    buf[0] = '\0';
    if (json_is_integer(jti)) {
        n = snprintf(buf + 1, DM_JWT_JTI_NUMBER_BUFLEN - 1, "%" JSON_INTEGER_FORMAT,
                     json_integer_value(jti));
    } else {
        double v = json_real_value(jti);
        /* 2^53: every integer up to it is exact in a double, so it prints as the integer. */
        if (v == 0)
            n = snprintf(buf + 1, DM_JWT_JTI_NUMBER_BUFLEN - 1, "0");
        else if (v >= -9007199254740992.0 && v <= 9007199254740992.0 && v == (double)(long long)v)
            n = snprintf(buf + 1, DM_JWT_JTI_NUMBER_BUFLEN - 1, "%lld", (long long)v);
        else
            n = snprintf(buf + 1, DM_JWT_JTI_NUMBER_BUFLEN - 1, "%.17g", v);
    }
    *text = buf;
    *len = (size_t)n + 1;
    return true;
}
