/* test_rate.c - token buckets (dm_rate.h) and the source quotas built on them (dm_quota.h),
 * driven by a test clock: no sleeps. */
#include "dm_common.h"
#include "dm_quota.h"
#include "dm_rate.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void test_bucket(void **state)
{
    (void)state;
    dm_bucket b = {0};
    int64_t w = -1;
    /* a new bucket is full: burst requests pass at once */
    for (int i = 0; i < 3; i++)
        assert_true(dm_bucket_try(&b, 2.0, 3, 1000, &w));
    assert_int_equal(w, 0);
    assert_false(dm_bucket_try(&b, 2.0, 3, 1000, &w));
    assert_int_equal(w, 500); /* 2 a second: one token every 500 ms */
    assert_false(dm_bucket_try(&b, 2.0, 3, 1499, &w));
    assert_int_equal(w, 1);
    assert_true(dm_bucket_try(&b, 2.0, 3, 1500, &w));
    /* a long pause refills up to the burst, no more */
    for (int i = 0; i < 3; i++)
        assert_true(dm_bucket_try(&b, 2.0, 3, 100000, NULL));
    assert_false(dm_bucket_try(&b, 2.0, 3, 100000, NULL));
    /* a clock that goes back counts as no time */
    assert_false(dm_bucket_try(&b, 2.0, 3, 5, &w));
    assert_int_equal(w, 500);

    /* fractional rates: one every 4 s */
    dm_bucket f = {0};
    assert_true(dm_bucket_try(&f, 0.25, 1, 0, NULL));
    assert_false(dm_bucket_try(&f, 0.25, 1, 1, &w));
    assert_int_equal(w, 3999);
    assert_true(dm_bucket_try(&f, 0.25, 1, 4000, NULL));

    /* dm_bucket_wait_ms does not take */
    dm_bucket g = {0};
    assert_int_equal(dm_bucket_wait_ms(&g, 1, 1, 0), 0);
    assert_int_equal(dm_bucket_wait_ms(&g, 1, 1, 0), 0);
    dm_bucket_take(&g);
    assert_int_equal(dm_bucket_wait_ms(&g, 1, 1, 0), 1000);
}

static void test_retry_after(void **state)
{
    (void)state;
    assert_int_equal(dm_rate_retry_after_s(0), 1);
    assert_int_equal(dm_rate_retry_after_s(1), 1);
    assert_int_equal(dm_rate_retry_after_s(1000), 1);
    assert_int_equal(dm_rate_retry_after_s(1001), 2);
    assert_int_equal(dm_rate_retry_after_s(59999), 60);
}

static void test_table_lru(void **state)
{
    (void)state;
    dm_rate_table *t = dm_rate_table_new(3);
    bool ev = true;
    dm_bucket *a = dm_rate_table_get(t, "a", 1, &ev);
    assert_false(ev);
    assert_true(dm_bucket_try(a, 1, 1, 0, NULL)); /* "a" is now empty */
    dm_rate_table_get(t, "b", 1, &ev);
    dm_rate_table_get(t, "c", 1, &ev);
    assert_int_equal(dm_rate_table_count(t), 3);
    /* "a" used again: "b" is the least recently used and goes first */
    a = dm_rate_table_get(t, "a", 1, &ev);
    assert_false(ev);
    assert_false(dm_bucket_try(a, 1, 1, 0, NULL)); /* same bucket: still empty */
    dm_rate_table_get(t, "d", 1, &ev);
    assert_true(ev);
    assert_int_equal(dm_rate_table_count(t), 3);
    a = dm_rate_table_get(t, "a", 1, &ev);
    assert_false(ev); /* kept */
    assert_false(dm_bucket_try(a, 1, 1, 0, NULL));
    dm_rate_table_get(t, "b", 1, &ev);
    assert_true(ev); /* was forgotten: created again, evicting "c" */
    /* keys are bytes, not strings */
    dm_bucket *x = dm_rate_table_get(t, "k\0a", 3, NULL);
    dm_bucket *y = dm_rate_table_get(t, "k\0b", 3, NULL);
    assert_ptr_not_equal(x, y);
    dm_rate_table_free(t);
    dm_rate_table_free(NULL);

    /* a flood of names stays bounded */
    t = dm_rate_table_new(100);
    char key[32];
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(key, sizeof key, "cred-%d", i);
        dm_rate_table_get(t, key, (size_t)n, NULL);
    }
    assert_int_equal(dm_rate_table_count(t), 100);
    dm_rate_table_free(t);
}

static const dm_rate_conf rate = {.per_second = 1, .burst = 2};

static void test_quota_credential_and_source(void **state)
{
    (void)state;
    dm_quota *q = dm_quota_new(0);
    int64_t w = 0;
    /* one credential: its burst, then 429 with the time to the next token */
    assert_int_equal(dm_quota_take(q, "/v1/builds", &rate, "entry 0", 0, &w), DM_QUOTA_OK);
    assert_int_equal(dm_quota_take(q, "/v1/builds", &rate, "entry 0", 0, &w), DM_QUOTA_OK);
    assert_int_equal(dm_quota_take(q, "/v1/builds", &rate, "entry 0", 0, &w), DM_QUOTA_CREDENTIAL);
    assert_int_equal(w, 1000);
    /* the source's bucket is empty too now: another credential is refused by it */
    assert_int_equal(dm_quota_take(q, "/v1/builds", &rate, "entry 1", 0, &w), DM_QUOTA_SOURCE);
    assert_int_equal(w, 1000);
    /* another source has its own buckets, even for the same credential text */
    assert_int_equal(dm_quota_take(q, "/v1/registry/acr", &rate, "entry 0", 0, &w), DM_QUOTA_OK);
    /* a refusal costs no token: a second later exactly one request passes */
    for (int i = 0; i < 5; i++)
        dm_quota_take(q, "/v1/builds", &rate, "entry 0", 500, NULL);
    assert_int_equal(dm_quota_take(q, "/v1/builds", &rate, "entry 1", 1000, &w), DM_QUOTA_OK);
    assert_int_equal(dm_quota_take(q, "/v1/builds", &rate, "entry 0", 1000, &w), DM_QUOTA_SOURCE);
    /* no quota configured: always OK */
    dm_rate_conf none = {0};
    for (int i = 0; i < 100; i++)
        assert_int_equal(dm_quota_take(q, "/v1/builds", &none, "x", 0, &w), DM_QUOTA_OK);
    assert_int_equal(w, 0);
    dm_quota_free(q);
}

/* Many credentials against a generous source: each one has its own burst; the table forgets
 * the least recently used beyond its bound, never growing. */
static void test_quota_bounded(void **state)
{
    (void)state;
    dm_quota *q = dm_quota_new(8);
    dm_rate_conf r = {.per_second = 1000000, .burst = 1};
    char cred[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(cred, sizeof cred, "oidc iss sub-%d", i);
        /* the source refills a token every microsecond: 1 ms apart, it never refuses */
        assert_int_equal(dm_quota_take(q, "/s", &r, cred, i, NULL), DM_QUOTA_OK);
    }
    dm_quota_free(q);

    /* the per-credential bucket at a realistic rate */
    q = dm_quota_new(2);
    dm_rate_conf slow = {.per_second = 0.5, .burst = 1};
    int64_t w;
    assert_int_equal(dm_quota_take(q, "/a", &slow, "c1", 0, NULL), DM_QUOTA_OK);
    assert_int_equal(dm_quota_take(q, "/b", &slow, "c1", 0, NULL), DM_QUOTA_OK);
    assert_int_equal(dm_quota_take(q, "/a", &slow, "c1", 0, &w), DM_QUOTA_CREDENTIAL);
    assert_int_equal(w, 2000);
    dm_quota_free(q);
}

typedef struct {
    dm_quota *q;
    int ok;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    dm_rate_conf rc = {.per_second = 0.001, .burst = 500};
    for (int i = 0; i < 1000; i++)
        r->ok += dm_quota_take(r->q, "/race", &rc, "same", 0, NULL) == DM_QUOTA_OK;
    return NULL;
}

/* Shared by the workers: four threads together get exactly the burst. */
static void test_quota_threads(void **state)
{
    (void)state;
    dm_quota *q = dm_quota_new(0);
    pthread_t th[4];
    racer r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (racer){q, 0};
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += r[i].ok;
    }
    assert_int_equal(total, 500);
    dm_quota_free(q);
    assert_ptr_equal(dm_quota_shared(), dm_quota_shared());
}

static void test_credential_names(void **state)
{
    (void)state;
    dm_auth_entry v[3] = {{.type = DM_AUTH_HEADER}, {.type = DM_AUTH_HMAC}, {.type = DM_AUTH_OIDC}};
    dm_auth_list l = {v, 3};
    dm_auth_outcome o = {.entry = &v[1]};
    char buf[DM_QUOTA_CREDENTIAL_LEN];
    assert_string_equal(dm_quota_credential(&l, &o, buf, sizeof buf), "entry 1");
    o.entry = &v[2];
    o.claims = json_pack("{s:s, s:s}", "iss", "https://token.actions.githubusercontent.com", "sub",
                         "repo:acme/api:ref:refs/heads/main");
    assert_string_equal(dm_quota_credential(&l, &o, buf, sizeof buf),
                        "oidc https://token.actions.githubusercontent.com "
                        "repo:acme/api:ref:refs/heads/main");
    json_decref(o.claims);
    o.claims = json_pack("{s:s}", "iss", "https://x"); /* no sub: the entry */
    assert_string_equal(dm_quota_credential(&l, &o, buf, sizeof buf), "entry 2");
    json_decref(o.claims);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket),           cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_table_lru),        cmocka_unit_test(test_quota_credential_and_source),
        cmocka_unit_test(test_quota_bounded),    cmocka_unit_test(test_quota_threads),
        cmocka_unit_test(test_credential_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
