/* dm_jwks_fetch.h - fetch the JWKS of every oidc entry that has a jwks_url, on the main
 * thread's event_base, into the entry's keyring (dm_keyring.h).
 *
 * Each URL is fetched at start, every jwks_refresh_seconds, and when the keyring asks for it
 * (a token named an unknown kid; rate-limited by the keyring). Fetches use libevent's HTTP
 * client with asynchronous name resolution, a deadline and a 1 MiB body cap; https verifies
 * the server's certificate against the system CA store (SSL_CERT_FILE / SSL_CERT_DIR override
 * it, as for any OpenSSL client) and its name, with TLS >= 1.2, and fails closed. Only an
 * HTTP 200 with a JWKS holding at least one usable key replaces the fetched keys; anything
 * else keeps the previous ones and logs msg="jwks fetch failed" with the reason.
 * Worker threads never fetch and never wait for a fetch.
 */
#ifndef DM_RECEIVER_DM_JWKS_FETCH_H
#define DM_RECEIVER_DM_JWKS_FETCH_H

#include "dm_config.h"

struct event_base;

typedef struct dm_jwks_fetch dm_jwks_fetch;

/** Deadline of one fetch, name resolution and TLS handshake included (seconds). */
#define DM_JWKS_FETCH_TIMEOUT_S 10
/** Largest JWKS document accepted (bytes). */
#define DM_JWKS_FETCH_MAX_BODY (1024 * 1024)

/**
 * Start fetching for every oidc entry of @p conf (sources and api) with a jwks_url; the first
 * fetches start now. @p base (the main thread's, created after evthread_use_pthreads(), so
 * workers may wake it) and @p conf are borrowed and must outlive the fetcher. Returns DM_OK and
 * *out (NULL when no entry has a jwks_url), or DM_EIO with a reason in @p err when the TLS or
 * DNS setup fails.
 */
int dm_jwks_fetch_start(struct event_base *base, const dm_config *conf, dm_jwks_fetch **out,
                        char *err, size_t errlen);

/**
 * Abort fetches in flight, detach from the keyrings and free @p f (NULL is fine). Call on the
 * base's thread, before the base is freed; the keyrings keep their current keys.
 */
void dm_jwks_fetch_stop(dm_jwks_fetch *f);

#endif
