/* dm_keyring.h - verification keys fetched at run time, shared by all worker threads: the JWKS
 * keys of an oidc auth entry (dm_keyring) and the SNS signing certificates of an sns entry
 * with fetch_certs (dm_sns_cache, at the end of this file).
 *
 * A keyring holds the keys of the entry's jwks_file (loaded once, always kept) merged with the
 * keys last fetched from its jwks_url. Readers take a reference to the current key set, verify,
 * and release it; an update builds a new set and swaps it in under a mutex, and the old set is
 * freed when its last reader releases it. No reader ever waits for a fetch.
 *
 * The keyring does no I/O. The fetcher (dm_fetch.h) registers a waker and feeds fetched
 * documents to dm_keyring_update; verifiers ask for a refresh with dm_keyring_request_refresh
 * when a token names a kid the set does not hold.
 */
#ifndef DM_TRUST_DM_KEYRING_H
#define DM_TRUST_DM_KEYRING_H

#include "dm_common.h"
#include "dm_event.h"
#include "dm_jwt.h"

typedef struct dm_keyring dm_keyring;

/** A counted reference to one immutable key set. */
typedef struct dm_keyset dm_keyset;

/** Unknown-kid refreshes of one keyring are at most this far apart (ms). */
#define DM_KEYRING_KID_REFRESH_MS 60000

/**
 * Create a keyring. @p file_doc (@p len bytes, may be NULL for none) is the jwks_file's JWKS
 * document: its keys are parsed now and kept in front of every fetched set (on a kid present in
 * both, the file's key wins). Returns DM_OK and *out, or DM_EINVAL with @p err filled when the
 * document is malformed. A keyring without file keys starts empty (count 0) until the first
 * successful dm_keyring_update.
 */
int dm_keyring_new(const char *file_doc, size_t len, dm_keyring **out, dm_error *err);

/** Free @p kr (NULL is fine). Key sets still referenced are freed by their last release. */
void dm_keyring_free(dm_keyring *kr);

/** Number of keys in the current set. Thread-safe. */
size_t dm_keyring_count(dm_keyring *kr);

/** Number of keys that came from the file (constant). */
size_t dm_keyring_file_count(const dm_keyring *kr);

/**
 * Take a reference to the current key set (never NULL). Thread-safe, never blocks on a fetch.
 * Release it with dm_keyset_release, on any thread.
 */
dm_keyset *dm_keyring_acquire(dm_keyring *kr);

/** The keys of @p ks, borrowed until dm_keyset_release; NULL when the set is empty. */
const dm_jwks *dm_keyset_jwks(const dm_keyset *ks);

/** Drop a reference from dm_keyring_acquire (NULL is fine). */
void dm_keyset_release(dm_keyset *ks);

/**
 * Replace the fetched keys with those of the JWKS document @p doc (@p len bytes, not
 * NUL-terminated). On success returns DM_OK, swaps in file keys + fetched keys and sets
 * *nkeys (may be NULL) to the number of usable keys in @p doc. A malformed document or one
 * without a usable key returns DM_EINVAL with @p err filled, and the current set stays.
 * Thread-safe.
 */
int dm_keyring_update(dm_keyring *kr, const char *doc, size_t len, size_t *nkeys, dm_error *err);

/**
 * Called when a refresh is wanted, with the keyring's lock held: it must be quick, must not
 * call back into the keyring, and may run on any thread.
 */
typedef void (*dm_keyring_wake_fn)(void *arg);

/**
 * Register (or, with @p fn NULL, remove) the waker. After a removal returns, the old waker is
 * not running and will not be called again.
 */
void dm_keyring_set_waker(dm_keyring *kr, dm_keyring_wake_fn fn, void *arg);

/**
 * A token named a kid the current set does not hold: ask the fetcher for a refresh. Calls the
 * waker unless there is none, a fetch is already in flight (it will bring the same document),
 * or the last refresh asked for this way is less than DM_KEYRING_KID_REFRESH_MS old at
 * @p mono_ms (a monotonic clock in ms). Returns true when the waker was called. Thread-safe.
 */
bool dm_keyring_request_refresh(dm_keyring *kr, int64_t mono_ms);

/** The fetcher marks the start and the end of each fetch (see dm_keyring_request_refresh). */
void dm_keyring_fetch_begin(dm_keyring *kr);
void dm_keyring_fetch_end(dm_keyring *kr);

/*---- SNS signing certificates, fetched on demand ------------------------------------------
 *
 * One cache per sns auth entry with "fetch_certs" or "confirm_subscriptions". Workers look a
 * SigningCertURL up (dm_sns_cache_get); on a miss they ask for a fetch (dm_sns_cache_want,
 * rate-limited per URL) and answer 503 so that SNS retries. The fetcher (dm_fetch.h, main
 * thread) takes the wanted URLs, fetches them and reports each result (dm_sns_cache_fetched).
 * Subscription confirmations to issue travel the same way (dm_sns_cache_confirm /
 * dm_sns_cache_take_confirm). Everything here is thread-safe and does no I/O; the mutex is
 * held for list operations only, never for a parse or a signature check.
 */

typedef struct dm_sns_cache dm_sns_cache;

/** A counted reference to one cached certificate (immutable PEM bytes). */
typedef struct dm_sns_pem dm_sns_pem;

/** Certificates kept; beyond it the least recently used one is dropped. */
#define DM_SNS_CACHE_MAX           64
/** URLs waiting for a fetch or for their next retry (after a failure). */
#define DM_SNS_WANTED_MAX          64
/** Fetches of one URL are at least this far apart (ms). */
#define DM_SNS_FETCH_RETRY_MS      60000
/** Subscription confirmations waiting for the fetcher. */
#define DM_SNS_CONFIRM_MAX         16
/** Certificate fetches from one SNS host (per cache): at most this many at once, then ... */
#define DM_SNS_HOST_FETCH_BURST    4
/** ... one more every this many ms (4 a minute). */
#define DM_SNS_HOST_FETCH_EVERY_MS 15000
/** Hosts whose fetch rate is remembered (least recently used forgotten beyond it). */
#define DM_SNS_HOSTS_MAX           32

dm_sns_cache *dm_sns_cache_new(void);

/** Free @p c (NULL is fine). References still held are freed by their last release. */
void dm_sns_cache_free(dm_sns_cache *c);

/** Number of cached certificates. */
size_t dm_sns_cache_count(dm_sns_cache *c);

/** The certificate cached for @p url (marked used at @p mono_ms), or NULL. Release it. */
dm_sns_pem *dm_sns_cache_get(dm_sns_cache *c, const char *url, int64_t mono_ms);

/** The PEM bytes of @p p and their length; valid until dm_sns_pem_release. */
const char *dm_sns_pem_data(const dm_sns_pem *p, size_t *len);

/** Drop a reference from dm_sns_cache_get (NULL is fine), on any thread. */
void dm_sns_pem_release(dm_sns_pem *p);

typedef enum {
    DM_SNS_FETCH_REQUESTED = 0, /**< a fetch was asked for now */
    DM_SNS_FETCH_PENDING,       /**< a fetch is queued or in flight (or the cert just came) */
    DM_SNS_FETCH_FAILED,        /**< the last fetch failed; the next is not due yet */
    DM_SNS_FETCH_BUSY,          /**< DM_SNS_WANTED_MAX other URLs are pending: not queued */
    DM_SNS_FETCH_LIMITED,       /**< the URL's host had its DM_SNS_HOST_FETCH_* share of
                                     fetches: not queued */
} dm_sns_fetch_state;

/**
 * A message named @p url (already validated with dm_sns_url_ok, and of the exact form
 * dm_sns_cert_url_canonical) and it is not cached: queue a fetch unless one is queued or in
 * flight (one per URL), the last one for this URL started less than DM_SNS_FETCH_RETRY_MS
 * before @p mono_ms, or the URL's host had DM_SNS_HOST_FETCH_BURST fetches, refilled one per
 * DM_SNS_HOST_FETCH_EVERY_MS (so however many URLs a sender names, a host gets a few fetches a
 * minute). Calls the waker when it queues. With FAILED, copies the last failure's reason into
 * @p why (@p whylen bytes, may be 0); with LIMITED, when the next fetch may start.
 */
dm_sns_fetch_state dm_sns_cache_want(dm_sns_cache *c, const char *url, int64_t mono_ms, char *why,
                                     size_t whylen);

/**
 * Queue a GET of the SubscribeURL @p url (validated) for the fetcher and call the waker.
 * Returns false when DM_SNS_CONFIRM_MAX confirmations are already waiting; a URL already
 * queued is not queued twice (returns true).
 */
bool dm_sns_cache_confirm(dm_sns_cache *c, const char *url);

/** Register (or remove, with @p fn NULL) the waker; same contract as dm_keyring_set_waker. */
void dm_sns_cache_set_waker(dm_sns_cache *c, dm_keyring_wake_fn fn, void *arg);

/** Fetcher: the next queued certificate URL (malloc'd; now in flight), or NULL. */
char *dm_sns_cache_take_wanted(dm_sns_cache *c);

/**
 * Fetcher: the fetch of @p url ended. @p failure NULL: @p pem (@p len bytes, a checked
 * certificate) is cached (copied). Otherwise the reason is kept for dm_sns_cache_want and the
 * URL waits for its next retry.
 */
void dm_sns_cache_fetched(dm_sns_cache *c, const char *url, const char *pem, size_t len,
                          const char *failure);

/** Fetcher: the next queued SubscribeURL (malloc'd), or NULL. */
char *dm_sns_cache_take_confirm(dm_sns_cache *c);

#endif
