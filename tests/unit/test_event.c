/* test_event.c - digests, shards, list ownership, errors, the helpers adapters fill events
 * with, and the park.lua JSON document. */
#include "dm_common.h"
#include "dm_event.h"
#include "dm_test.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define D1 "sha256:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600"
#define D2 "sha256:7cf87f7bfc057740b20c2fbc79ee2cdc1a3b8d9d215131b7262e83c0a03dabf6"

static bool valid(const char *s)
{
    return dm_digest_valid(s, strlen(s));
}

static void test_digest_valid(void **state)
{
    (void)state;
    assert_true(valid(D1));
    assert_true(valid("sha256:0000000000000000000000000000000000000000000000000000000000000000"));
    assert_true(valid("sha256:abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdef0123"));
    /* uppercase hex, uppercase prefix */
    assert_false(valid("sha256:49E792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600"));
    assert_false(valid("SHA256:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600"));
    /* short, long, missing prefix, other algorithms, non-hex */
    assert_false(valid("sha256:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c960"));
    assert_false(valid(D1 "0"));
    assert_false(valid(D1 + 7));
    assert_false(valid("sha512:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600"));
    assert_false(valid("sha256:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c960g"));
    assert_false(valid("sha256-49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600"));
    assert_false(valid("sha256: 9e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600"));
    assert_false(valid(""));
    assert_false(dm_digest_valid(NULL, 0));
    /* the length given is what counts, not a NUL */
    assert_false(dm_digest_valid(D1, DM_DIGEST_LEN - 1));
    char buf[DM_DIGEST_LEN]; /* deliberately not NUL-terminated */
    memcpy(buf, D1, DM_DIGEST_LEN);
    assert_true(dm_digest_valid(buf, sizeof buf));
    char nul[] = D1;
    nul[40] = '\0';
    assert_false(dm_digest_valid(nul, DM_DIGEST_LEN));
    /* every byte value, at the first and the last hex position: only 0-9 and a-f pass */
    for (int b = 0; b < 256; b++) {
        bool hex = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f');
        char d[] = D1;
        d[7] = (char)b;
        assert_int_equal(dm_digest_valid(d, DM_DIGEST_LEN), hex);
        memcpy(d, D1, sizeof d);
        d[DM_DIGEST_LEN - 1] = (char)b;
        assert_int_equal(dm_digest_valid(d, DM_DIGEST_LEN), hex);
    }
}

static void test_digest_shard(void **state)
{
    (void)state;
    /* 0x49e7 = 18919 */
    assert_int_equal(dm_digest_shard(D1, 1), 0);
    assert_int_equal(dm_digest_shard(D1, 0), 0); /* 0 shards means one */
    assert_int_equal(dm_digest_shard(D1, 16), 18919 % 16);
    assert_int_equal(dm_digest_shard(D1, 1000), 919);
    assert_int_equal(dm_digest_shard(D1, 65536), 18919);
    assert_int_equal(dm_digest_shard(D1, 100000), 18919);
    /* 0x7cf8 = 31992 */
    assert_int_equal(dm_digest_shard(D2, 7), 31992 % 7);
    const char *ffff = "sha256:ffff000000000000000000000000000000000000000000000000000000000000";
    assert_int_equal(dm_digest_shard(ffff, 1000), 65535 % 1000);
    /* invalid input never reads past the string, and lands on shard 0 */
    assert_int_equal(dm_digest_shard("sha256:ff", 16), 0);
    assert_int_equal(dm_digest_shard(NULL, 16), 0);
}

static void test_error_set(void **state)
{
    (void)state;
    dm_error e;
    memset(&e, 0x55, sizeof e);
    assert_int_equal(dm_error_set(&e, "target.digest", "must be %s", "valid"), DM_EINVAL);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.field, "target.digest");
    assert_string_equal(e.text, "must be valid");

    assert_int_equal(dm_error_set(&e, NULL, "x%d", 1), DM_EINVAL);
    assert_string_equal(e.field, "");
    assert_string_equal(e.text, "x1");

    /* truncated, never overflowing */
    char longf[200];
    memset(longf, 'f', sizeof longf - 1);
    longf[sizeof longf - 1] = '\0';
    dm_error_set(&e, longf, "%s", longf);
    assert_int_equal(strlen(e.field), sizeof e.field - 1);
    assert_int_equal(strlen(e.text),
                     sizeof longf - 1 < sizeof e.text - 1 ? sizeof longf - 1 : sizeof e.text - 1);

    /* sender bytes quoted in a text stay printable ASCII */
    dm_error_set(&e, "", "near '%s'", "a\tb\xc3\xa9\x7f");
    assert_string_equal(e.text, "near 'a?b???"
                                "'"); /* split: no trigraph */

    /* a NULL error struct is tolerated */
    assert_int_equal(dm_error_set(NULL, "x", "y"), DM_EINVAL);
}

static void test_list_add_dispose(void **state)
{
    (void)state;
    dm_event_list l = {0};
    for (int i = 0; i < 1000; i++) {
        dm_event *ev = dm_event_list_add(&l);
        assert_non_null(ev);
        assert_ptr_equal(ev, &l.v[i]);
        assert_null(ev->event_id);
        assert_int_equal(ev->ntags, 0);
        assert_string_equal(ev->digest, "");
        ev->event_time_ms = i;
        ev->event_id = dm_xstrdup("id");
        if (i % 3 == 0) {
            ev->tags = dm_xcalloc(2, sizeof *ev->tags);
            ev->tags[0] = dm_xstrdup("a");
            ev->tags[1] = dm_xstrdup("b");
            ev->ntags = 2;
            ev->registry = dm_xstrdup("r");
            ev->repository = dm_xstrdup("p");
            ev->media_type = dm_xstrdup("m");
            ev->name = dm_xstrdup("n");
            ev->build.provider = dm_xstrdup("github");
            ev->build.issuer = dm_xstrdup("iss");
        }
    }
    assert_int_equal(l.n, 1000);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(l.v[i].event_time_ms, i);
    l.ignored = "ping";
    dm_event_list_dispose(&l);
    assert_null(l.v);
    assert_int_equal(l.n, 0);
    assert_null(l.ignored);
    dm_event_list_dispose(&l); /* zeroed list: no-op */
    dm_event_list_dispose(NULL);
}

static void test_build_info_copy(void **state)
{
    (void)state;
    dm_build_info src = {
        .provider = "github",
        .repository = "acme/api",
        .repository_url = "https://github.com/acme/api",
        .workflow = "release",
        .workflow_ref = "acme/api/.github/workflows/release.yml@refs/heads/main",
        .run_id = "1",
        .run_attempt = "2",
        .run_url = "https://github.com/acme/api/actions/runs/1",
        .commit = "abc",
        .ref = "refs/heads/main",
        .actor = "mona",
        .issuer = NULL,
        .verified = true,
    };
    dm_build_info dst;
    memset(&dst, 0x7f, sizeof dst); /* overwritten, not freed */
    dm_build_info_copy(&dst, &src);
    dm_test_expect_build_info(&dst, &src, NULL);
    assert_ptr_not_equal(dst.provider, src.provider);
    assert_ptr_not_equal(dst.run_url, src.run_url);
    dm_build_info_dispose(&dst);
    assert_null(dst.provider);
    assert_false(dst.verified);
    dm_build_info_dispose(&dst);
    dm_build_info_dispose(NULL);

    dm_build_info_copy(&dst, NULL);
    assert_null(dst.provider);
    assert_false(dst.verified);

    /* Only the run's description: provider, issuer and verification stay as they were. */
    static const char *const fields[] = {"run_id", NULL};
    dm_build_info run = {.provider = dm_xstrdup("azure-devops")};
    run.verified_fields = dm_xcalloc(1, sizeof *run.verified_fields);
    run.verified_fields[0] = dm_xstrdup("run_id");
    run.nverified_fields = 1;
    dm_build_info_copy_run(&run, &src);
    dm_build_info want = src;
    want.provider = "azure-devops";
    want.verified = false;
    dm_test_expect_build_info(&run, &want, fields);
    assert_ptr_not_equal(run.repository, src.repository);
    dm_build_info_copy_run(&run, NULL); /* nothing to copy: unchanged */
    dm_test_expect_build_info(&run, &want, fields);
    dm_build_info_dispose(&run);
}

static void test_registry_helpers(void **state)
{
    (void)state;
    dm_event_list l;
    memset(&l, 0, sizeof l);
    dm_event *ev = dm_event_list_add_registry(&l, "gar", DM_ACTION_DELETE);
    assert_int_equal(l.n, 1);
    assert_int_equal(ev->side, DM_SIDE_REGISTRY);
    assert_int_equal(ev->action, DM_ACTION_DELETE);
    assert_string_equal(ev->source, "gar");
    assert_int_equal(ev->relation, DM_REL_IMAGE);
    assert_null(ev->event_id);

    /* host names are lowercased; only the given bytes are taken */
    dm_event_set_registry(ev, "Europe-West4-Docker.PKG.dev/x", 27);
    assert_string_equal(ev->registry, "europe-west4-docker.pkg.dev");
    dm_event_set_registry(ev, "A:5000", 6); /* replaces the first */
    assert_string_equal(ev->registry, "a:5000");

    /* tags are a set, compared in full: "v1" is not "v1.0" */
    dm_event_add_tag(ev, "v1.0", 2);
    dm_event_add_tag(ev, "v1", 2);
    dm_event_add_tag(ev, "v1.0", 4);
    dm_event_add_tag(ev, "v1", 2);
    assert_int_equal(ev->ntags, 2);
    assert_string_equal(ev->tags[0], "v1");
    assert_string_equal(ev->tags[1], "v1.0");
    dm_event_list_dispose(&l);
}

static void test_repository_check(void **state)
{
    (void)state;
    static const char *const good[] = {"a", "team/api", "p-1/r.x/a_b/c--d/e", "0", "a.b_c-d"};
    for (size_t i = 0; i < DM_ARRAY_LEN(good); i++)
        assert_int_equal(dm_repository_check(good[i], strlen(good[i]), "r", "bad", NULL), DM_OK);
    static const struct {
        const char *name, *text;
    } bad[] = {
        {"A", "bad"},
        {"a b", "bad"},
        {"a:1", "bad"},
        {"a@b", "bad"},
        {"/a", "must not have an empty path component"},
        {"a/", "must not have an empty path component"},
        {"a//b", "must not have an empty path component"},
        {"/", "must not have an empty path component"},
        {"a/B/", "bad"}, /* the first fault found, from the left */
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(bad); i++) {
        dm_error err = {0};
        assert_int_equal(
            dm_repository_check(bad[i].name, strlen(bad[i].name), "detail.r", "bad", &err),
            DM_EINVAL);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.field, "detail.r");
        assert_string_equal(err.text, bad[i].text);
    }
    /* only the given bytes count */
    assert_int_equal(dm_repository_check("a/b/", 3, "r", "bad", NULL), DM_OK);
}

static dm_event *registry_event(dm_event_list *l)
{
    dm_event *ev = dm_event_list_add(l);
    ev->side = DM_SIDE_REGISTRY;
    ev->action = DM_ACTION_PUSH;
    strcpy(ev->source, "acr");
    ev->event_id = dm_xstrdup("5d3e8f4a");
    ev->event_time_ms = 1795874531483;
    strcpy(ev->digest, D1);
    ev->registry = dm_xstrdup("contoso.azurecr.io");
    ev->repository = dm_xstrdup("team/api");
    ev->media_type = dm_xstrdup("application/vnd.oci.image.index.v1+json");
    ev->tags = dm_xcalloc(1, sizeof *ev->tags);
    ev->tags[0] = dm_xstrdup("1.4.0");
    ev->ntags = 1;
    return ev;
}

static void test_json_registry(void **state)
{
    (void)state;
    dm_event_list l = {0};
    dm_event *ev = registry_event(&l);
    dm_test_expect_json(ev, "{\"side\":\"registry\",\"action\":\"push\",\"source\":\"acr\","
                            "\"event_id\":\"5d3e8f4a\",\"t\":1795874531483,\"digest\":\"" D1 "\","
                            "\"registry\":\"contoso.azurecr.io\",\"repository\":\"team/api\","
                            "\"tags\":[\"1.4.0\"],"
                            "\"media_type\":\"application/vnd.oci.image.index.v1+json\"}");

    /* delete, untagged, no media type, unknown time, quotes escaped */
    ev->action = DM_ACTION_DELETE;
    free(ev->tags[0]);
    free(ev->tags);
    ev->tags = NULL;
    ev->ntags = 0;
    free(ev->media_type);
    ev->media_type = NULL;
    ev->event_time_ms = 0;
    free(ev->repository);
    ev->repository = dm_xstrdup("a\"b\\c");
    dm_test_expect_json(ev, "{\"side\":\"registry\",\"action\":\"delete\",\"source\":\"acr\","
                            "\"event_id\":\"5d3e8f4a\",\"t\":0,\"digest\":\"" D1 "\","
                            "\"registry\":\"contoso.azurecr.io\",\"repository\":\"a\\\"b\\\\c\","
                            "\"tags\":[]}");

    /* bytes that are not UTF-8 still give a well-formed document */
    free(ev->repository);
    ev->repository = dm_xstrdup("team/\xff\xfe");
    ev->event_time_ms = -5;
    dm_test_expect_json(ev, "{\"side\":\"registry\",\"action\":\"delete\",\"source\":\"acr\","
                            "\"event_id\":\"5d3e8f4a\",\"t\":-5,\"digest\":\"" D1 "\","
                            "\"registry\":\"contoso.azurecr.io\",\"repository\":\"team/??\","
                            "\"tags\":[]}");
    dm_event_list_dispose(&l);
}

static void test_json_build(void **state)
{
    (void)state;
    dm_event_list l = {0};
    dm_event *ev = dm_event_list_add(&l);
    ev->side = DM_SIDE_BUILD;
    ev->action = DM_ACTION_BUILD;
    strcpy(ev->source, "github");
    ev->event_id = dm_xstrdup("github/12094877312/1/" D1);
    ev->event_time_ms = 1795874534000;
    strcpy(ev->digest, D1);
    ev->relation = DM_REL_IMAGE;
    ev->name = dm_xstrdup("contoso.azurecr.io/team/api");
    ev->tags = dm_xcalloc(2, sizeof *ev->tags);
    ev->tags[0] = dm_xstrdup("1.4.0");
    ev->tags[1] = dm_xstrdup("latest");
    ev->ntags = 2;
    dm_build_info b = {.provider = "github",
                       .repository = "acme/api",
                       .repository_url = "https://github.com/acme/api",
                       .workflow = "release",
                       .workflow_ref = "w@refs/heads/main",
                       .run_id = "12094877312",
                       .run_attempt = "1",
                       .run_url = "https://u",
                       .commit = "3e1c",
                       .ref = "refs/heads/main",
                       .actor = "mona",
                       .issuer = "https://token.actions.githubusercontent.com",
                       .verified = true};
    dm_build_info_copy(&ev->build, &b);
    dm_test_expect_json(
        ev, "{\"side\":\"build\",\"action\":\"build\",\"source\":\"github\","
            "\"event_id\":\"github/12094877312/1/" D1 "\",\"t\":1795874534000,"
            "\"digest\":\"" D1 "\",\"relation\":\"image\","
            "\"name\":\"contoso.azurecr.io/team/api\",\"tags\":[\"1.4.0\",\"latest\"],"
            "\"build\":{\"provider\":\"github\",\"repository\":\"acme/api\","
            "\"repository_url\":\"https://github.com/acme/api\",\"workflow\":\"release\","
            "\"workflow_ref\":\"w@refs/heads/main\",\"run_id\":\"12094877312\","
            "\"run_attempt\":\"1\",\"run_url\":\"https://u\",\"commit\":\"3e1c\","
            "\"ref\":\"refs/heads/main\",\"actor\":\"mona\","
            "\"issuer\":\"https://token.actions.githubusercontent.com\","
            "\"verified\":true}}");

    /* platform manifest: "index" present, no name given, only the members that are set */
    dm_event *pm = dm_event_list_add(&l);
    pm->side = DM_SIDE_BUILD;
    pm->action = DM_ACTION_BUILD;
    strcpy(pm->source, "generic");
    pm->event_id = dm_xstrdup("generic/7/1/" D2);
    strcpy(pm->digest, D2);
    strcpy(pm->index_digest, D1);
    pm->relation = DM_REL_PLATFORM_MANIFEST;
    pm->build.provider = dm_xstrdup("generic");
    pm->build.run_id = dm_xstrdup("7");
    pm->build.run_attempt = dm_xstrdup("1");
    dm_test_expect_json(
        pm, "{\"side\":\"build\",\"action\":\"build\",\"source\":\"generic\","
            "\"event_id\":\"generic/7/1/" D2 "\",\"t\":0,\"digest\":\"" D2 "\","
            "\"relation\":\"platform-manifest\",\"index\":\"" D1 "\",\"tags\":[],"
            "\"build\":{\"provider\":\"generic\",\"run_id\":\"7\",\"run_attempt\":\"1\","
            "\"verified\":false}}");
    dm_event_list_dispose(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_valid),     cmocka_unit_test(test_digest_shard),
        cmocka_unit_test(test_error_set),        cmocka_unit_test(test_list_add_dispose),
        cmocka_unit_test(test_build_info_copy),  cmocka_unit_test(test_registry_helpers),
        cmocka_unit_test(test_repository_check), cmocka_unit_test(test_json_registry),
        cmocka_unit_test(test_json_build),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
