/* test_event_park.c - what park.lua takes of an event (dm_event_park_args: kind, field, the
 * stored item's members with cjson's escapes) and the spool's form read back
 * (dm_event_from_json). */
#include "dm_common.h"
#include "dm_event.h"
#include "dm_event_park.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define D1 "sha256:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600"
#define D2 "sha256:7cf87f7bfc057740b20c2fbc79ee2cdc1a3b8d9d215131b7262e83c0a03dabf6"

static void set_tags(dm_event *ev, const char *const *tags, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dm_event_add_tag(ev, tags[i], strlen(tags[i]));
}

static dm_event *push_event(dm_event_list *l)
{
    dm_event *ev = dm_event_list_add_registry(l, "acr", DM_ACTION_PUSH);
    ev->event_id = dm_xstrdup("5d3e8f4a");
    ev->event_time_ms = 1795874531483;
    strcpy(ev->digest, D1);
    dm_event_set_registry(ev, "contoso.azurecr.io", strlen("contoso.azurecr.io"));
    ev->repository = dm_xstrdup("team/api");
    ev->media_type = dm_xstrdup("application/vnd.oci.image.index.v1+json");
    return ev;
}

/* args of @p ev are @p kind, @p field and @p members. */
static void expect_args(const dm_event *ev, size_t max_tags, const char *kind, const char *field,
                        const char *members)
{
    dm_park_args a;
    dm_event_park_args(ev, max_tags, &a);
    assert_string_equal(a.kind, kind);
    assert_int_equal(a.field_len, strlen(field));
    assert_memory_equal(a.field, field, a.field_len);
    assert_string_equal(a.members, members);
    assert_int_equal(a.members_len, strlen(members));
    dm_park_args_dispose(&a);
}

static void test_push_args(void **state)
{
    (void)state;
    dm_event_list l = {0};
    dm_event *ev = push_event(&l);
    const char *tags[] = {"1.4.0"};
    set_tags(ev, tags, 1);
    expect_args(ev, 64, "p", "contoso.azurecr.io/team/api",
                "\"s\":\"acr\",\"e\":\"5d3e8f4a\",\"m\":\"oi\",\"g\":[\"1.4.0\"]");
    /* no tags, the other media type codes, one without a code (kept as it is), a delete */
    free(ev->tags[0]);
    free(ev->tags);
    ev->tags = NULL;
    ev->ntags = 0;
    free(ev->media_type);
    ev->media_type = dm_xstrdup("application/vnd.docker.distribution.manifest.v2+json");
    expect_args(ev, 64, "p", "contoso.azurecr.io/team/api",
                "\"s\":\"acr\",\"e\":\"5d3e8f4a\",\"m\":\"dm\"");
    free(ev->media_type);
    ev->media_type = dm_xstrdup("application/x-other");
    ev->action = DM_ACTION_DELETE;
    expect_args(ev, 64, "d", "contoso.azurecr.io/team/api",
                "\"s\":\"acr\",\"e\":\"5d3e8f4a\",\"m\":\"application/x-other\"");
    free(ev->media_type);
    ev->media_type = NULL;
    free(ev->event_id);
    ev->event_id = NULL;
    expect_args(ev, 64, "d", "contoso.azurecr.io/team/api", "\"s\":\"acr\",\"e\":\"\"");
    dm_event_list_dispose(&l);
}

static void test_escapes(void **state)
{
    (void)state;
    dm_event_list l = {0};
    dm_event *ev = push_event(&l);
    free(ev->media_type);
    ev->media_type = NULL;
    /* cjson's escapes: quote, backslash, the short forms, other controls and DEL as lower-case
     * \u00xx; '/' and UTF-8 as they are */
    free(ev->event_id);
    ev->event_id = dm_xstrdup("a\"b\\c/d\b\f\n\r\t\x01\x1f\x7f\xc3\xa9");
    expect_args(
        ev, 64, "p", "contoso.azurecr.io/team/api",
        "\"s\":\"acr\",\"e\":\"a\\\"b\\\\c/d\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\xc3\xa9\"");
    /* not UTF-8 (a hand-built event): its non-ASCII bytes become '?' */
    free(ev->event_id);
    ev->event_id = dm_xstrdup("x\xff\xc3\xa9\"");
    expect_args(ev, 64, "p", "contoso.azurecr.io/team/api", "\"s\":\"acr\",\"e\":\"x???\\\"\"");
    /* overlong and surrogate forms are not UTF-8 either */
    free(ev->event_id);
    ev->event_id = dm_xstrdup("\xc0\xaf\xed\xa0\x80");
    expect_args(ev, 64, "p", "contoso.azurecr.io/team/api", "\"s\":\"acr\",\"e\":\"?????\"");
    dm_event_list_dispose(&l);
}

static dm_event *build_event(dm_event_list *l)
{
    dm_event *ev = dm_event_list_add(l);
    ev->side = DM_SIDE_BUILD;
    ev->action = DM_ACTION_BUILD;
    strcpy(ev->source, "github");
    ev->event_id = dm_xstrdup("github/120/1/" D1);
    ev->event_time_ms = 1795874534000;
    strcpy(ev->digest, D1);
    ev->relation = DM_REL_IMAGE;
    dm_build_info b = {.provider = "github",
                       .repository = "acme/api",
                       .workflow = "rel\"ease",
                       .run_id = "120",
                       .run_attempt = "1",
                       .commit = "3e1c",
                       .actor = "mona"};
    dm_build_info_copy(&ev->build, &b);
    return ev;
}

static void test_build_args(void **state)
{
    (void)state;
    dm_event_list l = {0};
    dm_event *ev = build_event(&l);
    /* "f" and "v": the record's build object before and after built_at, as JSON strings */
    expect_args(ev, 64, "b", "github/120/1",
                "\"f\":\"\\\"provider\\\":\\\"github\\\",\\\"repository\\\":\\\"acme/api\\\","
                "\\\"workflow\\\":\\\"rel\\\\\\\"ease\\\",\\\"run_id\\\":\\\"120\\\","
                "\\\"run_attempt\\\":\\\"1\\\",\\\"commit\\\":\\\"3e1c\\\","
                "\\\"actor\\\":\\\"mona\\\"\",\"v\":\"\\\"verified\\\":false\","
                "\"xr\":\"acme/api\"");
    /* a verified platform manifest with a name and tags, cut to the last max tags */
    dm_build_info_dispose(&ev->build);
    dm_build_info b = {.provider = "github",
                       .run_id = "121",
                       .run_attempt = "2",
                       .issuer = "https://t",
                       .verified = true};
    dm_build_info_copy(&ev->build, &b);
    char *fields[] = {"repository", "run_id"};
    ev->build.verified_fields = dm_xcalloc(2, sizeof(char *));
    ev->build.verified_fields[0] = dm_xstrdup(fields[0]);
    ev->build.verified_fields[1] = dm_xstrdup(fields[1]);
    ev->build.nverified_fields = 2;
    ev->relation = DM_REL_PLATFORM_MANIFEST;
    strcpy(ev->index_digest, D2);
    ev->name = dm_xstrdup("contoso.azurecr.io/team/api");
    const char *tags[] = {"a", "b", "c"};
    set_tags(ev, tags, 3);
    expect_args(ev, 2, "b", "github/121/2",
                "\"f\":\"\\\"provider\\\":\\\"github\\\",\\\"run_id\\\":\\\"121\\\","
                "\\\"run_attempt\\\":\\\"2\\\"\",\"v\":\"\\\"verified\\\":true,"
                "\\\"issuer\\\":\\\"https://t\\\",\\\"verified_fields\\\":[\\\"repository\\\","
                "\\\"run_id\\\"]\",\"r\":\"p\",\"i\":\"" D2 "\","
                "\"n\":\"contoso.azurecr.io/team/api\",\"g\":[\"b\",\"c\"]");
    /* no provider: nothing before built_at (park.lua copes) */
    free(ev->build.provider);
    ev->build.provider = NULL;
    free(ev->build.run_id);
    ev->build.run_id = dm_xstrdup("");
    expect_args(ev, 0, "b", "//2",
                "\"f\":\"\\\"run_id\\\":\\\"\\\",\\\"run_attempt\\\":\\\"2\\\"\",\"v\":\"\\\""
                "verified\\\":true,\\\"issuer\\\":\\\"https://t\\\",\\\"verified_fields\\\":["
                "\\\"repository\\\",\\\"run_id\\\"]\",\"r\":\"p\",\"i\":\"" D2 "\","
                "\"n\":\"contoso.azurecr.io/team/api\"");
    dm_event_list_dispose(&l);
}

/* dm_event_to_json -> dm_event_from_json -> dm_event_to_json gives the same document. */
static void round_trip(const dm_event *ev)
{
    char *a = dm_event_to_json(ev);
    json_error_t jerr;
    json_t *doc = json_loads(a, 0, &jerr);
    assert_non_null(doc);
    dm_event back;
    assert_int_equal(dm_event_from_json(doc, &back), DM_OK);
    char *b = dm_event_to_json(&back);
    assert_string_equal(a, b);
    free(a);
    free(b);
    dm_event_dispose(&back);
    json_decref(doc);
}

static void test_from_json(void **state)
{
    (void)state;
    dm_event_list l = {0};
    dm_event *push = push_event(&l);
    const char *tags[] = {"1.4.0", "latest"};
    set_tags(push, tags, 2);
    round_trip(push);
    push->action = DM_ACTION_DELETE;
    round_trip(push);
    dm_event *b = build_event(&l);
    b->relation = DM_REL_PLATFORM_MANIFEST;
    strcpy(b->index_digest, D2);
    b->name = dm_xstrdup("n");
    set_tags(b, tags, 2);
    b->build.issuer = dm_xstrdup("https://t");
    b->build.verified = true;
    b->build.verified_fields = dm_xcalloc(1, sizeof(char *));
    b->build.verified_fields[0] = dm_xstrdup("run_id");
    b->build.nverified_fields = 1;
    round_trip(b);
    dm_event_list_dispose(&l);
}

static int from(const char *text)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    assert_non_null(doc);
    dm_event ev;
    int rc = dm_event_from_json(doc, &ev);
    if (rc == DM_OK)
        dm_event_dispose(&ev);
    else
        assert_null(ev.event_id);
    json_decref(doc);
    return rc;
}

static void test_from_json_refuses(void **state)
{
    (void)state;
#define REG(extra)                                                                              \
    "{\"side\":\"registry\",\"action\":\"push\",\"source\":\"acr\",\"event_id\":\"e\",\"t\":1," \
    "\"digest\":\"" D1 "\"" extra "}"
#define BUILD(rel, run)                                                                          \
    "{\"side\":\"build\",\"action\":\"build\",\"source\":\"github\",\"event_id\":\"e\",\"t\":1," \
    "\"digest\":\"" D1 "\"" rel ",\"build\":{\"provider\":\"github\"" run "}}"
    assert_int_equal(from(REG(",\"registry\":\"r\",\"repository\":\"p\"")), DM_OK);
    assert_int_equal(from(BUILD("", ",\"run_id\":\"1\",\"run_attempt\":\"1\"")), DM_OK);
    assert_int_equal(from("[]"), DM_EINVAL);
    assert_int_equal(from("\"x\""), DM_EINVAL);
    assert_int_equal(from(REG(",\"registry\":\"r\"")), DM_EINVAL); /* no repository */
    assert_int_equal(from(REG(",\"registry\":\"r\",\"repository\":7")), DM_EINVAL); /* not text */
    assert_int_equal(from(REG(",\"registry\":\"r\\u0000x\",\"repository\":\"p\"")), DM_EINVAL);
    assert_int_equal(from(REG(",\"registry\":\"r\",\"repository\":\"p\",\"tags\":[1]")), DM_EINVAL);
    assert_int_equal(
        from("{\"side\":\"registry\",\"action\":\"push\",\"source\":\"acr\",\"event_id\":\"e\","
             "\"t\":\"1\",\"digest\":\"" D1 "\",\"registry\":\"r\",\"repository\":\"p\"}"),
        DM_EINVAL); /* t not an integer */
    assert_int_equal(
        from("{\"side\":\"registry\",\"action\":\"tag\",\"source\":\"acr\",\"event_id\":\"e\","
             "\"digest\":\"" D1 "\",\"registry\":\"r\",\"repository\":\"p\"}"),
        DM_EINVAL);
    assert_int_equal(
        from("{\"side\":\"elsewhere\",\"action\":\"push\",\"source\":\"acr\",\"event_id\":\"e\","
             "\"digest\":\"" D1 "\",\"registry\":\"r\",\"repository\":\"p\"}"),
        DM_EINVAL);
    assert_int_equal(
        from("{\"side\":\"registry\",\"action\":\"push\",\"source\":\"acr\",\"event_id\":\"e\","
             "\"digest\":\"sha256:zz\",\"registry\":\"r\",\"repository\":\"p\"}"),
        DM_EINVAL);
    assert_int_equal(
        from("{\"side\":\"registry\",\"action\":\"push\",\"source\":\"a-source-name-too-long\","
             "\"event_id\":\"e\",\"digest\":\"" D1 "\",\"registry\":\"r\",\"repository\":\"p\"}"),
        DM_EINVAL);
    assert_int_equal(from(BUILD("", ",\"run_id\":\"1\"")), DM_EINVAL); /* no attempt */
    assert_int_equal(from(BUILD(",\"relation\":\"platform-manifest\"",
                                ",\"run_id\":\"1\",\"run_attempt\":\"1\"")),
                     DM_EINVAL); /* no index */
    assert_int_equal(
        from(BUILD(",\"relation\":\"sibling\"", ",\"run_id\":\"1\",\"run_attempt\":\"1\"")),
        DM_EINVAL);
    assert_int_equal(from(BUILD("", ",\"run_id\":\"1\",\"run_attempt\":\"1\",\"verified\":1")),
                     DM_EINVAL);
    assert_int_equal(
        from("{\"side\":\"build\",\"action\":\"build\",\"source\":\"github\",\"event_id\":\"e\","
             "\"digest\":\"" D1 "\"}"),
        DM_EINVAL); /* no build */
#undef REG
#undef BUILD
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_args),         cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_build_args),        cmocka_unit_test(test_from_json),
        cmocka_unit_test(test_from_json_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
