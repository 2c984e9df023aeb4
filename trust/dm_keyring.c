/* dm_keyring.c - a reference-counted, swappable key set per oidc entry.
 *
 * The mutex guards only pointer swaps and a few flags, never a parse or a signature check:
 * readers hold it for an increment, the updater for an exchange. Sets are immutable once
 * built, so a reader may keep verifying with a set that has just been replaced.
 */
#include "dm_keyring.h"
#include "dm_rate.h"
#include "dm_time.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
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
    bool kid_refreshed; /* last_kid_refresh is set */
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

int dm_keyring_update(dm_keyring *kr, const char *doc, size_t len, size_t *nkeys, dm_error *err)
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

/*---- SNS signing certificates -------------------------------------------------------------*/

struct dm_sns_pem {
    atomic_long refs;
    size_t len;
    char data[]; /* NUL-terminated */
};

typedef enum {
    WANT_QUEUED,
    WANT_IN_FLIGHT,
    WANT_IDLE
} want_state;

typedef struct {
    char *url;
    want_state state;
    int64_t last_request_ms; /* when the last fetch was queued */
    char failure[160];       /* the last fetch's failure, or "" */
    bool failed;
} sns_want;

typedef struct {
    char *url;
    dm_sns_pem *pem; /* holds one reference */
    int64_t last_used_ms;
} sns_cached;

struct dm_sns_cache {
    pthread_mutex_t lock; /* guards everything below */
    sns_cached cached[DM_SNS_CACHE_MAX];
    size_t ncached;
    sns_want wanted[DM_SNS_WANTED_MAX];
    size_t nwanted;
    char *confirms[DM_SNS_CONFIRM_MAX];
    size_t nconfirms;
    dm_keyring_wake_fn wake;
    void *wake_arg;
    dm_rate_table *hosts; /* fetches per host */
};

dm_sns_cache *dm_sns_cache_new(void)
{
    dm_sns_cache *c = dm_xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    c->hosts = dm_rate_table_new(DM_SNS_HOSTS_MAX);
    return c;
}

void dm_sns_pem_release(dm_sns_pem *p)
{
    if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        free(p);
}

const char *dm_sns_pem_data(const dm_sns_pem *p, size_t *len)
{
    *len = p->len;
    return p->data;
}

void dm_sns_cache_free(dm_sns_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->ncached; i++) {
        free(c->cached[i].url);
        dm_sns_pem_release(c->cached[i].pem);
    }
    for (size_t i = 0; i < c->nwanted; i++)
        free(c->wanted[i].url);
    for (size_t i = 0; i < c->nconfirms; i++)
        free(c->confirms[i]);
    dm_rate_table_free(c->hosts);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

size_t dm_sns_cache_count(dm_sns_cache *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->ncached;
    pthread_mutex_unlock(&c->lock);
    return n;
}

static sns_cached *find_cached(dm_sns_cache *c, const char *url)
{
    for (size_t i = 0; i < c->ncached; i++)
        if (strcmp(c->cached[i].url, url) == 0)
            return &c->cached[i];
    return NULL;
}

static sns_want *find_wanted(dm_sns_cache *c, const char *url)
{
    for (size_t i = 0; i < c->nwanted; i++)
        if (strcmp(c->wanted[i].url, url) == 0)
            return &c->wanted[i];
    return NULL;
}

static void drop_wanted(dm_sns_cache *c, sns_want *w)
{
    free(w->url);
    *w = c->wanted[--c->nwanted];
}

dm_sns_pem *dm_sns_cache_get(dm_sns_cache *c, const char *url, int64_t mono_ms)
{
    dm_sns_pem *p = NULL;
    pthread_mutex_lock(&c->lock);
    sns_cached *e = find_cached(c, url);
    if (e) {
        e->last_used_ms = mono_ms;
        p = e->pem;
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&c->lock);
    return p;
}

static void wake_locked(dm_sns_cache *c)
{
    if (c->wake)
        c->wake(c->wake_arg);
}

/* Take a fetch from the bucket of @p url's host ("https://HOST/…"); false (and the time until
 * one is available) when it is empty. Called with the cache locked. */
static bool host_allows(dm_sns_cache *c, const char *url, int64_t mono_ms, int64_t *wait_ms)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *end = strchr(host, '/');
    size_t n = end ? (size_t)(end - host) : strlen(host);
    dm_bucket *b = dm_rate_table_get(c->hosts, host, n, NULL);
    return dm_bucket_try(b, 1000.0 / DM_SNS_HOST_FETCH_EVERY_MS, DM_SNS_HOST_FETCH_BURST, mono_ms,
                         wait_ms);
}

dm_sns_fetch_state dm_sns_cache_want(dm_sns_cache *c, const char *url, int64_t mono_ms, char *why,
                                     size_t whylen)
{
    dm_sns_fetch_state st;
    if (whylen)
        why[0] = '\0';
    pthread_mutex_lock(&c->lock);
    sns_want *w = find_wanted(c, url);
    if (find_cached(c, url)) {
        st = DM_SNS_FETCH_PENDING; /* fetched since the caller looked */
    } else if (w && w->state != WANT_IDLE) {
        st = DM_SNS_FETCH_PENDING;
    } else if (w && mono_ms - w->last_request_ms < DM_SNS_FETCH_RETRY_MS) {
        st = DM_SNS_FETCH_FAILED;
        if (whylen)
            snprintf(why, whylen, "%s", w->failure);
    } else {
        if (!w && c->nwanted == DM_SNS_WANTED_MAX) {
            /* Make room: forget the idle URL whose last fetch is the oldest. */
            sns_want *old = NULL;
            for (size_t i = 0; i < c->nwanted; i++)
                if (c->wanted[i].state == WANT_IDLE &&
                    (!old || c->wanted[i].last_request_ms < old->last_request_ms))
                    old = &c->wanted[i];
            if (old)
                drop_wanted(c, old);
        }
        int64_t host_wait = 0;
        if (!w && c->nwanted == DM_SNS_WANTED_MAX) {
            st = DM_SNS_FETCH_BUSY;
        } else if (!host_allows(c, url, mono_ms, &host_wait)) {
            st = DM_SNS_FETCH_LIMITED;
            if (whylen)
                snprintf(why, whylen, "host fetch rate reached; next fetch in %lld s",
                         (long long)dm_rate_retry_after_s(host_wait));
        } else {
            if (!w) {
                w = &c->wanted[c->nwanted++];
                memset(w, 0, sizeof *w);
                w->url = dm_xstrdup(url);
            }
            w->state = WANT_QUEUED;
            w->last_request_ms = mono_ms;
            wake_locked(c);
            st = DM_SNS_FETCH_REQUESTED;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

bool dm_sns_cache_confirm(dm_sns_cache *c, const char *url)
{
    bool ok = true;
    pthread_mutex_lock(&c->lock);
    bool queued = false;
    for (size_t i = 0; i < c->nconfirms && !queued; i++)
        queued = strcmp(c->confirms[i], url) == 0;
    if (!queued) {
        if (c->nconfirms == DM_SNS_CONFIRM_MAX) {
            ok = false;
        } else {
            c->confirms[c->nconfirms++] = dm_xstrdup(url);
            wake_locked(c);
        }
    }
    pthread_mutex_unlock(&c->lock);
    return ok;
}

void dm_sns_cache_set_waker(dm_sns_cache *c, dm_keyring_wake_fn fn, void *arg)
{
    pthread_mutex_lock(&c->lock);
    c->wake = fn;
    c->wake_arg = arg;
    pthread_mutex_unlock(&c->lock);
}

char *dm_sns_cache_take_wanted(dm_sns_cache *c)
{
    char *url = NULL;
    pthread_mutex_lock(&c->lock);
    /* Oldest request first. */
    sns_want *w = NULL;
    for (size_t i = 0; i < c->nwanted; i++)
        if (c->wanted[i].state == WANT_QUEUED &&
            (!w || c->wanted[i].last_request_ms < w->last_request_ms))
            w = &c->wanted[i];
    if (w) {
        w->state = WANT_IN_FLIGHT;
        url = dm_xstrdup(w->url);
    }
    pthread_mutex_unlock(&c->lock);
    return url;
}

void dm_sns_cache_fetched(dm_sns_cache *c, const char *url, const char *pem, size_t len,
                          const char *failure)
{
    /* Cached entries are ordered by this clock, the same one workers pass to get. */
    dm_sns_pem *p = NULL, *evicted = NULL;
    char *evicted_url = NULL;
    if (!failure) {
        p = dm_xmalloc(sizeof *p + len + 1);
        atomic_init(&p->refs, 1);
        p->len = len;
        memcpy(p->data, pem, len);
        p->data[len] = '\0';
    }
    pthread_mutex_lock(&c->lock);
    sns_want *w = find_wanted(c, url);
    if (failure) {
        if (w) {
            w->state = WANT_IDLE;
            w->failed = true;
            snprintf(w->failure, sizeof w->failure, "%s", failure);
        }
    } else {
        if (w)
            drop_wanted(c, w);
        sns_cached *e = find_cached(c, url);
        if (e) { /* replaced (cannot happen with one fetch per URL at a time) */
            evicted = e->pem;
        } else {
            if (c->ncached == DM_SNS_CACHE_MAX) {
                e = &c->cached[0];
                for (size_t i = 1; i < c->ncached; i++)
                    if (c->cached[i].last_used_ms < e->last_used_ms)
                        e = &c->cached[i];
                evicted = e->pem;
                evicted_url = e->url;
            } else {
                e = &c->cached[c->ncached++];
            }
            e->url = dm_xstrdup(url);
        }
        e->pem = p;
        e->last_used_ms = dm_mono_ms(); /* a fresh entry counts as just used */
    }
    pthread_mutex_unlock(&c->lock);
    free(evicted_url);
    dm_sns_pem_release(evicted);
}

char *dm_sns_cache_take_confirm(dm_sns_cache *c)
{
    char *url = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->nconfirms > 0) {
        url = c->confirms[0];
        memmove(c->confirms, c->confirms + 1, (c->nconfirms - 1) * sizeof *c->confirms);
        c->nconfirms--;
    }
    pthread_mutex_unlock(&c->lock);
    return url;
}
