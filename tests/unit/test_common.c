/* test_common.c - dm_put_uint, the decimal writer of the hot path's numbers, against snprintf. */
#include "dm_common.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void same_as_printf(unsigned long long v)
{
    char got[24], want[24];
    memset(got, 'x', sizeof got);
    char *e = dm_put_uint(got, v);
    size_t n = (size_t)(e - got);
    snprintf(want, sizeof want, "%llu", v);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(got, want, n);
    assert_int_equal(got[n], 'x'); /* nothing written past the digits */
}

static void test_put_uint(void **state)
{
    (void)state;
    static const unsigned long long edges[] = {
        0, 1, 9, 10, 99, 100, 4294967295ULL, 4294967296ULL, 9999999999999ULL, ULLONG_MAX};
    for (size_t i = 0; i < DM_ARRAY_LEN(edges); i++)
        same_as_printf(edges[i]);
    unsigned long long x = 88172645463325252ULL; /* xorshift64: spread over every length */
    for (int i = 0; i < 5000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        same_as_printf(x >> (i % 64));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_put_uint)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
