/* test_auth.c - dm_auth: header and HMAC checks, any-of-list semantics, anonymous entries,
 * and OIDC entries backed by a dm_keyring (swaps, merges, refresh requests, concurrent readers).
 *
 * Expected signatures were computed independently with the openssl command line, e.g.
 *   printf '%s' '{"images":[]}' | openssl dgst -sha256 -hmac dev-ci-secret
 * so a bug shared by the code and a test helper cannot hide.
 */
#include "dm_auth.h"
#include "dm_keyring.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#define BODY     "{\"images\":[]}"
#define BODY_SIG "e0f8882fd0aa7f3dd7ebd4c4c15b574010e628f0929d3cbc10ceae7f8b96722e"
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
    return (dm_auth_entry){.type = DM_AUTH_HEADER, .name = (char *)name,
                           .secret = (unsigned char *)value, .secret_len = strlen(value)};
}

static dm_auth_entry hmac_entry(const char *name, const char *key)
{
    return (dm_auth_entry){.type = DM_AUTH_HMAC, .name = (char *)name,
                           .secret = (unsigned char *)key, .secret_len = strlen(key)};
}

static dm_auth_result check(const dm_auth_list *l, request *r, const char *body,
                            const char **reason)
{
    *reason = "unset";
    return dm_auth_check(l, get_header, r, (const unsigned char *)body, body ? strlen(body) : 0,
                         reason);
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
    assert_int_equal(dm_auth_check(&l, get_header, &ok, NULL, 0, NULL), DM_AUTH_OK);
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
        BODY_SIG,                                     /* no prefix */
        "sha1=" BODY_SIG,                             /* other algorithm */
        "SHA256=" BODY_SIG,                           /* prefix is lower-case */
        "sha256 =" BODY_SIG,
        "sha256=" BODY_SIG "00",                      /* 33 bytes */
        "sha256=" BODY_SIG "0",                       /* odd length */
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
    request wrong_token_good_sig = {{{"Authorization", "Bearer nope"},
                                     {"X-Digestmap-Signature", "sha256=" BODY_SIG}}};
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
    snprintf(out, 1200, "{\"keys\":[%s%s%s]}", j1 ? j1 : "", j1 && j2 ? "," : "",
             j2 ? j2 : "");
    free(j1);
    free(j2);
    return out;
}

/* An ES256 token for @p kid signed by @p key, valid at NOW; "Bearer …" (caller frees). */
static char *bearer(EVP_PKEY *key, const char *kid)
{
    char header[128], payload[256];
    snprintf(header, sizeof header, "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    snprintf(payload, sizeof payload,
             "{\"iss\":\"%s\",\"aud\":\"digestmap\",\"sub\":\"x\",\"iat\":%d,\"exp\":%d}", ISS,
             NOW - 10, NOW + 300);
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

static dm_auth_entry oidc_entry(dm_keyring *kr)
{
    return (dm_auth_entry){.type = DM_AUTH_OIDC, .name = (char *)"Authorization",
                           .issuers = (char **)issuers, .nissuers = 1,
                           .audience = (char *)"digestmap", .keyring = kr};
}

/* Verify "Authorization: <value>" against @p e at NOW; returns the result, sets *why. */
static dm_auth_result verify_oidc(const dm_auth_entry *e, const char *value, const char **why)
{
    dm_auth_list l = {(dm_auth_entry *)e, 1};
    request r = {{{"Authorization", value}}};
    dm_auth_outcome o;
    dm_auth_verify(&l, get_header, &r, NULL, 0, NOW, &o);
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
    assert_string_equal(err.text, "invalid JSON at line 1 column 4: '[' or '{' expected near 'nope'");
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
    dm_keyring *kr = ring(file);
    assert_int_equal(dm_keyring_count(kr), 1);
    assert_int_equal(dm_keyring_file_count(kr), 1);
    dm_auth_entry e = oidc_entry(kr);
    const char *why;

    char *ta = bearer(key_a, "shared"), *tb = bearer(key_b, "shared"), *tc = bearer(key_c, "c");
    assert_int_equal(verify_oidc(&e, ta, &why), DM_AUTH_OK);

    /* The url serves another key under the same kid, and a new one. */
    char *fetched = jwks2(key_b, "shared", key_c, "c");
    update_ok(kr, fetched, 2);
    assert_int_equal(dm_keyring_count(kr), 2);
    assert_int_equal(verify_oidc(&e, ta, &why), DM_AUTH_OK);
    assert_int_equal(verify_oidc(&e, tb, &why), DM_AUTH_BAD);
    assert_string_equal(why, "bad signature");
    assert_int_equal(verify_oidc(&e, tc, &why), DM_AUTH_OK);

    /* The url drops c: the file's key stays. */
    char *only_b = jwks2(key_b, "b", NULL, NULL);
    update_ok(kr, only_b, 1);
    assert_int_equal(verify_oidc(&e, ta, &why), DM_AUTH_OK);
    assert_int_equal(verify_oidc(&e, tc, &why), DM_AUTH_BAD);
    assert_string_equal(why, "unknown key id");

    /* A malformed file is refused with the parser's reason. */
    dm_keyring *bad = NULL;
    dm_error err = {0};
    assert_int_equal(dm_keyring_new("{}", 2, &bad, &err), DM_EINVAL);
    assert_null(bad);
    assert_string_equal(err.field, "keys");
    assert_string_equal(err.text, "must be an array");

    dm_keyring_free(kr);
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
    dm_keyring *kr = ring(NULL);
    dm_auth_entry e = oidc_entry(kr);
    dm_keyring_set_waker(kr, count_wake, NULL);
    wakes = 0;
    const char *why;
    char *ta = bearer(key_a, "a"), *tb = bearer(key_b, "b");

    assert_int_equal(verify_oidc(&e, ta, &why), DM_AUTH_BAD); /* keys pending */
    assert_string_equal(why, "unknown key id");
    assert_int_equal(wakes, 1);

    char *doc_a = jwks2(key_a, "a", NULL, NULL);
    update_ok(kr, doc_a, 1);
    assert_int_equal(verify_oidc(&e, ta, &why), DM_AUTH_OK);
    assert_int_equal(verify_oidc(&e, tb, &why), DM_AUTH_BAD);
    assert_string_equal(why, "unknown key id");
    /* Within the minute of the first request: not asked again. */
    assert_int_equal(wakes, 1);

    char *doc_ab = jwks2(key_a, "a", key_b, "b");
    update_ok(kr, doc_ab, 2);
    assert_int_equal(verify_oidc(&e, tb, &why), DM_AUTH_OK);
    /* Known kids and other refusals never ask. */
    char *wrong = bearer(key_c, "a");
    assert_int_equal(verify_oidc(&e, wrong, &why), DM_AUTH_BAD);
    assert_string_equal(why, "bad signature");
    assert_int_equal(wakes, 1);

    dm_keyring_set_waker(kr, NULL, NULL);
    dm_keyring_free(kr);
    free(doc_a);
    free(doc_ab);
    free(ta);
    free(tb);
    free(wrong);
}

/* Readers on several threads while the set is swapped under them. */
typedef struct {
    dm_auth_entry *e;
    const char *token;
    int ok;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    for (int i = 0; i < 300; i++) {
        const char *why;
        a->ok += verify_oidc(a->e, a->token, &why) == DM_AUTH_OK;
    }
    return NULL;
}

static void test_keyring_concurrent(void **state)
{
    (void)state;
    char *doc_a = jwks2(key_a, "a", NULL, NULL), *doc_ab = jwks2(key_a, "a", key_b, "b");
    dm_keyring *kr = ring(NULL);
    update_ok(kr, doc_a, 1);
    dm_auth_entry e = oidc_entry(kr);
    char *ta = bearer(key_a, "a");
    pthread_t t[4];
    reader_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (reader_arg){.e = &e, .token = ta};
        assert_int_equal(pthread_create(&t[i], NULL, reader, &args[i]), 0);
    }
    for (int i = 0; i < 200; i++)
        update_ok(kr, i % 2 ? doc_a : doc_ab, i % 2 ? 1 : 2);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(args[i].ok, 300); /* "a" is in every set */
    }
    dm_keyring_free(kr);
    free(doc_a);
    free(doc_ab);
    free(ta);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),         cmocka_unit_test(test_hmac),
        cmocka_unit_test(test_any_of),         cmocka_unit_test(test_none_and_empty),
        cmocka_unit_test(test_dev_config),
        cmocka_unit_test(test_keyring_swap),   cmocka_unit_test(test_keyring_merge),
        cmocka_unit_test(test_keyring_refresh_requests),
        cmocka_unit_test(test_oidc_unknown_kid),
        cmocka_unit_test(test_keyring_concurrent),
    };
    return cmocka_run_group_tests(tests, oidc_setup, oidc_teardown);
}
