/* test_auth.c - dm_auth: header and HMAC checks, any-of-list semantics, anonymous entries.
 *
 * Expected signatures were computed independently with the openssl command line, e.g.
 *   printf '%s' '{"images":[]}' | openssl dgst -sha256 -hmac dev-ci-secret
 * so a bug shared by the code and a test helper cannot hide.
 */
#include "dm_auth.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),         cmocka_unit_test(test_hmac),
        cmocka_unit_test(test_any_of),         cmocka_unit_test(test_none_and_empty),
        cmocka_unit_test(test_dev_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
