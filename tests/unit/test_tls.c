/* test_tls.c - the listener's TLS context (dm_tls.h): loading, what a reload swaps and what it
 * keeps (a connection keeps the context it started with), a failed reload, and reloads racing
 * the workers' new connections. The wire behaviour is tests/integration/test_tls.sh. */
#include "dm_common.h"
#include "dm_tls.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct fixture {
    char dir[64], cert[96], key[96];
    dm_config conf;
} fixture;

static void copy(const char *from_rel, const char *to)
{
    char from[512], buf[8192];
    snprintf(from, sizeof from, "%s/tls/%s", DM_FIXTURES, from_rel);
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(n, fwrite(buf, 1, n, out));
    fclose(in);
    assert_int_equal(0, fclose(out));
}

/* The certificate and key files in a fresh directory, as @p cert / @p key of the fixtures. */
static void use(fixture *f, const char *cert, const char *key)
{
    copy(cert, f->cert);
    copy(key, f->key);
}

static int setup(void **state)
{
    fixture *f = dm_xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/dm_test_tls.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->cert, sizeof f->cert, "%s/cert.pem", f->dir);
    snprintf(f->key, sizeof f->key, "%s/key.pem", f->dir);
    use(f, "server.pem", "server.key");
    f->conf.tls.cert_file = f->cert;
    f->conf.tls.key_file = f->key;
    f->conf.tls.min_version = TLS1_2_VERSION;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    unlink(f->cert);
    unlink(f->key);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The serial of the leaf @p bev's SSL presents, in hex. */
static char *serial_of(struct bufferevent *bev)
{
    X509 *x = SSL_get_certificate(bufferevent_openssl_get_ssl(bev));
    assert_non_null(x);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = BN_bn2hex(bn);
    BN_free(bn);
    char *r = dm_xstrdup(hex);
    OPENSSL_free(hex);
    return r;
}

static SSL_CTX *ctx_of(struct bufferevent *bev)
{
    return SSL_get_SSL_CTX(bufferevent_openssl_get_ssl(bev));
}

#define SERIAL_A "102B395821124B64D8C4413A4080B8DA536F33EA" /* server.pem */

static void test_no_tls(void **state)
{
    (void)state;
    dm_config conf = {0};
    dm_tls *t = (dm_tls *)&conf; /* must be replaced by NULL */
    char err[256];
    assert_int_equal(DM_OK, dm_tls_new(&conf, &t, err, sizeof err));
    assert_null(t);
}

static void test_load_and_describe(void **state)
{
    fixture *f = *state;
    dm_tls *t = NULL;
    char err[256], desc[400];
    assert_int_equal(DM_OK, dm_tls_new(&f->conf, &t, err, sizeof err));
    assert_non_null(t);
    assert_string_equal("serial=" SERIAL_A
                        " not_after=2126-11-04T18:26:39Z subject=\"/CN=localhost\"",
                        dm_tls_describe(t, desc, sizeof desc));
    struct event_base *base = event_base_new();
    struct bufferevent *bev = dm_tls_bufferevent(t, base);
    char *serial = serial_of(bev);
    assert_string_equal(SERIAL_A, serial);
    free(serial);
    assert_int_equal(TLS1_2_VERSION, SSL_CTX_get_min_proto_version(ctx_of(bev)));
    assert_true(SSL_CTX_get_options(ctx_of(bev)) & SSL_OP_NO_RENEGOTIATION);
    bufferevent_free(bev);
    event_base_free(base);
    dm_tls_free(t);
}

static void test_min_version_13(void **state)
{
    fixture *f = *state;
    f->conf.tls.min_version = TLS1_3_VERSION;
    dm_tls *t = NULL;
    char err[256];
    assert_int_equal(DM_OK, dm_tls_new(&f->conf, &t, err, sizeof err));
    struct event_base *base = event_base_new();
    struct bufferevent *bev = dm_tls_bufferevent(t, base);
    assert_int_equal(TLS1_3_VERSION, SSL_CTX_get_min_proto_version(ctx_of(bev)));
    bufferevent_free(bev);
    event_base_free(base);
    dm_tls_free(t);
}

/* A connection made before a reload keeps its context (and certificate) after it, after the
 * dm_tls dropped that context even; the next one gets the new context. */
static void test_reload_swaps_for_new_connections(void **state)
{
    fixture *f = *state;
    dm_tls *t = NULL;
    char err[256], desc[400];
    assert_int_equal(DM_OK, dm_tls_new(&f->conf, &t, err, sizeof err));
    struct event_base *base = event_base_new();
    struct bufferevent *before = dm_tls_bufferevent(t, base);
    SSL_CTX *old = ctx_of(before);

    use(f, "other-server.pem", "other-server.key");
    assert_int_equal(DM_OK, dm_tls_reload(t, err, sizeof err));
    assert_null(strstr(dm_tls_describe(t, desc, sizeof desc), SERIAL_A));
    struct bufferevent *after = dm_tls_bufferevent(t, base);
    assert_ptr_not_equal(old, ctx_of(after));
    char *s1 = serial_of(before), *s2 = serial_of(after);
    assert_string_equal(SERIAL_A, s1);
    /* The dm_tls no longer holds the old context; the SSL's reference keeps it alive (ASan
     * would report this read otherwise). */
    assert_int_equal(TLS1_2_VERSION, SSL_CTX_get_min_proto_version(old));
    assert_string_not_equal(SERIAL_A, s2);
    free(s1);
    free(s2);
    bufferevent_free(before); /* frees the old context: LeakSanitizer checks nothing stays */
    bufferevent_free(after);
    event_base_free(base);
    dm_tls_free(t);
}

static void test_failed_reload_keeps_current(void **state)
{
    fixture *f = *state;
    dm_tls *t = NULL;
    char err[512];
    assert_int_equal(DM_OK, dm_tls_new(&f->conf, &t, err, sizeof err));
    struct event_base *base = event_base_new();
    struct bufferevent *b1 = dm_tls_bufferevent(t, base);

    use(f, "server.pem", "wrong-host.key");
    assert_int_equal(DM_EINVAL, dm_tls_reload(t, err, sizeof err));
    char want[512];
    snprintf(want, sizeof want,
             "tls.key_file: \"%s\" does not match the certificate in tls.cert_file", f->key);
    assert_string_equal(want, err);
    unlink(f->cert);
    assert_int_equal(DM_EIO, dm_tls_reload(t, err, sizeof err));
    snprintf(want, sizeof want, "tls.cert_file: cannot open \"%s\": No such file or directory",
             f->cert);
    assert_string_equal(want, err);

    struct bufferevent *b2 = dm_tls_bufferevent(t, base);
    assert_ptr_equal(ctx_of(b1), ctx_of(b2));
    bufferevent_free(b1);
    bufferevent_free(b2);
    event_base_free(base);
    dm_tls_free(t);
}

/* Workers make connections while the main thread reloads: every connection gets a whole
 * context, and every context is freed with its last connection (run under ASan). */
typedef struct racer {
    dm_tls *t;
    int made;
} racer;

static void *make_connections(void *arg)
{
    racer *r = arg;
    struct event_base *base = event_base_new();
    for (int i = 0; i < 300; i++) {
        struct bufferevent *bev = dm_tls_bufferevent(r->t, base);
        char *serial = serial_of(bev);
        r->made += serial[0] != '\0';
        free(serial);
        bufferevent_free(bev);
    }
    event_base_free(base);
    return NULL;
}

static void test_reload_races_connections(void **state)
{
    fixture *f = *state;
    dm_tls *t = NULL;
    char err[256];
    assert_int_equal(DM_OK, dm_tls_new(&f->conf, &t, err, sizeof err));
    racer r[2] = {{.t = t}, {.t = t}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(0, pthread_create(&th[i], NULL, make_connections, &r[i]));
    for (int i = 0; i < 20; i++) {
        use(f, i % 2 ? "server.pem" : "other-server.pem",
            i % 2 ? "server.key" : "other-server.key");
        assert_int_equal(DM_OK, dm_tls_reload(t, err, sizeof err));
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(300, r[0].made);
    assert_int_equal(300, r[1].made);
    dm_tls_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_tls),
        cmocka_unit_test_setup_teardown(test_load_and_describe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_min_version_13, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_swaps_for_new_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_reload_keeps_current, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_races_connections, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
