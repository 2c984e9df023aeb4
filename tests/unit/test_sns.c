/* test_sns.c - SNS envelopes: parsing, the string to sign, signatures, certificate URLs.
 *
 * Keys and self-signed certificates are generated at test time with OpenSSL, and the shared
 * templates (tests/fixtures/ecr/sns-*.unsigned.json) are signed here. The string each test
 * signs is built by this file's own code from the JSON, independently of dm_sns_string_to_sign,
 * so a wrong field order in the module cannot be signed around.
 */
#include "dm_common.h"
#include "dm_sns.h"
#include "dm_test.h"

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#define NOTIFICATION "ecr/sns-notification.unsigned.json"
#define CONFIRMATION "ecr/sns-subscription-confirmation.unsigned.json"
#define CERT_URL                           \
    "https://sns.eu-west-1.amazonaws.com/" \
    "SimpleNotificationService-0000000000000000000000000000test.pem"

/* Made once for the whole group. key.rsa signs and its certificate is the one configured;
 * rsa2 is "another key", rsa1024 too small to be trusted, ec not RSA. */
static struct {
    dm_test_keys key;
    char *cert, *cert_rsa2, *cert_rsa1024, *cert_ec; /* PEM, NUL-terminated */
} fx;

/*---- helpers ------------------------------------------------------------------------------*/

static int parse_guarded(const char *body, size_t len, dm_sns_message *out, dm_error *err)
{
    char *map;
    size_t maplen;
    char *p = dm_test_guarded_copy(body, len, &map, &maplen);
    memset(out, 0x5a, sizeof *out); /* the parser must not rely on a zeroed struct */
    memset(err, 0, sizeof *err);
    int rc = dm_sns_parse(len ? p : NULL, len, out, err);
    munmap(map, maplen);
    return rc;
}

/* Verify with the PEM placed against a guard page and not NUL-terminated; OpenSSL's error
 * queue must be left as it was found (empty here). */
static int verify_guarded(const dm_sns_message *m, const char *pem, size_t len, dm_error *err)
{
    char *map;
    size_t maplen;
    char *p = dm_test_guarded_copy(pem, len, &map, &maplen);
    memset(err, 0, sizeof *err);
    ERR_clear_error();
    int rc = dm_sns_verify(m, len ? p : NULL, len, err);
    assert_int_equal(ERR_peek_error(), 0);
    munmap(map, maplen);
    return rc;
}

static void set_str(json_t *o, const char *key, const char *value)
{
    assert_int_equal(json_object_set_new(o, key, json_string(value)), 0);
}

static const char *get_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* The string to sign, computed from the JSON object by this test: "Name\nValue\n" pairs in
 * the order AWS documents. */
static char *test_string_to_sign(const json_t *o)
{
    static const char *const notification[] = {"Message",   "MessageId", "Subject",
                                               "Timestamp", "TopicArn",  "Type"};
    static const char *const confirmation[] = {"Message", "MessageId", "SubscribeURL", "Timestamp",
                                               "Token",   "TopicArn",  "Type"};
    bool conf = strcmp(get_str(o, "Type"), "Notification") != 0;
    const char *const *names = conf ? confirmation : notification;
    size_t n = conf ? DM_ARRAY_LEN(confirmation) : DM_ARRAY_LEN(notification);
    char *s = dm_xstrdup("");
    for (size_t i = 0; i < n; i++) {
        const char *v = get_str(o, names[i]);
        if (!v)
            continue;
        size_t old = strlen(s);
        s = dm_xrealloc(s, old + strlen(names[i]) + strlen(v) + 3);
        sprintf(s + old, "%s\n%s\n", names[i], v);
    }
    return s;
}

static char *b64(const unsigned char *p, size_t n)
{
    char *out = dm_xmalloc(4 * ((n + 2) / 3) + 1);
    int m = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    assert_true(m >= 0);
    return out;
}

/* Sign @p o's string to sign with @p key and digest @p md, and store it as Signature with
 * SignatureVersion @p version (which need not match @p md). */
static void sign_as(json_t *o, const char *version, EVP_PKEY *key, const char *md)
{
    set_str(o, "SignatureVersion", version);
    set_str(o, "SigningCertURL", CERT_URL);
    char *tbs = test_string_to_sign(o);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, md, NULL, NULL, key, NULL), 1);
    size_t len = 0;
    assert_int_equal(EVP_DigestSign(ctx, NULL, &len, (const unsigned char *)tbs, strlen(tbs)), 1);
    unsigned char *sig = dm_xmalloc(len);
    assert_int_equal(EVP_DigestSign(ctx, sig, &len, (const unsigned char *)tbs, strlen(tbs)), 1);
    char *text = b64(sig, len);
    set_str(o, "Signature", text);
    free(text);
    free(sig);
    free(tbs);
    EVP_MD_CTX_free(ctx);
}

/* Sign the way SNS does for @p version ("1": SHA-1, "2": SHA-256) with the configured key. */
static void sign(json_t *o, const char *version)
{
    sign_as(o, version, fx.key.rsa, strcmp(version, "1") == 0 ? "SHA1" : "SHA256");
}

/* Fixture @p name signed as SNS signs for @p version; a new reference. */
static json_t *signed_fixture(const char *name, const char *version)
{
    json_t *o = dm_test_load_json(name);
    sign(o, version);
    return o;
}

/* Parse @p o (must succeed) into @p m. */
static void parse_json(const json_t *o, dm_sns_message *m)
{
    char *body = json_dumps(o, JSON_COMPACT);
    assert_non_null(body);
    dm_error err;
    int rc = parse_guarded(body, strlen(body), m, &err);
    free(body);
    if (rc != DM_OK)
        fail_msg("parse: [%s] %s", err.field, err.text);
}

/* Parse @p o and verify it against @p pem; returns the verification result. */
static int verify_json(const json_t *o, const char *pem, dm_error *err)
{
    dm_sns_message m;
    parse_json(o, &m);
    int rc = verify_guarded(&m, pem, strlen(pem), err);
    dm_sns_message_dispose(&m);
    return rc;
}

static void expect_verified(const json_t *o)
{
    dm_error err;
    int rc = verify_json(o, fx.cert, &err);
    if (rc != DM_OK)
        fail_msg("verify: [%s] %s", err.field, err.text);
}

static void expect_refused_pem(const json_t *o, const char *pem, size_t pem_len, const char *field,
                               const char *text)
{
    dm_sns_message m;
    dm_error err;
    parse_json(o, &m);
    assert_int_equal(verify_guarded(&m, pem, pem_len, &err), DM_EINVAL);
    dm_sns_message_dispose(&m);
    assert_int_equal(err.status, 401);
    assert_string_equal(err.field, field);
    assert_string_equal(err.text, text);
}

static void expect_refused(const json_t *o, const char *field, const char *text)
{
    expect_refused_pem(o, fx.cert, strlen(fx.cert), field, text);
}

static void expect_mismatch(const json_t *o)
{
    expect_refused(o, "Signature", "does not match the message");
}

/* A self-signed X.509 certificate for @p key as NUL-terminated PEM. */
static char *make_cert(EVP_PKEY *key)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    X509_NAME *name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)"sns.amazonaws.com", -1, -1,
                                                0),
                     1);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);

    BIO *bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);
    assert_int_equal(PEM_write_bio_X509(bio, x), 1);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    assert_true(n > 0);
    char *pem = dm_xstrndup(data, (size_t)n);
    BIO_free(bio);
    X509_free(x);
    return pem;
}

/*---- group setup --------------------------------------------------------------------------*/

static int group_setup(void **state)
{
    (void)state;
    if (!dm_test_keys_make(&fx.key))
        return -1;
    fx.cert = make_cert(fx.key.rsa);
    fx.cert_rsa2 = make_cert(fx.key.rsa2);
    fx.cert_rsa1024 = make_cert(fx.key.rsa1024);
    fx.cert_ec = make_cert(fx.key.ec);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(fx.cert);
    free(fx.cert_rsa2);
    free(fx.cert_rsa1024);
    free(fx.cert_ec);
    dm_test_keys_free(&fx.key);
    return 0;
}

/*---- acceptance ---------------------------------------------------------------------------*/

static void test_notification_v2(void **state)
{
    (void)state;
    json_t *o = signed_fixture(NOTIFICATION, "2");
    expect_verified(o);

    dm_sns_message m;
    parse_json(o, &m);
    assert_int_equal(m.type, DM_SNS_NOTIFICATION);
    assert_string_equal(m.type_str, "Notification");
    assert_string_equal(m.message_id, "4b1f0c9e-2d3a-5b6c-8d7e-9f0a1b2c3d4e");
    assert_string_equal(m.topic_arn, "arn:aws:sns:eu-west-1:111122223333:ecr-events");
    assert_string_equal(m.timestamp, "2026-11-28T14:03:06.114Z");
    assert_string_equal(m.signature_version, "2");
    assert_string_equal(m.signing_cert_url, CERT_URL);
    assert_string_equal(m.message, get_str(o, "Message"));
    /* JSON-unescaped: the EventBridge event is a JSON text of its own. */
    assert_memory_equal(m.message, "{\"version\":\"0\",", 15);
    assert_null(m.subject);
    assert_null(m.token);
    assert_null(m.subscribe_url);
    dm_sns_message_dispose(&m);
    json_decref(o);
}

static void test_notification_v1(void **state)
{
    (void)state;
    json_t *o = signed_fixture(NOTIFICATION, "1");
    expect_verified(o);
    json_decref(o);
}

static void test_notification_with_subject(void **state)
{
    (void)state;
    for (int v = 1; v <= 2; v++) {
        json_t *o = dm_test_load_json(NOTIFICATION);
        set_str(o, "Subject", "ECR image pushed \xc3\xa9");
        sign(o, v == 1 ? "1" : "2");
        expect_verified(o);
        dm_sns_message m;
        parse_json(o, &m);
        assert_string_equal(m.subject, "ECR image pushed \xc3\xa9");
        dm_sns_message_dispose(&m);
        json_decref(o);
    }
}

static void test_subscription_confirmation(void **state)
{
    (void)state;
    for (int v = 1; v <= 2; v++) {
        json_t *o = signed_fixture(CONFIRMATION, v == 1 ? "1" : "2");
        expect_verified(o);

        dm_sns_message m;
        parse_json(o, &m);
        assert_int_equal(m.type, DM_SNS_SUBSCRIPTION_CONFIRMATION);
        assert_string_equal(m.type_str, "SubscriptionConfirmation");
        assert_string_equal(m.token, get_str(o, "Token"));
        assert_string_equal(m.subscribe_url, get_str(o, "SubscribeURL"));
        /* "\n" in the JSON text is a real newline in the value (and in the string to sign). */
        assert_non_null(strstr(m.message, "ecr-events.\nTo confirm"));
        assert_null(m.subject);
        assert_true(dm_sns_url_ok(m.subscribe_url, false));
        assert_false(dm_sns_url_ok(m.subscribe_url, true));
        assert_true(dm_sns_url_ok(m.signing_cert_url, true));
        dm_sns_message_dispose(&m);
        json_decref(o);
    }
}

static void test_unsubscribe_confirmation(void **state)
{
    (void)state;
    json_t *o = dm_test_load_json(CONFIRMATION);
    set_str(o, "Type", "UnsubscribeConfirmation");
    sign(o, "2");
    expect_verified(o);
    dm_sns_message m;
    parse_json(o, &m);
    assert_int_equal(m.type, DM_SNS_UNSUBSCRIBE_CONFIRMATION);
    dm_sns_message_dispose(&m);
    json_decref(o);
}

/* Members SNS does not sign for a type are not exposed: they can be added freely. */
static void test_unsigned_members_dropped(void **state)
{
    (void)state;
    json_t *o = signed_fixture(NOTIFICATION, "2");
    set_str(o, "Token", "not-signed");
    set_str(o, "SubscribeURL", "https://evil.example/");
    json_object_set_new(o, "MessageAttributes", json_object());
    expect_verified(o);
    dm_sns_message m;
    parse_json(o, &m);
    assert_null(m.token);
    assert_null(m.subscribe_url);
    dm_sns_message_dispose(&m);
    json_decref(o);

    o = signed_fixture(CONFIRMATION, "2");
    set_str(o, "Subject", "not signed for a confirmation");
    expect_verified(o);
    parse_json(o, &m);
    assert_null(m.subject);
    dm_sns_message_dispose(&m);
    json_decref(o);

    /* A null Subject is no Subject (as the AWS SDK validators read it). */
    o = signed_fixture(NOTIFICATION, "2");
    json_object_set_new(o, "Subject", json_null());
    expect_verified(o);
    json_decref(o);
}

/*---- refusals -----------------------------------------------------------------------------*/

static void test_message_altered(void **state)
{
    (void)state;
    for (int v = 1; v <= 2; v++) {
        json_t *o = signed_fixture(NOTIFICATION, v == 1 ? "1" : "2");
        char *msg = dm_xstrdup(get_str(o, "Message"));
        char *tag = strstr(msg, "2.0.1");
        assert_non_null(tag);
        tag[0] = '3'; /* "image-tag":"3.0.1" */
        set_str(o, "Message", msg);
        free(msg);
        expect_mismatch(o);
        json_decref(o);
    }
}

/* Each member of the string to sign, changed after signing, breaks the signature. */
static void test_signed_members_changed(void **state)
{
    (void)state;
    static const struct {
        const char *fixture, *key, *value; /* value NULL: remove the member */
        bool subject;                      /* sign with a Subject */
    } cases[] = {
        {NOTIFICATION, "TopicArn", "arn:aws:sns:eu-west-1:111122223333:other-topic", false},
        {NOTIFICATION, "MessageId", "4b1f0c9e-2d3a-5b6c-8d7e-9f0a1b2c3d4f", false},
        {NOTIFICATION, "Timestamp", "2026-11-28T14:03:07.114Z", false},
        {NOTIFICATION, "Message", "{}", false},
        {NOTIFICATION, "Subject", "added", false},
        {NOTIFICATION, "Subject", NULL, true},
        {NOTIFICATION, "Subject", "changed", true},
        {CONFIRMATION, "Type", "UnsubscribeConfirmation", false},
        {CONFIRMATION, "Token", "2336412f37fb687f", false},
        {CONFIRMATION, "SubscribeURL",
         "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription", false},
        {CONFIRMATION, "TopicArn", "arn:aws:sns:eu-west-1:111122223333:other-topic", false},
        {CONFIRMATION, "MessageId", "5c2a1d0f-3e4b-6c7d-9e8f-0a1b2c3d4e50", false},
        {CONFIRMATION, "Timestamp", "2026-11-28T13:50:00.001Z", false},
        {CONFIRMATION, "Message", "You have chosen to subscribe.", false},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        json_t *o = dm_test_load_json(cases[i].fixture);
        if (cases[i].subject)
            set_str(o, "Subject", "signed subject");
        sign(o, "2");
        expect_verified(o);
        if (cases[i].value)
            set_str(o, cases[i].key, cases[i].value);
        else
            assert_int_equal(json_object_del(o, cases[i].key), 0);
        expect_mismatch(o);
        json_decref(o);
    }
}

/*
 * Why signed members other than Message must be single-line: without that rule, a signed
 * Subject can be folded into MessageId, the string to sign stays byte-identical, and a replay
 * would carry a new MessageId past deduplication.
 */
static void test_subject_folded_into_message_id(void **state)
{
    (void)state;
    json_t *o = dm_test_load_json(NOTIFICATION);
    set_str(o, "Subject", "S");
    sign(o, "2");
    char *before = test_string_to_sign(o);

    char id[128];
    snprintf(id, sizeof id, "%s\nSubject\nS", get_str(o, "MessageId"));
    set_str(o, "MessageId", id);
    assert_int_equal(json_object_del(o, "Subject"), 0);
    char *after = test_string_to_sign(o);
    assert_string_equal(before, after); /* the attack would verify... */
    free(before);
    free(after);

    char *body = json_dumps(o, JSON_COMPACT);
    dm_sns_message m;
    dm_error err;
    assert_int_equal(parse_guarded(body, strlen(body), &m, &err), DM_EINVAL); /* ...it cannot */
    assert_string_equal(err.field, "MessageId");
    assert_string_equal(err.text, "must not contain control characters");
    free(body);
    json_decref(o);
}

static void test_other_key(void **state)
{
    (void)state;
    json_t *o = dm_test_load_json(NOTIFICATION);
    sign_as(o, "2", fx.key.rsa2, "SHA256");
    expect_mismatch(o);
    /* ...which verifies with its own certificate: the refusal is about the key alone. */
    dm_error err;
    assert_int_equal(verify_json(o, fx.cert_rsa2, &err), DM_OK);
    json_decref(o);
}

static void test_version_mismatch(void **state)
{
    (void)state;
    json_t *o = dm_test_load_json(NOTIFICATION);
    sign_as(o, "2", fx.key.rsa, "SHA1"); /* a v1 signature presented as v2 */
    expect_mismatch(o);
    sign_as(o, "1", fx.key.rsa, "SHA256");
    expect_mismatch(o);
    json_decref(o);

    o = dm_test_load_json(CONFIRMATION);
    sign_as(o, "2", fx.key.rsa, "SHA1");
    expect_mismatch(o);
    json_decref(o);
}

static void test_ec_certificate(void **state)
{
    (void)state;
    json_t *o = signed_fixture(NOTIFICATION, "2");
    expect_refused_pem(o, fx.cert_ec, strlen(fx.cert_ec), "SigningCertURL",
                       "certificate key is not RSA");
    json_decref(o);
}

static void test_small_rsa_certificate(void **state)
{
    (void)state;
    json_t *o = dm_test_load_json(NOTIFICATION);
    sign_as(o, "2", fx.key.rsa1024, "SHA256");
    expect_refused_pem(o, fx.cert_rsa1024, strlen(fx.cert_rsa1024), "SigningCertURL",
                       "certificate RSA key must have 2048 to 8192 bits");
    json_decref(o);
}

static void test_garbage_pem(void **state)
{
    (void)state;
    json_t *o = signed_fixture(NOTIFICATION, "2");
    const char *text = "certificate is not a PEM X.509 certificate";

    /* The public key alone, in PEM: not a certificate. */
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, fx.key.rsa), 1);
    char *data;
    long publen = BIO_get_mem_data(bio, &data);
    char *pubkey = dm_xstrndup(data, (size_t)publen);
    BIO_free(bio);

    /* The certificate with one base64 character of its body changed, and cut in half. */
    size_t clen = strlen(fx.cert);
    char *flipped = dm_xstrdup(fx.cert);
    char *body = strchr(flipped, '\n') + 40;
    *body = *body == 'A' ? 'B' : 'A';

    /* An "encrypted" PEM block must not make OpenSSL prompt for a password. */
    const char *encrypted = "-----BEGIN CERTIFICATE-----\n"
                            "Proc-Type: 4,ENCRYPTED\n"
                            "DEK-Info: AES-128-CBC,00000000000000000000000000000000\n"
                            "\n"
                            "AAAAAAAAAAAAAAAAAAAAAA==\n"
                            "-----END CERTIFICATE-----\n";

    const struct {
        const char *pem;
        size_t len;
    } cases[] = {
        {"", 0},
        {"garbage", 7},
        {"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", 54},
        {"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", 59},
        {fx.cert, clen / 2},
        {fx.cert, clen - 27}, /* the END line cut off */
        {flipped, clen},
        {pubkey, (size_t)publen},
        {encrypted, strlen(encrypted)},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++)
        expect_refused_pem(o, cases[i].pem, cases[i].len, "SigningCertURL", text);

    /* NULL PEM. */
    dm_sns_message m;
    dm_error err;
    parse_json(o, &m);
    ERR_clear_error();
    assert_int_equal(dm_sns_verify(&m, NULL, 10, &err), DM_EINVAL);
    assert_int_equal(ERR_peek_error(), 0);
    assert_string_equal(err.text, text);
    dm_sns_message_dispose(&m);

    free(pubkey);
    free(flipped);
    json_decref(o);
}

static void test_bad_base64(void **state)
{
    (void)state;
    json_t *o = signed_fixture(NOTIFICATION, "2");
    const char *good = get_str(o, "Signature");
    size_t n = strlen(good); /* 256 bytes: 85 quanta and "xx==" */
    assert_int_equal(n, 344);
    assert_memory_equal(good + n - 2, "==", 2);

    char *cut = dm_xstrndup(good, n - 4); /* whole quanta, one byte short */
    char *odd = dm_xstrndup(good, n - 1); /* not a multiple of 4 */
    char *space = dm_xstrdup(good);
    space[10] = ' ';
    char *urlsafe = dm_xstrdup(good);
    urlsafe[0] = '-';
    char *inner_pad = dm_xstrdup(good);
    inner_pad[100] = '=';
    /* The last character before "==" carries 2 bits; its 4 unused bits must be zero. */
    char *noncanon = dm_xstrdup(good);
    assert_non_null(strchr("AQgw", noncanon[n - 3]));
    noncanon[n - 3] = (char)(noncanon[n - 3] + 1);
    unsigned char bytes[257] = {0};
    bytes[0] = 1;
    char *long_sig = b64(bytes, sizeof bytes);

    const struct {
        const char *sig, *text;
    } cases[] = {
        {"!!!!", "must be base64"},
        {"abc", "must be base64"},
        {"ab=c", "must be base64"},
        {"a===", "must be base64"},
        {"====", "must be base64"},
        {"QR==", "must be base64"}, /* non-canonical "A" */
        {odd, "must be base64"},
        {space, "must be base64"},
        {urlsafe, "must be base64"},
        {inner_pad, "must be base64"},
        {noncanon, "must be base64"},
        {"QUJD", "has the wrong length for the certificate key"},
        {cut, "has the wrong length for the certificate key"},
        {long_sig, "has the wrong length for the certificate key"},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        json_t *c = json_deep_copy(o);
        set_str(c, "Signature", cases[i].sig);
        expect_refused(c, "Signature", cases[i].text);
        json_decref(c);
    }
    free(cut);
    free(odd);
    free(space);
    free(urlsafe);
    free(inner_pad);
    free(noncanon);
    free(long_sig);
    json_decref(o);
}

/* A refusal keeps whatever the caller had on OpenSSL's error queue, and adds nothing. */
static void test_error_queue_preserved(void **state)
{
    (void)state;
    json_t *o = dm_test_load_json(NOTIFICATION);
    sign_as(o, "2", fx.key.rsa2, "SHA256");
    dm_sns_message m;
    parse_json(o, &m);
    const char *pems[] = {"garbage", fx.cert, fx.cert_ec};
    for (size_t i = 0; i < DM_ARRAY_LEN(pems); i++) {
        ERR_clear_error();
        ERR_raise(ERR_LIB_USER, 42);
        unsigned long mine = ERR_peek_error();
        assert_true(mine != 0);
        dm_error err;
        assert_int_equal(dm_sns_verify(&m, pems[i], strlen(pems[i]), &err), DM_EINVAL);
        assert_int_equal(ERR_peek_error(), mine);
        assert_int_equal(ERR_peek_last_error(), mine);
        ERR_get_error();
        assert_int_equal(ERR_peek_error(), 0);
    }
    dm_sns_message_dispose(&m);
    json_decref(o);
}

/* Structs not made by dm_sns_parse fail closed. */
static void test_verify_hand_made(void **state)
{
    (void)state;
    dm_error err;
    assert_int_equal(dm_sns_verify(NULL, fx.cert, strlen(fx.cert), &err), DM_EINVAL);

    json_t *o = signed_fixture(NOTIFICATION, "2");
    dm_sns_message m;
    parse_json(o, &m);

    char *saved = m.signature_version;
    m.signature_version = "3";
    assert_int_equal(verify_guarded(&m, fx.cert, strlen(fx.cert), &err), DM_EINVAL);
    assert_string_equal(err.field, "SignatureVersion");
    m.signature_version = NULL;
    assert_int_equal(verify_guarded(&m, fx.cert, strlen(fx.cert), &err), DM_EINVAL);
    assert_string_equal(err.field, "SignatureVersion");
    m.signature_version = saved;

    saved = m.signature;
    m.signature = NULL;
    assert_int_equal(verify_guarded(&m, fx.cert, strlen(fx.cert), &err), DM_EINVAL);
    assert_string_equal(err.field, "Signature");
    assert_string_equal(err.text, "is required");
    m.signature = saved;

    saved = m.topic_arn;
    m.topic_arn = NULL;
    assert_null(dm_sns_string_to_sign(&m));
    assert_int_equal(verify_guarded(&m, fx.cert, strlen(fx.cert), &err), DM_EINVAL);
    m.topic_arn = saved;

    /* A notification relabelled as a confirmation lacks Token and SubscribeURL. */
    m.type = DM_SNS_SUBSCRIPTION_CONFIRMATION;
    assert_null(dm_sns_string_to_sign(&m));
    m.type = DM_SNS_NOTIFICATION;

    assert_int_equal(verify_guarded(&m, fx.cert, strlen(fx.cert), &err), DM_OK);
    dm_sns_message_dispose(&m);
    assert_null(dm_sns_string_to_sign(NULL));
    json_decref(o);
}

/*---- the string to sign -------------------------------------------------------------------*/

static void expect_string_to_sign(const char *body, const char *want)
{
    dm_sns_message m;
    dm_error err;
    if (parse_guarded(body, strlen(body), &m, &err) != DM_OK)
        fail_msg("parse: [%s] %s", err.field, err.text);
    char *s = dm_sns_string_to_sign(&m);
    assert_non_null(s);
    assert_string_equal(s, want);
    free(s);
    dm_sns_message_dispose(&m);
}

#define PROOF                                            \
    "\"SignatureVersion\":\"1\",\"Signature\":\"QUJD\"," \
    "\"SigningCertURL\":\"https://sns.us-east-1.amazonaws.com/c.pem\""

static void test_string_to_sign_golden(void **state)
{
    (void)state;
    /* Members in shuffled order in the body; the string has the documented order. */
    expect_string_to_sign("{\"Type\":\"Notification\",\"TopicArn\":\"arn:aws:sns:us-east-1:1:t\","
                          "\"Timestamp\":\"2026-01-02T03:04:05.678Z\",\"MessageId\":\"id-1\","
                          "\"Message\":\"hello\"," PROOF "}",
                          "Message\nhello\n"
                          "MessageId\nid-1\n"
                          "Timestamp\n2026-01-02T03:04:05.678Z\n"
                          "TopicArn\narn:aws:sns:us-east-1:1:t\n"
                          "Type\nNotification\n");
    expect_string_to_sign("{\"Subject\":\"Hi \\u00e9\",\"Type\":\"Notification\","
                          "\"TopicArn\":\"arn:aws:sns:us-east-1:1:t\","
                          "\"Timestamp\":\"2026-01-02T03:04:05.678Z\",\"MessageId\":\"id-1\","
                          "\"Message\":\"line1\\nline2\\t\\\"q\\\"\\\\\"," PROOF "}",
                          "Message\nline1\nline2\t\"q\"\\\n"
                          "MessageId\nid-1\n"
                          "Subject\nHi \xc3\xa9\n"
                          "Timestamp\n2026-01-02T03:04:05.678Z\n"
                          "TopicArn\narn:aws:sns:us-east-1:1:t\n"
                          "Type\nNotification\n");
    expect_string_to_sign("{\"Type\":\"SubscriptionConfirmation\",\"Token\":\"tok\","
                          "\"SubscribeURL\":\"https://sns.us-east-1.amazonaws.com/?A=B&T=tok\","
                          "\"Subject\":\"ignored\",\"TopicArn\":\"arn:aws:sns:us-east-1:1:t\","
                          "\"Timestamp\":\"2026-01-02T03:04:05.678Z\",\"MessageId\":\"id-2\","
                          "\"Message\":\"You have chosen...\\nTo confirm...\"," PROOF "}",
                          "Message\nYou have chosen...\nTo confirm...\n"
                          "MessageId\nid-2\n"
                          "SubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?A=B&T=tok\n"
                          "Timestamp\n2026-01-02T03:04:05.678Z\n"
                          "Token\ntok\n"
                          "TopicArn\narn:aws:sns:us-east-1:1:t\n"
                          "Type\nSubscriptionConfirmation\n");
    expect_string_to_sign("{\"Type\":\"UnsubscribeConfirmation\",\"Token\":\"tok\","
                          "\"SubscribeURL\":\"https://sns.us-east-1.amazonaws.com/?A=B\","
                          "\"TopicArn\":\"arn:aws:sns:us-east-1:1:t\","
                          "\"Timestamp\":\"2026-01-02T03:04:05.678Z\",\"MessageId\":\"id-3\","
                          "\"Message\":\"bye\"," PROOF "}",
                          "Message\nbye\n"
                          "MessageId\nid-3\n"
                          "SubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?A=B\n"
                          "Timestamp\n2026-01-02T03:04:05.678Z\n"
                          "Token\ntok\n"
                          "TopicArn\narn:aws:sns:us-east-1:1:t\n"
                          "Type\nUnsubscribeConfirmation\n");
    /* A notification's Token and SubscribeURL are not signed. */
    expect_string_to_sign("{\"Type\":\"Notification\",\"Token\":\"t\",\"SubscribeURL\":\"u\","
                          "\"TopicArn\":\"a\",\"Timestamp\":\"t\",\"MessageId\":\"i\","
                          "\"Message\":\"m\"," PROOF "}",
                          "Message\nm\nMessageId\ni\nTimestamp\nt\nTopicArn\na\n"
                          "Type\nNotification\n");
}

/* The module's string equals this test's for both templates (the one the signatures used). */
static void test_string_to_sign_fixtures(void **state)
{
    (void)state;
    const char *names[] = {NOTIFICATION, CONFIRMATION};
    for (size_t i = 0; i < DM_ARRAY_LEN(names); i++) {
        json_t *o = dm_test_load_json(names[i]);
        sign(o, "2");
        dm_sns_message m;
        parse_json(o, &m);
        char *mine = test_string_to_sign(o);
        char *theirs = dm_sns_string_to_sign(&m);
        assert_string_equal(theirs, mine);
        free(mine);
        free(theirs);
        dm_sns_message_dispose(&m);
        json_decref(o);
    }
}

/*---- parse errors -------------------------------------------------------------------------*/

#define N_BASE                                                                              \
    "\"Type\":\"Notification\",\"MessageId\":\"i\",\"TopicArn\":\"a\",\"Timestamp\":\"t\"," \
    "\"Signature\":\"QUJD\",\"SigningCertURL\":\"u\""
#define C_BASE                                                                               \
    "\"Type\":\"SubscriptionConfirmation\",\"MessageId\":\"i\",\"TopicArn\":\"a\","          \
    "\"Timestamp\":\"t\",\"Signature\":\"QUJD\",\"SigningCertURL\":\"u\",\"Message\":\"m\"," \
    "\"SignatureVersion\":\"2\""

static void expect_parse_error(const char *body, size_t len, const char *field, const char *text)
{
    dm_sns_message m;
    dm_error err;
    assert_int_equal(parse_guarded(body, len, &m, &err), DM_EINVAL);
    assert_int_equal(err.status, 400);
    if (strcmp(err.field, field) != 0 || strncmp(err.text, text, strlen(text)) != 0)
        fail_msg("%s: got [%s] %s, want [%s] %s", body, err.field, err.text, field, text);
    static const dm_sns_message zero;
    assert_memory_equal(&m, &zero, sizeof m); /* out left empty */
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *body, *field, *text; /* text: an exact prefix of the message */
    } cases[] = {
        {"", "", "body is empty"},
        {"[]", "", "must be a JSON object"},
        {"{", "", "invalid JSON"},
        {"{\"Type\":\"Notification\",\"Type\":\"Notification\"}", "", "invalid JSON"},
        {"{\"Message\":\"a\\u0000b\"}", "", "invalid JSON"},
        {"{}", "Type", "is required"},
        {"{\"Type\":null}", "Type", "must be a string"},
        {"{\"Type\":1}", "Type", "must be a string"},
        {"{\"Type\":\"\"}", "Type", "must not be empty"},
        {"{\"Type\":\"notification\"}", "Type",
         "must be Notification, SubscriptionConfirmation or UnsubscribeConfirmation"},
        {"{\"Type\":\"Notification \"}", "Type", "must be Notification"},
        {"{\"Type\":\"Notification\"}", "SignatureVersion", "is required"},
        {"{\"Type\":\"Notification\",\"SignatureVersion\":2}", "SignatureVersion",
         "must be a string"},
        {"{\"Type\":\"Notification\",\"SignatureVersion\":\"3\"}", "SignatureVersion",
         "must be \"1\" or \"2\""},
        {"{\"Type\":\"Notification\",\"SignatureVersion\":\"02\"}", "SignatureVersion",
         "must be \"1\" or \"2\""},
        {"{\"Type\":\"Notification\",\"SignatureVersion\":\"\"}", "SignatureVersion",
         "must not be empty"},
        {"{" N_BASE ",\"SignatureVersion\":\"1\"}", "Message", "is required"},
        {"{" N_BASE ",\"SignatureVersion\":\"1\",\"Message\":null}", "Message", "must be a string"},
        {"{" N_BASE ",\"SignatureVersion\":\"1\",\"Message\":{}}", "Message", "must be a string"},
        {"{" N_BASE ",\"SignatureVersion\":\"1\",\"Message\":\"\"}", "Message",
         "must not be empty"},
        {"{" N_BASE ",\"SignatureVersion\":\"1\",\"Message\":\"m\",\"Subject\":1}", "Subject",
         "must be a string"},
        {"{" N_BASE ",\"SignatureVersion\":\"1\",\"Message\":\"m\",\"Subject\":\"\"}", "Subject",
         "must not be empty"},
        {"{" N_BASE ",\"SignatureVersion\":\"1\",\"Message\":\"m\",\"Subject\":\"a\\nb\"}",
         "Subject", "must not contain control characters"},
        {"{\"Type\":\"Notification\",\"SignatureVersion\":\"1\",\"Message\":\"m\"}", "MessageId",
         "is required"},
        {"{\"Type\":\"Notification\",\"SignatureVersion\":\"1\",\"Message\":\"m\","
         "\"MessageId\":\"i\"}",
         "Timestamp", "is required"},
        {"{\"Type\":\"Notification\",\"SignatureVersion\":\"1\",\"Message\":\"m\","
         "\"MessageId\":\"i\",\"Timestamp\":\"t\"}",
         "TopicArn", "is required"},
        {"{\"Type\":\"Notification\",\"SignatureVersion\":\"1\",\"Message\":\"m\","
         "\"MessageId\":\"i\",\"Timestamp\":\"t\",\"TopicArn\":\"a\"}",
         "Signature", "is required"},
        {"{\"Type\":\"Notification\",\"SignatureVersion\":\"1\",\"Message\":\"m\","
         "\"MessageId\":\"i\",\"Timestamp\":\"t\",\"TopicArn\":\"a\",\"Signature\":\"QUJD\"}",
         "SigningCertURL", "is required"},
        {"{\"Type\":\"Notification\",\"SignatureVersion\":\"1\",\"Message\":\"m\","
         "\"MessageId\":\"i\\u007f\"}",
         "MessageId", "must not contain control characters"},
        {"{\"Type\":\"Notification\",\"SignatureVersion\":\"1\",\"Message\":\"m\","
         "\"MessageId\":\"i\",\"Timestamp\":\"t\\r\"}",
         "Timestamp", "must not contain control characters"},
        {"{\"Type\":\"Notification\",\"SignatureVersion\":\"1\",\"Message\":\"m\","
         "\"MessageId\":\"i\",\"Timestamp\":\"t\",\"TopicArn\":\"a\\nType\\nx\"}",
         "TopicArn", "must not contain control characters"},
        {"{\"Type\":\"Notification\",\"SignatureVersion\":\"1\",\"Message\":\"m\","
         "\"MessageId\":\"i\",\"Timestamp\":\"t\",\"TopicArn\":\"a\",\"Signature\":\"QU\\nJD\"}",
         "Signature", "must not contain control characters"},
        {"{\"Type\":\"Notification\",\"SignatureVersion\":\"1\",\"Message\":\"m\","
         "\"MessageId\":\"i\",\"Timestamp\":\"t\",\"TopicArn\":\"a\",\"Signature\":\"QUJD\","
         "\"SigningCertURL\":[]}",
         "SigningCertURL", "must be a string"},
        {"{" C_BASE "}", "SubscribeURL", "is required"},
        {"{" C_BASE ",\"SubscribeURL\":\"u\"}", "Token", "is required"},
        {"{" C_BASE ",\"SubscribeURL\":\"u\",\"Token\":5}", "Token", "must be a string"},
        {"{" C_BASE ",\"SubscribeURL\":\"u\\u0001\",\"Token\":\"t\"}", "SubscribeURL",
         "must not contain control characters"},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++)
        expect_parse_error(cases[i].body, strlen(cases[i].body), cases[i].field, cases[i].text);

    /* Non-JSON bytes after a valid object, and a NUL inside the body. */
    expect_parse_error("{}x", 3, "", "invalid JSON");
    expect_parse_error("{\"Type\":\0\"x\"}", 13, "", "invalid JSON");
}

static void test_bounds(void **state)
{
    (void)state;
    /* Message: 256 KiB accepted, one byte more refused. */
    const size_t max = 256 * 1024;
    char *body = dm_xmalloc(max + 512);
    for (int extra = 0; extra <= 1; extra++) {
        int n = snprintf(body, 512, "{" N_BASE ",\"SignatureVersion\":\"2\",\"Message\":\"");
        memset(body + n, 'x', max + (size_t)extra);
        strcpy(body + n + max + (size_t)extra, "\"}");
        dm_sns_message m;
        dm_error err;
        int rc = parse_guarded(body, strlen(body), &m, &err);
        if (extra == 0) {
            assert_int_equal(rc, DM_OK);
            assert_int_equal(strlen(m.message), max);
            dm_sns_message_dispose(&m);
        } else {
            assert_int_equal(rc, DM_EINVAL);
            assert_string_equal(err.field, "Message");
            assert_string_equal(err.text, "must be at most 262144 bytes");
        }
    }
    /* The short members have bounds too. */
    char id[400];
    memset(id, 'a', 300);
    id[300] = '\0';
    snprintf(body, 1024,
             "{\"Type\":\"Notification\",\"SignatureVersion\":\"2\",\"Message\":\"m\","
             "\"MessageId\":\"%s\"}",
             id);
    expect_parse_error(body, strlen(body), "MessageId", "must be at most 256 bytes");
    free(body);
}

static void test_dispose_safe(void **state)
{
    (void)state;
    dm_sns_message m = {0};
    dm_sns_message_dispose(&m);
    dm_sns_message_dispose(&m);
    dm_sns_message_dispose(NULL);

    json_t *o = signed_fixture(CONFIRMATION, "1");
    parse_json(o, &m);
    dm_sns_message_dispose(&m);
    static const dm_sns_message zero;
    assert_memory_equal(&m, &zero, sizeof m);
    dm_sns_message_dispose(&m);
    json_decref(o);
}

/*---- certificate and subscribe URLs -------------------------------------------------------*/

static void test_url_table(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        bool pem_ok, plain_ok; /* want_pem true / false */
    } cases[] = {
        /* good */
        {"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem", true, true},
        {"https://sns.cn-north-1.amazonaws.com.cn/x.pem", true, true},
        {"https://sns.us-gov-west-1.amazonaws.com/x.pem", true, true},
        {"https://SNS.EU-West-1.AmazonAWS.com/x.pem", true, true}, /* hosts are caseless */
        {"https://sns.eu-west-1.amazonaws.com/x.pem?v=1", true, true},
        {"https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:"
         "eu-west-1:111122223333:t&Token=abc",
         false, true},
        {"https://sns.eu-west-1.amazonaws.com/", false, true},
        {"https://sns.eu-west-1.amazonaws.com/a%20b.pem", true, true}, /* escapes in the path */
        /* scheme */
        {"http://sns.eu-west-1.amazonaws.com/x.pem", false, false},
        {"HTTPS://sns.eu-west-1.amazonaws.com/x.pem", false, false},
        {"Https://sns.eu-west-1.amazonaws.com/x.pem", false, false},
        {"https:/sns.eu-west-1.amazonaws.com/x.pem", false, false},
        {"https:sns.eu-west-1.amazonaws.com/x.pem", false, false},
        {"//sns.eu-west-1.amazonaws.com/x.pem", false, false},
        {"ftp://sns.eu-west-1.amazonaws.com/x.pem", false, false},
        /* userinfo, port */
        {"https://user@sns.eu-west-1.amazonaws.com/x.pem", false, false},
        {"https://user:pw@sns.eu-west-1.amazonaws.com/x.pem", false, false},
        {"https://sns.eu-west-1.amazonaws.com@evil.com/x.pem", false, false},
        {"https://sns.eu-west-1.amazonaws.com:443/x.pem", false, false},
        {"https://sns.eu-west-1.amazonaws.com:/x.pem", false, false},
        /* host */
        {"https://sns.eu-west-1.amazonaws.com.evil.com/x.pem", false, false},
        {"https://evil.com/sns.eu-west-1.amazonaws.com/x.pem", false, false},
        {"https://sns.eu-west-1.amazonaws.com./x.pem", false, false},
        {"https://sns.cn-north-1.amazonaws.com.cn./x.pem", false, false},
        {"https://sns.eu-west-1.amazonaws%2ecom/x.pem", false, false},
        {"https://sns%2eeu-west-1.amazonaws.com/x.pem", false, false},
        {"https://%73ns.eu-west-1.amazonaws.com/x.pem", false, false},
        {"https://sns..amazonaws.com/x.pem", false, false},
        {"https://sns.amazonaws.com/x.pem", false, false},
        {"https://sns.eu.west-1.amazonaws.com/x.pem", false, false},
        {"https://sns.eu_west-1.amazonaws.com/x.pem", false, false},
        {"https://xsns.eu-west-1.amazonaws.com/x.pem", false, false},
        {"https://sqs.eu-west-1.amazonaws.com/x.pem", false, false},
        {"https://sns.eu-west-1.amazonaws.co/x.pem", false, false},
        {"https://sns.eu-west-1.amazonaws.com.cn.evil/x.pem", false, false},
        {"https://sns.eu-west-1.amazonaws.comx/x.pem", false, false},
        {"https://sns.eu-west-1.evilamazonaws.com/x.pem", false, false},
        {"https:///x.pem", false, false},
        {"https://[::1]/x.pem", false, false},
        {"https://127.0.0.1/x.pem", false, false},
        {"https://sns.eu-west-1.amazonaws.com\\@evil.com/x.pem", false, false},
        {"https://sns.eu-west-1.amazonaws.com\\.evil.com/x.pem", false, false},
        {"https://sns.eu-west-1.amazonaws.com", false, false},
        {"https://sns.eu-west-1.amazonaws.com?x=/y.pem", false, false},
        /* path */
        {"https://sns.eu-west-1.amazonaws.com/x.txt", false, true},
        {"https://sns.eu-west-1.amazonaws.com/x.pem.txt", false, true},
        {"https://sns.eu-west-1.amazonaws.com/x.PEM", false, true},
        {"https://sns.eu-west-1.amazonaws.com/?x.pem", false, true},
        {"https://sns.eu-west-1.amazonaws.com/.pem", false, true},
        {"https://sns.eu-west-1.amazonaws.com/x.pem#frag", false, false},
        {"https://sns.eu-west-1.amazonaws.com/x\\y.pem", false, false},
        /* whitespace, controls, non-ASCII */
        {"", false, false},
        {" https://sns.eu-west-1.amazonaws.com/x.pem", false, false},
        {"https://sns.eu-west-1.amazonaws.com/x.pem ", false, false},
        {"https://sns.eu-west-1.amazonaws.com/x .pem", false, false},
        {"https://sns.eu-west-1.amazonaws.com/x.pem\n", false, false},
        {"https://sns.eu-west-1.amazonaws.com/\tx.pem", false, false},
        {"https://sns.eu-west-1.amazonaws.com/x\x7f.pem", false, false},
        {"https://sns.eu-west-1.amazonaws.com/\xc3\xa9.pem", false, false},
        {"https://sns.eu-west-1.amazonaws.c\xc3\xb6m/x.pem", false, false},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        if (dm_sns_url_ok(cases[i].url, true) != cases[i].pem_ok ||
            dm_sns_url_ok(cases[i].url, false) != cases[i].plain_ok)
            fail_msg("%s: want pem=%d plain=%d", cases[i].url, cases[i].pem_ok, cases[i].plain_ok);
    }
    assert_false(dm_sns_url_ok(NULL, true));
    assert_false(dm_sns_url_ok(NULL, false));

    /* Overlong URLs are refused without being read to the end. */
    size_t n = 8192;
    char *url = dm_xmalloc(n + 1);
    strcpy(url, "https://sns.eu-west-1.amazonaws.com/");
    memset(url + strlen(url), 'a', n - strlen(url) - 4);
    strcpy(url + n - 4, ".pem");
    assert_false(dm_sns_url_ok(url, true));
    free(url);
}

/* The only SigningCertURLs fetched: AWS's exact form. */
static void test_cert_url_canonical(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        bool ok;
    } cases[] = {
        {"https://sns.us-east-1.amazonaws.com/"
         "SimpleNotificationService-d6d679a1d18e95c2f9ffcf11f4f9e198.pem",
         true},
        {"https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-0123abcd.pem", true},
        {"https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-a.pem", true},
        /* what the report's 177 fetches used: any path, any query */
        {"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem?x=1", false},
        {"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem#f", false},
        {"https://sns.eu-west-1.amazonaws.com/x.pem", false},
        {"https://sns.eu-west-1.amazonaws.com/a/SimpleNotificationService-abc.pem", false},
        {"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem/x.pem", false},
        {"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-.pem", false},
        {"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-ABC.pem", false},
        {"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-xyz.pem", false},
        {"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc%2e.pem", false},
        {"https://sns.eu-west-1.amazonaws.com/simplenotificationservice-abc.pem", false},
        {"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.PEM", false},
        {"https://sns.eu-west-1.amazonaws.com:443/SimpleNotificationService-abc.pem", false},
        {"https://u@sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem", false},
        {"https://SNS.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem", false},
        {"https://sns.eu-west-1.amazonaws.com.evil.com/SimpleNotificationService-abc.pem", false},
        {"https://sns.eu.west.1.amazonaws.com/SimpleNotificationService-abc.pem", false},
        {"https://sns..amazonaws.com/SimpleNotificationService-abc.pem", false},
        {"http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem", false},
        {"", false},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        if (dm_sns_cert_url_canonical(cases[i].url) != cases[i].ok)
            fail_msg("%s: expected %d", cases[i].url, cases[i].ok);
        /* the exact form is a subset of what may be trusted at all */
        if (cases[i].ok)
            assert_true(dm_sns_url_ok(cases[i].url, true));
    }
    assert_false(dm_sns_cert_url_canonical(NULL));
    char url[200];
    snprintf(url, sizeof url,
             "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-%064d.pem", 0);
    assert_true(dm_sns_cert_url_canonical(url));
    snprintf(url, sizeof url,
             "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-%065d.pem", 0);
    assert_false(dm_sns_cert_url_canonical(url));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notification_v2),
        cmocka_unit_test(test_notification_v1),
        cmocka_unit_test(test_notification_with_subject),
        cmocka_unit_test(test_subscription_confirmation),
        cmocka_unit_test(test_unsubscribe_confirmation),
        cmocka_unit_test(test_unsigned_members_dropped),
        cmocka_unit_test(test_message_altered),
        cmocka_unit_test(test_signed_members_changed),
        cmocka_unit_test(test_subject_folded_into_message_id),
        cmocka_unit_test(test_other_key),
        cmocka_unit_test(test_version_mismatch),
        cmocka_unit_test(test_ec_certificate),
        cmocka_unit_test(test_small_rsa_certificate),
        cmocka_unit_test(test_garbage_pem),
        cmocka_unit_test(test_bad_base64),
        cmocka_unit_test(test_error_queue_preserved),
        cmocka_unit_test(test_verify_hand_made),
        cmocka_unit_test(test_string_to_sign_golden),
        cmocka_unit_test(test_string_to_sign_fixtures),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_dispose_safe),
        cmocka_unit_test(test_url_table),
        cmocka_unit_test(test_cert_url_canonical),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
