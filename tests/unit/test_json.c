/* test_json.c - the parse arena of adapters/dm_json.h: documents parsed inside a scope read
 * the same as outside it, nothing of a scope is needed after it, memory from before a scope is
 * freed inside it, and a document larger than the arena still parses (the rest from malloc).
 * Run under ASan (scripts/test), any misuse of arena memory is an error. */
#include "dm_common.h"
#include "dm_acr.h"
#include "dm_json.h"
#include "dm_test.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define PUSH                                                                                   \
    "{\"id\":\"e1\",\"timestamp\":\"2026-11-28T14:02:11.4Z\",\"action\":\"push\",\"target\":{" \
    "\"mediaType\":\"m\",\"digest\":\"sha256:"                                                 \
    "49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600\",\"repository\":"       \
    "\"team/api\",\"tag\":\"1.4.0\"},\"request\":{\"host\":\"contoso.azurecr.io\"}}"

static int setup(void **state)
{
    (void)state;
    dm_json_arena_install();
    return 0;
}

/* The events of a push parsed in a scope outlive it (they are copies), scope after scope. */
static void test_events_outlive_the_scope(void **state)
{
    (void)state;
    for (int i = 0; i < 2000; i++) {
        dm_event_list l;
        dm_error err = {0};
        dm_json_arena_begin();
        assert_int_equal(dm_acr_parse(PUSH, strlen(PUSH), &l, &err), DM_OK);
        dm_json_arena_end();
        assert_int_equal(l.n, 1);
        assert_string_equal(l.v[0].repository, "team/api");
        assert_string_equal(l.v[0].tags[0], "1.4.0");
        dm_event_list_dispose(&l);
    }
}

/* A value made before a scope and released inside it goes back to malloc's heap; one made
 * after the scope is plain memory again. */
static void test_outside_values(void **state)
{
    (void)state;
    json_t *before = json_pack("{s:s}", "k", "made before the scope");
    dm_json_arena_begin();
    json_t *inside = json_pack("{s:s}", "k", "made inside");
    json_decref(before);
    assert_string_equal(json_string_value(json_object_get(inside, "k")), "made inside");
    json_decref(inside);
    dm_json_arena_end();
    json_t *after = json_pack("{s:s}", "k", "made after");
    char *s = json_dumps(after, JSON_COMPACT); /* freed with free(), as everywhere */
    assert_string_equal(s, "{\"k\":\"made after\"}");
    free(s);
    json_decref(after);
}

/* A document far larger than the arena: the rest comes from malloc and is freed there. */
static void test_larger_than_the_arena(void **state)
{
    (void)state;
    size_t n = 20000;
    char *doc = dm_xmalloc(n * 12 + 16);
    size_t o = 0;
    o += (size_t)sprintf(doc + o, "{\"a\":[");
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(doc + o, "%s\"v%06zu\"", i ? "," : "", i);
    o += (size_t)sprintf(doc + o, "]}");
    for (int round = 0; round < 3; round++) {
        json_t *root = NULL;
        dm_error err = {0};
        dm_json_arena_begin();
        assert_int_equal(dm_json_load_object(doc, o, &root, &err), DM_OK);
        json_t *a = json_object_get(root, "a");
        assert_int_equal(json_array_size(a), n);
        assert_string_equal(json_string_value(json_array_get(a, n - 1)), "v019999");
        json_decref(root);
        dm_json_arena_end();
    }
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_outlive_the_scope),
        cmocka_unit_test(test_outside_values),
        cmocka_unit_test(test_larger_than_the_arena),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
