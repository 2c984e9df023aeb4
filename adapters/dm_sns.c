/* dm_sns.c - Amazon SNS HTTP(S) envelopes and their signatures (docs/registries.md "Amazon ECR
 * through SNS").
 *
 * Two properties the rest of the daemon relies on:
 * - Every value the parsed struct exposes (except Signature, SignatureVersion and
 *   SigningCertURL, which carry the proof itself) is covered by the signature for its Type:
 *   members SNS does not sign for that Type (Subject of a confirmation, Token and SubscribeURL
 *   of a notification) are dropped, so nothing unsigned can be mistaken for signed data.
 * - The string to sign is unambiguous. It is "Name\nValue\n" pairs, so a value holding a
 *   newline could absorb the pairs after it (a signed Subject moved into MessageId, say, to
 *   make a replay look like a new message). Only Message may hold control characters; all the
 *   other signed values are single-line, so the string can be split back into fields from its
 *   end in exactly one way.
 */
#include "dm_sns.h"

#include "dm_base64.h"
#include "dm_json.h"

#include <limits.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

/* SNS caps a published message at 256 KiB. */
#define SNS_MAX_MESSAGE   (256u * 1024u)
/* The other members are AWS-generated and short; the bounds leave ample room. */
#define SNS_MAX_ID        256  /* MessageId: a UUID */
#define SNS_MAX_ARN       1024 /* topic names are at most 256 characters */
#define SNS_MAX_SUBJECT   512  /* at most 100 UTF-8 characters */
#define SNS_MAX_TIMESTAMP 64
#define SNS_MAX_TOKEN     2048
#define SNS_MAX_URL       4096
#define SNS_MAX_SIGNATURE 2048 /* base64 of an 8192-bit RSA signature is 1368 characters */
/* An SNS signing certificate is ~2 KiB of PEM; anything far larger is not one. */
#define SNS_MAX_PEM       (64 * 1024)
#define RSA_MIN_BITS      2048
#define RSA_MAX_BITS      8192

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static bool is_notification(const dm_sns_message *m)
{
    return m->type == DM_SNS_NOTIFICATION;
}

/* True when @p s (@p n bytes) holds no C0 control character and no DEL. */
static bool single_line(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/*
 * Copy member @p key of @p obj into *dst. Absent → "is required" when @p required (else *dst
 * stays NULL); present values must be non-empty strings of at most @p max bytes, single-line
 * unless @p multiline. JSON null counts as absent only where @p null_absent: SNS omits
 * members it has no value for, and the SDK validators treat a null Subject as no Subject.
 */
static int take_string(json_t *obj, const char *key, bool required, bool null_absent,
                       bool multiline, size_t max, char **dst, dm_error *err)
{
    *dst = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || (null_absent && json_is_null(v))) {
        if (required)
            return dm_error_set(err, key, "is required");
        return DM_OK;
    }
    if (!json_is_string(v))
        return dm_error_set(err, key, "must be a string");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0)
        return dm_error_set(err, key, "must not be empty");
    if (n > max)
        return dm_error_set(err, key, "must be at most %zu bytes", max);
    /* jansson refuses "\u0000" unless JSON_ALLOW_NUL is given; checked anyway, because every
     * later use of the value (the string to sign above all) goes by strlen(). */
    if (strlen(s) != n)
        return dm_error_set(err, key, "must not contain NUL");
    if (!multiline && !single_line(s, n))
        return dm_error_set(err, key, "must not contain control characters");
    *dst = dm_xstrndup(s, n);
    return DM_OK;
}

static bool ascii_lower_eq(const char *a, size_t n, const char *lower)
{
    if (strlen(lower) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lower[i])
            return false;
    }
    return true;
}

/* ^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$ on @p host (@p n bytes), ASCII case-insensitive. */
static bool sns_host_ok(const char *host, size_t n)
{
    static const char prefix[] = "sns.";
    static const char *const suffixes[] = {".amazonaws.com.cn", ".amazonaws.com"};
    const size_t plen = sizeof prefix - 1;
    if (n <= plen || !ascii_lower_eq(host, plen, prefix))
        return false;
    for (size_t k = 0; k < DM_ARRAY_LEN(suffixes); k++) {
        size_t slen = strlen(suffixes[k]);
        if (n < plen + 1 + slen || !ascii_lower_eq(host + n - slen, slen, suffixes[k]))
            continue;
        /* The region label: at least one of [a-z0-9-], and no '.' (so no extra labels). */
        for (size_t i = plen; i < n - slen; i++) {
            char c = host[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-'))
                return false;
        }
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* Signatures                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* Padded standard base64 (RFC 4648 §4, one line, as SNS writes it), in its one canonical
 * spelling (dm_base64.h). */
static bool b64_decode(const char *in, size_t len, unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (len == 0 || len > SNS_MAX_SIGNATURE)
        return false;
    return dm_base64_decode(in, len, DM_BASE64_CANONICAL, out, outlen);
}

/* A PEM "Proc-Type: 4,ENCRYPTED" block must not make OpenSSL's default callback prompt for a
 * password on the terminal: certificates are never encrypted, so there is none. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static X509 *load_cert(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return NULL;
    X509 *cert = PEM_read_bio_X509(bio, NULL, no_password, NULL);
    BIO_free(bio);
    return cert;
}

/* Everything dm_sns_verify does between the OpenSSL error-queue mark and its pop. */
static int verify_marked(const dm_sns_message *m, const char *cert_pem, size_t pem_len,
                         dm_error *err)
{
    const char *md;
    if (m->signature_version && strcmp(m->signature_version, "1") == 0)
        md = "SHA1";
    else if (m->signature_version && strcmp(m->signature_version, "2") == 0)
        md = "SHA256";
    else
        return dm_error_set(err, "SignatureVersion", "must be \"1\" or \"2\"");
    if (!m->signature)
        return dm_error_set(err, "Signature", "is required");

    char *tbs = dm_sns_string_to_sign(m);
    if (!tbs)
        return dm_error_set(err, "Type", "message lacks a field its type needs");

    int rc = DM_EINVAL;
    X509 *cert = NULL;
    EVP_MD_CTX *mdctx = NULL;
    unsigned char *sig = NULL;
    size_t sig_len;

    if (!cert_pem || pem_len == 0 || pem_len > SNS_MAX_PEM ||
        !(cert = load_cert(cert_pem, pem_len))) {
        dm_error_set(err, "SigningCertURL", "certificate is not a PEM X.509 certificate");
        goto done;
    }
    EVP_PKEY *pkey = X509_get0_pubkey(cert); /* owned by cert */
    if (!pkey || !EVP_PKEY_is_a(pkey, "RSA")) {
        dm_error_set(err, "SigningCertURL", "certificate key is not RSA");
        goto done;
    }
    int bits = EVP_PKEY_get_bits(pkey);
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
        dm_error_set(err, "SigningCertURL", "certificate RSA key must have %d to %d bits",
                     RSA_MIN_BITS, RSA_MAX_BITS);
        goto done;
    }
    if (!b64_decode(m->signature, strlen(m->signature), &sig, &sig_len)) {
        dm_error_set(err, "Signature", "must be base64");
        goto done;
    }
    /* RSASSA-PKCS1-v1_5 signatures are exactly the modulus size. */
    if (sig_len != (size_t)EVP_PKEY_get_size(pkey)) {
        dm_error_set(err, "Signature", "has the wrong length for the certificate key");
        goto done;
    }

    EVP_PKEY_CTX *pctx = NULL; /* owned by mdctx */
    mdctx = EVP_MD_CTX_new();
    if (!mdctx || EVP_DigestVerifyInit_ex(mdctx, &pctx, md, NULL, NULL, pkey, NULL) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
        dm_error_set(err, "Signature", "cannot verify %s with RSA", md);
        goto done;
    }
    if (EVP_DigestVerify(mdctx, sig, sig_len, (const unsigned char *)tbs, strlen(tbs)) != 1) {
        dm_error_set(err, "Signature", "does not match the message");
        goto done;
    }
    rc = DM_OK;

done:
    EVP_MD_CTX_free(mdctx);
    X509_free(cert);
    free(sig);
    free(tbs);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* API                                                                                        */
/* ------------------------------------------------------------------------------------------ */

int dm_sns_parse(const char *body, size_t len, dm_sns_message *out, dm_error *err)
{
    dm_sns_message m = {0};
    json_t *root = NULL;

    memset(out, 0, sizeof *out);
    if (dm_json_load_object(body, len, &root, err) != DM_OK)
        goto fail;

    /* The Type decides which members are signed, hence which are required. */
    if (take_string(root, "Type", true, false, false, SNS_MAX_ID, &m.type_str, err) != DM_OK)
        goto fail;
    if (strcmp(m.type_str, "Notification") == 0) {
        m.type = DM_SNS_NOTIFICATION;
    } else if (strcmp(m.type_str, "SubscriptionConfirmation") == 0) {
        m.type = DM_SNS_SUBSCRIPTION_CONFIRMATION;
    } else if (strcmp(m.type_str, "UnsubscribeConfirmation") == 0) {
        m.type = DM_SNS_UNSUBSCRIBE_CONFIRMATION;
    } else {
        dm_error_set(err, "Type",
                     "must be Notification, SubscriptionConfirmation or UnsubscribeConfirmation");
        goto fail;
    }
    /* Decided before anything else is read, so an unknown scheme is never half-interpreted. */
    if (take_string(root, "SignatureVersion", true, false, false, 8, &m.signature_version, err) !=
        DM_OK)
        goto fail;
    if (strcmp(m.signature_version, "1") != 0 && strcmp(m.signature_version, "2") != 0) {
        dm_error_set(err, "SignatureVersion", "must be \"1\" or \"2\"");
        goto fail;
    }

    bool conf = !is_notification(&m);
    /* In the order of the string to sign, then the proof. */
    if (take_string(root, "Message", true, false, true, SNS_MAX_MESSAGE, &m.message, err) !=
            DM_OK ||
        take_string(root, "MessageId", true, false, false, SNS_MAX_ID, &m.message_id, err) != DM_OK)
        goto fail;
    if (!conf &&
        take_string(root, "Subject", false, true, false, SNS_MAX_SUBJECT, &m.subject, err) != DM_OK)
        goto fail;
    if (conf && take_string(root, "SubscribeURL", true, false, false, SNS_MAX_URL, &m.subscribe_url,
                            err) != DM_OK)
        goto fail;
    if (take_string(root, "Timestamp", true, false, false, SNS_MAX_TIMESTAMP, &m.timestamp, err) !=
        DM_OK)
        goto fail;
    if (conf &&
        take_string(root, "Token", true, false, false, SNS_MAX_TOKEN, &m.token, err) != DM_OK)
        goto fail;
    if (take_string(root, "TopicArn", true, false, false, SNS_MAX_ARN, &m.topic_arn, err) !=
            DM_OK ||
        take_string(root, "Signature", true, false, false, SNS_MAX_SIGNATURE, &m.signature, err) !=
            DM_OK ||
        take_string(root, "SigningCertURL", true, false, false, SNS_MAX_URL, &m.signing_cert_url,
                    err) != DM_OK)
        goto fail;

    json_decref(root);
    *out = m;
    return DM_OK;

fail:
    dm_sns_message_dispose(&m);
    json_decref(root);
    return DM_EINVAL;
}

void dm_sns_message_dispose(dm_sns_message *m)
{
    if (!m)
        return;
    free(m->type_str);
    free(m->message_id);
    free(m->topic_arn);
    free(m->subject);
    free(m->message);
    free(m->timestamp);
    free(m->token);
    free(m->subscribe_url);
    free(m->signature_version);
    free(m->signature);
    free(m->signing_cert_url);
    memset(m, 0, sizeof *m);
}

char *dm_sns_string_to_sign(const dm_sns_message *m)
{
    if (!m)
        return NULL;
    bool conf = !is_notification(m);
    /* The documented (byte-sorted) order; NULL values are left out. */
    const struct {
        const char *name, *value;
    } f[] = {
        {"Message", m->message},
        {"MessageId", m->message_id},
        {"Subject", conf ? NULL : m->subject},
        {"SubscribeURL", conf ? m->subscribe_url : NULL},
        {"Timestamp", m->timestamp},
        {"Token", conf ? m->token : NULL},
        {"TopicArn", m->topic_arn},
        {"Type", m->type_str},
    };
    /* A struct dm_sns_parse could not have produced (a required member missing) has no
     * string to sign: refuse it rather than sign over a gap. */
    if (!m->message || !m->message_id || !m->timestamp || !m->topic_arn || !m->type_str ||
        (conf && (!m->subscribe_url || !m->token)))
        return NULL;

    size_t total = 1;
    for (size_t i = 0; i < DM_ARRAY_LEN(f); i++) {
        if (f[i].value)
            total += strlen(f[i].name) + strlen(f[i].value) + 2;
    }
    char *s = dm_xmalloc(total), *p = s;
    for (size_t i = 0; i < DM_ARRAY_LEN(f); i++) {
        if (!f[i].value)
            continue;
        size_t n = strlen(f[i].name);
        memcpy(p, f[i].name, n);
        p += n;
        *p++ = '\n';
        n = strlen(f[i].value);
        memcpy(p, f[i].value, n);
        p += n;
        *p++ = '\n';
    }
    *p = '\0';
    return s;
}

int dm_sns_verify(const dm_sns_message *m, const char *cert_pem, size_t pem_len, dm_error *err)
{
    if (!m)
        return dm_error_set(err, "", "no message");
    /* OpenSSL leaves its reasons for a refusal on the thread's error queue; they are not
     * ours to report, and a stale entry would confuse the next SSL_get_error() on this
     * thread. The mark keeps whatever the caller had queued. */
    ERR_set_mark();
    int rc = verify_marked(m, cert_pem, pem_len, err);
    ERR_pop_to_mark();
    /* A forged or unverifiable message is an authentication failure, not a malformed one. */
    if (rc != DM_OK && err)
        err->status = 401;
    return rc;
}

bool dm_sns_url_ok(const char *url, bool want_pem)
{
    static const char scheme[] = "https://";
    if (!url)
        return false;
    size_t len = strnlen(url, SNS_MAX_URL + 1);
    if (len == 0 || len > SNS_MAX_URL)
        return false;
    /* Printable ASCII only (no whitespace, controls or raw UTF-8); no fragment, and no
     * backslash, which some URL parsers read as '/', so the authority we check would not be
     * the one they connect to. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f || c == '#' || c == '\\')
            return false;
    }
    /* The scheme is compared exactly: we only ever produce and accept it in lowercase. */
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return false;
    const char *host = url + sizeof scheme - 1;
    const char *path = strchr(host, '/');
    if (!path)
        return false; /* no path at all (and a '?' before any '/' is part of the authority) */
    /* The authority must be the bare host: no userinfo ('@'), no port (':'). The character
     * check in sns_host_ok refuses those, '%'-escapes and everything else. */
    if (!sns_host_ok(host, (size_t)(path - host)))
        return false;
    if (want_pem) {
        const char *q = strchr(path, '?');
        size_t plen = q ? (size_t)(q - path) : strlen(path);
        if (plen < 2 + 4 || memcmp(path + plen - 4, ".pem", 4) != 0)
            return false; /* "/x.pem" at least */
    }
    return true;
}

/* The longest hex name accepted: AWS's are 32 digits (an MD5-sized name). */
#define SNS_CERT_MAX_HEX 64

bool dm_sns_cert_url_canonical(const char *url)
{
    static const char scheme[] = "https://sns.";
    static const char *const hosts[] = {".amazonaws.com/", ".amazonaws.com.cn/"};
    static const char name[] = "SimpleNotificationService-";
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0)
        return false;
    const char *p = url + sizeof scheme - 1, *region = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')
        p++;
    if (p == region)
        return false;
    size_t k = 0;
    while (k < DM_ARRAY_LEN(hosts) && strncmp(p, hosts[k], strlen(hosts[k])) != 0)
        k++;
    if (k == DM_ARRAY_LEN(hosts))
        return false;
    p += strlen(hosts[k]);
    if (strncmp(p, name, sizeof name - 1) != 0)
        return false;
    p += sizeof name - 1;
    const char *hex = p;
    while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))
        p++;
    size_t nhex = (size_t)(p - hex);
    /* ".pem" and the end: no query, fragment or further path. */
    return nhex >= 1 && nhex <= SNS_CERT_MAX_HEX && strcmp(p, ".pem") == 0;
}
