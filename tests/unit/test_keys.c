/* test_keys.c - every key name of dm_keys.h against the string it must be, and the same names
 * written by snprintf (what dm_keys.c used before it built them with memcpy) for many prefixes,
 * shards and digests, including names too long for DM_KEY_BUFLEN (cut as snprintf cuts them). */
#include "dm_common.h"
#include "dm_keys.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define D1 "sha256:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600"

static void key_is(const char *got, size_t len, const char *want)
{
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
}

typedef size_t (*digest_fn)(char[DM_KEY_BUFLEN], const char *, unsigned, const char *);
typedef size_t (*shard_fn)(char[DM_KEY_BUFLEN], const char *, unsigned);

static const struct {
    digest_fn fn;
    const char *kind;
} digest_keys[] = {
    {dm_key_pushes, "r"},           {dm_key_builds, "b"},    {dm_key_mappings, "m"},
    {dm_key_mapping_ids, "mi"},     {dm_key_deletes, "d"},   {dm_key_reported, "u"},
    {dm_key_workloads, "w"},        {dm_key_findings, "f"},  {dm_key_finding_summary, "fs"},
    {dm_key_findings_routed, "fr"}, {dm_key_exposure, "xw"},
};

static const struct {
    shard_fn fn;
    const char *kind;
} shard_keys[] = {
    {dm_key_due, "due"},   {dm_key_stats, "stats"}, {dm_key_out, "out"},
    {dm_key_dead, "dead"}, {dm_key_shard_base, ""},
};

static void test_every_form(void **state)
{
    (void)state;
    char k[DM_KEY_BUFLEN];
    key_is(k, dm_key_pushes(k, "dm", 0, D1), "dm:{0}:r:" D1);
    key_is(k, dm_key_builds(k, "dm", 3, D1), "dm:{3}:b:" D1);
    key_is(k, dm_key_mappings(k, "dm", 10, D1), "dm:{10}:m:" D1);
    key_is(k, dm_key_mapping_ids(k, "dm", 0, D1), "dm:{0}:mi:" D1);
    key_is(k, dm_key_deletes(k, "dm", 99, D1), "dm:{99}:d:" D1);
    key_is(k, dm_key_reported(k, "dm", 100, D1), "dm:{100}:u:" D1);
    key_is(k, dm_key_workloads(k, "dm", 1, D1), "dm:{1}:w:" D1);
    key_is(k, dm_key_findings(k, "dm", 0, D1), "dm:{0}:f:" D1);
    key_is(k, dm_key_finding_summary(k, "dm", 0, D1), "dm:{0}:fs:" D1);
    key_is(k, dm_key_findings_routed(k, "dm", 0, D1), "dm:{0}:fr:" D1);
    key_is(k, dm_key_exposure(k, "dm", 5, "internet"), "dm:{5}:xw:internet");
    key_is(k, dm_key_due(k, "acme.prod", 13), "acme.prod:{13}:due");
    key_is(k, dm_key_stats(k, "dm", 0), "dm:{0}:stats");
    key_is(k, dm_key_out(k, "dm", 4294967295u), "dm:{4294967295}:out");
    key_is(k, dm_key_dead(k, "dm", 7), "dm:{7}:dead");
    key_is(k, dm_key_shard_base(k, "dm", 2), "dm:{2}:");
    key_is(k, dm_key_shard_base(k, "", 0), ":{0}:");
    key_is(k, dm_key_jti(k, "dm", "ab12"), "dm:jti:ab12");
    key_is(k, dm_key_pushes(k, "dm", 0, ""), "dm:{0}:r:");

    size_t len;
    char *m = dm_key_cluster_inventory("dm", 3, "prod-eu", &len);
    key_is(m, len, "dm:{3}:wc:prod-eu");
    free(m);
    m = dm_key_index("dm", 1, DM_INDEX_REPOSITORY, "acme/api", &len);
    key_is(m, len, "dm:{1}:ix:repo:acme/api");
    free(m);
    m = dm_key_index("dm", 0, DM_INDEX_RUN, "github/123", &len);
    key_is(m, len, "dm:{0}:ix:run:github/123");
    free(m);
    m = dm_key_index("dm", 12, DM_INDEX_IMAGE, "contoso.azurecr.io/team/api", &len);
    key_is(m, len, "dm:{12}:ix:img:contoso.azurecr.io/team/api");
    free(m);
}

/* A string of @p n bytes drawn from a small alphabet (into @p buf, n < size). */
static const char *some(char *buf, size_t n)
{
    static const char alphabet[] = "abcxyz0129:{}/._-";
    for (size_t i = 0; i < n; i++)
        buf[i] = alphabet[(size_t)rand() % (sizeof alphabet - 1)];
    buf[n] = '\0';
    return buf;
}

/* What snprintf wrote for the same name, and the length dm_keys.c's old code returned. */
static size_t reference(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    return (size_t)n < size ? (size_t)n : size - 1;
}

static void test_same_as_snprintf(void **state)
{
    (void)state;
    srand(13);
    static const unsigned shards[] = {0, 1, 9, 10, 255, 1000, 65535, 123456789, UINT_MAX};
    char prefix[80], digest[200], want[DM_KEY_BUFLEN], got[DM_KEY_BUFLEN];
    for (int round = 0; round < 2000; round++) {
        /* mostly names that fit, some far too long (digests up to 199 bytes) */
        some(prefix, (size_t)rand() % 70);
        some(digest, (size_t)rand() % (round % 4 == 0 ? 200 : 80));
        unsigned shard = round < 9 ? shards[round] : (unsigned)rand() * (round % 3 + 1u);
        for (size_t i = 0; i < DM_ARRAY_LEN(digest_keys); i++) {
            memset(got, 0x55, sizeof got);
            size_t wn = reference(want, sizeof want, "%s:{%u}:%s:%s", prefix, shard,
                                  digest_keys[i].kind, digest);
            size_t gn = digest_keys[i].fn(got, prefix, shard, digest);
            assert_int_equal(gn, wn);
            assert_string_equal(got, want);
        }
        for (size_t i = 0; i < DM_ARRAY_LEN(shard_keys); i++) {
            size_t wn =
                reference(want, sizeof want, "%s:{%u}:%s", prefix, shard, shard_keys[i].kind);
            size_t gn = shard_keys[i].fn(got, prefix, shard);
            assert_int_equal(gn, wn);
            assert_string_equal(got, want);
        }
        size_t wn = reference(want, sizeof want, "%s:jti:%s", prefix, digest);
        size_t gn = dm_key_jti(got, prefix, digest);
        assert_int_equal(gn, wn);
        assert_string_equal(got, want);

        /* the malloc'd names are never cut */
        size_t len;
        char *m = dm_key_cluster_inventory(prefix, shard, digest, &len);
        char w[400];
        assert_true(reference(w, sizeof w, "%s:{%u}:wc:%s", prefix, shard, digest) < sizeof w - 1);
        key_is(m, len, w);
        free(m);
        m = dm_key_index(prefix, shard, (dm_index_kind)(round % 3), digest, &len);
        assert_true(reference(w, sizeof w, "%s:{%u}:ix:%s:%s", prefix, shard,
                              dm_key_index_kind((dm_index_kind)(round % 3)),
                              digest) < sizeof w - 1);
        key_is(m, len, w);
        free(m);
    }
}

static void test_cut_when_too_long(void **state)
{
    (void)state;
    char digest[300], got[DM_KEY_BUFLEN + 8];
    memset(digest, 'd', sizeof digest - 1);
    digest[sizeof digest - 1] = '\0';
    memset(got, 0x55, sizeof got);
    size_t n = dm_key_pushes(got, "dm", 0, digest);
    assert_int_equal(n, DM_KEY_BUFLEN - 1);
    assert_int_equal(strlen(got), DM_KEY_BUFLEN - 1);
    assert_memory_equal(got, "dm:{0}:r:ddd", 12);
    /* nothing written past the buffer */
    for (size_t i = DM_KEY_BUFLEN; i < sizeof got; i++)
        assert_int_equal((unsigned char)got[i], 0x55);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_form),
        cmocka_unit_test(test_same_as_snprintf),
        cmocka_unit_test(test_cut_when_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
