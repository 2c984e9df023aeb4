/* test_head.c - dm_head_plain_path: for every target it calls plain, evhttp's parse (the one
 * the connection layer runs otherwise, EVHTTP_URI_NONCONFORMANT) gives the target itself as
 * the path and no query, so skipping that parse changes nothing. */
#include "dm_head.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/http.h>

/* What evhttp makes of @p target when dm_head_plain_path says it is plain. */
static void same_as_evhttp(const char *target)
{
    if (!dm_head_plain_path(target))
        return;
    struct evhttp_uri *uri = evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT);
    assert_non_null(uri);
    assert_string_equal(evhttp_uri_get_path(uri), target);
    assert_null(evhttp_uri_get_query(uri));
    assert_null(evhttp_uri_get_fragment(uri));
    assert_null(evhttp_uri_get_scheme(uri));
    assert_null(evhttp_uri_get_host(uri));
    evhttp_uri_free(uri);
}

static void test_plain_paths(void **state)
{
    (void)state;
    static const char *const plain[] = {
        "/",    "/v1/registry/acr", "/v1/builds", "/a:b",   "/a/b:c/", "/%zz",   "/a b",
        "/ü",   "/http://x",        "/./..",      "/a;b=c", "/a@b",    "/[::1]", "/\x7f",
        "/%00",
    };
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) {
        assert_true(dm_head_plain_path(plain[i]));
        same_as_evhttp(plain[i]);
    }
    static const char *const other[] = {
        "",    "*",   "//host/p",        "/a?b", "/a?", "/a#f", "/#", "http://h/p",
        "a/b", "a:b", "example.com:443", "?q",
    };
    for (size_t i = 0; i < sizeof other / sizeof *other; i++)
        assert_false(dm_head_plain_path(other[i]));
}

static void test_random_targets(void **state)
{
    (void)state;
    static const char alphabet[] = "/?#:@%[]ab.;=+ \t\x01\x7f\xc3\xbc";
    char t[40];
    srand(1);
    for (int round = 0; round < 200000; round++) {
        size_t n = (size_t)rand() % (sizeof t - 1);
        for (size_t i = 0; i < n; i++)
            t[i] = alphabet[(size_t)rand() % (sizeof alphabet - 1)];
        t[n] = '\0';
        if (round % 2)
            t[0] = '/';
        same_as_evhttp(t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_paths),
        cmocka_unit_test(test_random_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
