/* dm_fetch.h - outgoing HTTP(S) GETs on the main thread's event_base: the JWKS of every oidc
 * entry with a jwks_url (into the entry's keyring), the SNS signing certificates and the
 * subscription confirmations of every sns entry with fetch_certs / confirm_subscriptions
 * (through the entry's dm_sns_cache). Both live in a dm_trust (dm_trust.h); see dm_keyring.h
 * for how they are shared with the workers.
 *
 * All fetches go through one dm_hclient (dm_hclient.h): asynchronous name resolution, a
 * deadline and a body cap; https verifies the server's certificate against the system CA store
 * (SSL_CERT_FILE / SSL_CERT_DIR override it, as for any OpenSSL client) and its name, with
 * TLS >= 1.2, and fails closed. Worker threads never fetch and never wait for a fetch: they
 * wake the fetcher through a keyring's or a cache's waker (event_active, thread-safe).
 *
 * JWKS: each URL is fetched at start, every jwks_refresh_seconds, and when the keyring asks for
 * it (a token named an unknown kid; rate-limited by the keyring). Only an HTTP 200 with a JWKS
 * holding at least one usable key replaces the fetched keys; anything else keeps the previous
 * ones and logs msg="jwks fetch failed" with the reason.
 *
 * SNS certificates: a wanted SigningCertURL (already validated by dm_sns_url_ok) is fetched,
 * at most DM_FETCH_SNS_PARALLEL at a time per entry; only an HTTP 200 of at most
 * DM_FETCH_SNS_MAX_BODY bytes holding a PEM X.509 certificate with an RSA key is cached
 * (msg="sns certificate fetched"); anything else logs msg="sns certificate fetch failed" and
 * the URL is retried when a message names it again, DM_SNS_FETCH_RETRY_MS later at the soonest.
 *
 * SNS confirmations: a queued SubscribeURL (validated) is fetched once; an HTTP 200 logs
 * msg="sns subscription confirmed" (info), anything else msg="sns subscription confirmation
 * failed" (warn).
 *
 * Tests only: when the environment variable DIGESTMAP_TEST_SNS_CERT_BASE is set at startup to
 * a loopback http base URL ("http://127.0.0.1:PORT", "http://[::1]:PORT" or
 * "http://localhost:PORT"), SNS certificates and SubscribeURLs are fetched from that base with
 * the validated URL's path and query instead of from AWS (a warning is logged at startup). The
 * URLs are still validated as usual. Any other value is a startup error.
 */
#ifndef DM_TRUST_DM_FETCH_H
#define DM_TRUST_DM_FETCH_H

#include "dm_trust.h"

struct event_base;

typedef struct dm_fetch dm_fetch;

/** Deadline of one fetch, name resolution and TLS handshake included (seconds). */
#define DM_FETCH_TIMEOUT_S         10
/** Largest JWKS document accepted (bytes). */
#define DM_FETCH_JWKS_MAX_BODY     (1024 * 1024)
/** Largest SNS certificate (and confirmation response) accepted (bytes). */
#define DM_FETCH_SNS_MAX_BODY      (64 * 1024)
/** SNS fetches (certificates and confirmations) in flight at once, per sns entry. */
#define DM_FETCH_SNS_PARALLEL      4
/** The test-only override of the SNS base URL (see above). */
#define DM_FETCH_TEST_SNS_BASE_ENV "DIGESTMAP_TEST_SNS_CERT_BASE"

/**
 * Start fetching for every oidc entry of @p trust with a jwks_url (the first fetches start now)
 * and serve every sns entry with a cache. @p base (the main thread's, created after
 * evthread_use_pthreads(), so workers may wake it) and @p trust (with the configuration it was
 * built from) are borrowed and must outlive the fetcher. Reads DIGESTMAP_TEST_SNS_CERT_BASE. Returns DM_OK and *out (NULL
 * when there is nothing to fetch), or DM_EIO/DM_EINVAL with a reason in @p err when the TLS or
 * DNS setup fails or the test variable is not a loopback http URL.
 */
int dm_fetch_start(struct event_base *base, const dm_trust *trust, dm_fetch **out, char *err,
                   size_t errlen);

/**
 * Abort fetches in flight, detach from the keyrings and caches and free @p f (NULL is fine).
 * Call on the base's thread, before the base is freed and after the workers stopped; the
 * keyrings and caches keep what they hold.
 */
void dm_fetch_stop(dm_fetch *f);

#endif
