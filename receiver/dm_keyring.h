/* dm_keyring.h - the verification keys of one oidc auth entry, shared by all worker threads.
 *
 * A keyring holds the keys of the entry's jwks_file (loaded once, always kept) merged with the
 * keys last fetched from its jwks_url. Readers take a reference to the current key set, verify,
 * and release it; an update builds a new set and swaps it in under a mutex, and the old set is
 * freed when its last reader releases it. No reader ever waits for a fetch.
 *
 * The keyring does no I/O. The fetcher (dm_jwks_fetch.h) registers a waker and feeds fetched
 * documents to dm_keyring_update; verifiers ask for a refresh with dm_keyring_request_refresh
 * when a token names a kid the set does not hold.
 */
#ifndef DM_RECEIVER_DM_KEYRING_H
#define DM_RECEIVER_DM_KEYRING_H

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
int dm_keyring_update(dm_keyring *kr, const char *doc, size_t len, size_t *nkeys,
                      dm_error *err);

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

#endif
