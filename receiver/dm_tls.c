#include "dm_common.h"
#include "dm_tls.h"
#include "dm_log.h"
#include "dm_metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A certificate chain or a key is a few KiB; anything this large is the wrong file. */
#define MAX_PEM_BYTES (1024 * 1024)

struct dm_tls {
    pthread_mutex_t lock; /**< guards ctx: workers read it, a reload swaps it */
    SSL_CTX *ctx;         /**< the context new connections get; one reference is ours */
    char *cert_file, *key_file;
    int min_version;
    char desc[320]; /**< dm_tls_describe's text for ctx (main thread only) */
};

/*---------------------------------------------------------------- loading ---*/

/* The reason of the oldest error OpenSSL queued on this thread, for a message. */
static const char *ossl_reason(void)
{
    const char *r = ERR_reason_error_string(ERR_peek_error());
    return r ? r : "unknown error";
}

/* Read @p path whole (at most MAX_PEM_BYTES) into a NUL-terminated buffer for OpenSSL, with the
 * system's reason when it cannot (missing, unreadable, a directory). */
static int read_pem(const char *key, const char *path, char **out, size_t *outlen, char *err,
                    size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open \"%s\": %s", key, path, strerror(errno));
        return DM_EIO;
    }
    size_t cap = MAX_PEM_BYTES + 1, len = 0; /* one spare byte detects "too large" */
    char *buf = dm_xmalloc(cap + 1);
    int rc = DM_OK;
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "%s: cannot read \"%s\": %s", key, path, strerror(errno));
            rc = DM_EIO;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (rc == DM_OK && len > MAX_PEM_BYTES) {
        snprintf(err, errlen, "%s: \"%s\" is larger than 1 MiB", key, path);
        rc = DM_EINVAL;
    }
    if (rc != DM_OK) {
        OPENSSL_cleanse(buf, cap + 1);
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return DM_OK;
}

/* PEM password callback: digestmapd never prompts (it would block on a terminal, or read from
 * nowhere as a service). Notes that the file wanted a password, for the message. */
static int no_password(char *buf, int size, int rwflag, void *asked)
{
    (void)buf, (void)size, (void)rwflag;
    *(bool *)asked = true;
    return -1;
}

/* Did reading PEM stop only because no further block starts (the normal end of a file)? */
static bool pem_at_end(void)
{
    unsigned long e = ERR_peek_last_error();
    return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

/* Put the chain of @p pem (leaf first, then its intermediates) into @p ctx; the leaf, with its
 * own reference, in @p leaf_out. */
static int load_chain(SSL_CTX *ctx, const char *path, const char *pem, size_t len, X509 **leaf_out,
                      char *err, size_t errlen)
{
    bool asked = false;
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    X509 *leaf = b ? PEM_read_bio_X509_AUX(b, NULL, no_password, &asked) : NULL;
    if (!leaf) {
        snprintf(err, errlen, "tls.cert_file: \"%s\" holds no PEM certificate (%s)", path,
                 len == 0 ? "empty file" : ossl_reason());
        BIO_free(b);
        return DM_EINVAL;
    }
    if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
        snprintf(err, errlen, "tls.cert_file: \"%s\": certificate refused: %s", path,
                 ossl_reason());
        goto fail;
    }
    X509 *x;
    for (int n = 2; (x = PEM_read_bio_X509(b, NULL, no_password, &asked)) != NULL; n++) {
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            snprintf(err, errlen, "tls.cert_file: \"%s\": certificate %d refused: %s", path, n,
                     ossl_reason());
            X509_free(x);
            goto fail;
        }
    }
    if (!pem_at_end()) {
        snprintf(err, errlen,
                 "tls.cert_file: \"%s\": a block after the first certificate is not "
                 "a PEM certificate (%s)",
                 path, ossl_reason());
        goto fail;
    }
    ERR_clear_error();
    BIO_free(b);
    *leaf_out = leaf;
    return DM_OK;
fail:
    X509_free(leaf);
    BIO_free(b);
    return DM_EINVAL;
}

/* Put the key of @p pem into @p ctx after checking that it is the key of @p leaf. */
static int load_key(SSL_CTX *ctx, X509 *leaf, const char *path, const char *pem, size_t len,
                    char *err, size_t errlen)
{
    bool asked = false;
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey = b ? PEM_read_bio_PrivateKey(b, NULL, no_password, &asked) : NULL;
    BIO_free(b);
    int rc = DM_EINVAL;
    if (!pkey && asked)
        snprintf(err, errlen, "tls.key_file: \"%s\" is encrypted: give an unencrypted key", path);
    else if (!pkey && !strstr(pem, "PRIVATE KEY-----")) /* OpenSSL 3 says "unsupported" */
        snprintf(err, errlen, "tls.key_file: \"%s\" holds no PEM private key (%s)", path,
                 len == 0 ? "empty file" : "no PRIVATE KEY block");
    else if (!pkey)
        snprintf(err, errlen, "tls.key_file: \"%s\": the private key cannot be read (%s)", path,
                 ossl_reason());
    else if (X509_check_private_key(leaf, pkey) != 1)
        snprintf(err, errlen,
                 "tls.key_file: \"%s\" does not match the certificate in tls.cert_file", path);
    else if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1)
        snprintf(err, errlen, "tls.key_file: \"%s\": key refused: %s", path, ossl_reason());
    else
        rc = DM_OK;
    EVP_PKEY_free(pkey);
    return rc;
}

/* ALPN: http/1.1, the one protocol evhttp speaks. A client offering ALPN without it gets the
 * fatal no_application_protocol alert (RFC 7301, 3.2) rather than a connection on which it
 * would speak a protocol we do not. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl, (void)arg;
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* Index of each SSL's peer address text (set when its handshake starts, freed with it): by
 * the time a handshake fails the peer may have reset the connection, and getpeername with it. */
static int peer_index = -1;

static void free_peer(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

/* "ip:port" of the socket's peer into @p buf, or "-". */
static const char *peer_of(const SSL *ssl, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = SSL_get_fd(ssl);
    char ip[INET6_ADDRSTRLEN] = "";
    snprintf(buf, size, "-");
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return buf;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(buf, size, "%s:%d", ip, ntohs(s4->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        snprintf(buf, size, "[%s]:%d", ip, ntohs(s6->sin6_port));
    }
    return buf;
}

/* The first handshake event of a connection: the socket is first known here (evhttp sets it
 * after the bufferevent is made, and the handshake starts on the client's first bytes).
 * TCP_NODELAY: bufferevent_openssl writes each chunk of its output as a TLS record of its own,
 * with a send(2) each, so an answer's head and body are two small segments, and Nagle's
 * algorithm holds the second until the client acknowledges the first, which it delays (40 ms
 * per answer, measured). Plain HTTP writes both in one writev. */
static void on_start(const SSL *ssl)
{
    if (SSL_get_ex_data(ssl, peer_index))
        return; /* TLS 1.3 starts a "handshake" again to send its session tickets */
    int fd = SSL_get_fd(ssl), one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char peer[64];
    SSL_set_ex_data((SSL *)ssl, peer_index, dm_xstrdup(peer_of(ssl, peer, sizeof peer)));
}

/* A failed handshake is worth one line: an operator whose registry cannot connect needs the
 * reason (unknown CA, protocol version, plain HTTP). It is at info, not warn: any stranger can
 * cause it. OpenSSL calls this at the end of each run of its accept state machine, which clears
 * the thread's error queue when it starts and queues the reason when it fails; a run that only
 * waits for more bytes, or a peer that hangs up, queues nothing. A failed handshake's later
 * calls return before reaching here, so each is reported once. */
static void on_info(const SSL *ssl, int where, int ret)
{
    if (where & SSL_CB_HANDSHAKE_START)
        on_start(ssl);
    if (!(where & SSL_CB_EXIT) || !(where & SSL_ST_ACCEPT) || ret > 0)
        return;
    unsigned long e = ERR_peek_error();
    if (e == 0)
        return;
    const char *reason = ERR_reason_error_string(e), *peer = SSL_get_ex_data(ssl, peer_index);
    char buf[64], q[160];
    if (!reason)
        reason = "unknown";
    dm_metrics_inc(DM_M_TLS_FAILED);
    dm_info("tls handshake failed", "peer=%s reason=%s",
            peer ? peer : peer_of(ssl, buf, sizeof buf),
            dm_log_quote(reason, strlen(reason), q, sizeof q));
}

/* A complete context from the files: nothing of it is shared until it is. */
static int build_ctx(const dm_tls *t, SSL_CTX **out, X509 **leaf_out, char *err, size_t errlen)
{
    char *cert = NULL, *key = NULL;
    size_t cert_len = 0, key_len = 0;
    X509 *leaf = NULL;
    SSL_CTX *ctx = NULL;
    int rc = read_pem("tls.cert_file", t->cert_file, &cert, &cert_len, err, errlen);
    if (rc == DM_OK)
        rc = read_pem("tls.key_file", t->key_file, &key, &key_len, err, errlen);
    if (rc == DM_OK && !(ctx = SSL_CTX_new(TLS_server_method()))) {
        snprintf(err, errlen, "tls: cannot create an SSL context: %s", ossl_reason());
        rc = DM_ENOMEM;
    }
    if (rc == DM_OK) {
        /* Compression (CRIME) and renegotiation (a CPU cost a client could impose) off; our
         * cipher order wins; the cipher lists stay OpenSSL's defaults. A peer that closes the
         * socket without close_notify ends the connection like an EOF (HTTP frames its own
         * messages, so a cut cannot pass for a complete one). */
        SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                     SSL_OP_CIPHER_SERVER_PREFERENCE |
                                     SSL_OP_IGNORE_UNEXPECTED_EOF);
        /* Idle keep-alive connections give their read and write buffers back. */
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
        SSL_CTX_set_info_callback(ctx, on_info);
        if (SSL_CTX_set_min_proto_version(ctx, t->min_version) != 1) {
            snprintf(err, errlen, "tls.min_version: refused by OpenSSL: %s", ossl_reason());
            rc = DM_EINVAL;
        }
    }
    if (rc == DM_OK)
        rc = load_chain(ctx, t->cert_file, cert, cert_len, &leaf, err, errlen);
    if (rc == DM_OK)
        rc = load_key(ctx, leaf, t->key_file, key, key_len, err, errlen);
    free(cert);
    if (key) {
        OPENSSL_cleanse(key, key_len);
        free(key);
    }
    ERR_clear_error();
    if (rc != DM_OK) {
        X509_free(leaf);
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    *leaf_out = leaf;
    return DM_OK;
}

/* The text of dm_tls_describe for @p leaf. */
static void describe(dm_tls *t, X509 *leaf)
{
    char serial[80] = "?", not_after[32] = "?", subject[160] = "", q[200];
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    if (hex)
        snprintf(serial, sizeof serial, "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1)
        strftime(not_after, sizeof not_after, "%Y-%m-%dT%H:%M:%SZ", &tm);
    X509_NAME_oneline(X509_get_subject_name(leaf), subject, sizeof subject);
    snprintf(t->desc, sizeof t->desc, "serial=%s not_after=%s subject=%s", serial, not_after,
             dm_log_quote(subject, strlen(subject), q, sizeof q));
    ERR_clear_error();
}

/*---------------------------------------------------------------- API ---*/

int dm_tls_new(const dm_config *conf, dm_tls **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!conf->tls.cert_file)
        return DM_OK;
    /* Once, on the main thread before any worker runs: workers read it without a lock. */
    if (peer_index < 0 && (peer_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_peer)) < 0) {
        snprintf(err, errlen, "tls: cannot allocate an SSL ex_data index");
        return DM_ENOMEM;
    }
    dm_tls *t = dm_xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    t->cert_file = dm_xstrdup(conf->tls.cert_file);
    t->key_file = dm_xstrdup(conf->tls.key_file);
    t->min_version = conf->tls.min_version;
    X509 *leaf = NULL;
    int rc = build_ctx(t, &t->ctx, &leaf, err, errlen);
    if (rc != DM_OK) {
        dm_tls_free(t);
        return rc;
    }
    describe(t, leaf);
    X509_free(leaf);
    *out = t;
    return DM_OK;
}

int dm_tls_reload(dm_tls *t, char *err, size_t errlen)
{
    SSL_CTX *ctx = NULL;
    X509 *leaf = NULL;
    int rc = build_ctx(t, &ctx, &leaf, err, errlen);
    if (rc != DM_OK)
        return rc;
    pthread_mutex_lock(&t->lock);
    SSL_CTX *old = t->ctx;
    t->ctx = ctx;
    pthread_mutex_unlock(&t->lock);
    /* Drops only our reference: the SSLs of open connections hold theirs. */
    SSL_CTX_free(old);
    describe(t, leaf);
    X509_free(leaf);
    return DM_OK;
}

const char *dm_tls_describe(const dm_tls *t, char *buf, size_t size)
{
    snprintf(buf, size, "%s", t->desc);
    return buf;
}

struct bufferevent *dm_tls_bufferevent(dm_tls *t, struct event_base *base)
{
    /* A reference of our own, so that a reload may drop the context while we make the SSL. */
    pthread_mutex_lock(&t->lock);
    SSL_CTX *ctx = t->ctx;
    SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&t->lock);
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    struct bufferevent *bev =
        ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE)
            : NULL;
    if (!bev) {
        /* evhttp would make a cleartext bufferevent of a NULL: never let it. */
        dm_error("out of memory", "what=\"TLS connection\"");
        abort();
    }
    /* An EOF without close_notify is an EOF, not an error (see SSL_OP_IGNORE_UNEXPECTED_EOF). */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

struct bufferevent *dm_tls_evhttp_bevcb(struct event_base *base, void *tls)
{
    return dm_tls_bufferevent(tls, base);
}

void dm_tls_free(dm_tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    pthread_mutex_destroy(&t->lock);
    free(t->cert_file);
    free(t->key_file);
    free(t);
}
