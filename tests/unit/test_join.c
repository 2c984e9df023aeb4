/* test_join.c - the longest key names and the index keys (every key form: test_keys.c), the script
 * list (the build's and dm_scripts' agree) and each script's flags line. */
#include "dm_common.h"
#include "dm_join.h"
#include "dm_keys.h"
#include "dm_scripts.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define D1 "sha256:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600"

/* @p got was written by a dm_key_* function that returned @p len: it is @p want. */
static void key_is(const char *got, size_t len, const char *want)
{
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
}

static void test_key_longest(void **state)
{
    (void)state;
    /* The longest prefix (64 bytes) and shard number still fit, whole. */
    char prefix[65], k[DM_KEY_BUFLEN];
    memset(prefix, 'p', 64);
    prefix[64] = '\0';
    size_t n = dm_key_pushes(k, prefix, 4294967295u, D1);
    assert_int_equal(n, 64 + strlen(":{4294967295}:r:") + strlen(D1));
    assert_int_equal(strlen(k), n);
    assert_true(n < DM_KEY_BUFLEN);
    n = dm_key_jti(k, prefix, D1 + 7); /* 64 hex digits, as a sha256 */
    assert_int_equal(strlen(k), n);
    assert_int_equal(n, 64 + 5 + 64);
}

static void test_index_keys(void **state)
{
    (void)state;
    size_t len;
    char *k = dm_key_index("dm", 1, DM_INDEX_REPOSITORY, "acme/api", &len);
    key_is(k, len, "dm:{1}:ix:repo:acme/api");
    free(k);
    k = dm_key_index("dm", 0, DM_INDEX_RUN, "github/123", &len);
    key_is(k, len, "dm:{0}:ix:run:github/123");
    free(k);
    k = dm_key_index("dm", 0, DM_INDEX_IMAGE, "contoso.azurecr.io/team/api", &len);
    key_is(k, len, "dm:{0}:ix:img:contoso.azurecr.io/team/api");
    free(k);
    /* names are user data of any length: the key is sized to fit */
    char name[2049];
    memset(name, 'r', 2048);
    name[2048] = '\0';
    k = dm_key_index("dm", 0, DM_INDEX_REPOSITORY, name, &len);
    assert_int_equal(len, strlen("dm:{0}:ix:repo:") + 2048);
    assert_int_equal(strlen(k), len);
    free(k);
    /* the index key starts with the shard base mappings.lua is given */
    char base[DM_KEY_BUFLEN];
    dm_key_shard_base(base, "dm", 5);
    k = dm_key_index("dm", 5, DM_INDEX_RUN, "x/1", &len);
    assert_memory_equal(k, base, strlen(base));
    free(k);
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
    const char *const *s = dm_scripts();
    /* the build embeds the Lua sources; an empty one would load but do nothing */
    for (unsigned i = 0; i < DM_SCRIPT_COUNT; i++) {
        assert_non_null(s[i]);
        if (strlen(s[i]) < 100)
            fail_msg("script %s is %zu bytes", dm_script_name(i), strlen(s[i]));
    }
    assert_non_null(strstr(s[DM_SCRIPT_PARK], "redis.call('XADD'"));
    assert_non_null(strstr(s[DM_SCRIPT_QUERY], "HVALS"));
    assert_non_null(strstr(s[DM_SCRIPT_TRIM], "XTRIM"));
    assert_null(dm_script_name(DM_SCRIPT_COUNT));
}

static void test_script_lists_agree(void **state)
{
    (void)state;
    /* Every script the build embeds has a number, and every number a script of its name. */
    unsigned n;
    const char *const *embedded = dm_scripts_embedded(&n);
    assert_int_equal(n, DM_SCRIPT_COUNT);
    for (unsigned i = 0; i < n; i++) {
        unsigned found = DM_SCRIPT_COUNT;
        for (unsigned j = 0; j < DM_SCRIPT_COUNT; j++)
            if (strcmp(dm_script_name(j), embedded[i]) == 0)
                found = j;
        if (found == DM_SCRIPT_COUNT)
            fail_msg("embedded script %s has no DM_SCRIPT_ number", embedded[i]);
        /* its header names it: "-- <name>.lua" after the preludes */
        char head[64];
        snprintf(head, sizeof head, "-- %s.lua", embedded[i]);
        if (!strstr(dm_scripts()[found], head))
            fail_msg("DM_SCRIPT_ number %u holds no %s", found, head);
    }
}

static void test_script_preludes(void **state)
{
    (void)state;
    /* One TIME call per script that needs Redis's clock, from clock.lua; lib.lua after it.
     * park.lua takes digestmapd's clock (ARGV 5 and 6) and has none. */
    const char *const *s = dm_scripts();
    const unsigned with_clock[] = {DM_SCRIPT_QUERY,        DM_SCRIPT_SWEEP_CLAIM,
                                   DM_SCRIPT_SWEEP_REPORT, DM_SCRIPT_MAPPINGS,
                                   DM_SCRIPT_FINDINGS,     DM_SCRIPT_EXPOSURE};
    for (size_t i = 0; i < DM_ARRAY_LEN(with_clock); i++) {
        const char *src = s[with_clock[i]];
        const char *t = strstr(src, "redis.call('TIME')");
        if (!t || strstr(t + 1, "redis.call('TIME')"))
            fail_msg("%s: not exactly one TIME call", dm_script_name(with_clock[i]));
        /* first, or right after the script's flags line */
        const char *body = strncmp(src, "#!", 2) == 0 ? strchr(src, '\n') + 1 : src;
        assert_ptr_equal(strstr(src, "-- clock.lua"), body);
    }
    const unsigned with_lib[] = {DM_SCRIPT_PARK, DM_SCRIPT_QUERY, DM_SCRIPT_SWEEP_REPORT,
                                 DM_SCRIPT_MAPPINGS};
    for (size_t i = 0; i < DM_ARRAY_LEN(with_lib); i++) {
        const char *src = s[with_lib[i]];
        const char *lib = strstr(src, "-- lib.lua");
        char head[64];
        snprintf(head, sizeof head, "-- %s.lua", dm_script_name(with_lib[i]));
        assert_non_null(lib);
        assert_true(lib < strstr(src, head));
    }
    /* park.lua: lib.lua first after its flags line, and no clock. */
    const char *park = s[DM_SCRIPT_PARK];
    assert_ptr_equal(strstr(park, "-- lib.lua"), strchr(park, '\n') + 1);
    const unsigned plain[] = {DM_SCRIPT_PARK, DM_SCRIPT_TRIM, DM_SCRIPT_SINK_DEAD,
                              DM_SCRIPT_SINK_PRUNE};
    for (size_t i = 0; i < DM_ARRAY_LEN(plain); i++)
        assert_null(strstr(s[plain[i]], "redis.call('TIME')"));
}

static void test_script_flags(void **state)
{
    (void)state;
    /* Redis reads a script's flags only from its very first line (the build moves it before
     * the preludes). park.lua writes and is refused over maxmemory (no flags: Redis 7's
     * defaults); the others either never write or only give memory back (allow-oom). */
    const char *const *s = dm_scripts();
    const struct {
        unsigned script;
        const char *line;
    } flags[] = {{DM_SCRIPT_PARK, "#!lua\n"},
                 {DM_SCRIPT_QUERY, "#!lua flags=no-writes\n"},
                 {DM_SCRIPT_SWEEP_CLAIM, "#!lua flags=allow-oom\n"},
                 {DM_SCRIPT_SWEEP_REPORT, "#!lua flags=allow-oom\n"},
                 {DM_SCRIPT_MAPPINGS, "#!lua flags=allow-oom\n"}};
    for (size_t i = 0; i < DM_ARRAY_LEN(flags); i++) {
        const char *src = s[flags[i].script];
        if (strncmp(src, flags[i].line, strlen(flags[i].line)) != 0)
            fail_msg("%s does not start with %s", dm_script_name(flags[i].script), flags[i].line);
        /* and only there */
        assert_null(strstr(src + 1, "\n#!"));
    }
}

/* dm_join_scripts: park.lua with the configuration written in as constants, right after its
 * flags line; every other script as the build embedded it; one list per configuration. */
static void test_scripts_for_conf(void **state)
{
    (void)state;
    dm_join_conf a = {.prefix = "dm",
                      .shards = 1,
                      .window_ms = 1800000,
                      .grace_ms = 60000,
                      .max_skew_ms = 300000,
                      .mapping_ttl_ms = 7776000000,
                      .max_builds = 16,
                      .max_locations = 32,
                      .max_tags = 8,
                      .min_severity = 1,
                      .findings_ttl_ms = 86400000,
                      .max_findings = 2000};
    const char *const *base = dm_scripts();
    const char *const *s = dm_join_scripts(&a);
    for (unsigned i = 0; i < DM_SCRIPT_COUNT; i++) {
        if (i != DM_SCRIPT_PARK)
            assert_ptr_equal(s[i], base[i]);
    }
    /* (max_skew_ms is not among them: dm_join_submit_at judges the skew) */
    const char *want = "#!lua\nlocal RETENTION_MS, PARKED_TTL, WINDOW_MS, "
                       "MAPPING_TTL, MAPPING_TTL_MS, MAX_BUILDS, MAX_LOCATIONS, MAX_TAGS, "
                       "MIN_RANK, FINDINGS_TTL_MS, MAX_FINDINGS = 1860000, '7320000', "
                       "1800000, '7776000000', 7776000000, 16, 32, 8, 1, 86400000, 2000\n";
    assert_int_equal(strncmp(s[DM_SCRIPT_PARK], want, strlen(want)), 0);
    assert_string_equal(s[DM_SCRIPT_PARK] + strlen(want), base[DM_SCRIPT_PARK] + strlen("#!lua\n"));
    /* the same configuration: the same list; another one: its own */
    dm_join_conf same = a;
    assert_ptr_equal(dm_join_scripts(&same), s);
    dm_join_conf other = a;
    other.findings_ttl_ms = 0;
    const char *const *o = dm_join_scripts(&other);
    assert_ptr_not_equal(o, s);
    assert_non_null(strstr(o[DM_SCRIPT_PARK], ", 16, 32, 8, nil, nil, nil\n"));
    assert_ptr_equal(dm_join_scripts(&a), s);
}

/* park.lua's packed reply at its fields' limits: no field spills into its neighbours. */
static void test_park_result_fields(void **state)
{
    (void)state;
    const long long ev_max = (1LL << 21) - 1;
    dm_join_result r = dm_join_park_result(1 * 8 + ev_max * 32 + 5 * (1LL << 26));
    assert_int_equal(r.routed, 1);
    assert_int_equal(r.evicted, ev_max);
    assert_int_equal(r.edges, 5);
    assert_int_equal(r.duplicate, 0);
    assert_int_equal(r.deleted, 0);
    r = dm_join_park_result(2);
    assert_int_equal(r.duplicate, 1);
    assert_int_equal(r.edges + r.evicted + r.routed + r.deleted, 0);
    r = dm_join_park_result(4 + 3 * 32);
    assert_int_equal(r.deleted, 1);
    assert_int_equal(r.evicted, 3);
    assert_int_equal(r.edges + r.duplicate + r.routed, 0);
    r = dm_join_park_result(100000LL << 26);
    assert_int_equal(r.edges, 100000);
    assert_int_equal(r.evicted, 0);
    r = dm_join_park_result(-1);
    assert_int_equal(r.edges + r.duplicate + r.deleted + r.evicted + r.routed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_longest),        cmocka_unit_test(test_index_keys),
        cmocka_unit_test(test_shard_of_digest),    cmocka_unit_test(test_scripts_embedded),
        cmocka_unit_test(test_script_lists_agree), cmocka_unit_test(test_script_preludes),
        cmocka_unit_test(test_script_flags),       cmocka_unit_test(test_scripts_for_conf),
        cmocka_unit_test(test_park_result_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
