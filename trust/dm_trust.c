/* dm_trust.c - the keyrings and certificate caches of the configured auth entries (see
 * dm_trust.h).
 *
 * A configuration has a handful of auth entries, so a lookup is a scan of the few that have
 * runtime objects: cheaper than any index for that size, and it needs nothing in dm_config.
 */
#include "dm_trust.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>

/* A header entry's secret, hashed once rather than on every request. */
typedef struct header_digest {
    const dm_auth_entry *conf;
    unsigned char sha256[SHA256_DIGEST_LENGTH];
} header_digest;

struct dm_trust {
    dm_trust_entry *v;
    size_t n;
    header_digest *hd;
    size_t nhd;
};

static void add_digests(dm_trust *t, const dm_auth_list *list)
{
    for (size_t i = 0; i < list->n; i++) {
        const dm_auth_entry *e = &list->v[i];
        if (e->type != DM_AUTH_HEADER || !e->secret)
            continue;
        t->hd = dm_xrealloc(t->hd, (t->nhd + 1) * sizeof *t->hd);
        t->hd[t->nhd].conf = e;
        SHA256(e->secret, e->secret_len, t->hd[t->nhd].sha256);
        t->nhd++;
    }
}

static bool needs_objects(const dm_auth_entry *e)
{
    return e->type == DM_AUTH_OIDC ||
           (e->type == DM_AUTH_SNS && (e->fetch_certs || e->confirm_subscriptions));
}

/* The objects of @p list's entries into t->v; @p path names the list in messages. */
static int add_list(dm_trust *t, const dm_auth_list *list, const char *path, char *err,
                    size_t errlen)
{
    for (size_t i = 0; i < list->n; i++) {
        const dm_auth_entry *e = &list->v[i];
        if (!needs_objects(e))
            continue;
        dm_trust_entry *te = &t->v[t->n++];
        te->conf = e;
        if (e->type == DM_AUTH_SNS) {
            te->sns_cache = dm_sns_cache_new();
            continue;
        }
        dm_error jerr = {0};
        if (dm_keyring_new(e->jwks, e->jwks_len, &te->keyring, &jerr) != DM_OK) {
            snprintf(err, errlen, "%s[%zu].jwks_file: %s%s%s", path, i, jerr.field,
                     jerr.field[0] ? ": " : "", jerr.text);
            return DM_EINVAL;
        }
    }
    return DM_OK;
}

static size_t count_list(const dm_auth_list *list)
{
    size_t n = 0;
    for (size_t i = 0; i < list->n; i++)
        n += needs_objects(&list->v[i]);
    return n;
}

int dm_trust_new(const dm_config *conf, dm_trust **out, char *err, size_t errlen)
{
    *out = NULL;
    size_t n = count_list(&conf->api_auth);
    for (size_t i = 0; i < conf->nsources; i++)
        n += count_list(&conf->sources[i].auth);
    dm_trust *t = dm_xcalloc(1, sizeof *t);
    t->v = dm_xcalloc(n ? n : 1, sizeof *t->v);
    int rc = DM_OK;
    for (size_t i = 0; i < conf->nsources && rc == DM_OK; i++) {
        char path[48];
        snprintf(path, sizeof path, "sources[%zu].auth", i);
        rc = add_list(t, &conf->sources[i].auth, path, err, errlen);
    }
    if (rc == DM_OK)
        rc = add_list(t, &conf->api_auth, "api.auth", err, errlen);
    if (rc != DM_OK) {
        dm_trust_free(t);
        return rc;
    }
    for (size_t i = 0; i < conf->nsources; i++)
        add_digests(t, &conf->sources[i].auth);
    add_digests(t, &conf->api_auth);
    *out = t;
    return DM_OK;
}

void dm_trust_free(dm_trust *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        dm_keyring_free(t->v[i].keyring);
        dm_sns_cache_free(t->v[i].sns_cache);
    }
    free(t->v);
    if (t->hd)
        OPENSSL_cleanse(t->hd, t->nhd * sizeof *t->hd);
    free(t->hd);
    free(t);
}

const dm_trust_entry *dm_trust_find(const dm_trust *t, const dm_auth_entry *e)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (t->v[i].conf == e)
            return &t->v[i];
    return NULL;
}

const unsigned char *dm_trust_header_digest(const dm_trust *t, const dm_auth_entry *e)
{
    for (size_t i = 0; t && i < t->nhd; i++)
        if (t->hd[i].conf == e)
            return t->hd[i].sha256;
    return NULL;
}

const dm_trust_entry *dm_trust_entries(const dm_trust *t, size_t *n)
{
    *n = t->n;
    return t->v;
}
