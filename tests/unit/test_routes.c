/* test_routes.c - the route table (receiver/dm_routes.h) against the configuration: every
 * built-in route's path is one a source may not take (config/dm_config_root.c keeps that list
 * itself, since config/ sits below receiver/), and the paths beside them stay free. */
#include "dm_common.h"
#include "dm_config.h"
#include "dm_routes.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_paths_reserved),
        cmocka_unit_test(test_paths_beside_builtin_free),
        cmocka_unit_test(test_route_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
