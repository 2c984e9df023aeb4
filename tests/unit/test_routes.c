/* test_routes.c - the route table (receiver/dm_routes.h) against the configuration: every
 * built-in route's path is one a source may not take (config/dm_config_root.c keeps that list
 * itself, since config/ sits below receiver/), and the paths beside them stay free. */
#include "dm_common.h"
#include "dm_config.h"
#include "dm_metrics.h"
#include "dm_routes.h"

#include <event2/http.h>
#include <strings.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* Load a configuration with one source at @p path; returns the loader's answer. */
static int load_source_at(const char *path, char *err, size_t errlen)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"sources\": [{\"type\": \"acr\", \"path\": \"%s\", "
             "\"auth\": [{\"type\": \"none\"}]}]}",
             path);
    dm_config *c = NULL;
    err[0] = '\0';
    int rc = dm_config_load_buffer(json, strlen(json), NULL, &c, err, errlen);
    dm_config_free(c);
    return rc;
}

static void test_builtin_paths_reserved(void **state)
{
    (void)state;
    size_t n = 0;
    const dm_route *r = dm_routes_builtin(&n);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        char path[128], err[512], want[256];
        /* A prefix route takes every path below it. */
        snprintf(path, sizeof path, "%s%s", r[i].path, r[i].prefix ? "x" : "");
        snprintf(want, sizeof want, "sources[0].path: \"%s\" is reserved for a built-in route",
                 path);
        if (load_source_at(path, err, sizeof err) != DM_EINVAL || strcmp(err, want) != 0)
            fail_msg("a source may take %s (built-in route %s): \"%s\"", path, r[i].metric, err);
    }
}

static void test_paths_beside_builtin_free(void **state)
{
    (void)state;
    size_t n = 0;
    const dm_route *r = dm_routes_builtin(&n);
    for (size_t i = 0; i < n; i++) {
        char path[128], err[512];
        size_t len = strlen(r[i].path);
        /* "/healthz2" is not "/healthz"; "/v1/images" is not below "/v1/images/". */
        if (r[i].prefix)
            snprintf(path, sizeof path, "%.*s", (int)(len - 1), r[i].path);
        else
            snprintf(path, sizeof path, "%s2", r[i].path);
        if (load_source_at(path, err, sizeof err) != DM_OK)
            fail_msg("a source may not take %s: \"%s\"", path, err);
    }
}

static void test_route_numbers(void **state)
{
    (void)state;
    size_t n = 0;
    const dm_route *r = dm_routes_builtin(&n);
    /* The 404s are counted after the built-in routes, before the sources. */
    assert_int_equal(dm_routes_other(), n);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(r[i].handler);
        assert_true(r[i].methods != 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(r[i].metric, r[j].metric);
    }
}

/*---------------------------------------------------------------- the head check ---*/

typedef struct hdrs {
    const char *name[4], *value[4];
} hdrs;

static const char *find(void *ctx, const char *name)
{
    const hdrs *h = ctx;
    for (int i = 0; i < 4 && h->name[i]; i++)
        if (strcasecmp(h->name[i], name) == 0)
            return h->value[i];
    return NULL;
}

/* The verdict for @p method @p path (a body follows when @p body) with headers @p h. */
static dm_conn_verdict verdict(const dm_app *app, int method, const char *path, bool body, hdrs *h)
{
    dm_conn_verdict v = {0};
    dm_conn_head head = {method, path, body, find, h, "127.0.0.1:1"};
    dm_routes_check_head(&head, &v, (void *)app);
    return v;
}

static void test_head_check(void **state)
{
    (void)state;
    const char *json =
        "{\"sources\": ["
        "{\"type\": \"acr\", \"path\": \"/a\", \"auth\": [{\"type\": \"header\", "
        "\"name\": \"Authorization\", \"value\": \"Bearer t\"}]},"
        "{\"type\": \"build\", \"path\": \"/b\", \"auth\": [{\"type\": \"header\", "
        "\"name\": \"Authorization\", \"value\": \"Bearer t\"}, {\"type\": \"hmac-sha256\", "
        "\"secret\": \"s\"}]},"
        "{\"type\": \"build\", \"path\": \"/c\", \"auth\": [{\"type\": \"none\"}]},"
        "{\"type\": \"build\", \"path\": \"/d\", \"auth\": [{\"type\": \"hmac-sha256\", "
        "\"secret\": \"s\"}, {\"type\": \"header\", \"name\": \"Authorization\", "
        "\"value\": \"Bearer t\"}]}]}";
    dm_config *c = NULL;
    char err[256];
    assert_int_equal(dm_config_load_buffer(json, strlen(json), NULL, &c, err, sizeof err), DM_OK);
    dm_routes_init_metrics(c);
    dm_app app = {.conf = c};
    hdrs none = {{NULL}, {NULL}}, good = {{"authorization"}, {"Bearer t"}},
         bad = {{"Authorization"}, {"Bearer x"}},
         signed_bad = {{"Authorization", "X-Digestmap-Signature"}, {"Bearer x", "sha256=00"}};

    /* Without a body nothing is refused here: the handler answers as before. */
    dm_conn_verdict v = verdict(&app, EVHTTP_REQ_POST, "/a", false, &none);
    assert_int_equal(v.status, 0);
    assert_string_equal(v.route_name, "/a");
    v = verdict(&app, EVHTTP_REQ_POST, "/nowhere", false, &none);
    assert_int_equal(v.status, 0);
    assert_int_equal(v.route, dm_routes_other());

    /* With a body: credentials in headers are judged first. */
    assert_int_equal(verdict(&app, EVHTTP_REQ_POST, "/a", true, &none).status, 401);
    v = verdict(&app, EVHTTP_REQ_POST, "/a", true, &bad);
    assert_int_equal(v.status, 401);
    assert_string_equal(v.error, "bad credentials");
    assert_int_equal(verdict(&app, EVHTTP_REQ_POST, "/a", true, &good).status, 0);
    /* An HMAC entry whose header is present needs the body. */
    assert_int_equal(verdict(&app, EVHTTP_REQ_POST, "/b", true, &signed_bad).status, 0);
    assert_int_equal(verdict(&app, EVHTTP_REQ_POST, "/b", true, &bad).status, 401);
    assert_int_equal(verdict(&app, EVHTTP_REQ_POST, "/c", true, &none).status, 0);
    /* A source's POST is served directly; credentials that let it in for good go with it,
     * unless an entry that needs the body (an HMAC whose header is present) comes first. */
    v = verdict(&app, EVHTTP_REQ_POST, "/a", true, &good);
    assert_true(v.direct);
    assert_true(v.authed);
    assert_int_equal(v.auth.result, DM_AUTH_OK);
    assert_true(verdict(&app, EVHTTP_REQ_POST, "/a", false, &good).direct);
    assert_false(verdict(&app, EVHTTP_REQ_POST, "/a", false, &good).authed); /* no body: later */
    hdrs signed_good = {{"Authorization", "X-Digestmap-Signature"}, {"Bearer t", "sha256=00"}};
    v = verdict(&app, EVHTTP_REQ_POST, "/d", true, &signed_good);
    assert_int_equal(v.status, 0);
    assert_false(v.authed); /* the HMAC entry, first, may pass with the body */
    assert_true(verdict(&app, EVHTTP_REQ_POST, "/d", true, &good).authed);
    assert_true(verdict(&app, EVHTTP_REQ_POST, "/b", true, &signed_good).authed);
    assert_false(verdict(&app, EVHTTP_REQ_GET, "/v1/mappings", false, &good).direct);
    assert_false(verdict(&app, EVHTTP_REQ_GET, "/a", false, &good).direct);
    /* No route, a wrong method, the query API without api.auth. */
    assert_int_equal(verdict(&app, EVHTTP_REQ_POST, "/nowhere", true, &good).status, 404);
    v = verdict(&app, EVHTTP_REQ_PUT, "/a", true, &good);
    assert_int_equal(v.status, 405);
    assert_string_equal(v.extra, "Allow: POST\r\n");
    assert_int_equal(verdict(&app, EVHTTP_REQ_GET, "/v1/mappings", true, &good).status, 401);
    assert_int_equal(verdict(&app, EVHTTP_REQ_GET, "/healthz", true, &none).status, 0);
    dm_metrics_shutdown();
    dm_config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_paths_reserved),
        cmocka_unit_test(test_paths_beside_builtin_free),
        cmocka_unit_test(test_route_numbers),
        cmocka_unit_test(test_head_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
