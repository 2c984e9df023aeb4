/* test_join.c - key names: every key of one join shares the shard's hash tag. */
#include "dm_common.h"
#include "dm_join.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define D1 "sha256:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600"

static void test_key_names(void **state)
{
    (void)state;
    char k[DM_KEY_BUFLEN];
    dm_join_key(k, "dm", 0, "r", D1);
    assert_string_equal(k, "dm:{0}:r:" D1);
    dm_join_key(k, "dm", 0, "out", NULL);
    assert_string_equal(k, "dm:{0}:out");
    dm_join_key(k, "acme.prod", 13, "due", NULL);
    assert_string_equal(k, "acme.prod:{13}:due");
}

static void test_shard_of_digest(void **state)
{
    (void)state;
    /* first four hex digits 0x49e7 = 18919 */
    assert_int_equal(dm_digest_shard(D1, 1), 0);
    assert_int_equal(dm_digest_shard(D1, 4), 18919 % 4);
    assert_int_equal(dm_digest_shard(D1, 16), 18919 % 16);
    assert_int_equal(dm_digest_shard(D1, 1024), 18919 % 1024);
}

static void test_scripts_embedded(void **state)
{
    (void)state;
    const char *const *s = dm_join_scripts();
    /* the build embeds the Lua sources; an empty one would load but do nothing */
    assert_non_null(strstr(s[DM_SCRIPT_PARK], "redis.call('XADD'"));
    assert_non_null(strstr(s[DM_SCRIPT_QUERY], "HVALS"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_names),
        cmocka_unit_test(test_shard_of_digest),
        cmocka_unit_test(test_scripts_embedded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
