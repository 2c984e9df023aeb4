/* dm_sns.h - Amazon SNS HTTP(S) message envelopes and their signatures (docs/registries.md). Pure:
 * the caller supplies the signing certificate (PEM bytes); nothing is fetched here. */
#ifndef DM_ADAPTERS_DM_SNS_H
#define DM_ADAPTERS_DM_SNS_H

#include "dm_event.h"

typedef enum {
    DM_SNS_NOTIFICATION = 0,
    DM_SNS_SUBSCRIPTION_CONFIRMATION,
    DM_SNS_UNSUBSCRIBE_CONFIRMATION,
} dm_sns_type;

/** A parsed envelope; every string is owned (NULL when absent). */
typedef struct dm_sns_message {
    dm_sns_type type;
    char *type_str, *message_id, *topic_arn, *subject, *message, *timestamp, *token, *subscribe_url,
        *signature_version, *signature, *signing_cert_url;
} dm_sns_message;

/**
 * Parse an SNS envelope (JSON object with "Type", "MessageId", "TopicArn", "Message",
 * "Timestamp", "SignatureVersion" "1" or "2", "Signature", "SigningCertURL", and for
 * confirmations "Token" and "SubscribeURL"). Returns DM_OK, or DM_EINVAL (err names the
 * field). Dispose with dm_sns_message_dispose.
 */
int dm_sns_parse(const char *body, size_t len, dm_sns_message *out, dm_error *err);

void dm_sns_message_dispose(dm_sns_message *m);

/**
 * The documented string to sign: "Name\nValue\n" for Message, MessageId, Subject (if
 * present, notifications only), SubscribeURL (confirmations), Timestamp, Token
 * (confirmations), TopicArn, Type — in that order. Returns a malloc'd string.
 */
char *dm_sns_string_to_sign(const dm_sns_message *m);

/**
 * Verify the signature (SignatureVersion "1": SHA1withRSA, "2": SHA256withRSA) with the
 * public key of the X.509 certificate @p cert_pem (@p pem_len bytes). Returns DM_OK or
 * DM_EINVAL with @p err saying why (bad certificate, bad base64, mismatch).
 */
int dm_sns_verify(const dm_sns_message *m, const char *cert_pem, size_t pem_len, dm_error *err);

/**
 * True for an SNS URL we may trust or fetch: "https://", no userinfo, no port, host
 * "sns.<region>.amazonaws.com" or "….amazonaws.com.cn" (region [a-z0-9-]+), and, when
 * @p want_pem, a path ending in ".pem" (SigningCertURL); SubscribeURL passes with false.
 */
bool dm_sns_url_ok(const char *url, bool want_pem);

/**
 * True for a SigningCertURL of the exact form SNS uses, the only one digestmapd fetches:
 * "https://sns.<region>.amazonaws.com/SimpleNotificationService-<hex>.pem" (or
 * ".amazonaws.com.cn"), all lowercase, region [a-z0-9-]+, 1 to 64 lowercase hex digits, and
 * nothing after ".pem": no query, fragment, user info, port or other path. AWS documents only
 * that the URL is on the SNS host of the region; every certificate it has published has this
 * name, so anything else names no certificate and is refused before a fetch.
 */
bool dm_sns_cert_url_canonical(const char *url);

#endif
