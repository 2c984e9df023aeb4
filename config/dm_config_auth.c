/* dm_config_auth.c - auth lists: the "auth" arrays of sources and of api, and their entries
 * of type none, header, hmac-sha256, oidc and sns.
 */
#include "dm_config_loader.h"
#include "dm_jwt.h"
#include "dm_sns.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_HMAC_HEADER "X-Digestmap-Signature"
#define JWKS_FILE_MAX       (1024 * 1024)
#define NO_AUTH_HINT        "use [{\"type\": \"none\"}] to accept unauthenticated requests"

/* RFC 9110 token characters: anything else can never name a received header. */
static bool is_header_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              strchr("!#$%&'*+-.^_`|~", ch)))
            return false;
    }
    return true;
}

/* The jwks_file, read and checked now, so that a file the verifier could not use fails the
 * load (and --check-config) rather than every token; its bytes are kept for the keyring that
 * dm_trust builds. */
static int read_jwks_file(dm_cfg_loader *ld, const char *path, const char *jwks_file,
                          dm_auth_entry *out)
{
    char pb[PATH_BUF], sb[SHOW_BUF];
    dm_error jerr = {0};
    char *full = dm_cfg_resolve_path(ld, jwks_file);
    unsigned char *buf = NULL;
    size_t len = 0;
    dm_jwks *keys = NULL;
    int rc = dm_cfg_read_file(full, JWKS_FILE_MAX, &buf, &len);
    if (rc != DM_OK) {
        rc = dm_cfg_fail(ld, rc == DM_EINVAL ? DM_EINVAL : DM_EIO,
                         dm_cfg_key_path(pb, path, "jwks_file"), "cannot read \"%s\": %s",
                         dm_cfg_show(full, sb),
                         rc == DM_EINVAL ? "larger than 1 MiB" : strerror(-rc));
    } else if (dm_jwks_parse((const char *)buf, len, &keys, &jerr) != DM_OK) {
        rc = dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "jwks_file"), "\"%s\": %s%s%s",
                         dm_cfg_show(full, sb), jerr.field, jerr.field[0] ? ": " : "", jerr.text);
    } else if (dm_jwks_count(keys) == 0) {
        rc = dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "jwks_file"),
                         "\"%s\" has no usable key (RS256 RSA >= 2048 bits or ES256 P-256, with a "
                         "kid)",
                         dm_cfg_show(full, sb));
    }
    dm_jwks_free(keys);
    free(full);
    if (rc != DM_OK) {
        free(buf);
        return rc;
    }
    out->jwks = (char *)buf;
    out->jwks_len = len;
    return DM_OK;
}

/* "provider" (how claims become a build identity) and "claims" (the allowlist). */
static int parse_oidc_claims(dm_cfg_loader *ld, const json_t *e, const char *path,
                             const char *provider, dm_auth_entry *out)
{
    static const char *const providers[] = {"auto", "github", "gitlab", "azure-devops", "generic"};
    char pb[PATH_BUF], sb[SHOW_BUF];
    out->provider = 0;
    if (provider) {
        size_t i = 0;
        while (i < DM_ARRAY_LEN(providers) && strcmp(provider, providers[i]) != 0)
            i++;
        if (i == DM_ARRAY_LEN(providers))
            return dm_cfg_fail(
                ld, DM_EINVAL, dm_cfg_key_path(pb, path, "provider"),
                "unknown provider \"%s\" (expected auto, github, gitlab, azure-devops "
                "or generic)",
                dm_cfg_show(provider, sb));
        out->provider = (int)i; /* same order as dm_oidc_provider */
    }
    const json_t *claims = json_object_get(e, "claims");
    if (!claims)
        return DM_OK;
    if (!json_is_object(claims))
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "claims"),
                           "must be an object of claim name -> list of allowed values");
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)claims, k, v)
    {
        if (!json_is_array(v) || json_array_size(v) == 0)
            return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "claims"),
                               "\"%s\" must list the allowed values (a non-empty array)",
                               dm_cfg_show(k, sb));
    }
    out->claims = json_deep_copy(claims);
    return DM_OK;
}

/* {"type": "oidc", "issuer", "audience", "jwks_file", "jwks_url", "jwks_refresh_seconds",
 *  "claims", "provider", "server_url", "replay"} */
static int parse_oidc_entry(dm_cfg_loader *ld, const json_t *e, const char *path,
                            dm_auth_entry *out)
{
    static const char *const keys[] = {
        "type",   "issuer",   "audience",   "jwks_file", "jwks_url", "jwks_refresh_seconds",
        "claims", "provider", "server_url", "replay",    NULL};
    char pb[PATH_BUF];
    const char *issuer, *audience, *jwks_file, *jwks_url, *provider, *server_url;
    long long refresh;
    int rc;
    if ((rc = dm_cfg_check_keys(ld, e, path, keys)) < 0 ||
        (rc = dm_cfg_get_str(ld, e, path, "issuer", true, &issuer)) < 0 ||
        (rc = dm_cfg_get_str(ld, e, path, "audience", true, &audience)) < 0 ||
        (rc = dm_cfg_get_str(ld, e, path, "jwks_file", true, &jwks_file)) < 0 ||
        (rc = dm_cfg_get_str(ld, e, path, "jwks_url", true, &jwks_url)) < 0 ||
        (rc = dm_cfg_get_str(ld, e, path, "provider", true, &provider)) < 0 ||
        (rc = dm_cfg_get_str(ld, e, path, "server_url", true, &server_url)) < 0)
        return rc;
    if (!issuer)
        return dm_cfg_fail(ld, DM_EINVAL, path, "\"issuer\" is required");
    if (strncmp(issuer, "https://", 8) != 0)
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "issuer"),
                           "must be an https:// URL");
    if (!audience)
        return dm_cfg_fail(ld, DM_EINVAL, path, "\"audience\" is required");
    if (!jwks_file && !jwks_url)
        return dm_cfg_fail(ld, DM_EINVAL, path, "one of \"jwks_file\" or \"jwks_url\" is required");
    if (jwks_url &&
        (rc = dm_cfg_check_http_url(ld, dm_cfg_key_path(pb, path, "jwks_url"), jwks_url)) < 0)
        return rc;
    if (!jwks_url && json_object_get(e, "jwks_refresh_seconds"))
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "jwks_refresh_seconds"),
                           "only applies with \"jwks_url\"");
    const json_t *replay = json_object_get(e, "replay");
    if (replay && !json_is_boolean(replay))
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "replay"),
                           "must be true or false");
    out->replay = !replay || json_is_true(replay);
    if ((rc = dm_cfg_get_int(ld, e, path, "jwks_refresh_seconds", 60, 86400, 3600, &refresh)) < 0 ||
        (rc = parse_oidc_claims(ld, e, path, provider, out)) < 0)
        return rc;
    /* Google signs with "https://accounts.google.com" but older tokens say the bare host. */
    bool google = strcmp(issuer, "https://accounts.google.com") == 0;
    out->nissuers = google ? 2 : 1;
    out->issuers = dm_xcalloc(out->nissuers, sizeof *out->issuers);
    out->issuers[0] = dm_xstrdup(issuer);
    if (google)
        out->issuers[1] = dm_xstrdup("accounts.google.com");
    out->audience = dm_xstrdup(audience);
    if (server_url)
        out->server_url = dm_xstrdup(server_url);
    if (jwks_url) {
        out->jwks_url = dm_xstrdup(jwks_url);
        out->jwks_refresh_seconds = (int)refresh;
    }
    /* The url's keys are fetched after the load (dm_fetch): configuration does no I/O
     * beyond reading files. */
    return jwks_file ? read_jwks_file(ld, path, jwks_file, out) : DM_OK;
}

/* {"type": "sns", "topic_arns": [...], "certs": {"<SigningCertURL>": "<pem file>"},
 *  "fetch_certs": bool, "confirm_subscriptions": bool} */
static int parse_sns_entry(dm_cfg_loader *ld, const json_t *e, const char *path, dm_auth_entry *out)
{
    static const char *const keys[] = {
        "type", "topic_arns", "certs", "fetch_certs", "confirm_subscriptions", NULL};
    static const char *const flags[] = {"fetch_certs", "confirm_subscriptions"};
    char pb[PATH_BUF], sb[SHOW_BUF];
    int rc;
    if ((rc = dm_cfg_check_keys(ld, e, path, keys)) < 0)
        return rc;
    for (size_t i = 0; i < DM_ARRAY_LEN(flags); i++) {
        const json_t *f = json_object_get(e, flags[i]);
        if (f && !json_is_boolean(f))
            return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, flags[i]),
                               "must be true or false");
    }
    out->fetch_certs = json_is_true(json_object_get(e, "fetch_certs"));
    out->confirm_subscriptions = json_is_true(json_object_get(e, "confirm_subscriptions"));
    const json_t *arns = json_object_get(e, "topic_arns");
    if (!json_is_array(arns) || json_array_size(arns) == 0)
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "topic_arns"),
                           "must be a non-empty array of topic ARNs");
    out->ntopic_arns = json_array_size(arns);
    out->topic_arns = dm_xcalloc(out->ntopic_arns, sizeof *out->topic_arns);
    for (size_t i = 0; i < out->ntopic_arns; i++) {
        const json_t *a = json_array_get(arns, i);
        if (!json_is_string(a) || strncmp(json_string_value(a), "arn:aws", 7) != 0)
            return dm_cfg_fail(
                ld, DM_EINVAL, dm_cfg_key_path(pb, path, "topic_arns"),
                "must hold topic ARNs (\"arn:aws…:sns:<region>:<account>:<topic>\")");
        out->topic_arns[i] = dm_xstrdup(json_string_value(a));
    }
    const json_t *certs = json_object_get(e, "certs");
    if (certs && !json_is_object(certs))
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "certs"),
                           "must map each SigningCertURL to a PEM file");
    if (!out->fetch_certs && json_object_size(certs) == 0)
        return dm_cfg_fail(
            ld, DM_EINVAL, dm_cfg_key_path(pb, path, "certs"),
            "must map each SigningCertURL to a PEM file (or set \"fetch_certs\": true)");
    if (json_object_size(certs) == 0)
        return DM_OK; /* every certificate is fetched */
    out->certs = dm_xcalloc(json_object_size(certs), sizeof *out->certs);
    const char *url;
    const json_t *file;
    json_object_foreach((json_t *)certs, url, file)
    {
        if (!dm_sns_url_ok(url, true))
            return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "certs"),
                               "\"%s\" is not an SNS certificate URL (https://sns.<region>."
                               "amazonaws.com[.cn]/….pem)",
                               dm_cfg_show(url, sb));
        if (!json_is_string(file))
            return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "certs"),
                               "\"%s\" must name a PEM file", dm_cfg_show(url, sb));
        char *full = dm_cfg_resolve_path(ld, json_string_value(file));
        unsigned char *buf = NULL;
        size_t len = 0;
        rc = dm_cfg_read_file(full, 64 * 1024, &buf, &len);
        if (rc != DM_OK) {
            rc = dm_cfg_fail(ld, rc == DM_EINVAL ? DM_EINVAL : DM_EIO,
                             dm_cfg_key_path(pb, path, "certs"), "cannot read \"%s\": %s",
                             dm_cfg_show(full, sb),
                             rc == DM_EINVAL ? "larger than 64 KiB" : strerror(-rc));
            free(full);
            return rc;
        }
        free(full);
        dm_sns_cert *c = &out->certs[out->ncerts++];
        c->url = dm_xstrdup(url);
        c->pem = (char *)buf;
        c->pem_len = len;
    }
    return DM_OK;
}

static int parse_auth_entry(dm_cfg_loader *ld, const json_t *e, const char *path,
                            dm_auth_entry *out)
{
    static const char *const none_keys[] = {"type", NULL};
    static const char *const header_keys[] = {"type",      "name",       "value",
                                              "value_env", "value_file", NULL};
    static const char *const hmac_keys[] = {"type",       "header",      "secret",
                                            "secret_env", "secret_file", NULL};
    char pb[PATH_BUF], sb[SHOW_BUF];
    const char *type, *name;
    int rc;

    if (!json_is_object(e))
        return dm_cfg_fail(ld, DM_EINVAL, path, "must be an object");
    if ((rc = dm_cfg_get_str(ld, e, path, "type", true, &type)) < 0)
        return rc;
    if (!type)
        return dm_cfg_fail(ld, DM_EINVAL, path, "\"type\" is required");

    if (strcmp(type, "none") == 0) {
        out->type = DM_AUTH_NONE;
        return dm_cfg_check_keys(ld, e, path, none_keys);
    }
    if (strcmp(type, "header") == 0) {
        out->type = DM_AUTH_HEADER;
        if ((rc = dm_cfg_check_keys(ld, e, path, header_keys)) < 0 ||
            (rc = dm_cfg_get_str(ld, e, path, "name", true, &name)) < 0)
            return rc;
        if (!name)
            return dm_cfg_fail(ld, DM_EINVAL, path, "\"name\" is required");
        if (!is_header_name(name))
            return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "name"),
                               "\"%s\" is not a valid header name", dm_cfg_show(name, sb));
        out->name = dm_xstrdup(name);
        return dm_cfg_get_secret(ld, e, path, "value", true, &out->secret, &out->secret_len,
                                 &out->secret_missing);
    }
    if (strcmp(type, "hmac-sha256") == 0) {
        out->type = DM_AUTH_HMAC;
        if ((rc = dm_cfg_check_keys(ld, e, path, hmac_keys)) < 0 ||
            (rc = dm_cfg_get_str(ld, e, path, "header", true, &name)) < 0)
            return rc;
        if (name && !is_header_name(name))
            return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "header"),
                               "\"%s\" is not a valid header name", dm_cfg_show(name, sb));
        out->name = dm_xstrdup(name ? name : DEFAULT_HMAC_HEADER);
        return dm_cfg_get_secret(ld, e, path, "secret", true, &out->secret, &out->secret_len,
                                 &out->secret_missing);
    }
    if (strcmp(type, "oidc") == 0) {
        out->type = DM_AUTH_OIDC;
        out->name = dm_xstrdup("Authorization");
        return parse_oidc_entry(ld, e, path, out);
    }
    if (strcmp(type, "sns") == 0) {
        out->type = DM_AUTH_SNS;
        out->name = dm_xstrdup("x-amz-sns-message-type");
        return parse_sns_entry(ld, e, path, out);
    }
    return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "type"),
                       "unknown auth type \"%s\" (expected \"header\", \"hmac-sha256\", \"oidc\", "
                       "\"sns\" or \"none\")",
                       dm_cfg_show(type, sb));
}

/* @p obj["auth"], a required non-empty array, into @p list. */
int dm_cfg_parse_auth_list(dm_cfg_loader *ld, const json_t *obj, const char *parent,
                           dm_auth_list *list)
{
    const json_t *a = json_object_get(obj, "auth");
    char pb[PATH_BUF], eb[PATH_BUF];
    int rc;

    if (!a)
        return dm_cfg_fail(ld, DM_EINVAL, parent, "\"auth\" is required; " NO_AUTH_HINT);
    dm_cfg_key_path(pb, parent, "auth");
    if (!json_is_array(a) || json_array_size(a) == 0)
        return dm_cfg_fail(ld, DM_EINVAL, pb, "must be a non-empty array; " NO_AUTH_HINT);
    list->n = json_array_size(a);
    list->v = dm_xcalloc(list->n, sizeof(*list->v));
    for (size_t i = 0; i < list->n; i++) {
        if ((rc = parse_auth_entry(ld, json_array_get(a, i), dm_cfg_index_path(eb, pb, i),
                                   &list->v[i])) < 0)
            return rc;
    }
    return DM_OK;
}

void dm_cfg_free_auth_list(dm_auth_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        dm_auth_entry *a = &l->v[i];
        free(a->name);
        dm_cfg_free_secret(a->secret, a->secret_len);
        free(a->secret_missing);
        for (size_t k = 0; k < a->nissuers; k++)
            free(a->issuers[k]);
        free(a->issuers);
        free(a->audience);
        free(a->server_url);
        free(a->jwks);
        free(a->jwks_url);
        json_decref(a->claims);
        for (size_t k = 0; k < a->ntopic_arns; k++)
            free(a->topic_arns[k]);
        free(a->topic_arns);
        for (size_t k = 0; k < a->ncerts; k++) {
            free(a->certs[k].url);
            free(a->certs[k].pem);
        }
        free(a->certs);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}
