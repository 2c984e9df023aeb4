/* fuzz_sns.c - libFuzzer target for the SNS envelope module: dm_sns_parse, the string to
 * sign, dm_sns_verify against a fixed certificate, and dm_sns_url_ok against an independent
 * regex oracle. Any bytes give a consistent message or a precise error, never a crash, a leak,
 * a stale OpenSSL error, or a "verified" message whose signed content was not signed.
 *
 * The corpus (tests/fuzz/corpus/sns) holds envelopes really signed by the key of CERT_PEM
 * below; the private key was thrown away after signing them, so the only messages that can
 * verify are those whose string to sign hashes to one of SIGNED[].
 */
#include "dm_common.h"
#include "dm_sns.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Self-signed RSA-2048 test certificate (public material; CN "digestmap fuzz_sns test
 * certificate", valid 2026-2126). */
static const char CERT_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIDPzCCAiegAwIBAgIUEjjtjhYe34PM4lt4Zy03I/wqrEkwDQYJKoZIhvcNAQEL\n"
                               "BQAwLjEsMCoGA1UEAwwjZGlnZXN0bWFwIGZ1enpfc25zIHRlc3QgY2VydGlmaWNh\n"
                               "dGUwIBcNMjYxMTI4MTcwMzM4WhgPMjEyNjExMDQxNzAzMzhaMC4xLDAqBgNVBAMM\n"
                               "I2RpZ2VzdG1hcCBmdXp6X3NucyB0ZXN0IGNlcnRpZmljYXRlMIIBIjANBgkqhkiG\n"
                               "9w0BAQEFAAOCAQ8AMIIBCgKCAQEAytj6GCSyevjx8KBmD6aXpqnoQFTUHTvD3JSq\n"
                               "+EAqU5T6JnYOM6rH21yjip+M41twTN8rv95QXPV5nFHBDjjF2oBQGLZaLIpemSAe\n"
                               "GUhaq646ccWMHalTLF1mMDNjrXEh/f4otAiXWnvr8PjsLBYZtmHNObe0r/i5cOJL\n"
                               "ccTepojDIXTM4EK/gWo7DTVf7/wbYbli3sCf8BKLF57Dsn7i5BeUnjVtdFz+uqG2\n"
                               "UhXbbU8i5Q306smCRfSC5v9935ureKrO+1TsJmvGc2E3UybP9o0cagyQR4qfpUCP\n"
                               "Q/9oT5hYQy5oQg48hqq96s65R5nfLADY6wa4XykqyIcbx6nXTwIDAQABo1MwUTAd\n"
                               "BgNVHQ4EFgQU4Xp50FJZ1op1bll8tFx3pg/N4ZgwHwYDVR0jBBgwFoAU4Xp50FJZ\n"
                               "1op1bll8tFx3pg/N4ZgwDwYDVR0TAQH/BAUwAwEB/zANBgkqhkiG9w0BAQsFAAOC\n"
                               "AQEAM8ZIe+iXXP6rnPaO25LGvn+o4lE5Dwi2jVlL0MOYZWgS46ZTobQP9IxJ+ksZ\n"
                               "U10MB+GfW0d1EVbw+LEvvJVi4AX0BV1g2/apO7TCFuQA5/CycIBFJdc0CQXd1g7G\n"
                               "sUo/qZhzxoTjSvfqDAPo4FTYp9rFWyrzzp1OPVLrSaeO8+i15DNWXrdVBzpdXmnh\n"
                               "7U9UPKQmFjwQ7tk1qEdlaJbwWFlGF2OQwsRhzAcTCXqjPzG4ihXyrszhtLKe7gdu\n"
                               "XW5j5SBYhP1oX7uU05reVrkXumbAnoULf5j0w6fZEcthMYAfSUlVUt3EF0KyyD/0\n"
                               "KKpxSckTdcqie4Kif6DSgqZWpg==\n"
                               "-----END CERTIFICATE-----\n";

/* SHA-256 of the string to sign of each signed corpus envelope. */
static const char *const SIGNED[] = {
    /* notification-v2.json */
    "feda3fd301a9207aa3263dc78c79e28a2fe9ebe191f0ac3b189f64eb2b14858a",
    /* notification-v1-subject.json */
    "a85407764d5df76489b9b087875ae2e10d1e772e7e2e9be63bb6b26c06c486f2",
    /* subscription-confirmation-v2.json */
    "c7e1c6b365e1099d3c26ac850e10d265ca1f3c69f3c32609a8f3964b6f215b22",
    /* unsubscribe-confirmation-v1.json */
    "87bdf05b47dcb950760e355d64392ec20d84e39fa6216aa9218621a8733d2b38",
    /* notification-short-v2.json */
    "eb0516051e2cfff3c7dc8b571ed9ee07b350c8501982fb4e695c5fe434730935",
};

/* A signed envelope, verified against every input that looks like PEM. */
static const char SHORT_SIGNED[] =
    "{\"Type\":\"Notification\",\"MessageId\":\"m-1\",\"TopicArn\":\"arn:aws:sns:eu-west-1:"
    "111122223333:t\",\"Message\":\"hello\",\"Timestamp\":\"2026-11-28T14:03:06.114Z\",\"Si"
    "gnatureVersion\":\"2\",\"SigningCertURL\":\"https://sns.eu-west-1.amazonaws.com/c.pem\""
    ",\"Signature\":\"hKCoRcuv6Xr/iSJCXrzuUJS3NJiR7t7PqGf1SteTljI6/TF3BrGsVhC1MdHtbjYqjnSIc"
    "En/mTt2nhFlKBUX2UxBIuF1bQMGPRJKNlRDkaIBYs3AH+q+Gu4DncgRyBSQAvC4rFnyLxeXehMmAq7/HRG+EEl"
    "GgjI2l721VwT/N6JMnPBHN+qFbX5OHwF8H6ZOoDlDC0xK0VHZ3SK4BDfSbinNtmOKgu/cQBbWg2eyFZAkHXUYi"
    "05XjF0ljFHSZ+JdquDzk0ZT4/tT4z8gbew0mcj1tTbc+RrF69DR5GawqW/N0gMMGq9Lk/m8wrShrz4ZAXBJWk4"
    "4U6v31Ov+hVcCUw==\"}";

/*---- invariants ---------------------------------------------------------------------------*/

static void check_error(const dm_error *err, int status)
{
    if (err->status != status || err->text[0] == '\0')
        __builtin_trap();
    if (memchr(err->field, '\0', sizeof err->field) == NULL ||
        memchr(err->text, '\0', sizeof err->text) == NULL)
        __builtin_trap();
    for (const char *p = err->text; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            __builtin_trap(); /* texts go into JSON answers and log lines */
    }
}

/* Independent oracle for dm_sns_url_ok: POSIX regexes instead of hand-written scanning. */
static bool url_oracle(const char *url, bool want_pem)
{
    static regex_t re_url, re_host;
    static bool compiled;
    if (!compiled) {
        if (regcomp(&re_url, "^https://([^/]*)(/.*)$", REG_EXTENDED) != 0 ||
            regcomp(&re_host, "^sns\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?$",
                    REG_EXTENDED | REG_ICASE | REG_NOSUB) != 0)
            __builtin_trap();
        compiled = true;
    }
    size_t n = strlen(url);
    if (n == 0 || n > 4096)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f || c == '#' || c == '\\')
            return false;
    }
    regmatch_t mt[3];
    if (regexec(&re_url, url, 3, mt, 0) != 0)
        return false;
    char *host = dm_xstrndup(url + mt[1].rm_so, (size_t)(mt[1].rm_eo - mt[1].rm_so));
    bool ok = regexec(&re_host, host, 0, NULL, 0) == 0;
    free(host);
    if (ok && want_pem) {
        const char *path = url + mt[2].rm_so;
        const char *q = strchr(path, '?');
        size_t plen = q ? (size_t)(q - path) : strlen(path);
        ok = plen >= 6 && memcmp(path + plen - 4, ".pem", 4) == 0;
    }
    return ok;
}

static void check_url(const char *url)
{
    for (int pem = 0; pem <= 1; pem++) {
        bool got = dm_sns_url_ok(url, pem);
        if (got != url_oracle(url, pem))
            __builtin_trap();
        if (!got)
            continue;
        /* The authority ends at the first '/' and holds no userinfo or port ('@' and ':' are
         * fine in a path or query). */
        const char *path = strncmp(url, "https://", 8) == 0 ? strchr(url + 8, '/') : NULL;
        if (!path || memchr(url + 8, '@', (size_t)(path - url - 8)) ||
            memchr(url + 8, ':', (size_t)(path - url - 8)) || strchr(url, '#') || strchr(url, '\\'))
            __builtin_trap();
    }
    if (dm_sns_url_ok(url, true) && !dm_sns_url_ok(url, false))
        __builtin_trap(); /* a certificate URL is a good URL */
}

static bool has_control(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    }
    return false;
}

/* Split @p tbs back into fields from its end (values other than Message are single-line) and
 * compare with @p m: the string to sign has exactly one reading, and it is the message's. */
static void check_string_to_sign(const dm_sns_message *m, const char *tbs)
{
    bool conf = m->type != DM_SNS_NOTIFICATION;
    const char *want[8][2] = {
        {"Type", m->type_str},
        {"TopicArn", m->topic_arn},
        {"Token", conf ? m->token : NULL},
        {"Timestamp", m->timestamp},
        {"SubscribeURL", conf ? m->subscribe_url : NULL},
        {"Subject", conf ? NULL : m->subject},
        {"MessageId", m->message_id},
    };
    size_t end = strlen(tbs);
    for (size_t i = 0; want[i][0]; i++) {
        if (!want[i][1])
            continue;
        /* ...\n<name>\n<value>\n at [end) */
        size_t vlen = strlen(want[i][1]), nlen = strlen(want[i][0]);
        if (end < nlen + vlen + 3)
            __builtin_trap();
        size_t v = end - 1 - vlen, n = v - 1 - nlen;
        if (tbs[end - 1] != '\n' || tbs[v - 1] != '\n' || tbs[n - 1] != '\n' ||
            memcmp(tbs + v, want[i][1], vlen) != 0 || memcmp(tbs + n, want[i][0], nlen) != 0)
            __builtin_trap();
        end = n;
    }
    size_t mlen = strlen(m->message);
    if (end != 8 + mlen + 1 || memcmp(tbs, "Message\n", 8) != 0 ||
        memcmp(tbs + 8, m->message, mlen) != 0 || tbs[end - 1] != '\n')
        __builtin_trap();
}

static void check_message(const dm_sns_message *m)
{
    static const char *const types[] = {"Notification", "SubscriptionConfirmation",
                                        "UnsubscribeConfirmation"};
    if ((unsigned)m->type >= DM_ARRAY_LEN(types) || !m->type_str ||
        strcmp(m->type_str, types[m->type]) != 0)
        __builtin_trap();
    if (!m->signature_version ||
        (strcmp(m->signature_version, "1") != 0 && strcmp(m->signature_version, "2") != 0))
        __builtin_trap();
    const char *required[] = {m->message_id, m->topic_arn, m->message,
                              m->timestamp,  m->signature, m->signing_cert_url};
    for (size_t i = 0; i < DM_ARRAY_LEN(required); i++) {
        if (!required[i] || !required[i][0])
            __builtin_trap();
    }
    if (strlen(m->message) > 256 * 1024)
        __builtin_trap();
    const char *single[] = {m->message_id, m->topic_arn,     m->subject,   m->timestamp,
                            m->token,      m->subscribe_url, m->signature, m->signing_cert_url};
    for (size_t i = 0; i < DM_ARRAY_LEN(single); i++) {
        if (single[i] && (!single[i][0] || has_control(single[i])))
            __builtin_trap();
    }
    if (m->type == DM_SNS_NOTIFICATION ? m->token || m->subscribe_url
                                       : m->subject || !m->token || !m->subscribe_url)
        __builtin_trap(); /* only members signed for the type are exposed */
}

static bool signed_by_corpus(const char *tbs)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (EVP_Digest(tbs, strlen(tbs), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        __builtin_trap();
    char hex[65];
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    for (size_t i = 0; i < DM_ARRAY_LEN(SIGNED); i++) {
        if (strcmp(hex, SIGNED[i]) == 0)
            return true;
    }
    return false;
}

static void check_verify(const dm_sns_message *m, const char *pem, size_t len, bool *ok)
{
    dm_error err;
    memset(&err, 0, sizeof err);
    ERR_clear_error();
    int rc = dm_sns_verify(m, pem, len, &err);
    if (ERR_peek_error() != 0)
        __builtin_trap(); /* OpenSSL's queue left as found */
    if (rc == DM_EINVAL)
        check_error(&err, 401);
    else if (rc != DM_OK)
        __builtin_trap();
    *ok = rc == DM_OK;
}

/*---- target -------------------------------------------------------------------------------*/

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The input as a URL (a C string cannot hold a NUL; longer ones only test the bound). */
    if (size <= 8192 && !memchr(data, '\0', size)) {
        char *url = dm_xstrndup((const char *)data, size);
        check_url(url);
        free(url);
    }

    /* The input as a certificate for a message that really is signed. */
    if (size >= 5 && memcmp(data, "-----", 5) == 0) {
        dm_sns_message fixed;
        dm_error err;
        if (dm_sns_parse(SHORT_SIGNED, sizeof SHORT_SIGNED - 1, &fixed, &err) != DM_OK)
            __builtin_trap();
        bool ok;
        check_verify(&fixed, (const char *)data, size, &ok);
        dm_sns_message_dispose(&fixed);
    }

    /* The input as an envelope. */
    dm_sns_message m;
    dm_error err;
    memset(&m, 0xa5, sizeof m); /* the parser must not read what it is given in out */
    memset(&err, 0, sizeof err);
    int rc = dm_sns_parse((const char *)data, size, &m, &err);
    if (rc == DM_EINVAL) {
        static const dm_sns_message zero;
        if (memcmp(&m, &zero, sizeof m) != 0)
            __builtin_trap(); /* out must be left empty */
        check_error(&err, 400);
        return 0;
    }
    if (rc != DM_OK)
        __builtin_trap();

    check_message(&m);
    char *tbs = dm_sns_string_to_sign(&m);
    if (!tbs)
        __builtin_trap();
    check_string_to_sign(&m, tbs);
    check_url(m.signing_cert_url);
    if (m.subscribe_url)
        check_url(m.subscribe_url);

    bool ok;
    check_verify(&m, CERT_PEM, sizeof CERT_PEM - 1, &ok);
    if (ok && !signed_by_corpus(tbs))
        __builtin_trap(); /* "verified" content nobody signed */
    free(tbs);
    dm_sns_message_dispose(&m);
    return 0;
}
