/* test_jwt.c - JWT verification: acceptance, every refusal, and the JWKS parser.
 *
 * Keys are generated at test time and every token is minted here with OpenSSL, so no private
 * key is ever committed and the JWKS under test is exported from the very keys that sign.
 */
#include "dm_common.h"
#include "dm_jwt.h"
#include "dm_test.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#define NOW    1764338400 /* 2025-11-28T14:00:00Z */
#define LEEWAY 60
#define ISS    "https://token.actions.githubusercontent.com"
#define AUD    "digestmap"
#define SUB    "repo:acme/api:ref:refs/heads/main"

static const char *const issuers[] = {"https://accounts.google.com", ISS};

static const dm_jwt_policy policy = {
    .issuers = issuers,
    .nissuers = 2,
    .audience = AUD,
    .now_s = NOW,
    .leeway_s = LEEWAY,
};

/* Made once for the whole group. In the JWKS: rsa as "rsa-1", ec as "ec-1", rsa1024 as
 * "rsa-small" (must be skipped); rsa2 only under other kids and as a duplicate "rsa-1"; ec2
 * under no kid of its own. */
static struct {
    dm_test_keys key;
    char *jwks_json;
    dm_jwks *keys;
} fx;

/*---- encoding helpers ---------------------------------------------------------------------*/

static char *b64url(const unsigned char *p, size_t n)
{
    char *out = dm_xmalloc(4 * ((n + 2) / 3) + 1);
    int m = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    assert_true(m >= 0);
    while (m > 0 && out[m - 1] == '=')
        m--;
    out[m] = '\0';
    for (char *c = out; *c; c++) {
        if (*c == '+')
            *c = '-';
        else if (*c == '/')
            *c = '_';
    }
    return out;
}

static char *b64url_str(const char *s)
{
    return b64url((const unsigned char *)s, strlen(s));
}

static char *dump(json_t *j) /* steals j */
{
    char *s = json_dumps(j, JSON_COMPACT);
    assert_non_null(s);
    json_decref(j);
    return s;
}

static char *bn_param_b64url(const EVP_PKEY *pkey, const char *name)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(pkey, name, &bn), 1);
    unsigned char buf[1024];
    int n = BN_bn2bin(bn, buf);
    assert_true(n > 0 && (size_t)n <= sizeof buf);
    BN_free(bn);
    return b64url(buf, (size_t)n);
}

/*---- JWKs from keys -----------------------------------------------------------------------*/

static json_t *rsa_jwk(const EVP_PKEY *pkey, const char *kid, const char *alg)
{
    char *n = bn_param_b64url(pkey, OSSL_PKEY_PARAM_RSA_N);
    char *e = bn_param_b64url(pkey, OSSL_PKEY_PARAM_RSA_E);
    json_t *k = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "kid", kid, "use", "sig", "n",
                          n, "e", e);
    assert_non_null(k);
    if (alg)
        json_object_set_new(k, "alg", json_string(alg));
    free(n);
    free(e);
    return k;
}

/* x and y from the uncompressed point 0x04||x||y. */
static void ec_xy(const EVP_PKEY *pkey, char **x, char **y)
{
    unsigned char pt[65];
    size_t len = 0;
    assert_int_equal(
        EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &len), 1);
    assert_int_equal(len, 65);
    assert_int_equal(pt[0], 0x04);
    *x = b64url(pt + 1, 32);
    *y = b64url(pt + 33, 32);
}

static json_t *ec_jwk(const EVP_PKEY *pkey, const char *kid, const char *alg)
{
    char *x, *y;
    ec_xy(pkey, &x, &y);
    json_t *k = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "kid", kid, "crv", "P-256", "x",
                          x, "y", y);
    assert_non_null(k);
    if (alg)
        json_object_set_new(k, "alg", json_string(alg));
    free(x);
    free(y);
    return k;
}

static char *jwks_doc(json_t *keys) /* steals keys (an array) */
{
    return dump(json_pack("{s:o}", "keys", keys));
}

static dm_jwks *parse_jwks(const char *doc)
{
    dm_jwks *set = NULL;
    dm_error err = {0};
    int rc = dm_jwks_parse(doc, strlen(doc), &set, &err);
    if (rc != DM_OK)
        fail_msg("dm_jwks_parse: [%s] %s", err.field, err.text);
    assert_non_null(set);
    return set;
}

/*---- minting tokens -----------------------------------------------------------------------*/

/* Signature bytes of @p alg over @p in: RS256 PKCS#1 v1.5, ES256 as JWS raw r||s. */
static unsigned char *sign(EVP_PKEY *key, const char *in, size_t *siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, key, NULL), 1);
    size_t n = 0;
    assert_int_equal(EVP_DigestSign(ctx, NULL, &n, (const unsigned char *)in, strlen(in)), 1);
    unsigned char *sig = dm_xmalloc(n);
    assert_int_equal(EVP_DigestSign(ctx, sig, &n, (const unsigned char *)in, strlen(in)), 1);
    EVP_MD_CTX_free(ctx);
    if (!EVP_PKEY_is_a(key, "EC")) {
        *siglen = n;
        return sig;
    }
    /* OpenSSL produces DER; JWS wants the two 32-byte integers side by side. */
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
    assert_non_null(es);
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    unsigned char *raw = dm_xmalloc(64);
    assert_int_equal(BN_bn2binpad(r, raw, 32), 32);
    assert_int_equal(BN_bn2binpad(s, raw + 32, 32), 32);
    ECDSA_SIG_free(es);
    free(sig);
    *siglen = 64;
    return raw;
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
    char *t = dm_xmalloc(n);
    snprintf(t, n, "%s.%s.%s", a, b, c);
    return t;
}

/* "b64(header).b64(payload).b64(sig)" with raw signature bytes given by the caller. */
static char *assemble(const char *header, const char *payload, const unsigned char *sig,
                      size_t siglen)
{
    char *h = b64url_str(header), *p = b64url_str(payload), *s = b64url(sig, siglen);
    char *t = join3(h, p, s);
    free(h);
    free(p);
    free(s);
    return t;
}

/* Sign "b64(header).b64(payload)" with @p key (JSON texts given verbatim). */
static char *mint_raw(const char *header, const char *payload, EVP_PKEY *key)
{
    char *h = b64url_str(header), *p = b64url_str(payload);
    size_t n = strlen(h) + strlen(p) + 2;
    char *input = dm_xmalloc(n);
    snprintf(input, n, "%s.%s", h, p);
    size_t siglen;
    unsigned char *sig = sign(key, input, &siglen);
    char *s = b64url(sig, siglen);
    char *t = join3(h, p, s);
    free(sig);
    free(s);
    free(input);
    free(h);
    free(p);
    return t;
}

static char *header_json(const char *alg, const char *kid)
{
    return dump(json_pack("{s:s, s:s, s:s}", "alg", alg, "typ", "JWT", "kid", kid));
}

/* The claims of a token every check accepts; tests change or delete members. */
static json_t *good_claims(void)
{
    json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "iss", ISS, "aud", AUD, "sub", SUB,
                          "iat", (json_int_t)NOW - 10, "nbf", (json_int_t)NOW - 10, "exp",
                          (json_int_t)NOW + 300, "repository", "acme/api");
    assert_non_null(c);
    return c;
}

/* Token with header {alg, kid} and @p claims (stolen), signed by @p key. */
static char *mint(const char *alg, const char *kid, json_t *claims, EVP_PKEY *key)
{
    char *h = header_json(alg, kid);
    char *p = dump(claims);
    char *t = mint_raw(h, p, key);
    free(h);
    free(p);
    return t;
}

/*---- verifying ----------------------------------------------------------------------------*/

/* Verify @p token placed so that its last byte is followed by an unreadable page: any read
 * past len faults, even without ASan. */
static dm_jwt_status verify_guarded(const char *token, size_t len, const dm_jwks *keys,
                                    const dm_jwt_policy *pol, json_t **claims,
                                    char kid[DM_JWT_KID_BUFLEN])
{
    char *map;
    size_t maplen;
    char *p = dm_test_guarded_copy(token, len, &map, &maplen);
    dm_jwt_status st = dm_jwt_verify(p, len, keys, pol, claims, kid);
    munmap(map, maplen);
    return st;
}

/* Verify against the group's JWKS and policy; on anything but OK, claims must stay NULL and
 * OpenSSL's error queue must be left as it was found. */
static dm_jwt_status verify_kid(const char *token, char kid[DM_JWT_KID_BUFLEN])
{
    json_t *claims = (json_t *)(uintptr_t)1; /* must be overwritten */
    ERR_clear_error();
    dm_jwt_status st = verify_guarded(token, strlen(token), fx.keys, &policy, &claims, kid);
    assert_int_equal(ERR_peek_error(), 0);
    if (st == DM_JWT_OK) {
        assert_true(json_is_object(claims));
        json_decref(claims);
    } else {
        assert_null(claims);
    }
    return st;
}

static dm_jwt_status verify(const char *token)
{
    char kid[DM_JWT_KID_BUFLEN];
    return verify_kid(token, kid);
}

/* Mint with the group's keys and expect @p want; frees the token. */
static void expect(char *token, dm_jwt_status want)
{
    dm_jwt_status got = verify(token);
    if (got != want)
        fail_msg("got %s, want %s for %s", dm_jwt_status_str(got), dm_jwt_status_str(want), token);
    free(token);
}

static void expect_claims(json_t *claims, dm_jwt_status want)
{
    expect(mint("RS256", "rsa-1", claims, fx.key.rsa), want);
}

/* Good claims with claim @p name set to @p value (stolen), or deleted when @p value is NULL. */
static void expect_claim(const char *name, json_t *value, dm_jwt_status want)
{
    json_t *c = good_claims();
    if (value)
        json_object_set_new(c, name, value);
    else
        json_object_del(c, name);
    expect_claims(c, want);
}

/* A token minted with good claims: its header's alg and kid, the key that signs it (one of
 * fx.key), and the verdict. */
typedef struct mint_case {
    const char *alg, *kid;
    EVP_PKEY *const *key;
    dm_jwt_status want;
} mint_case;

/*---- group setup --------------------------------------------------------------------------*/

static int group_setup(void **state)
{
    (void)state;
    if (!dm_test_keys_make(&fx.key))
        return -1;

    json_t *keys = json_array();
    json_array_append_new(keys, rsa_jwk(fx.key.rsa, "rsa-1", "RS256"));
    json_array_append_new(keys, ec_jwk(fx.key.ec, "ec-1", NULL));
    /* Everything below is skipped by the parser. */
    json_array_append_new(keys, rsa_jwk(fx.key.rsa1024, "rsa-small", "RS256"));
    json_array_append_new(keys, rsa_jwk(fx.key.rsa2, "rsa-1", "RS256")); /* duplicate kid */
    json_t *enc = rsa_jwk(fx.key.rsa2, "rsa-enc", NULL);
    json_object_set_new(enc, "use", json_string("enc"));
    json_array_append_new(keys, enc);
    json_array_append_new(keys, rsa_jwk(fx.key.rsa2, "rsa-384", "RS384"));
    json_array_append_new(keys, ec_jwk(fx.key.ec2, "ec-as-rsa", "RS256"));
    json_array_append_new(
        keys, json_pack("{s:s, s:s, s:s}", "kty", "oct", "kid", "hmac", "k", "c2VjcmV0"));
    fx.jwks_json = jwks_doc(keys);
    fx.keys = parse_jwks(fx.jwks_json);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    dm_jwks_free(fx.keys);
    free(fx.jwks_json);
    dm_test_keys_free(&fx.key);
    return 0;
}

/*---- acceptance ---------------------------------------------------------------------------*/

static void test_rs256_ok(void **state)
{
    (void)state;
    char *t = mint("RS256", "rsa-1", good_claims(), fx.key.rsa);
    json_t *claims = NULL;
    char kid[DM_JWT_KID_BUFLEN];
    assert_int_equal(verify_guarded(t, strlen(t), fx.keys, &policy, &claims, kid), DM_JWT_OK);
    assert_string_equal(kid, "rsa-1");
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), SUB);
    assert_string_equal(json_string_value(json_object_get(claims, "repository")), "acme/api");
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")), NOW + 300);
    json_decref(claims);
    free(t);
}

static void test_es256_ok(void **state)
{
    (void)state;
    json_t *c = good_claims();
    json_object_set_new(c, "aud", json_pack("[s, s]", "https://other.example", AUD));
    char *t = mint("ES256", "ec-1", c, fx.key.ec);
    json_t *claims = NULL;
    char kid[DM_JWT_KID_BUFLEN];
    assert_int_equal(verify_guarded(t, strlen(t), fx.keys, &policy, &claims, kid), DM_JWT_OK);
    assert_string_equal(kid, "ec-1");
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), SUB);
    json_decref(claims);
    free(t);
}

static void test_optional_outputs(void **state)
{
    (void)state;
    /* claims and kid may both be NULL. */
    char *t = mint("RS256", "rsa-1", good_claims(), fx.key.rsa);
    assert_int_equal(dm_jwt_verify(t, strlen(t), fx.keys, &policy, NULL, NULL), DM_JWT_OK);
    free(t);
}

static void test_audience_forms(void **state)
{
    (void)state;
    expect_claim("aud", json_pack("[i, s, s]", 7, "x", AUD), DM_JWT_OK);
    expect_claim("aud", json_pack("[s]", AUD), DM_JWT_OK);
}

static void test_leeway_edges(void **state)
{
    (void)state;
    expect_claim("exp", json_integer(NOW - 59), DM_JWT_OK);
    expect_claim("exp", json_integer(NOW - 60), DM_JWT_EXPIRED);
    expect_claim("nbf", json_integer(NOW + 60), DM_JWT_OK);
    expect_claim("nbf", json_integer(NOW + 61), DM_JWT_NOT_YET_VALID);
    expect_claim("iat", json_integer(NOW + 60), DM_JWT_OK);
    expect_claim("iat", json_integer(NOW + 61), DM_JWT_NOT_YET_VALID);
    /* NumericDate may be a real; nbf and iat are optional. */
    json_t *c = good_claims();
    json_object_set_new(c, "exp", json_real(NOW - 59.5));
    json_object_del(c, "nbf");
    json_object_del(c, "iat");
    expect_claims(c, DM_JWT_OK);
    expect_claim("exp", json_real(NOW - 60.0), DM_JWT_EXPIRED);
}

/*---- refusals: algorithm ------------------------------------------------------------------*/

static void test_alg_none(void **state)
{
    (void)state;
    char *p = dump(good_claims());
    /* Unsigned tokens, with and without a kid, with an empty and a bogus signature. */
    const char *headers[] = {
        "{\"alg\":\"none\",\"kid\":\"rsa-1\"}", "{\"alg\":\"none\"}",
        "{\"alg\":\"None\",\"kid\":\"rsa-1\"}", "{\"alg\":\"NONE\",\"kid\":\"rsa-1\"}",
        "{\"alg\":\"nOnE\",\"kid\":\"ec-1\"}",
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(headers); i++) {
        char kid[DM_JWT_KID_BUFLEN];
        char *t = assemble(headers[i], p, (const unsigned char *)"", 0);
        assert_int_equal(t[strlen(t) - 1], '.'); /* really an empty signature */
        assert_int_equal(verify_kid(t, kid), DM_JWT_BAD_ALG);
        free(t);
        t = assemble(headers[i], p, (const unsigned char *)"sig", 3);
        assert_int_equal(verify(t), DM_JWT_BAD_ALG);
        free(t);
    }
    free(p);
}

static void test_alg_not_allowed(void **state)
{
    (void)state;
    /* Each properly signed by a key of the right type, so only the alg can refuse it. */
    const char *algs[] = {"HS256", "HS384", "HS512", "RS384", "RS512",  "PS256", "PS384",
                          "ES384", "ES512", "EdDSA", "rs256", "RS256 ", ""};
    for (size_t i = 0; i < DM_ARRAY_LEN(algs); i++) {
        expect(mint(algs[i], "rsa-1", good_claims(), fx.key.rsa), DM_JWT_BAD_ALG);
        expect(mint(algs[i], "ec-1", good_claims(), fx.key.ec), DM_JWT_BAD_ALG);
    }
    char *p = dump(good_claims());
    const char *headers[] = {
        "{\"kid\":\"rsa-1\"}",              /* missing */
        "{\"alg\":null,\"kid\":\"rsa-1\"}", /* not a string */
        "{\"alg\":[\"RS256\"],\"kid\":\"rsa-1\"}",
        "{\"alg\":\"RS256\\u0000\",\"kid\":\"rsa-1\"}", /* jansson refuses \u0000: MALFORMED */
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(headers); i++)
        expect(mint_raw(headers[i], p, fx.key.rsa), i < 3 ? DM_JWT_BAD_ALG : DM_JWT_MALFORMED);
    free(p);
}

/* HMAC-SHA256 over the signing input with @p secret as the key: what a library that trusts
 * the header's alg would accept when handed the RSA public key as "the key". */
static char *mint_hs256(const char *kid, const unsigned char *secret, size_t secret_len)
{
    char *h = header_json("HS256", kid), *p = dump(good_claims());
    char *hb = b64url_str(h), *pb = b64url_str(p);
    size_t n = strlen(hb) + strlen(pb) + 2;
    char *input = dm_xmalloc(n);
    snprintf(input, n, "%s.%s", hb, pb);
    unsigned char mac[32];
    size_t maclen = 0;
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, secret_len,
                              (const unsigned char *)input, strlen(input), mac, sizeof mac,
                              &maclen));
    assert_int_equal(maclen, 32);
    char *s = b64url(mac, maclen);
    char *t = join3(hb, pb, s);
    free(s);
    free(input);
    free(hb);
    free(pb);
    free(h);
    free(p);
    return t;
}

static void test_alg_confusion_hs256(void **state)
{
    (void)state;
    /* The RSA public key as PEM … */
    BIO *bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);
    assert_int_equal(PEM_write_bio_PUBKEY(bio, fx.key.rsa), 1);
    char *pem;
    long pem_len = BIO_get_mem_data(bio, &pem);
    assert_true(pem_len > 0);
    expect(mint_hs256("rsa-1", (const unsigned char *)pem, (size_t)pem_len), DM_JWT_BAD_ALG);
    BIO_free(bio);

    /* … as its JWK text, and as the whole JWKS document. */
    char *jwk = dump(rsa_jwk(fx.key.rsa, "rsa-1", "RS256"));
    expect(mint_hs256("rsa-1", (const unsigned char *)jwk, strlen(jwk)), DM_JWT_BAD_ALG);
    free(jwk);
    expect(mint_hs256("rsa-1", (const unsigned char *)fx.jwks_json, strlen(fx.jwks_json)),
           DM_JWT_BAD_ALG);

    /* Even naming the JWKS's "oct" key (which the parser drops) is refused for its alg. */
    expect(mint_hs256("hmac", (const unsigned char *)"secret", 6), DM_JWT_BAD_ALG);
}

/*---- refusals: key and signature ----------------------------------------------------------*/

static void test_unknown_kid(void **state)
{
    (void)state;
    char kid[DM_JWT_KID_BUFLEN];
    char *t = mint("RS256", "nope", good_claims(), fx.key.rsa);
    assert_int_equal(verify_kid(t, kid), DM_JWT_UNKNOWN_KID);
    assert_string_equal(kid, "nope");
    free(t);
}

/* Well-formed tokens with good claims that the header's alg, the kid or the key refuses. */
static void test_key_refusals(void **state)
{
    (void)state;
    static const mint_case cases[] = {
        /* RS256 header naming the EC key (signed with it, or with the RSA key). */
        {"RS256", "ec-1", &fx.key.ec, DM_JWT_BAD_ALG},
        {"RS256", "ec-1", &fx.key.rsa, DM_JWT_BAD_ALG},
        /* ES256 header naming the RSA key. */
        {"ES256", "rsa-1", &fx.key.rsa, DM_JWT_BAD_ALG},
        {"ES256", "rsa-1", &fx.key.ec, DM_JWT_BAD_ALG},
        /* Keys the parser skipped are unknown. */
        {"RS256", "rsa-small", &fx.key.rsa1024, DM_JWT_UNKNOWN_KID},
        {"RS256", "rsa-384", &fx.key.rsa2, DM_JWT_UNKNOWN_KID},
        {"RS256", "rsa-enc", &fx.key.rsa2, DM_JWT_UNKNOWN_KID},
        {"ES256", "ec-as-rsa", &fx.key.ec2, DM_JWT_UNKNOWN_KID},
        /* kid is case-sensitive. */
        {"RS256", "RSA-1", &fx.key.rsa, DM_JWT_UNKNOWN_KID},
        /* rsa2 is also listed as "rsa-1", after the real one: the first entry wins. */
        {"RS256", "rsa-1", &fx.key.rsa2, DM_JWT_BAD_SIGNATURE},
        {"ES256", "ec-1", &fx.key.ec2, DM_JWT_BAD_SIGNATURE},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        const mint_case *c = &cases[i];
        expect(mint(c->alg, c->kid, good_claims(), *c->key), c->want);
    }
}

/* Replace part @p idx (0..2) of @p token with @p part. */
static char *splice(const char *token, int idx, const char *part)
{
    const char *d1 = strchr(token, '.'), *d2 = strchr(d1 + 1, '.');
    char *h = dm_xstrndup(token, (size_t)(d1 - token));
    char *p = dm_xstrndup(d1 + 1, (size_t)(d2 - d1 - 1));
    char *s = dm_xstrdup(d2 + 1);
    char *t = join3(idx == 0 ? part : h, idx == 1 ? part : p, idx == 2 ? part : s);
    free(h);
    free(p);
    free(s);
    return t;
}

static void test_altered_payload(void **state)
{
    (void)state;
    EVP_PKEY *keys[] = {fx.key.rsa, fx.key.ec};
    const char *algs[] = {"RS256", "ES256"}, *kids[] = {"rsa-1", "ec-1"};
    for (size_t i = 0; i < 2; i++) {
        char *t = mint(algs[i], kids[i], good_claims(), keys[i]);
        assert_int_equal(verify(t), DM_JWT_OK);

        json_t *c = good_claims();
        json_object_set_new(c, "repository", json_string("evil/api"));
        char *p = dump(c);
        char *pb = b64url_str(p);
        expect(splice(t, 1, pb), DM_JWT_BAD_SIGNATURE);
        free(pb);
        free(p);

        /* Nothing in the payload is parsed before the signature holds. */
        pb = b64url_str("not json");
        expect(splice(t, 1, pb), DM_JWT_BAD_SIGNATURE);
        free(pb);

        /* Header re-spelled (same meaning, other bytes) is part of the signed input too. */
        char *hb = b64url_str(i == 0 ? "{\"kid\":\"rsa-1\",\"alg\":\"RS256\"}"
                                     : "{\"kid\":\"ec-1\",\"alg\":\"ES256\"}");
        expect(splice(t, 0, hb), DM_JWT_BAD_SIGNATURE);
        free(hb);

        /* One bit of the signature. */
        const char *d2 = strrchr(t, '.');
        char *s = dm_xstrdup(d2 + 1);
        s[5] = s[5] == 'A' ? 'B' : 'A';
        expect(splice(t, 2, s), DM_JWT_BAD_SIGNATURE);
        free(s);
        free(t);
    }
}

static void test_signature_length(void **state)
{
    (void)state;
    char *p = dump(good_claims());
    char *h = header_json("ES256", "ec-1");
    char *good = mint_raw(h, p, fx.key.ec);
    char *sb = dm_xstrdup(strrchr(good, '.') + 1);
    unsigned char *raw;
    size_t rawlen;
    {
        /* decode our own signature back via OpenSSL to get r||s */
        size_t n = strlen(sb);
        char *std = dm_xmalloc(n + 4);
        for (size_t i = 0; i < n; i++)
            std[i] = sb[i] == '-' ? '+' : sb[i] == '_' ? '/' : sb[i];
        size_t pad = (4 - n % 4) % 4;
        memset(std + n, '=', pad);
        raw = dm_xmalloc(n + 4);
        int m = EVP_DecodeBlock(raw, (unsigned char *)std, (int)(n + pad));
        assert_true(m > 0);
        rawlen = (size_t)m - pad;
        assert_int_equal(rawlen, 64);
        free(std);
    }
    /* 63 and 65 bytes, and the DER form OpenSSL itself would produce. */
    expect(assemble(h, p, raw, 63), DM_JWT_BAD_SIGNATURE);
    unsigned char longer[65];
    memcpy(longer, raw, 64);
    longer[64] = 0;
    expect(assemble(h, p, longer, 65), DM_JWT_BAD_SIGNATURE);
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
    unsigned char *der = NULL;
    int derlen = i2d_ECDSA_SIG(es, &der);
    assert_true(derlen > 64);
    expect(assemble(h, p, der, (size_t)derlen), DM_JWT_BAD_SIGNATURE);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    /* r = s = 0 is 64 bytes but never valid. */
    unsigned char zero[64] = {0};
    expect(assemble(h, p, zero, 64), DM_JWT_BAD_SIGNATURE);
    /* Empty signature with a real algorithm. */
    expect(assemble(h, p, zero, 0), DM_JWT_BAD_SIGNATURE);
    free(h);

    /* RS256: a truncated signature, and one padded with a leading zero byte. */
    h = header_json("RS256", "rsa-1");
    expect(assemble(h, p, raw, 64), DM_JWT_BAD_SIGNATURE);
    unsigned char big[257] = {0};
    expect(assemble(h, p, big, 257), DM_JWT_BAD_SIGNATURE);
    expect(assemble(h, p, big, 256), DM_JWT_BAD_SIGNATURE);
    free(h);

    free(raw);
    free(sb);
    free(good);
    free(p);
}

/*---- refusals: claims ---------------------------------------------------------------------*/

static void test_bad_issuer(void **state)
{
    (void)state;
    json_t *values[] = {
        json_string("https://evil.example"),
        json_string(ISS "/"),
        json_string(ISS ".evil.example"),
        json_string("https://TOKEN.actions.githubusercontent.com"),
        json_string(""),
        json_pack("[s]", ISS),
        json_integer(1),
        json_null(),
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(values); i++)
        expect_claim("iss", values[i], DM_JWT_BAD_ISSUER);
    expect_claim("iss", NULL, DM_JWT_BAD_ISSUER);
    /* The second accepted issuer works too. */
    expect_claim("iss", json_string("https://accounts.google.com"), DM_JWT_OK);
    /* iss is checked before aud and time. */
    json_t *c = good_claims();
    json_object_set_new(c, "iss", json_string("https://evil.example"));
    json_object_del(c, "aud");
    json_object_del(c, "exp");
    expect_claims(c, DM_JWT_BAD_ISSUER);
}

static void test_bad_audience(void **state)
{
    (void)state;
    json_t *values[] = {
        json_string("other"),
        json_string(AUD "x"),
        json_string("Digestmap"),
        json_pack("[s, s]", "a", "b"),
        json_array(),
        json_pack("[[s]]", AUD),
        json_integer(0),
        json_pack("{s:s}", "aud", AUD),
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(values); i++)
        expect_claim("aud", values[i], DM_JWT_BAD_AUDIENCE);
    expect_claim("aud", NULL, DM_JWT_BAD_AUDIENCE);
    /* aud before time. */
    json_t *c = good_claims();
    json_object_set_new(c, "aud", json_string("other"));
    json_object_set_new(c, "exp", json_integer(1));
    expect_claims(c, DM_JWT_BAD_AUDIENCE);
}

static void test_time_refusals(void **state)
{
    (void)state;
    expect_claim("exp", json_integer(NOW - 3600), DM_JWT_EXPIRED);
    expect_claim("exp", NULL, DM_JWT_EXPIRED);
    /* Missing exp is refused for itself, not as "exp 0 is long past". */
    json_t *c = good_claims();
    json_object_del(c, "exp");
    char *t = mint("RS256", "rsa-1", c, fx.key.rsa);
    dm_jwt_policy epoch = policy;
    epoch.now_s = 0;
    assert_int_equal(dm_jwt_verify(t, strlen(t), fx.keys, &epoch, NULL, NULL), DM_JWT_EXPIRED);
    free(t);
    expect_claim("nbf", json_integer(NOW + 3600), DM_JWT_NOT_YET_VALID);
    expect_claim("iat", json_integer(NOW + 3600), DM_JWT_NOT_YET_VALID);
    /* Absurd values neither overflow nor pass. */
    expect_claim("exp", json_integer(INT64_MIN), DM_JWT_EXPIRED);
    expect_claim("nbf", json_integer(INT64_MAX), DM_JWT_NOT_YET_VALID);

    /* Present but not a number. */
    const char *names[] = {"exp", "nbf", "iat"};
    for (size_t i = 0; i < DM_ARRAY_LEN(names); i++) {
        json_t *bad[] = {json_string("1764338400"), json_true(), json_null(), json_array()};
        for (size_t j = 0; j < DM_ARRAY_LEN(bad); j++)
            expect_claim(names[i], bad[j], DM_JWT_MALFORMED);
    }
}

static void test_signed_payload_not_object(void **state)
{
    (void)state;
    char *h = header_json("RS256", "rsa-1");
    const char *payloads[] = {"not json", "[1,2]", "\"x\"", "",
                              "{\"iss\":\"a\",\"iss\":\"" ISS "\"}"};
    for (size_t i = 0; i < DM_ARRAY_LEN(payloads); i++)
        expect(mint_raw(h, payloads[i], fx.key.rsa), DM_JWT_MALFORMED);
    free(h);
}

/*---- refusals: structure ------------------------------------------------------------------*/

static void test_structure(void **state)
{
    (void)state;
    char *t = mint("RS256", "rsa-1", good_claims(), fx.key.rsa);
    size_t n = strlen(t);
    char *buf = dm_xmalloc(n + 64);
    const char *d2 = strrchr(t, '.');

    /* Two parts (signature dropped), four parts, five (JWE-shaped), trailing dot. */
    memcpy(buf, t, (size_t)(d2 - t));
    buf[d2 - t] = '\0';
    expect(dm_xstrdup(buf), DM_JWT_MALFORMED);
    snprintf(buf, n + 64, "%s.", t);
    expect(dm_xstrdup(buf), DM_JWT_MALFORMED);
    snprintf(buf, n + 64, "%s.e30", t);
    expect(dm_xstrdup(buf), DM_JWT_MALFORMED);
    snprintf(buf, n + 64, "%s.e30.e30", t);
    expect(dm_xstrdup(buf), DM_JWT_MALFORMED);
    /* Degenerate shapes. */
    const char *shapes[] = {"", ".", "..", "...", "e30", "e30.e30", "..e30", ".e30.", "e30...."};
    for (size_t i = 0; i < DM_ARRAY_LEN(shapes); i++)
        expect(dm_xstrdup(shapes[i]), DM_JWT_MALFORMED);
    expect(dm_xstrdup("e30.."), DM_JWT_BAD_ALG); /* three (empty) parts: the shape is fine */
    /* Whitespace around, "Bearer " left in. */
    snprintf(buf, n + 64, " %s", t);
    expect(dm_xstrdup(buf), DM_JWT_MALFORMED);
    snprintf(buf, n + 64, "%s\n", t);
    expect(dm_xstrdup(buf), DM_JWT_MALFORMED);
    snprintf(buf, n + 64, "Bearer %s", t);
    expect(dm_xstrdup(buf), DM_JWT_MALFORMED);
    free(buf);

    /* NULL / zero length. */
    assert_int_equal(dm_jwt_verify(NULL, 0, fx.keys, &policy, NULL, NULL), DM_JWT_MALFORMED);
    assert_int_equal(dm_jwt_verify(t, 0, fx.keys, &policy, NULL, NULL), DM_JWT_MALFORMED);
    /* A NUL inside: len counts it, so it is a character outside the alphabet. */
    char *nul = dm_xstrdup(t);
    nul[3] = '\0';
    assert_int_equal(verify_guarded(nul, n, fx.keys, &policy, NULL, NULL), DM_JWT_MALFORMED);
    free(nul);
    /* The length bounds the token, not a NUL: one byte less leaves a 4k+1 signature. */
    assert_int_equal(verify_guarded(t, n - 1, fx.keys, &policy, NULL, NULL), DM_JWT_MALFORMED);
    free(t);
}

static void test_bad_base64(void **state)
{
    (void)state;
    char *t = mint("RS256", "rsa-1", good_claims(), fx.key.rsa);
    const char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');
    size_t hl = (size_t)(d1 - t);
    /* A character outside base64url in each part: standard-alphabet '+' and '/', '=',
     * '%', and a space. */
    const char bad[] = {'+', '/', '=', '%', ' ', '\t', '*'};
    size_t pos[] = {1, hl + 3, (size_t)(d2 - t) + 4};
    for (size_t i = 0; i < DM_ARRAY_LEN(bad); i++) {
        for (size_t j = 0; j < DM_ARRAY_LEN(pos); j++) {
            char *x = dm_xstrdup(t);
            x[pos[j]] = bad[i];
            expect(x, DM_JWT_MALFORMED);
        }
    }
    /* Padding, even correct, is not base64url as JWS uses it. */
    char *h = dm_xstrndup(t, hl);
    size_t pad = (4 - hl % 4) % 4;
    if (pad == 0) {
        /* the header's length depends on the kid; force a padded one */
        free(h);
        h = b64url_str("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}  ");
        pad = (4 - strlen(h) % 4) % 4;
    }
    assert_true(pad > 0);
    size_t n = strlen(h);
    char *padded = dm_xmalloc(n + pad + 1);
    memcpy(padded, h, n);
    memset(padded + n, '=', pad);
    padded[n + pad] = '\0';
    expect(splice(t, 0, padded), DM_JWT_MALFORMED);
    free(padded);
    /* Impossible length (4k+1 characters). */
    char *h5 = dm_xmalloc(n + 8);
    snprintf(h5, n + 8, "%sAAAAA", h);
    size_t m = strlen(h5);
    while (m % 4 != 1)
        h5[--m] = '\0';
    expect(splice(t, 0, h5), DM_JWT_MALFORMED);
    free(h5);
    free(h);

    /* Non-canonical: "e30" is "{}"; "e31" has the same bytes with unused bits set. */
    expect(splice(t, 0, "e31"), DM_JWT_MALFORMED);
    expect(splice(t, 0, "e30"), DM_JWT_BAD_ALG); /* the canonical spelling gets further */
    /* …and in the signature: flip the last character's unused bits. 256 bytes = 342 chars
     * with 4 unused bits; the last character is one of A Q g w. */
    char *s = dm_xstrdup(d2 + 1);
    size_t sl = strlen(s);
    assert_int_equal(sl, 342);
    s[sl - 1] = s[sl - 1] == 'A' ? 'B' : s[sl - 1] == 'Q' ? 'R' : s[sl - 1] == 'g' ? 'h' : 'x';
    expect(splice(t, 2, s), DM_JWT_MALFORMED);
    free(s);
    free(t);
}

static void test_bad_header(void **state)
{
    (void)state;
    char *p = dump(good_claims());
    struct {
        const char *header;
        dm_jwt_status want;
    } cases[] = {
        {"not json", DM_JWT_MALFORMED},
        {"", DM_JWT_MALFORMED},
        {"[\"RS256\"]", DM_JWT_MALFORMED},
        {"\"RS256\"", DM_JWT_MALFORMED},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\"", DM_JWT_MALFORMED},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\"} x", DM_JWT_MALFORMED},
        /* duplicate members: which alg would we believe? Neither. */
        {"{\"alg\":\"none\",\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", DM_JWT_MALFORMED},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"kid\":\"ec-1\"}", DM_JWT_MALFORMED},
        /* kid */
        {"{\"alg\":\"RS256\"}", DM_JWT_MALFORMED},
        {"{\"alg\":\"RS256\",\"kid\":1}", DM_JWT_MALFORMED},
        {"{\"alg\":\"RS256\",\"kid\":null}", DM_JWT_MALFORMED},
        {"{\"alg\":\"RS256\",\"kid\":\"\"}", DM_JWT_MALFORMED},
        {"{\"alg\":\"RS256\",\"kid\":[\"rsa-1\"]}", DM_JWT_MALFORMED},
        /* crit: we understand no extension, so any crit refuses the token */
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"crit\":[\"exp\"],\"exp\":1}", DM_JWT_MALFORMED},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"crit\":[\"b64\"],\"b64\":false}",
         DM_JWT_MALFORMED},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"crit\":[]}", DM_JWT_MALFORMED},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"crit\":null}", DM_JWT_MALFORMED},
        /* alg is decided before kid and crit */
        {"{\"alg\":\"none\",\"crit\":[\"x\"]}", DM_JWT_BAD_ALG},
        /* other members are ignored (and never fetched) */
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"jku\":\"https://evil.example/jwks\","
         "\"x5u\":\"https://evil.example/c\",\"typ\":\"at+jwt\"}",
         DM_JWT_OK},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++)
        expect(mint_raw(cases[i].header, p, fx.key.rsa), cases[i].want);

    /* Longest kid reported, and one byte more. */
    char kid[DM_JWT_KID_BUFLEN + 1];
    memset(kid, 'k', sizeof kid);
    kid[DM_JWT_KID_BUFLEN - 1] = '\0';
    char out[DM_JWT_KID_BUFLEN];
    char *t = mint("RS256", kid, good_claims(), fx.key.rsa);
    assert_int_equal(verify_kid(t, out), DM_JWT_UNKNOWN_KID);
    assert_string_equal(out, kid);
    free(t);
    kid[DM_JWT_KID_BUFLEN - 1] = 'k';
    kid[DM_JWT_KID_BUFLEN] = '\0';
    t = mint("RS256", kid, good_claims(), fx.key.rsa);
    assert_int_equal(verify_kid(t, out), DM_JWT_MALFORMED);
    assert_string_equal(out, "");
    free(t);
    free(p);
}

static void test_too_long(void **state)
{
    (void)state;
    /* A valid signature over a 16 KiB+ payload is refused for its size alone. */
    json_t *c = good_claims();
    char *pad = dm_xmalloc(13000);
    memset(pad, 'x', 12999);
    pad[12999] = '\0';
    json_object_set_new(c, "pad", json_string(pad));
    free(pad);
    char *t = mint("RS256", "rsa-1", c, fx.key.rsa);
    assert_true(strlen(t) > 16384);
    expect(t, DM_JWT_MALFORMED);
    /* Over the bound in total, though every part is under it. */
    c = good_claims();
    pad = dm_xmalloc(9001);
    memset(pad, 'x', 9000);
    pad[9000] = '\0';
    json_object_set_new(c, "pad", json_string(pad));
    char *p = dump(c);
    json_t *hj = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "kid", "rsa-1", "x", pad);
    pad[3000] = '\0';
    json_object_set_new(hj, "x", json_string(pad));
    free(pad);
    char *h = dump(hj);
    t = mint_raw(h, p, fx.key.rsa);
    assert_true(strlen(t) > 16384 && strlen(p) * 4 / 3 < 16000 && strlen(h) * 4 / 3 < 16000);
    expect(t, DM_JWT_MALFORMED);
    free(h);
    free(p);
    /* Just under the bound is fine. */
    c = good_claims();
    pad = dm_xmalloc(11000);
    memset(pad, 'x', 10999);
    pad[10999] = '\0';
    json_object_set_new(c, "pad", json_string(pad));
    free(pad);
    t = mint("RS256", "rsa-1", c, fx.key.rsa);
    assert_true(strlen(t) < 16384);
    expect(t, DM_JWT_OK);
}

static void test_no_keys(void **state)
{
    (void)state;
    char *t = mint("RS256", "rsa-1", good_claims(), fx.key.rsa);
    assert_int_equal(dm_jwt_verify(t, strlen(t), NULL, &policy, NULL, NULL), DM_JWT_UNKNOWN_KID);
    dm_jwks *empty = parse_jwks("{\"keys\":[]}");
    assert_int_equal(dm_jwt_verify(t, strlen(t), empty, &policy, NULL, NULL), DM_JWT_UNKNOWN_KID);
    dm_jwks_free(empty);
    /* A policy with no issuer accepts none. */
    dm_jwt_policy none = policy;
    none.nissuers = 0;
    assert_int_equal(dm_jwt_verify(t, strlen(t), fx.keys, &none, NULL, NULL), DM_JWT_BAD_ISSUER);
    free(t);
}

/*---- JWKS ---------------------------------------------------------------------------------*/

static void test_jwks_group(void **state)
{
    (void)state;
    /* Only rsa-1 (the first of two) and ec-1 survive. */
    assert_int_equal(dm_jwks_count(fx.keys), 2);
    assert_true(dm_jwks_has_kid(fx.keys, "rsa-1"));
    assert_true(dm_jwks_has_kid(fx.keys, "ec-1"));
    const char *skipped[] = {"rsa-small", "rsa-enc", "rsa-384", "ec-as-rsa", "hmac", "", "rsa"};
    for (size_t i = 0; i < DM_ARRAY_LEN(skipped); i++)
        assert_false(dm_jwks_has_kid(fx.keys, skipped[i]));
    assert_false(dm_jwks_has_kid(fx.keys, NULL));
    assert_false(dm_jwks_has_kid(NULL, "rsa-1"));
    assert_int_equal(dm_jwks_count(NULL), 0);
    dm_jwks_free(NULL);
}

static void test_jwks_rsa1024_skipped(void **state)
{
    (void)state;
    char *doc = jwks_doc(json_pack("[o]", rsa_jwk(fx.key.rsa1024, "small", "RS256")));
    dm_jwks *set = parse_jwks(doc);
    assert_int_equal(dm_jwks_count(set), 0);
    assert_false(dm_jwks_has_kid(set, "small"));
    char *t = mint("RS256", "small", good_claims(), fx.key.rsa1024);
    assert_int_equal(dm_jwt_verify(t, strlen(t), set, &policy, NULL, NULL), DM_JWT_UNKNOWN_KID);
    free(t);
    dm_jwks_free(set);
    free(doc);
}

/* @p jwk with member @p key set to @p value (stolen; NULL deletes the member). */
static json_t *with(json_t *jwk, const char *key, json_t *value)
{
    if (value)
        json_object_set_new(jwk, key, value);
    else
        json_object_del(jwk, key);
    return jwk;
}

static void test_jwks_unsupported_only(void **state)
{
    (void)state;
    char *x, *y;
    ec_xy(fx.key.ec, &x, &y);
    char *bad_y = dm_xstrdup(y);
    bad_y[10] = bad_y[10] == 'A' ? 'B' : 'A'; /* the point leaves the curve */
    char *e1 = b64url((const unsigned char *)"\x01", 1);
    char *e2 = b64url((const unsigned char *)"\x01\x00\x00", 3);

    json_t *keys = json_array();
    /* Wrong kty, crv, use, alg, key_ops. */
    json_array_append_new(keys,
                          json_pack("{s:s, s:s, s:s}", "kty", "oct", "kid", "o", "k", "c2VjcmV0"));
    json_array_append_new(keys,
                          json_pack("{s:s, s:s, s:s, s:s}", "kty", "OKP", "kid", "ed", "crv",
                                    "Ed25519", "x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"));
    json_array_append_new(keys, with(ec_jwk(fx.key.ec, "p384", NULL), "crv", json_string("P-384")));
    json_array_append_new(keys, with(ec_jwk(fx.key.ec, "nocrv", NULL), "crv", NULL));
    json_array_append_new(keys, with(rsa_jwk(fx.key.rsa, "enc", NULL), "use", json_string("enc")));
    json_array_append_new(keys, with(rsa_jwk(fx.key.rsa, "use1", NULL), "use", json_integer(1)));
    json_array_append_new(keys, rsa_jwk(fx.key.rsa, "ps256", "PS256"));
    json_array_append_new(keys, rsa_jwk(fx.key.rsa, "none", "none"));
    json_array_append_new(keys, rsa_jwk(fx.key.rsa, "es", "ES256"));
    json_array_append_new(keys, ec_jwk(fx.key.ec, "rs", "RS256"));
    json_array_append_new(keys, ec_jwk(fx.key.ec, "es384", "ES384"));
    json_array_append_new(
        keys, with(rsa_jwk(fx.key.rsa, "ops", NULL), "key_ops", json_pack("[s]", "encrypt")));
    json_array_append_new(keys, with(rsa_jwk(fx.key.rsa, "kty", NULL), "kty", json_string("rsa")));
    /* No or unusable kid. */
    json_array_append_new(keys, with(rsa_jwk(fx.key.rsa, "x", NULL), "kid", NULL));
    json_array_append_new(keys, with(rsa_jwk(fx.key.rsa, "x", NULL), "kid", json_integer(5)));
    json_array_append_new(keys, with(rsa_jwk(fx.key.rsa, "x", NULL), "kid", json_string("")));
    /* Broken key material. */
    json_array_append_new(keys, with(ec_jwk(fx.key.ec, "offcurve", NULL), "y", json_string(bad_y)));
    json_array_append_new(keys, with(ec_jwk(fx.key.ec, "shortx", NULL), "x", json_string("AQID")));
    json_array_append_new(keys, with(ec_jwk(fx.key.ec, "noy", NULL), "y", NULL));
    json_array_append_new(keys, with(rsa_jwk(fx.key.rsa, "e1", NULL), "e", json_string(e1)));
    json_array_append_new(keys, with(rsa_jwk(fx.key.rsa, "eeven", NULL), "e", json_string(e2)));
    json_array_append_new(keys, with(rsa_jwk(fx.key.rsa, "noe", NULL), "e", NULL));
    json_array_append_new(keys, with(rsa_jwk(fx.key.rsa, "nbad", NULL), "n", json_string("a+b/")));
    json_array_append_new(keys, with(rsa_jwk(fx.key.rsa, "nnum", NULL), "n", json_integer(3)));
    json_array_append_new(keys, rsa_jwk(fx.key.rsa1024, "small", NULL));
    /* Not objects. */
    json_array_append_new(keys, json_string("RSA"));
    json_array_append_new(keys, json_null());
    json_array_append_new(keys, json_array());

    char *doc = jwks_doc(keys);
    ERR_clear_error();
    dm_jwks *set = parse_jwks(doc);
    assert_int_equal(ERR_peek_error(), 0); /* refused keys leave no OpenSSL errors behind */
    assert_int_equal(dm_jwks_count(set), 0);
    dm_jwks_free(set);
    free(doc);
    free(x);
    free(y);
    free(bad_y);
    free(e1);
    free(e2);
}

static void test_jwks_accepts(void **state)
{
    (void)state;
    /* Without use/alg, with key_ops verify, extra members and unknown top-level members. */
    json_t *keys = json_array();
    json_array_append_new(keys, with(rsa_jwk(fx.key.rsa, "a", NULL), "use", NULL));
    json_array_append_new(keys, with(ec_jwk(fx.key.ec, "b", "ES256"), "key_ops",
                                     json_pack("[s, s]", "sign", "verify")));
    json_array_append_new(keys,
                          with(rsa_jwk(fx.key.rsa2, "c", "RS256"), "x5t", json_string("abc")));
    char *doc = dump(json_pack("{s:o, s:s}", "keys", keys, "extra", "ignored"));
    dm_jwks *set = parse_jwks(doc);
    assert_int_equal(dm_jwks_count(set), 3);
    assert_true(dm_jwks_has_kid(set, "a"));
    assert_true(dm_jwks_has_kid(set, "b"));
    assert_true(dm_jwks_has_kid(set, "c"));
    char *t = mint("ES256", "b", good_claims(), fx.key.ec);
    assert_int_equal(dm_jwt_verify(t, strlen(t), set, &policy, NULL, NULL), DM_JWT_OK);
    free(t);
    t = mint("RS256", "c", good_claims(), fx.key.rsa2);
    assert_int_equal(dm_jwt_verify(t, strlen(t), set, &policy, NULL, NULL), DM_JWT_OK);
    free(t);
    dm_jwks_free(set);
    free(doc);
}

static void test_jwks_malformed(void **state)
{
    (void)state;
    struct {
        const char *doc;
        const char *field;
    } cases[] = {
        {"", ""},
        {"not json", ""},
        {"[]", ""},
        {"\"keys\"", ""},
        {"{\"keys\":[]", ""},
        {"{}", "keys"},
        {"{\"keys\":{}}", "keys"},
        {"{\"keys\":null}", "keys"},
        {"{\"Keys\":[]}", "keys"},
        {"{\"keys\":[],\"keys\":[]}", ""},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        dm_jwks *set = (dm_jwks *)(uintptr_t)1;
        dm_error err = {0};
        assert_int_equal(dm_jwks_parse(cases[i].doc, strlen(cases[i].doc), &set, &err), DM_EINVAL);
        assert_null(set);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.field, cases[i].field);
        assert_true(err.text[0] != '\0');
    }
    dm_jwks *set = NULL;
    dm_error err = {0};
    assert_int_equal(dm_jwks_parse(NULL, 0, &set, &err), DM_EINVAL);
    assert_null(set);
}

static void test_status_str(void **state)
{
    (void)state;
    const char *seen[DM_JWT_NOT_YET_VALID + 1];
    for (int s = DM_JWT_OK; s <= DM_JWT_NOT_YET_VALID; s++) {
        seen[s] = dm_jwt_status_str((dm_jwt_status)s);
        assert_non_null(seen[s]);
        assert_true(seen[s][0] != '\0');
        for (int t = 0; t < s; t++)
            assert_string_not_equal(seen[s], seen[t]);
    }
    assert_string_equal(dm_jwt_status_str(DM_JWT_OK), "ok");
    assert_string_equal(dm_jwt_status_str((dm_jwt_status)99), "unknown status");
}

/* The replay identity of a jti: strings as they are, numbers canonical and never equal to a
 * string. */
static void test_jti_text(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *want; /* NULL: refused */
        bool number;
    } cases[] = {
        {"{\"j\":\"abc\"}", "abc", false},
        {"{\"j\":\"\"}", "", false},
        {"{\"j\":\"1000\"}", "1000", false},
        {"{\"j\":1000}", "1000", true},
        {"{\"j\":1000.0}", "1000", true},
        {"{\"j\":1e3}", "1000", true},
        {"{\"j\":-7}", "-7", true},
        {"{\"j\":0.0}", "0", true},
        {"{\"j\":-0.0}", "0", true},
        {"{\"j\":9007199254740992.0}", "9007199254740992", true},
        {"{\"j\":9223372036854775807}", "9223372036854775807", true},
        {"{\"j\":1.5}", "1.5", true},
        {"{\"j\":1e300}", "1.0000000000000001e+300", true},
        {"{\"j\":null}", NULL, false},
        {"{\"j\":true}", NULL, false},
        {"{\"j\":[1]}", NULL, false},
        {"{\"j\":{}}", NULL, false},
        {"{}", NULL, false},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        json_error_t e;
        json_t *o = json_loads(cases[i].json, 0, &e);
        assert_non_null(o);
        char buf[DM_JWT_JTI_NUMBER_BUFLEN];
        const char *text = NULL;
        size_t len = 0;
        bool ok = dm_jwt_jti_text(json_object_get(o, "j"), buf, &text, &len);
        if (ok != (cases[i].want != NULL))
            fail_msg("%s: ok %d", cases[i].json, ok);
        if (ok) {
            if (cases[i].number) {
                /* a NUL first: "1000" the string and 1000 the number are different tokens */
                assert_int_equal(text[0], '\0');
                assert_int_equal(len, strlen(cases[i].want) + 1);
                assert_memory_equal(text + 1, cases[i].want, len - 1);
            } else {
                assert_int_equal(len, strlen(cases[i].want));
                assert_memory_equal(text, cases[i].want, len);
            }
        }
        json_decref(o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rs256_ok),
        cmocka_unit_test(test_es256_ok),
        cmocka_unit_test(test_optional_outputs),
        cmocka_unit_test(test_audience_forms),
        cmocka_unit_test(test_leeway_edges),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_not_allowed),
        cmocka_unit_test(test_alg_confusion_hs256),
        cmocka_unit_test(test_unknown_kid),
        cmocka_unit_test(test_key_refusals),
        cmocka_unit_test(test_altered_payload),
        cmocka_unit_test(test_signature_length),
        cmocka_unit_test(test_bad_issuer),
        cmocka_unit_test(test_bad_audience),
        cmocka_unit_test(test_time_refusals),
        cmocka_unit_test(test_signed_payload_not_object),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_bad_base64),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_no_keys),
        cmocka_unit_test(test_jwks_group),
        cmocka_unit_test(test_jwks_rsa1024_skipped),
        cmocka_unit_test(test_jwks_unsupported_only),
        cmocka_unit_test(test_jwks_accepts),
        cmocka_unit_test(test_jwks_malformed),
        cmocka_unit_test(test_status_str),
        cmocka_unit_test(test_jti_text),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
