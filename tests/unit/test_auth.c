/* test_auth.c - dm_auth: header and HMAC checks, any-of-list semantics, anonymous entries,
 * OIDC entries backed by a dm_keyring (swaps, merges, refresh requests, concurrent readers),
 * SNS entries with fetched certificates (dm_sns_cache: requests, rate limits, bounds), and
 * dm_trust, which gives each configured entry its keyring or cache.
 *
 * Expected signatures were computed independently with the openssl command line, e.g.
 *   printf '%s' '{"images":[]}' | openssl dgst -sha256 -hmac dev-ci-secret
 * so a bug shared by the code and a test helper cannot hide.
 */
#include "dm_auth.h"
#include "dm_keyring.h"
#include "dm_oidc.h"
#include "dm_sns.h"
#include "dm_trust.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#define BODY      "{\"images\":[]}"
#define BODY_SIG  "e0f8882fd0aa7f3dd7ebd4c4c15b574010e628f0929d3cbc10ceae7f8b96722e"
/* HMAC-SHA256(key "k", empty message). */
#define EMPTY_SIG "8bb990c40a7d61cb97597a942125025be50ac8beb74436e3735b98893a7f6620"

/*---- Helpers ----------------------------------------------------------------------------*/

/* A request's headers: up to four name/value pairs, looked up case-insensitively. */
typedef struct {
    const char *h[4][2];
    int lookups;
} request;

static const char *get_header(void *ctx, const char *name)
{
    request *r = ctx;
    r->lookups++;
    for (size_t i = 0; i < 4 && r->h[i][0]; i++)
        if (strcasecmp(r->h[i][0], name) == 0)
            return r->h[i][1];
    return NULL;
}

static dm_auth_entry header_entry(const char *name, const char *value)
{
    return (dm_auth_entry){.type = DM_AUTH_HEADER,
                           .name = (char *)name,
                           .secret = (unsigned char *)value,
                           .secret_len = strlen(value)};
}

static dm_auth_entry hmac_entry(const char *name, const char *key)
{
    return (dm_auth_entry){.type = DM_AUTH_HMAC,
                           .name = (char *)name,
                           .secret = (unsigned char *)key,
                           .secret_len = strlen(key)};
}

static dm_auth_result check(const dm_auth_list *l, request *r, const char *body,
                            const char **reason)
{
    *reason = "unset";
    return dm_auth_check(NULL, l, get_header, r, (const unsigned char *)body,
                         body ? strlen(body) : 0, reason);
}

/*---- Header -----------------------------------------------------------------------------*/

static void test_header(void **state)
{
    (void)state;
    dm_auth_entry e = header_entry("Authorization", "Bearer dev-acr-token");
    dm_auth_list l = {&e, 1};
    const char *why;

    request ok = {{{"authorization", "Bearer dev-acr-token"}}};
    assert_int_equal(check(&l, &ok, BODY, &why), DM_AUTH_OK);
    assert_string_equal(why, "ok");

    request wrong = {{{"Authorization", "Bearer dev-acr-tokeN"}}};
    assert_int_equal(check(&l, &wrong, BODY, &why), DM_AUTH_BAD);
    assert_string_equal(why, "header value mismatch");

    /* Prefix, extension and empty values are all mismatches, not errors. */
    static const char *const near[] = {"Bearer dev-acr-toke", "Bearer dev-acr-token ",
                                       "Bearer dev-acr-token\n", "", "bearer dev-acr-token"};
    for (size_t i = 0; i < DM_ARRAY_LEN(near); i++) {
        request r = {{{"Authorization", near[i]}}};
        assert_int_equal(check(&l, &r, BODY, &why), DM_AUTH_BAD);
        assert_string_equal(why, "header value mismatch");
    }

    request other = {{{"X-Token", "Bearer dev-acr-token"}}};
    assert_int_equal(check(&l, &other, BODY, &why), DM_AUTH_MISSING);
    assert_string_equal(why, "no credentials");

    request none = {{{NULL, NULL}}};
    assert_int_equal(check(&l, &none, NULL, &why), DM_AUTH_MISSING);
    assert_string_equal(why, "no credentials");
    assert_int_equal(none.lookups, 1);

    /* A NULL reason pointer is allowed. */
    assert_int_equal(dm_auth_check(NULL, &l, get_header, &ok, NULL, 0, NULL), DM_AUTH_OK);
}

/*---- HMAC -------------------------------------------------------------------------------*/

static void test_hmac(void **state)
{
    (void)state;
    dm_auth_entry e = hmac_entry("X-Digestmap-Signature", "dev-ci-secret");
    dm_auth_list l = {&e, 1};
    const char *why;

    request ok = {{{"x-digestmap-signature", "sha256=" BODY_SIG}}};
    assert_int_equal(check(&l, &ok, BODY, &why), DM_AUTH_OK);
    assert_string_equal(why, "ok");

    /* Upper- and mixed-case hex is the same signature. */
    char upper[80];
    snprintf(upper, sizeof(upper), "sha256=%s", BODY_SIG);
    for (char *p = upper + 7; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    request up = {{{"X-Digestmap-Signature", upper}}};
    assert_int_equal(check(&l, &up, BODY, &why), DM_AUTH_OK);
    upper[8] = 'f'; /* "E0F8…" → "EfF8…": one nibble differs */
    assert_int_equal(check(&l, &up, BODY, &why), DM_AUTH_BAD);
    assert_string_equal(why, "signature mismatch");
    upper[8] = '0';
    upper[7] = 'e'; /* mixed case: "e0F8…" */
    assert_int_equal(check(&l, &up, BODY, &why), DM_AUTH_OK);

    /* Right signature, other body; right body, other key. */
    assert_int_equal(check(&l, &ok, "{\"images\":[ ]}", &why), DM_AUTH_BAD);
    assert_string_equal(why, "signature mismatch");
    dm_auth_entry e2 = hmac_entry("X-Digestmap-Signature", "dev-ci-secreT");
    dm_auth_list l2 = {&e2, 1};
    assert_int_equal(check(&l2, &ok, BODY, &why), DM_AUTH_BAD);
    assert_string_equal(why, "signature mismatch");

    /* Empty body. */
    dm_auth_entry ek = hmac_entry("X-Sig", "k");
    dm_auth_list lk = {&ek, 1};
    request empty = {{{"X-Sig", "sha256=" EMPTY_SIG}}};
    assert_int_equal(check(&lk, &empty, NULL, &why), DM_AUTH_OK);
    assert_int_equal(check(&lk, &empty, "", &why), DM_AUTH_OK);

    static const char *const malformed[] = {
        BODY_SIG,           /* no prefix */
        "sha1=" BODY_SIG,   /* other algorithm */
        "SHA256=" BODY_SIG, /* prefix is lower-case */
        "sha256 =" BODY_SIG,
        "sha256=" BODY_SIG "00",                                                   /* 33 bytes */
        "sha256=" BODY_SIG "0",                                                    /* odd length */
        "sha256=e0f8882fd0aa7f3dd7ebd4c4c15b574010e628f0929d3cbc10ceae7f8b96722",  /* 63 */
        "sha256=e0f8882fd0aa7f3dd7ebd4c4c15b574010e628f0929d3cbc10ceae7f8b96722g", /* non-hex */
        "sha256=e0:f8:88:2f:d0:aa:7f:3d:d7:eb:d4:c4:c1:5b:57:40:10:e6:28:f0:92",
        "sha256= " BODY_SIG,
        "sha256=",
        "",
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(malformed); i++) {
        request r = {{{"X-Digestmap-Signature", malformed[i]}}};
        assert_int_equal(check(&l, &r, BODY, &why), DM_AUTH_BAD);
        assert_string_equal(why, "malformed signature header");
    }

    request missing = {{{"Authorization", "sha256=" BODY_SIG}}};
    assert_int_equal(check(&l, &missing, BODY, &why), DM_AUTH_MISSING);
    assert_string_equal(why, "no credentials");
}

/*---- Lists ------------------------------------------------------------------------------*/

static void test_any_of(void **state)
{
    (void)state;
    /* The dev build source: a CI token or a signature. */
    dm_auth_entry v[2] = {header_entry("Authorization", "Bearer dev-ci-token"),
                          hmac_entry("X-Digestmap-Signature", "dev-ci-secret")};
    dm_auth_list l = {v, 2};
    const char *why;

    request sig_only = {{{"X-Digestmap-Signature", "sha256=" BODY_SIG}}};
    assert_int_equal(check(&l, &sig_only, BODY, &why), DM_AUTH_OK);

    request token_only = {{{"Authorization", "Bearer dev-ci-token"}}};
    assert_int_equal(check(&l, &token_only, BODY, &why), DM_AUTH_OK);
    assert_int_equal(token_only.lookups, 1); /* the first passing entry ends the check */

    /* A wrong token does not stop a valid signature from passing. */
    request wrong_token_good_sig = {
        {{"Authorization", "Bearer nope"}, {"X-Digestmap-Signature", "sha256=" BODY_SIG}}};
    assert_int_equal(check(&l, &wrong_token_good_sig, BODY, &why), DM_AUTH_OK);

    /* Present but wrong → BAD, with the reason of the first present credential. */
    request wrong_token = {{{"Authorization", "Bearer nope"}}};
    assert_int_equal(check(&l, &wrong_token, BODY, &why), DM_AUTH_BAD);
    assert_string_equal(why, "header value mismatch");
    request both_wrong = {{{"X-Digestmap-Signature", "sha256=zz"}, {"Authorization", "x"}}};
    assert_int_equal(check(&l, &both_wrong, BODY, &why), DM_AUTH_BAD);
    assert_string_equal(why, "header value mismatch");
    request bad_sig = {{{"X-Digestmap-Signature", "sha256=" EMPTY_SIG}}};
    assert_int_equal(check(&l, &bad_sig, BODY, &why), DM_AUTH_BAD);
    assert_string_equal(why, "signature mismatch");

    request nothing = {{{"X-Other", "1"}}};
    assert_int_equal(check(&l, &nothing, BODY, &why), DM_AUTH_MISSING);
    assert_string_equal(why, "no credentials");
    assert_int_equal(nothing.lookups, 2);
    assert_false(dm_auth_allows_anonymous(&l));
}

static void test_none_and_empty(void **state)
{
    (void)state;
    const char *why;

    dm_auth_entry none = {.type = DM_AUTH_NONE};
    dm_auth_list ln = {&none, 1};
    request nothing = {{{NULL, NULL}}};
    assert_int_equal(check(&ln, &nothing, NULL, &why), DM_AUTH_OK);
    assert_string_equal(why, "ok");
    assert_true(dm_auth_allows_anonymous(&ln));

    /* "none" after a header entry: a wrong credential still passes (any-of). */
    dm_auth_entry v[2] = {header_entry("Authorization", "t"), {.type = DM_AUTH_NONE}};
    dm_auth_list l = {v, 2};
    request wrong = {{{"Authorization", "x"}}};
    assert_int_equal(check(&l, &wrong, NULL, &why), DM_AUTH_OK);
    assert_true(dm_auth_allows_anonymous(&l));

    dm_auth_list empty = {NULL, 0};
    request r = {{{"Authorization", "t"}}};
    assert_int_equal(check(&empty, &r, NULL, &why), DM_AUTH_MISSING);
    assert_string_equal(why, "no auth entries configured");
    assert_int_equal(r.lookups, 0);
    assert_int_equal(check(NULL, &r, NULL, &why), DM_AUTH_MISSING);
    assert_false(dm_auth_allows_anonymous(&empty));
    assert_false(dm_auth_allows_anonymous(NULL));
}

/* The lists produced by configs/dev.json behave as the README promises. */
static void test_dev_config(void **state)
{
    (void)state;
    char err[256];
    dm_config *c = NULL;
    const char *why;
    int rc = dm_config_load_file(DM_FIXTURES "/../../configs/dev.json", &c, err, sizeof(err));
    if (rc != DM_OK)
        fail_msg("configs/dev.json: %s", err);

    request acr = {{{"Authorization", "Bearer dev-acr-token"}}};
    assert_int_equal(check(&c->sources[0].auth, &acr, BODY, &why), DM_AUTH_OK);
    assert_int_equal(check(&c->sources[1].auth, &acr, BODY, &why), DM_AUTH_BAD);
    assert_int_equal(check(&c->api_auth, &acr, BODY, &why), DM_AUTH_BAD);

    request ci = {{{"X-Digestmap-Signature", "sha256=" BODY_SIG}}};
    assert_int_equal(check(&c->sources[1].auth, &ci, BODY, &why), DM_AUTH_OK);
    request api = {{{"Authorization", "Bearer dev-api-token"}}};
    assert_int_equal(check(&c->api_auth, &api, NULL, &why), DM_AUTH_OK);
    assert_false(dm_auth_allows_anonymous(&c->sources[0].auth));
    dm_config_free(c);
}

/*---- OIDC with a keyring ----------------------------------------------------------------*/

#define NOW 1764338400 /* 2025-11-28T14:00:00Z */
#define ISS "https://token.actions.githubusercontent.com"

/* P-256 keys made at test time: no private key is committed. */
static EVP_PKEY *key_a, *key_b, *key_c;

static int oidc_setup(void **state)
{
    (void)state;
    key_a = EVP_EC_gen("P-256");
    key_b = EVP_EC_gen("P-256");
    key_c = EVP_EC_gen("P-256");
    return key_a && key_b && key_c ? 0 : -1;
}

static int oidc_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(key_a);
    EVP_PKEY_free(key_b);
    EVP_PKEY_free(key_c);
    return 0;
}

static char *b64url(const unsigned char *p, size_t n)
{
    char *out = dm_xmalloc(4 * ((n + 2) / 3) + 1);
    int m = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    assert_true(m >= 0);
    while (m > 0 && out[m - 1] == '=')
        m--;
    out[m] = '\0';
    for (char *c = out; *c; c++)
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    return out;
}

/* {"kty":"EC",...} for @p key under @p kid, as JSON text (caller frees). */
static char *ec_jwk(EVP_PKEY *key, const char *kid)
{
    unsigned char pt[65];
    size_t len = 0;
    assert_int_equal(
        EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &len), 1);
    assert_int_equal(len, 65);
    char *x = b64url(pt + 1, 32), *y = b64url(pt + 33, 32);
    char *out = dm_xmalloc(512);
    snprintf(out, 512,
             "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"use\":\"sig\",\"x\":\"%s\","
             "\"y\":\"%s\"}",
             kid, x, y);
    free(x);
    free(y);
    return out;
}

/* A JWKS of up to two (key, kid) pairs; key NULL ends the list. */
static char *jwks2(EVP_PKEY *k1, const char *kid1, EVP_PKEY *k2, const char *kid2)
{
    char *j1 = k1 ? ec_jwk(k1, kid1) : NULL, *j2 = k2 ? ec_jwk(k2, kid2) : NULL;
    char *out = dm_xmalloc(1200);
    snprintf(out, 1200, "{\"keys\":[%s%s%s]}", j1 ? j1 : "", j1 && j2 ? "," : "", j2 ? j2 : "");
    free(j1);
    free(j2);
    return out;
}

/* An ES256 token for @p kid signed by @p key, valid at NOW, with the claims @p extra (",…"
 * members, may be ""); "Bearer …" (caller frees). */
static char *bearer_with(EVP_PKEY *key, const char *kid, const char *extra)
{
    char header[128], payload[512];
    snprintf(header, sizeof header, "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    snprintf(payload, sizeof payload,
             "{\"iss\":\"%s\",\"aud\":\"digestmap\",\"sub\":\"x\",\"iat\":%d,\"exp\":%d%s}", ISS,
             NOW - 10, NOW + 300, extra);
    char *h = b64url((const unsigned char *)header, strlen(header));
    char *p = b64url((const unsigned char *)payload, strlen(payload));
    char input[1024];
    snprintf(input, sizeof input, "%s.%s", h, p);

    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[128], raw[64];
    size_t n = sizeof der;
    assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, key, NULL), 1);
    assert_int_equal(EVP_DigestSign(ctx, der, &n, (const unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(ctx);
    const unsigned char *dp = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &dp, (long)n);
    assert_non_null(es);
    const BIGNUM *r, *sv;
    ECDSA_SIG_get0(es, &r, &sv);
    assert_int_equal(BN_bn2binpad(r, raw, 32), 32);
    assert_int_equal(BN_bn2binpad(sv, raw + 32, 32), 32);
    ECDSA_SIG_free(es);
    char *sig = b64url(raw, 64);
    size_t tn = strlen(input) + strlen(sig) + 16;
    char *t = dm_xmalloc(tn);
    snprintf(t, tn, "Bearer %s.%s", input, sig);
    free(sig);
    free(h);
    free(p);
    return t;
}

static char *bearer(EVP_PKEY *key, const char *kid)
{
    return bearer_with(key, kid, "");
}

static dm_keyring *ring(const char *file_doc)
{
    dm_keyring *kr = NULL;
    dm_error err = {0};
    int rc = dm_keyring_new(file_doc, file_doc ? strlen(file_doc) : 0, &kr, &err);
    if (rc != DM_OK)
        fail_msg("dm_keyring_new: [%s] %s", err.field, err.text);
    return kr;
}

static void update_ok(dm_keyring *kr, const char *doc, size_t want_n)
{
    dm_error err = {0};
    size_t n = 0;
    int rc = dm_keyring_update(kr, doc, strlen(doc), &n, &err);
    if (rc != DM_OK)
        fail_msg("dm_keyring_update: [%s] %s", err.field, err.text);
    assert_int_equal(n, want_n);
}

static const char *const issuers[] = {ISS};

static dm_auth_entry oidc_entry(void)
{
    return (dm_auth_entry){.type = DM_AUTH_OIDC,
                           .name = (char *)"Authorization",
                           .issuers = (char **)issuers,
                           .nissuers = 1,
                           .audience = (char *)"digestmap"};
}

/* The trust digestmapd builds for api.auth = @p v (@p n entries, which must outlive it). */
static dm_trust *trust_of(dm_auth_entry *v, size_t n)
{
    dm_config conf = {.api_configured = true, .api_auth = {v, n}};
    dm_trust *t = NULL;
    char err[256] = "";
    if (dm_trust_new(&conf, &t, err, sizeof err) != DM_OK)
        fail_msg("dm_trust_new: %s", err);
    return t;
}

/* Verify "Authorization: <value>" against @p e at NOW; returns the result, sets *why. */
static dm_auth_result verify_oidc(const dm_trust *t, const dm_auth_entry *e, const char *value,
                                  const char **why)
{
    dm_auth_list l = {(dm_auth_entry *)e, 1};
    request r = {{{"Authorization", value}}};
    dm_auth_outcome o;
    dm_auth_verify(t, &l, get_header, &r, NULL, 0, NOW, &o);
    *why = o.reason;
    dm_auth_outcome_dispose(&o);
    return o.result;
}

static int wakes;
static void count_wake(void *arg)
{
    (void)arg;
    wakes++;
}

static void test_keyring_swap(void **state)
{
    (void)state;
    dm_keyring *kr = ring(NULL);
    assert_int_equal(dm_keyring_count(kr), 0);
    assert_int_equal(dm_keyring_file_count(kr), 0);
    dm_keyset *empty = dm_keyring_acquire(kr);
    assert_non_null(empty);
    assert_int_equal(dm_jwks_count(dm_keyset_jwks(empty)), 0);

    char *doc_a = jwks2(key_a, "a", NULL, NULL);
    update_ok(kr, doc_a, 1);
    assert_int_equal(dm_keyring_count(kr), 1);
    /* A reader's reference outlives the swap (ASan would see a use after free). */
    assert_int_equal(dm_jwks_count(dm_keyset_jwks(empty)), 0);
    dm_keyset_release(empty);

    dm_keyset *old = dm_keyring_acquire(kr);
    char *doc_ab = jwks2(key_a, "a", key_b, "b");
    update_ok(kr, doc_ab, 2);
    assert_true(dm_jwks_has_kid(dm_keyset_jwks(old), "a"));
    assert_false(dm_jwks_has_kid(dm_keyset_jwks(old), "b"));
    dm_keyset *cur = dm_keyring_acquire(kr);
    assert_true(dm_jwks_has_kid(dm_keyset_jwks(cur), "b"));
    dm_keyset_release(cur);

    /* Failed updates keep the current keys. */
    dm_error err = {0};
    size_t n = 99;
    assert_int_equal(dm_keyring_update(kr, "nope", 4, &n, &err), DM_EINVAL);
    assert_string_equal(err.text,
                        "invalid JSON at line 1 column 4: '[' or '{' expected near 'nope'");
    assert_int_equal(n, 99);
    const char *none = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"c2VjcmV0\"}]}";
    assert_int_equal(dm_keyring_update(kr, none, strlen(none), &n, &err), DM_EINVAL);
    assert_string_equal(err.field, "keys");
    assert_string_equal(err.text,
                        "no usable key (RS256 RSA >= 2048 bits or ES256 P-256, with a kid)");
    assert_int_equal(dm_keyring_update(kr, "", 0, &n, &err), DM_EINVAL);
    assert_int_equal(dm_keyring_update(kr, "{\"keys\":{}}", 11, &n, &err), DM_EINVAL);
    assert_int_equal(dm_keyring_count(kr), 2);

    /* The last reference may be released after the keyring is gone. */
    dm_keyring_free(kr);
    assert_true(dm_jwks_has_kid(dm_keyset_jwks(old), "a"));
    dm_keyset_release(old);
    dm_keyset_release(NULL);
    dm_keyring_free(NULL);
    free(doc_a);
    free(doc_ab);
}

/* jwks_file keys are always kept, and win a kid they share with the fetched document. */
static void test_keyring_merge(void **state)
{
    (void)state;
    char *file = jwks2(key_a, "shared", NULL, NULL);
    dm_auth_entry e = oidc_entry();
    e.jwks = file;
    e.jwks_len = strlen(file);
    dm_trust *t = trust_of(&e, 1);
    dm_keyring *kr = dm_trust_find(t, &e)->keyring;
    assert_int_equal(dm_keyring_count(kr), 1);
    assert_int_equal(dm_keyring_file_count(kr), 1);
    const char *why;

    char *ta = bearer(key_a, "shared"), *tb = bearer(key_b, "shared"), *tc = bearer(key_c, "c");
    assert_int_equal(verify_oidc(t, &e, ta, &why), DM_AUTH_OK);

    /* The url serves another key under the same kid, and a new one. */
    char *fetched = jwks2(key_b, "shared", key_c, "c");
    update_ok(kr, fetched, 2);
    assert_int_equal(dm_keyring_count(kr), 2);
    assert_int_equal(verify_oidc(t, &e, ta, &why), DM_AUTH_OK);
    assert_int_equal(verify_oidc(t, &e, tb, &why), DM_AUTH_BAD);
    assert_string_equal(why, "bad signature");
    assert_int_equal(verify_oidc(t, &e, tc, &why), DM_AUTH_OK);

    /* The url drops c: the file's key stays. */
    char *only_b = jwks2(key_b, "b", NULL, NULL);
    update_ok(kr, only_b, 1);
    assert_int_equal(verify_oidc(t, &e, ta, &why), DM_AUTH_OK);
    assert_int_equal(verify_oidc(t, &e, tc, &why), DM_AUTH_BAD);
    assert_string_equal(why, "unknown key id");

    /* A malformed file is refused with the parser's reason. */
    dm_keyring *bad = NULL;
    dm_error err = {0};
    assert_int_equal(dm_keyring_new("{}", 2, &bad, &err), DM_EINVAL);
    assert_null(bad);
    assert_string_equal(err.field, "keys");
    assert_string_equal(err.text, "must be an array");

    dm_trust_free(t);
    free(file);
    free(fetched);
    free(only_b);
    free(ta);
    free(tb);
    free(tc);
}

static void test_keyring_refresh_requests(void **state)
{
    (void)state;
    dm_keyring *kr = ring(NULL);
    wakes = 0;
    /* No fetcher (jwks_file only): nothing to wake. */
    assert_false(dm_keyring_request_refresh(kr, 1000));
    dm_keyring_set_waker(kr, count_wake, NULL);

    /* A fetch in flight brings the same document: coalesced, and no budget spent. */
    dm_keyring_fetch_begin(kr);
    assert_false(dm_keyring_request_refresh(kr, 1000));
    dm_keyring_fetch_end(kr);
    assert_int_equal(wakes, 0);

    assert_true(dm_keyring_request_refresh(kr, 1000));
    assert_int_equal(wakes, 1);
    /* At most one per DM_KEYRING_KID_REFRESH_MS. */
    assert_false(dm_keyring_request_refresh(kr, 1001));
    assert_false(dm_keyring_request_refresh(kr, 1000 + DM_KEYRING_KID_REFRESH_MS - 1));
    assert_int_equal(wakes, 1);
    assert_true(dm_keyring_request_refresh(kr, 1000 + DM_KEYRING_KID_REFRESH_MS));
    assert_int_equal(wakes, 2);

    dm_keyring_set_waker(kr, NULL, NULL);
    assert_false(dm_keyring_request_refresh(kr, 1000 + 10 * DM_KEYRING_KID_REFRESH_MS));
    assert_int_equal(wakes, 2);
    dm_keyring_free(kr);
}

/* An unknown kid is refused at once and asks for a refresh; the next token, after the
 * refresh, passes. Entries without keys refuse every token as "unknown key id". */
static void test_oidc_unknown_kid(void **state)
{
    (void)state;
    dm_auth_entry e = oidc_entry();
    dm_trust *t = trust_of(&e, 1);
    dm_keyring *kr = dm_trust_find(t, &e)->keyring;
    dm_keyring_set_waker(kr, count_wake, NULL);
    wakes = 0;
    const char *why;
    char *ta = bearer(key_a, "a"), *tb = bearer(key_b, "b");

    assert_int_equal(verify_oidc(t, &e, ta, &why), DM_AUTH_BAD); /* keys pending */
    assert_string_equal(why, "unknown key id");
    assert_int_equal(wakes, 1);

    char *doc_a = jwks2(key_a, "a", NULL, NULL);
    update_ok(kr, doc_a, 1);
    assert_int_equal(verify_oidc(t, &e, ta, &why), DM_AUTH_OK);
    assert_int_equal(verify_oidc(t, &e, tb, &why), DM_AUTH_BAD);
    assert_string_equal(why, "unknown key id");
    /* Within the minute of the first request: not asked again. */
    assert_int_equal(wakes, 1);

    char *doc_ab = jwks2(key_a, "a", key_b, "b");
    update_ok(kr, doc_ab, 2);
    assert_int_equal(verify_oidc(t, &e, tb, &why), DM_AUTH_OK);
    /* Known kids and other refusals never ask. */
    char *wrong = bearer(key_c, "a");
    assert_int_equal(verify_oidc(t, &e, wrong, &why), DM_AUTH_BAD);
    assert_string_equal(why, "bad signature");
    assert_int_equal(wakes, 1);

    dm_keyring_set_waker(kr, NULL, NULL);
    dm_trust_free(t);
    free(doc_a);
    free(doc_ab);
    free(ta);
    free(tb);
    free(wrong);
}

/* Readers on several threads while the set is swapped under them. */
typedef struct {
    const dm_trust *t;
    dm_auth_entry *e;
    const char *token;
    int ok;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    for (int i = 0; i < 300; i++) {
        const char *why;
        a->ok += verify_oidc(a->t, a->e, a->token, &why) == DM_AUTH_OK;
    }
    return NULL;
}

static void test_keyring_concurrent(void **state)
{
    (void)state;
    char *doc_a = jwks2(key_a, "a", NULL, NULL), *doc_ab = jwks2(key_a, "a", key_b, "b");
    dm_auth_entry e = oidc_entry();
    dm_trust *trust = trust_of(&e, 1);
    dm_keyring *kr = dm_trust_find(trust, &e)->keyring;
    update_ok(kr, doc_a, 1);
    char *ta = bearer(key_a, "a");
    pthread_t t[4];
    reader_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (reader_arg){.t = trust, .e = &e, .token = ta};
        assert_int_equal(pthread_create(&t[i], NULL, reader, &args[i]), 0);
    }
    for (int i = 0; i < 200; i++)
        update_ok(kr, i % 2 ? doc_a : doc_ab, i % 2 ? 1 : 2);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(args[i].ok, 300); /* "a" is in every set */
    }
    dm_trust_free(trust);
    free(doc_a);
    free(doc_ab);
    free(ta);
}

/* An allowlisted claim must be one allowed value: a list holding one is refused, with the
 * reason; a jti that the replay check could not remember is refused. */
static void test_oidc_claim_shapes(void **state)
{
    (void)state;
    char *file = jwks2(key_a, "k", NULL, NULL);
    dm_auth_entry e = oidc_entry();
    e.jwks = file;
    e.jwks_len = strlen(file);
    e.claims = json_pack("{s:[s]}", "owner", "acme");
    dm_trust *t = trust_of(&e, 1);
    dm_auth_list l = {&e, 1};
    static const struct {
        const char *extra;
        dm_auth_result result;
        const char *problem;
    } cases[] = {
        {",\"owner\":\"acme\"", DM_AUTH_OK, NULL},
        {",\"owner\":\"acme\",\"jti\":\"j\"", DM_AUTH_OK, NULL},
        {",\"owner\":\"acme\",\"jti\":42", DM_AUTH_OK, NULL},
        {",\"owner\":\"acme\",\"jti\":4.5", DM_AUTH_OK, NULL},
        {",\"owner\":[\"evil\",\"acme\"]", DM_AUTH_FORBIDDEN, DM_OIDC_CLAIM_ARRAY},
        {",\"owner\":[\"acme\"]", DM_AUTH_FORBIDDEN, DM_OIDC_CLAIM_ARRAY},
        {",\"owner\":{\"acme\":1}", DM_AUTH_FORBIDDEN, DM_OIDC_CLAIM_OBJECT},
        {",\"owner\":\"evil\"", DM_AUTH_FORBIDDEN, DM_OIDC_CLAIM_NOT_ALLOWED},
        {"", DM_AUTH_FORBIDDEN, DM_OIDC_CLAIM_MISSING},
        {",\"owner\":\"acme\",\"jti\":{\"a\":1}", DM_AUTH_BAD, NULL},
        {",\"owner\":\"acme\",\"jti\":[\"j\"]", DM_AUTH_BAD, NULL},
        {",\"owner\":\"acme\",\"jti\":true", DM_AUTH_BAD, NULL},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        char *tok = bearer_with(key_a, "k", cases[i].extra);
        request r = {{{"Authorization", tok}}};
        dm_auth_outcome o;
        dm_auth_verify(t, &l, get_header, &r, NULL, 0, NOW, &o);
        if (o.result != cases[i].result)
            fail_msg("case %zu (%s): result %d, reason %s", i, cases[i].extra, o.result, o.reason);
        if (cases[i].result == DM_AUTH_FORBIDDEN) {
            assert_string_equal(o.forbidden_claim, "owner");
            assert_string_equal(o.forbidden_problem, cases[i].problem);
        } else if (cases[i].result == DM_AUTH_BAD) {
            assert_string_equal(o.reason, "jti is not a string or a number");
        }
        dm_auth_outcome_dispose(&o);
        free(tok);
    }
    dm_trust_free(t);
    json_decref(e.claims);
    free(file);
}

/*---- SNS with fetched certificates ------------------------------------------------------*/

#define SNS_TOPIC "arn:aws:sns:eu-west-1:111122223333:ecr-events"
#define SNS_CERT  "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-a.pem"

/* A self-signed certificate for @p key, as PEM (malloc'd). */
static char *self_signed(EVP_PKEY *key)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600L));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    X509_NAME *name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)"sns", -1, -1, 0),
                     1);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509(bio, x), 1);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *pem = dm_xstrndup(data, (size_t)n);
    BIO_free(bio);
    X509_free(x);
    return pem;
}

/* A SignatureVersion 2 notification from @p topic naming @p cert_url, signed with @p key. */
static char *sns_body(EVP_PKEY *key, const char *topic, const char *cert_url)
{
    const char *msg = "{\"id\":\"e\"}", *ts = "2025-11-28T14:00:00.000Z";
    char sts[1024];
    snprintf(sts, sizeof sts,
             "Message\n%s\nMessageId\nm-1\nTimestamp\n%s\nTopicArn\n%s\nType\nNotification\n", msg,
             ts, topic);
    unsigned char sig[512];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)sts, strlen(sts)), 1);
    EVP_MD_CTX_free(ctx);
    char b64[1024];
    assert_true(EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen) > 0);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "Type", "Notification",
                          "MessageId", "m-1", "TopicArn", topic, "Message", msg, "Timestamp", ts,
                          "SignatureVersion", "2", "Signature", b64, "SigningCertURL", cert_url);
    assert_non_null(o);
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return body;
}

static const char *const sns_topics[] = {SNS_TOPIC};

static dm_auth_entry sns_entry(void)
{
    return (dm_auth_entry){.type = DM_AUTH_SNS,
                           .name = "x-amz-sns-message-type",
                           .topic_arns = (char **)sns_topics,
                           .ntopic_arns = 1,
                           .fetch_certs = true};
}

static dm_auth_result verify_sns(const dm_trust *t, const dm_auth_entry *e, const char *body,
                                 dm_auth_outcome *o)
{
    dm_auth_list l = {(dm_auth_entry *)e, 1};
    request r = {{{"x-amz-sns-message-type", "Notification"}}};
    dm_auth_verify(t, &l, get_header, &r, (const unsigned char *)body, strlen(body), NOW, o);
    return o->result;
}

static void test_sns_fetch_certs(void **state)
{
    (void)state;
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    assert_non_null(rsa);
    char *pem = self_signed(rsa);
    dm_auth_entry e = sns_entry();
    dm_trust *t = trust_of(&e, 1);
    dm_sns_cache *c = dm_trust_find(t, &e)->sns_cache;
    wakes = 0;
    dm_sns_cache_set_waker(c, count_wake, NULL);
    dm_auth_outcome o;

    /* Unknown certificate: 503-worthy, one fetch requested. */
    char *body = sns_body(rsa, SNS_TOPIC, SNS_CERT);
    assert_int_equal(verify_sns(t, &e, body, &o), DM_AUTH_UNAVAILABLE);
    assert_string_equal(o.reason, "SNS signing certificate not cached: fetch requested");
    assert_string_equal(o.detail, SNS_CERT);
    assert_null(o.sns);
    dm_auth_outcome_dispose(&o);
    assert_int_equal(wakes, 1);
    char *url = dm_sns_cache_take_wanted(c);
    assert_string_equal(url, SNS_CERT);
    free(url);
    assert_null(dm_sns_cache_take_wanted(c));

    /* While it is in flight: still 503, no second request. */
    assert_int_equal(verify_sns(t, &e, body, &o), DM_AUTH_UNAVAILABLE);
    assert_string_equal(o.reason, "SNS signing certificate not cached: fetch in progress");
    dm_auth_outcome_dispose(&o);
    assert_int_equal(wakes, 1);

    /* Fetched: the retry verifies. */
    dm_sns_cache_fetched(c, SNS_CERT, pem, strlen(pem), NULL);
    assert_int_equal(dm_sns_cache_count(c), 1);
    assert_int_equal(verify_sns(t, &e, body, &o), DM_AUTH_OK);
    assert_non_null(o.sns);
    assert_string_equal(o.sns->topic_arn, SNS_TOPIC);
    dm_auth_outcome_dispose(&o);
    free(body);

    /* Tampered with: the fetched certificate does not make it pass. */
    body = sns_body(rsa, SNS_TOPIC, SNS_CERT);
    char *m = strstr(body, "\\\"e\\\"");
    assert_non_null(m);
    m[2] = 'f';
    assert_int_equal(verify_sns(t, &e, body, &o), DM_AUTH_BAD);
    assert_string_equal(o.reason, "SNS signature mismatch");
    dm_auth_outcome_dispose(&o);
    free(body);

    /* A foreign certificate URL or an unlisted topic never asks for a fetch. */
    body = sns_body(rsa, SNS_TOPIC, "https://evil.example.com/SimpleNotificationService-a.pem");
    assert_int_equal(verify_sns(t, &e, body, &o), DM_AUTH_BAD);
    assert_string_equal(o.reason,
                        "SigningCertURL is not an SNS certificate URL of the topic's region");
    dm_auth_outcome_dispose(&o);
    free(body);
    body = sns_body(rsa, "arn:aws:sns:eu-west-1:111122223333:other",
                    "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-b.pem");
    assert_int_equal(verify_sns(t, &e, body, &o), DM_AUTH_BAD);
    assert_string_equal(o.reason,
                        "unknown SNS signing certificate (topic not allowed: not fetched)");
    dm_auth_outcome_dispose(&o);
    free(body);
    /* ... but a known certificate still proves the wrong topic: 403. */
    body = sns_body(rsa, "arn:aws:sns:eu-west-1:111122223333:other", SNS_CERT);
    assert_int_equal(verify_sns(t, &e, body, &o), DM_AUTH_FORBIDDEN);
    dm_auth_outcome_dispose(&o);
    free(body);
    assert_int_equal(wakes, 1);
    assert_null(dm_sns_cache_take_wanted(c));

    /* A failed fetch: 503 with the last failure, and no refetch within the interval. */
    const char *url_c = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-c.pem";
    body = sns_body(rsa, SNS_TOPIC, url_c);
    assert_int_equal(verify_sns(t, &e, body, &o), DM_AUTH_UNAVAILABLE);
    dm_auth_outcome_dispose(&o);
    url = dm_sns_cache_take_wanted(c);
    assert_string_equal(url, url_c);
    free(url);
    dm_sns_cache_fetched(c, url_c, NULL, 0, "HTTP 404");
    assert_int_equal(verify_sns(t, &e, body, &o), DM_AUTH_UNAVAILABLE);
    assert_string_equal(o.reason, "SNS signing certificate fetch failed: retried later");
    assert_string_equal(o.detail, "https://sns.eu-west-1.amazonaws.com/"
                                  "SimpleNotificationService-c.pem (last fetch: HTTP 404)");
    dm_auth_outcome_dispose(&o);
    assert_int_equal(wakes, 2);
    assert_null(dm_sns_cache_take_wanted(c));
    free(body);

    /* Only AWS's exact form is fetched: another path or a query is refused, never queued. */
    static const char *const odd[] = {
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-c.pem?x=1",
        "https://sns.eu-west-1.amazonaws.com/any/path.pem",
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-zz.pem",
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(odd); i++) {
        body = sns_body(rsa, SNS_TOPIC, odd[i]);
        assert_int_equal(verify_sns(t, &e, body, &o), DM_AUTH_BAD);
        assert_string_equal(o.reason, "SigningCertURL is not of the form https://sns.<region>."
                                      "amazonaws.com/SimpleNotificationService-<hex>.pem: not "
                                      "fetched");
        assert_string_equal(o.detail, odd[i]);
        dm_auth_outcome_dispose(&o);
        free(body);
    }
    assert_int_equal(wakes, 2);
    assert_null(dm_sns_cache_take_wanted(c));

    /* A host gets a few fetches, whatever the number of names: new URLs are queued until its
     * bucket is empty (DM_SNS_HOST_FETCH_BURST, two used above; a refill every 15 s could add
     * one on a slow machine), then answered 503 without a fetch. */
    int requested = 0;
    bool limited = false;
    for (int i = 0; i < 2 * DM_SNS_HOST_FETCH_BURST && !limited; i++) {
        char u[128];
        snprintf(u, sizeof u,
                 "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-%04x.pem",
                 0xf00 + i);
        body = sns_body(rsa, SNS_TOPIC, u);
        assert_int_equal(verify_sns(t, &e, body, &o), DM_AUTH_UNAVAILABLE);
        if (strcmp(o.reason, "SNS signing certificate not cached: fetch requested") == 0) {
            requested++;
        } else {
            assert_string_equal(o.reason, "SNS signing certificate not cached: fetches from "
                                          "this host are rate-limited");
            assert_non_null(strstr(o.detail, "host fetch rate reached; next fetch in "));
            limited = true;
        }
        dm_auth_outcome_dispose(&o);
        free(body);
    }
    assert_true(limited);
    assert_true(requested >= DM_SNS_HOST_FETCH_BURST - 2 && requested <= DM_SNS_HOST_FETCH_BURST);
    assert_int_equal(wakes, 2 + requested);
    for (int i = 0; i < requested; i++) {
        url = dm_sns_cache_take_wanted(c);
        assert_non_null(url);
        free(url);
    }
    assert_null(dm_sns_cache_take_wanted(c)); /* the limited URL was not queued */

    /* Without fetch_certs the cache is not consulted: refused as before. */
    e.fetch_certs = false;
    body = sns_body(rsa, SNS_TOPIC, SNS_CERT);
    assert_int_equal(verify_sns(t, &e, body, &o), DM_AUTH_BAD);
    assert_string_equal(o.reason, "unknown SNS signing certificate (add it to \"certs\")");
    dm_auth_outcome_dispose(&o);

    /* A 503 outranks another entry's refusal (a retry may pass); OK outranks everything. */
    dm_auth_entry two[2] = {sns_entry(), sns_entry()};
    two[0].fetch_certs = false;
    dm_trust *t2 = trust_of(two, 2);
    assert_null(dm_trust_find(t2, &two[0])); /* no fetch_certs: no cache */
    dm_sns_cache_fetched(dm_trust_find(t2, &two[1])->sns_cache, SNS_CERT, pem, strlen(pem), NULL);
    dm_auth_list l = {two, 2};
    request r = {{{"x-amz-sns-message-type", "Notification"}}};
    dm_auth_verify(t2, &l, get_header, &r, (const unsigned char *)body, strlen(body), NOW, &o);
    assert_int_equal(o.result, DM_AUTH_OK);
    dm_auth_outcome_dispose(&o);
    free(body);
    body = sns_body(rsa, SNS_TOPIC,
                    "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-d.pem");
    dm_auth_verify(t2, &l, get_header, &r, (const unsigned char *)body, strlen(body), NOW, &o);
    assert_int_equal(o.result, DM_AUTH_UNAVAILABLE);
    dm_auth_outcome_dispose(&o);
    free(body);

    dm_sns_cache_set_waker(c, NULL, NULL);
    dm_trust_free(t2);
    dm_trust_free(t);
    free(pem);
    EVP_PKEY_free(rsa);
}

/*---- dm_trust ---------------------------------------------------------------------------*/

/* Every oidc entry gets a keyring holding its jwks_file's keys; every sns entry that fetches
 * certificates or confirms subscriptions a cache; the other entries nothing. */
static void test_trust_new(void **state)
{
    (void)state;
    char json[] = "{'sources': ["
                  " {'type': 'ecr', 'auth': ["
                  "  {'type': 'sns', 'topic_arns': ['" SNS_TOPIC "'],"
                  "   'certs': {'" SNS_CERT "': 'tls/ca.pem'}},"
                  "  {'type': 'sns', 'topic_arns': ['" SNS_TOPIC "'], 'fetch_certs': true},"
                  "  {'type': 'sns', 'topic_arns': ['" SNS_TOPIC "'],"
                  "   'certs': {'" SNS_CERT "': 'tls/ca.pem'}, 'confirm_subscriptions': true}]},"
                  " {'type': 'build', 'auth': ["
                  "  {'type': 'header', 'name': 'X-T', 'value': 'v'},"
                  "  {'type': 'oidc', 'issuer': '" ISS "', 'audience': 'a',"
                  "   'jwks_file': 'jwks/rsa-public.json'}]}],"
                  " 'api': {'auth': [{'type': 'oidc', 'issuer': '" ISS "', 'audience': 'a',"
                  "   'jwks_url': 'https://i.example/jwks'}]}}";
    for (char *s = json; *s; s++)
        *s = *s == '\'' ? '"' : *s;
    char err[256] = "";
    dm_config *c = NULL;
    if (dm_config_load_buffer(json, strlen(json), DM_FIXTURES, &c, err, sizeof err) != DM_OK)
        fail_msg("config: %s", err);
    dm_trust *t = NULL;
    assert_int_equal(dm_trust_new(c, &t, err, sizeof err), DM_OK);

    const dm_auth_list *sns = &c->sources[0].auth, *build = &c->sources[1].auth;
    size_t n = 0;
    const dm_trust_entry *v = dm_trust_entries(t, &n);
    assert_int_equal(n, 4); /* configuration order: sources, then api */
    assert_ptr_equal(v[0].conf, &sns->v[1]);
    assert_ptr_equal(v[1].conf, &sns->v[2]);
    assert_ptr_equal(v[2].conf, &build->v[1]);
    assert_ptr_equal(v[3].conf, &c->api_auth.v[0]);

    assert_null(dm_trust_find(t, &sns->v[0])); /* certs only: nothing is fetched */
    assert_null(dm_trust_find(t, &build->v[0]));
    for (size_t i = 1; i <= 2; i++) {
        const dm_trust_entry *te = dm_trust_find(t, &sns->v[i]);
        assert_ptr_equal(te, &v[i - 1]);
        assert_null(te->keyring);
        assert_non_null(te->sns_cache);
        assert_int_equal(dm_sns_cache_count(te->sns_cache), 0);
    }
    const dm_trust_entry *file = dm_trust_find(t, &build->v[1]);
    assert_null(file->sns_cache);
    assert_int_equal(dm_keyring_count(file->keyring), 1);
    assert_int_equal(dm_keyring_file_count(file->keyring), 1);
    const dm_trust_entry *url = dm_trust_find(t, &c->api_auth.v[0]);
    assert_int_equal(dm_keyring_count(url->keyring), 0); /* until the first fetch */
    assert_int_equal(dm_keyring_file_count(url->keyring), 0);
    assert_null(dm_trust_find(NULL, &build->v[1]));
    dm_trust_free(t);
    dm_trust_free(NULL);
    dm_config_free(c);

    /* Bytes the loader would have refused: named by the entry's path. */
    dm_auth_entry e = oidc_entry();
    e.jwks = (char *)"{}";
    e.jwks_len = 2;
    dm_config conf = {.api_configured = true, .api_auth = {&e, 1}};
    t = NULL;
    assert_int_equal(dm_trust_new(&conf, &t, err, sizeof err), DM_EINVAL);
    assert_null(t);
    assert_string_equal(err, "api.auth[0].jwks_file: keys: must be an array");
}

static void test_sns_cache(void **state)
{
    (void)state;
    dm_sns_cache *c = dm_sns_cache_new();
    char why[64], url[128];
    const char *u = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-a.pem";

    /* No waker: requests are queued all the same. */
    assert_int_equal(dm_sns_cache_want(c, u, 0, why, sizeof why), DM_SNS_FETCH_REQUESTED);
    wakes = 0;
    dm_sns_cache_set_waker(c, count_wake, NULL);
    assert_int_equal(dm_sns_cache_want(c, u, 10, why, sizeof why), DM_SNS_FETCH_PENDING);
    char *t = dm_sns_cache_take_wanted(c);
    assert_string_equal(t, u);
    free(t);
    assert_int_equal(dm_sns_cache_want(c, u, 20, why, sizeof why), DM_SNS_FETCH_PENDING);
    dm_sns_cache_fetched(c, u, NULL, 0, "timeout");
    assert_int_equal(dm_sns_cache_want(c, u, DM_SNS_FETCH_RETRY_MS - 1, why, sizeof why),
                     DM_SNS_FETCH_FAILED);
    assert_string_equal(why, "timeout");
    assert_int_equal(wakes, 0);
    /* Retry interval over: a new fetch, and a success forgets the request. */
    assert_int_equal(dm_sns_cache_want(c, u, DM_SNS_FETCH_RETRY_MS, why, sizeof why),
                     DM_SNS_FETCH_REQUESTED);
    assert_int_equal(wakes, 1);
    t = dm_sns_cache_take_wanted(c);
    free(t);
    dm_sns_cache_fetched(c, u, "PEM", 3, NULL);
    assert_int_equal(dm_sns_cache_want(c, u, DM_SNS_FETCH_RETRY_MS + 1, why, sizeof why),
                     DM_SNS_FETCH_PENDING); /* cached meanwhile */
    dm_sns_pem *p = dm_sns_cache_get(c, u, 0);
    assert_non_null(p);
    size_t len;
    assert_memory_equal(dm_sns_pem_data(p, &len), "PEM", 3);
    assert_int_equal(len, 3);
    assert_null(dm_sns_cache_get(c, "https://sns.eu-west-1.amazonaws.com/x.pem", 0));

    /* Bounded: at most DM_SNS_WANTED_MAX pending URLs (on as many hosts, so that the
     * per-host rate, tested below, does not decide) ... */
    for (int i = 0; i < DM_SNS_WANTED_MAX; i++) {
        snprintf(url, sizeof url, "https://sns.r%d.amazonaws.com/w%d.pem", i, i);
        assert_int_equal(dm_sns_cache_want(c, url, 100 + i, NULL, 0), DM_SNS_FETCH_REQUESTED);
    }
    assert_int_equal(dm_sns_cache_want(c, "https://sns.more.amazonaws.com/more.pem", 500, NULL, 0),
                     DM_SNS_FETCH_BUSY);
    /* ... an idle (failed) one makes room. */
    t = dm_sns_cache_take_wanted(c);
    assert_string_equal(t, "https://sns.r0.amazonaws.com/w0.pem"); /* oldest first */
    dm_sns_cache_fetched(c, t, NULL, 0, "HTTP 500");
    free(t);
    assert_int_equal(dm_sns_cache_want(c, "https://sns.more.amazonaws.com/more.pem", 600, NULL, 0),
                     DM_SNS_FETCH_REQUESTED);
    while ((t = dm_sns_cache_take_wanted(c)) != NULL) {
        dm_sns_cache_fetched(c, t, "PEM", 3, NULL);
        free(t);
    }
    /* ... and at most DM_SNS_CACHE_MAX certificates, the least recently used dropped. */
    assert_int_equal(dm_sns_cache_count(c), DM_SNS_CACHE_MAX);
    assert_null(dm_sns_cache_get(c, u, 0)); /* the first cached: evicted */

    /* Confirmations: queued once each, bounded, first in first out. */
    int before = wakes;
    for (int i = 0; i < DM_SNS_CONFIRM_MAX; i++) {
        snprintf(url, sizeof url, "https://sns.eu-west-1.amazonaws.com/?Token=%d", i);
        assert_true(dm_sns_cache_confirm(c, url));
    }
    assert_true(dm_sns_cache_confirm(c, "https://sns.eu-west-1.amazonaws.com/?Token=3"));
    assert_false(dm_sns_cache_confirm(c, "https://sns.eu-west-1.amazonaws.com/?Token=x"));
    assert_int_equal(wakes - before, DM_SNS_CONFIRM_MAX);
    t = dm_sns_cache_take_confirm(c);
    assert_string_equal(t, "https://sns.eu-west-1.amazonaws.com/?Token=0");
    free(t);
    assert_true(dm_sns_cache_confirm(c, "https://sns.eu-west-1.amazonaws.com/?Token=x"));

    /* Per host: DM_SNS_HOST_FETCH_BURST fetches at once, then one per
     * DM_SNS_HOST_FETCH_EVERY_MS; another host has its own share; a limited URL is not
     * queued. The clock is the test's. */
    dm_sns_cache *h = dm_sns_cache_new();
    const int64_t t0 = 1000000;
    for (int i = 0; i < DM_SNS_HOST_FETCH_BURST; i++) {
        snprintf(url, sizeof url,
                 "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-%x.pem", i);
        assert_int_equal(dm_sns_cache_want(h, url, t0, why, sizeof why), DM_SNS_FETCH_REQUESTED);
    }
    const char *next = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-ff.pem";
    assert_int_equal(dm_sns_cache_want(h, next, t0, why, sizeof why), DM_SNS_FETCH_LIMITED);
    assert_string_equal(why, "host fetch rate reached; next fetch in 15 s");
    assert_int_equal(
        dm_sns_cache_want(h, next, t0 + DM_SNS_HOST_FETCH_EVERY_MS - 1001, why, sizeof why),
        DM_SNS_FETCH_LIMITED);
    assert_string_equal(why, "host fetch rate reached; next fetch in 2 s"); /* rounded up */
    assert_int_equal(dm_sns_cache_want(h,
                                       "https://sns.eu-west-2.amazonaws.com/"
                                       "SimpleNotificationService-1.pem",
                                       t0, why, sizeof why),
                     DM_SNS_FETCH_REQUESTED);
    for (int i = 0; i < DM_SNS_HOST_FETCH_BURST + 1; i++) {
        t = dm_sns_cache_take_wanted(h);
        assert_non_null(t);
        assert_null(strstr(t, "-ff.pem"));
        free(t);
    }
    assert_null(dm_sns_cache_take_wanted(h));
    assert_int_equal(dm_sns_cache_want(h, next, t0 + DM_SNS_HOST_FETCH_EVERY_MS, why, sizeof why),
                     DM_SNS_FETCH_REQUESTED);
    /* one per interval, not a new burst */
    assert_int_equal(dm_sns_cache_want(h,
                                       "https://sns.us-east-1.amazonaws.com/"
                                       "SimpleNotificationService-fe.pem",
                                       t0 + DM_SNS_HOST_FETCH_EVERY_MS, why, sizeof why),
                     DM_SNS_FETCH_LIMITED);
    dm_sns_cache_free(h);

    /* A reference outlives the cache. */
    dm_sns_cache_free(c);
    assert_memory_equal(dm_sns_pem_data(p, &len), "PEM", 3);
    dm_sns_pem_release(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),           cmocka_unit_test(test_hmac),
        cmocka_unit_test(test_any_of),           cmocka_unit_test(test_none_and_empty),
        cmocka_unit_test(test_dev_config),       cmocka_unit_test(test_keyring_swap),
        cmocka_unit_test(test_keyring_merge),    cmocka_unit_test(test_keyring_refresh_requests),
        cmocka_unit_test(test_oidc_unknown_kid), cmocka_unit_test(test_keyring_concurrent),
        cmocka_unit_test(test_sns_fetch_certs),  cmocka_unit_test(test_trust_new),
        cmocka_unit_test(test_sns_cache),        cmocka_unit_test(test_oidc_claim_shapes),
    };
    return cmocka_run_group_tests(tests, oidc_setup, oidc_teardown);
}
