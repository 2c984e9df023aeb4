/* dm_quota.c - request quotas per source and per credential (dm_quota.h).
 *
 * Credentials are kept as the SHA-256 of "<source path> NUL <credential>": a token's subject
 * may be kilobytes long, and a fixed-size name keeps the table's memory bounded whatever the
 * senders choose.
 */
#include "dm_common.h"
#include "dm_quota.h"
#include "dm_rate.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dm_quota {
    pthread_mutex_t lock; /* guards both tables */
    dm_rate_table *sources;
    dm_rate_table *credentials;
};

dm_quota *dm_quota_new(size_t max_credentials)
{
    dm_quota *q = dm_xcalloc(1, sizeof *q);
    pthread_mutex_init(&q->lock, NULL);
    q->sources = dm_rate_table_new(DM_QUOTA_MAX_SOURCES);
    q->credentials =
        dm_rate_table_new(max_credentials ? max_credentials : DM_QUOTA_MAX_CREDENTIALS);
    return q;
}

void dm_quota_free(dm_quota *q)
{
    if (!q)
        return;
    dm_rate_table_free(q->sources);
    dm_rate_table_free(q->credentials);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

static dm_quota *shared;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

static void make_shared(void)
{
    shared = dm_quota_new(0);
}

dm_quota *dm_quota_shared(void)
{
    pthread_once(&shared_once, make_shared);
    return shared;
}

static void credential_key(const char *source, const char *credential,
                           unsigned char md[SHA256_DIGEST_LENGTH])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(ctx, source, strlen(source) + 1) || /* with its NUL: a separator */
        !EVP_DigestUpdate(ctx, credential, strlen(credential)) ||
        !EVP_DigestFinal_ex(ctx, md, NULL))
        abort(); /* only out of memory: as dm_xmalloc */
    EVP_MD_CTX_free(ctx);
}

dm_quota_verdict dm_quota_take(dm_quota *q, const char *source, const dm_rate_conf *rate,
                               const char *credential, int64_t now_ms, int64_t *wait_ms)
{
    if (wait_ms)
        *wait_ms = 0;
    if (!rate || !(rate->per_second > 0))
        return DM_QUOTA_OK;
    unsigned char key[SHA256_DIGEST_LENGTH];
    credential_key(source, credential ? credential : "", key);
    double burst = rate->burst >= 1 ? rate->burst : 1;
    pthread_mutex_lock(&q->lock);
    dm_bucket *src = dm_rate_table_get(q->sources, source, strlen(source), NULL);
    int64_t ws = dm_bucket_wait_ms(src, rate->per_second, burst, now_ms);
    /* The source's bucket pointer stays valid: the credential's lives in the other table. */
    dm_bucket *cred = dm_rate_table_get(q->credentials, (const char *)key, sizeof key, NULL);
    int64_t wc = dm_bucket_wait_ms(cred, rate->per_second, burst, now_ms);
    dm_quota_verdict v = DM_QUOTA_OK;
    if (ws == 0 && wc == 0) {
        dm_bucket_take(src);
        dm_bucket_take(cred);
    } else {
        /* The credential's own limit is the more precise answer to its sender. */
        v = wc > 0 ? DM_QUOTA_CREDENTIAL : DM_QUOTA_SOURCE;
        if (wait_ms)
            *wait_ms = ws > wc ? ws : wc;
    }
    pthread_mutex_unlock(&q->lock);
    return v;
}

const char *dm_quota_credential(const dm_auth_list *auth, const dm_auth_outcome *out, char *buf,
                                size_t size)
{
    const char *sub = json_string_value(json_object_get(out->claims, "sub"));
    const char *iss = json_string_value(json_object_get(out->claims, "iss"));
    if (sub && iss)
        snprintf(buf, size, "oidc %s %s", iss, sub);
    else if (out->entry && auth && out->entry >= auth->v && out->entry < auth->v + auth->n)
        snprintf(buf, size, "entry %zu", (size_t)(out->entry - auth->v));
    else
        snprintf(buf, size, "entry ?");
    return buf;
}
