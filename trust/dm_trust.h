/* dm_trust.h - the runtime side of the configured authentication: a keyring for every oidc
 * auth entry and a certificate cache for every sns entry that fetches certificates or confirms
 * subscriptions, built from a loaded configuration.
 *
 * The configuration (dm_config.h) is plain data and says what to trust; a dm_trust holds what
 * is learned while running: the keys fetched from a jwks_url and the SNS certificates fetched
 * from AWS. The fetcher (dm_fetch.h) feeds it on the main thread, the auth checks (dm_auth.h)
 * read it on the worker threads; keyrings and caches synchronize themselves (dm_keyring.h), so
 * a dm_trust is shared as const by every thread.
 *
 * Entries are found by the address of their dm_auth_entry in the configuration, which must
 * outlive the trust.
 */
#ifndef DM_TRUST_DM_TRUST_H
#define DM_TRUST_DM_TRUST_H

#include "dm_config.h"
#include "dm_keyring.h"

typedef struct dm_trust dm_trust;

/** The runtime objects of one auth entry. */
typedef struct dm_trust_entry {
    const dm_auth_entry *conf; /**< the configured entry (borrowed) */
    dm_keyring *keyring;       /**< oidc: the jwks_file's keys, then the jwks_url's; else NULL */
    dm_sns_cache *sns_cache;   /**< sns with fetch_certs or confirm_subscriptions; else NULL */
} dm_trust_entry;

/**
 * Build the runtime objects of every auth entry of @p conf (sources, then api) that needs one:
 * oidc entries get a keyring holding their jwks_file's keys (none until the first fetch without
 * a jwks_file), sns entries with fetch_certs or confirm_subscriptions an empty certificate
 * cache. Returns DM_OK and *out (free with dm_trust_free), or DM_EINVAL with a reason that
 * names the entry ("sources[0].auth[1].jwks_file: …") in @p err when a keyring cannot be
 * built; dm_config has checked the jwks_file already, so that does not happen to a loaded
 * configuration.
 */
int dm_trust_new(const dm_config *conf, dm_trust **out, char *err, size_t errlen);

/**
 * Free @p t and its keyrings and caches (NULL is fine). Stop the fetcher (dm_fetch_stop) and
 * the workers first.
 */
void dm_trust_free(dm_trust *t);

/** The runtime objects of @p e, or NULL when it needs none or @p t is NULL. Thread-safe. */
const dm_trust_entry *dm_trust_find(const dm_trust *t, const dm_auth_entry *e);

/** The SHA-256 of the secret of @p e, a header entry of the configuration @p t was built from
 *  (computed once, when @p t was built: dm_auth compares digests), or NULL (another entry, or
 *  @p t NULL). Thread-safe. */
const unsigned char *dm_trust_header_digest(const dm_trust *t, const dm_auth_entry *e);

/** Every entry with runtime objects, in configuration order (sources, then api); sets *n. */
const dm_trust_entry *dm_trust_entries(const dm_trust *t, size_t *n);

#endif
