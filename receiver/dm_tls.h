/* dm_tls.h - the listener's TLS (configs/README.md "tls"): the server certificate and key in an
 * OpenSSL SSL_CTX, and the bufferevent each accepted connection speaks through.
 *
 * Ownership: receiver/main.c builds the dm_tls from the configuration before anything starts
 * (also with --check-config, so a bad file is reported there), reloads it on SIGHUP and frees it
 * after every worker has stopped. The workers borrow it: evhttp calls dm_tls_evhttp_bevcb for
 * each connection it accepts.
 *
 * Threads: dm_tls_bufferevent may run on any worker thread at any time; dm_tls_new,
 * dm_tls_reload, dm_tls_describe and dm_tls_free run on the main thread only. A reload builds a
 * complete new SSL_CTX first and swaps it in under a lock: the next connection of every worker
 * gets it, while connections already open keep the context they started with (each SSL holds a
 * reference to its SSL_CTX, so the old one is freed with its last connection). A reload that
 * fails changes nothing.
 *
 * What every connection gets: TLS only (a client speaking plain HTTP gets no answer), version
 * >= tls.min_version, OpenSSL's default cipher lists (the system's CipherString), the server's
 * cipher preference, no compression, no renegotiation, ALPN "http/1.1" (a client that offers
 * ALPN without http/1.1, e.g. only "h2", gets the fatal no_application_protocol alert of RFC
 * 7301). A failed handshake is counted (digestmap_tls_handshake_failures_total) and logged at
 * info, `msg="tls handshake failed" peer=… reason="…"` with OpenSSL's reason; a peer that
 * hangs up without a word is neither.
 */
#ifndef DM_RECEIVER_DM_TLS_H
#define DM_RECEIVER_DM_TLS_H

#include "dm_config.h"

struct bufferevent;
struct event_base;

typedef struct dm_tls dm_tls;

/**
 * Load conf->tls (its files, read now) into a new dm_tls. With no tls configured, returns DM_OK
 * and NULL in @p out. A missing, unreadable or malformed file, a key that does not match the
 * certificate, or a certificate OpenSSL refuses: an error whose reason in @p err names the key
 * and the file (e.g. `tls.key_file: "/etc/dm/key.pem" does not match the certificate in
 * tls.cert_file`). Paths are copied.
 */
int dm_tls_new(const dm_config *conf, dm_tls **out, char *err, size_t errlen);

/**
 * Read the files again (same paths) and, when they load, make them what every new connection
 * gets. On failure the current certificate stays in use and @p err says why.
 */
int dm_tls_reload(dm_tls *t, char *err, size_t errlen);

/**
 * The current certificate for a log line: `serial=<hex> not_after=<ISO 8601> subject="…"`
 * (quoted for the log) into @p buf of @p size bytes. Returns @p buf.
 */
const char *dm_tls_describe(const dm_tls *t, char *buf, size_t size);

/**
 * A new server-side TLS bufferevent on @p base without a socket yet (the caller, evhttp, sets
 * it with bufferevent_setfd), made from the current SSL_CTX; BEV_OPT_CLOSE_ON_FREE (freeing it
 * frees the SSL and closes the socket). Never NULL: a caller must never fall back to a cleartext
 * bufferevent, so running out of memory aborts (as dm_xmalloc does).
 */
struct bufferevent *dm_tls_bufferevent(dm_tls *t, struct event_base *base);

/** dm_tls_bufferevent in the shape of evhttp_set_bevcb's callback (@p tls: the dm_tls). */
struct bufferevent *dm_tls_evhttp_bevcb(struct event_base *base, void *tls);

/** Free @p t (NULL is fine) once no worker can call dm_tls_bufferevent. */
void dm_tls_free(dm_tls *t);

#endif
