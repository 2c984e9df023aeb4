/* dm_quota.h - request quotas of the sources (sources[].rate, configs/README.md): a token bucket
 * per source and one per credential of that source, shared by every worker thread of the
 * process. A request beyond either is answered 429 with Retry-After (dm_ingest.c).
 *
 * A quota object owns its buckets and its mutex; the bucket arithmetic is dm_rate.h's. The
 * credential buckets are bounded (DM_QUOTA_MAX_CREDENTIALS per quota object): beyond it the
 * least recently used one is forgotten, so a stream of new credentials costs no memory (a
 * forgotten credential starts again with a full bucket, and the source's own bucket still
 * holds). Nothing here reads a clock: callers pass the time, tests a test clock.
 */
#ifndef DM_RECEIVER_DM_QUOTA_H
#define DM_RECEIVER_DM_QUOTA_H

#include "dm_auth.h"
#include "dm_config.h"

/** Credential buckets kept by one quota object (the shared one included). */
#define DM_QUOTA_MAX_CREDENTIALS 4096
/** Source buckets kept (more sources with a rate than this share the least recently used). */
#define DM_QUOTA_MAX_SOURCES     256
/** Room for a credential text (dm_quota_credential); longer ones are cut. */
#define DM_QUOTA_CREDENTIAL_LEN  1024

typedef struct dm_quota dm_quota;

/** A quota object with at most @p max_credentials credential buckets (0: the default). */
dm_quota *dm_quota_new(size_t max_credentials);

/** Free @p q (NULL is fine). */
void dm_quota_free(dm_quota *q);

/** The process's quota object, shared by all workers: made at first use, kept until exit. */
dm_quota *dm_quota_shared(void);

typedef enum {
    DM_QUOTA_OK = 0,     /**< within both quotas: one token taken from each */
    DM_QUOTA_SOURCE,     /**< the source's bucket is empty (nothing taken) */
    DM_QUOTA_CREDENTIAL, /**< the credential's bucket is empty (nothing taken) */
} dm_quota_verdict;

/**
 * One request of @p credential to the source whose route path is @p source, at @p now_ms (a
 * monotonic clock), under @p rate (per_second 0: no quota, always OK). Both buckets are checked
 * before either is touched, so a refused request costs no token. When refused, *@p wait_ms
 * (may be NULL) is the time until both buckets hold a token. Thread-safe.
 */
dm_quota_verdict dm_quota_take(dm_quota *q, const char *source, const dm_rate_conf *rate,
                               const char *credential, int64_t now_ms, int64_t *wait_ms);

/**
 * The credential a request passed with, for its quota: "oidc <iss> <sub>" for a verified
 * token with a "sub" claim, else "entry <i>" (the index of the passing entry in @p auth).
 * Writes at most @p size bytes (truncated, NUL-terminated) into @p buf and returns it.
 */
const char *dm_quota_credential(const dm_auth_list *auth, const dm_auth_outcome *out, char *buf,
                                size_t size);

#endif
