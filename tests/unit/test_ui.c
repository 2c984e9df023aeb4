/* test_ui.c - the explorer page's files as the binary holds them (receiver/dm_ui.h, built by
 * ui/embed.cmake): the lookup takes exact names of the table only, every file has a content
 * type, the bytes are those of ui/, and the page obeys its own Content-Security-Policy (no
 * inline script or style, nothing loaded from another origin). */
#include "dm_common.h"
#include "dm_ui.h"
#include "dm_test.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_lookup(void **state)
{
    (void)state;
    const dm_ui_file *index = dm_ui_find("");
    assert_non_null(index);
    assert_string_equal(index->name, "index.html");
    assert_ptr_equal(dm_ui_find("index.html"), index);
    assert_non_null(dm_ui_find("app.js"));
    assert_non_null(dm_ui_find("app.css"));
    /* Only a name of the table, exactly: nothing is decoded, joined or normalized. */
    static const char *const refused[] = {
        "../README.md", "%2e%2e/README.md", "/app.js",   "app.js/",     "./app.js", "APP.JS",
        "app.js%00",    "app.js?x",         "ui/app.js", "embed.cmake", "x",        ".",
        "..",
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(refused); i++) {
        if (dm_ui_find(refused[i]))
            fail_msg("\"%s\" found a file", refused[i]);
    }
}

static void test_content_types(void **state)
{
    (void)state;
    assert_string_equal(dm_ui_content_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(dm_ui_content_type("a.css"), "text/css; charset=utf-8");
    assert_string_equal(dm_ui_content_type("a.js"), "text/javascript; charset=utf-8");
    assert_string_equal(dm_ui_content_type("a.svg"), "image/svg+xml");
    assert_null(dm_ui_content_type("a.cmake"));
    assert_null(dm_ui_content_type("js"));
    assert_true(dm_ui_nfiles >= 3);
    for (size_t i = 0; i < dm_ui_nfiles; i++) {
        const dm_ui_file *f = &dm_ui_files[i];
        if (!dm_ui_content_type(f->name))
            fail_msg("%s has no content type", f->name);
        assert_ptr_equal(dm_ui_find(f->name), f);
        assert_int_equal(strlen(f->etag), 18); /* "\"" 16 hex "\"" */
        if (i > 0)
            assert_true(strcmp(dm_ui_files[i - 1].name, f->name) < 0);
    }
}

static bool has(const dm_ui_file *f, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= f->len; i++) {
        if (memcmp(f->data + i, needle, n) == 0)
            return true;
    }
    return false;
}

static void test_bytes_of_ui(void **state)
{
    (void)state;
    for (size_t i = 0; i < dm_ui_nfiles; i++) {
        const dm_ui_file *f = &dm_ui_files[i];
        char path[512];
        snprintf(path, sizeof path, "%s/../../ui/%s", DM_FIXTURES, f->name);
        size_t len = 0;
        char *want = dm_test_read_file(path, &len);
        assert_non_null(want);
        assert_int_equal(f->len, len);
        assert_memory_equal(f->data, want, len);
        free(want);
    }
}

static void test_page_obeys_its_csp(void **state)
{
    (void)state;
    for (size_t i = 0; i < dm_ui_nfiles; i++) {
        const dm_ui_file *f = &dm_ui_files[i];
        /* default-src 'self': no script without a src, no style element or attribute, and
         * no URL of another origin to load (links the user follows are built from data). */
        static const char *const banned[] = {
            "<script>",           "<style",         "style=", "innerHTML",  "outerHTML",
            "insertAdjacentHTML", "document.write", "eval(",  "src=\"http", "href=\"http",
            "url(http",           "@import"};
        for (size_t j = 0; j < DM_ARRAY_LEN(banned); j++) {
            if (has(f, banned[j]))
                fail_msg("%s holds \"%s\"", f->name, banned[j]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_bytes_of_ui),
        cmocka_unit_test(test_page_obeys_its_csp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
