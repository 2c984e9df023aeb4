/* dm_keyring.c - a reference-counted, swappable key set per oidc entry.
 *
 * The mutex guards only pointer swaps and a few flags, never a parse or a signature check:
 * readers hold it for an increment, the updater for an exchange. Sets are immutable once
 * built, so a reader may keep verifying with a set that has just been replaced.
 */
#include "dm_keyring.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

struct dm_keyset {
    atomic_long refs;
    dm_jwks *jwks; /* NULL: no keys */
};

struct dm_keyring {
    pthread_mutex_t lock;        /* guards cur, waker, fetching, last_kid_refresh */
    pthread_mutex_t update_lock; /* serializes updates (they share file_keys' refcounts) */
    dm_keyset *cur;              /* holds one reference */
    json_t *file_keys;           /* the jwks_file's "keys" array, or NULL */
    size_t file_count;           /* usable keys among them */
    dm_keyring_wake_fn wake;
    void *wake_arg;
    bool fetching;
    bool kid_refreshed;          /* last_kid_refresh is set */
    int64_t last_kid_refresh;
};

static dm_keyset *keyset_new(dm_jwks *jwks)
{
    dm_keyset *ks = dm_xcalloc(1, sizeof *ks);
    atomic_init(&ks->refs, 1);
    ks->jwks = jwks;
    return ks;
}

void dm_keyset_release(dm_keyset *ks)
{
    if (!ks)
        return;
    /* acq_rel: the last releaser must see every other reader's use of the set as done. */
    if (atomic_fetch_sub_explicit(&ks->refs, 1, memory_order_acq_rel) == 1) {
        dm_jwks_free(ks->jwks);
        free(ks);
    }
}

const dm_jwks *dm_keyset_jwks(const dm_keyset *ks)
{
    return ks ? ks->jwks : NULL;
}

int dm_keyring_new(const char *file_doc, size_t len, dm_keyring **out, dm_error *err)
{
    dm_jwks *set = NULL;
    json_t *keys = NULL;
    *out = NULL;
    if (file_doc) {
        int rc = dm_jwks_parse(file_doc, len, &set, err);
        if (rc != DM_OK)
            return rc;
        /* dm_jwks_parse accepted it, so this is an object with a "keys" array. */
        json_t *root = json_loadb(file_doc, len, JSON_REJECT_DUPLICATES, NULL);
        keys = root ? json_incref(json_object_get(root, "keys")) : NULL;
        json_decref(root);
        if (!json_is_array(keys)) { /* cannot happen; fail closed all the same */
            json_decref(keys);
            dm_jwks_free(set);
            return dm_error_set(err, "keys", "must be an array");
        }
    }
    dm_keyring *kr = dm_xcalloc(1, sizeof *kr);
    pthread_mutex_init(&kr->lock, NULL);
    pthread_mutex_init(&kr->update_lock, NULL);
    kr->file_count = dm_jwks_count(set);
    kr->cur = keyset_new(set);
    kr->file_keys = keys;
    *out = kr;
    return DM_OK;
}

void dm_keyring_free(dm_keyring *kr)
{
    if (!kr)
        return;
    dm_keyset_release(kr->cur);
    json_decref(kr->file_keys);
    pthread_mutex_destroy(&kr->lock);
    pthread_mutex_destroy(&kr->update_lock);
    free(kr);
}

dm_keyset *dm_keyring_acquire(dm_keyring *kr)
{
    pthread_mutex_lock(&kr->lock);
    dm_keyset *ks = kr->cur;
    /* Relaxed is enough: the mutex orders this against the swap that published the set. */
    atomic_fetch_add_explicit(&ks->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&kr->lock);
    return ks;
}

size_t dm_keyring_count(dm_keyring *kr)
{
    dm_keyset *ks = dm_keyring_acquire(kr);
    size_t n = dm_jwks_count(ks->jwks);
    dm_keyset_release(ks);
    return n;
}

size_t dm_keyring_file_count(const dm_keyring *kr)
{
    return kr->file_count;
}

/* The file's keys followed by @p doc's, as one set: dm_jwks_parse keeps the first key of a
 * kid, so the file wins a clash. */
static int merge(dm_keyring *kr, const char *doc, size_t len, dm_jwks **out, dm_error *err)
{
    json_t *root = json_loadb(doc, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *keys = json_array();
    if (!root || !keys || json_array_extend(keys, kr->file_keys) != 0 ||
        json_array_extend(keys, json_object_get(root, "keys")) != 0) {
        json_decref(root);
        json_decref(keys);
        return dm_error_set(err, "", "cannot merge with the jwks_file keys");
    }
    json_decref(root);
    json_t *merged = json_pack("{s:o}", "keys", keys); /* steals keys */
    char *s = merged ? json_dumps(merged, JSON_COMPACT) : NULL;
    json_decref(merged);
    if (!s)
        return dm_error_set(err, "", "cannot merge with the jwks_file keys");
    int rc = dm_jwks_parse(s, strlen(s), out, err);
    free(s);
    return rc;
}

int dm_keyring_update(dm_keyring *kr, const char *doc, size_t len, size_t *nkeys,
                      dm_error *err)
{
    dm_jwks *fetched = NULL, *set = NULL;
    int rc = dm_jwks_parse(doc, len, &fetched, err);
    if (rc != DM_OK)
        return rc;
    size_t n = dm_jwks_count(fetched);
    if (n == 0) {
        dm_jwks_free(fetched);
        return dm_error_set(err, "keys",
                            "no usable key (RS256 RSA >= 2048 bits or ES256 P-256, with a kid)");
    }
    pthread_mutex_lock(&kr->update_lock);
    if (kr->file_keys && json_array_size(kr->file_keys) > 0) {
        rc = merge(kr, doc, len, &set, err);
        dm_jwks_free(fetched);
    } else {
        set = fetched;
    }
    pthread_mutex_unlock(&kr->update_lock);
    if (rc != DM_OK)
        return rc;

    dm_keyset *ks = keyset_new(set);
    pthread_mutex_lock(&kr->lock);
    dm_keyset *old = kr->cur;
    kr->cur = ks;
    pthread_mutex_unlock(&kr->lock);
    dm_keyset_release(old); /* freed now, or by its last reader */
    if (nkeys)
        *nkeys = n;
    return DM_OK;
}

void dm_keyring_set_waker(dm_keyring *kr, dm_keyring_wake_fn fn, void *arg)
{
    pthread_mutex_lock(&kr->lock);
    kr->wake = fn;
    kr->wake_arg = arg;
    pthread_mutex_unlock(&kr->lock);
}

bool dm_keyring_request_refresh(dm_keyring *kr, int64_t mono_ms)
{
    bool woke = false;
    pthread_mutex_lock(&kr->lock);
    if (kr->wake && !kr->fetching &&
        (!kr->kid_refreshed || mono_ms - kr->last_kid_refresh >= DM_KEYRING_KID_REFRESH_MS)) {
        kr->kid_refreshed = true;
        kr->last_kid_refresh = mono_ms;
        /* Under the lock, so that dm_keyring_set_waker(NULL) waits for a waker in progress. */
        kr->wake(kr->wake_arg);
        woke = true;
    }
    pthread_mutex_unlock(&kr->lock);
    return woke;
}

void dm_keyring_fetch_begin(dm_keyring *kr)
{
    pthread_mutex_lock(&kr->lock);
    kr->fetching = true;
    pthread_mutex_unlock(&kr->lock);
}

void dm_keyring_fetch_end(dm_keyring *kr)
{
    pthread_mutex_lock(&kr->lock);
    kr->fetching = false;
    pthread_mutex_unlock(&kr->lock);
}
