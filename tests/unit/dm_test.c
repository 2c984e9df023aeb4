/* dm_test.c - helpers shared by the cmocka unit tests; see dm_test.h. */
#include "dm_test.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

char *dm_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = dm_xrealloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    *len = n;
    return buf;
}

char *dm_test_load_fixture(const char *rel, size_t *len)
{
    char path[1024];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", DM_FIXTURES, rel) >= sizeof path)
        fail_msg("path too long: %s", rel);
    return dm_test_read_file(path, len);
}

json_t *dm_test_load_json(const char *rel)
{
    char path[1024];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", DM_FIXTURES, rel) >= sizeof path)
        fail_msg("path too long: %s", rel);
    json_error_t jerr;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        fail_msg("%s: %s", path, jerr.text);
    return j;
}

bool dm_test_keys_make(dm_test_keys *k)
{
    k->rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k->rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k->rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    k->ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k->ec2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (k->rsa && k->rsa2 && k->rsa1024 && k->ec && k->ec2)
        return true;
    dm_test_keys_free(k);
    return false;
}

void dm_test_keys_free(dm_test_keys *k)
{
    EVP_PKEY_free(k->rsa);
    EVP_PKEY_free(k->rsa2);
    EVP_PKEY_free(k->rsa1024);
    EVP_PKEY_free(k->ec);
    EVP_PKEY_free(k->ec2);
    memset(k, 0, sizeof *k);
}

char *dm_test_guarded_copy(const char *src, size_t len, char **map, size_t *maplen)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (len + page - 1) / page + 1;
    char *m = mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + (pages - 1) * page, page, PROT_NONE), 0);
    char *p = m + (pages - 1) * page - len;
    if (len)
        memcpy(p, src, len);
    *map = m;
    *maplen = pages * page;
    return p;
}

int dm_test_parse_guarded(dm_test_parse_fn parse, const char *body, size_t len, dm_event_list *out,
                          dm_error *err)
{
    char *map;
    size_t maplen;
    char *p = dm_test_guarded_copy(body, len, &map, &maplen);
    int rc = parse(len ? p : NULL, len, out, err);
    munmap(map, maplen);
    return rc;
}

int dm_test_parse_str(dm_test_parse_fn parse, const char *body, dm_event_list *out, dm_error *err)
{
    memset(err, 0, sizeof *err);
    memset(out, 0x5a, sizeof *out); /* the parser must not rely on a zeroed list */
    return dm_test_parse_guarded(parse, body, strlen(body), out, err);
}

void dm_test_parse_fixture(dm_test_parse_fn parse, const char *module, const char *name,
                           dm_event_list *out)
{
    char rel[512];
    snprintf(rel, sizeof rel, "%s/%s", module, name);
    size_t len;
    char *body = dm_test_load_fixture(rel, &len);
    dm_error err = {0};
    memset(out, 0x5a, sizeof *out);
    int rc = dm_test_parse_guarded(parse, body, len, out, &err);
    free(body);
    if (rc != DM_OK)
        fail_msg("%s: [%s] %s", name, err.field, err.text);
}

/* @p l (from @p what) is ignored for exactly @p reason, with no events; disposes it. */
static void expect_ignored_list(dm_event_list *l, const char *what, const char *reason)
{
    if (!l->ignored || strcmp(l->ignored, reason) != 0)
        fail_msg("%s: ignored \"%s\", want \"%s\"", what, l->ignored ? l->ignored : "(not)",
                 reason);
    assert_int_equal(l->n, 0);
    assert_null(l->v);
    dm_event_list_dispose(l);
}

void dm_test_expect_ignored(dm_test_parse_fn parse, const char *body, const char *reason)
{
    dm_event_list l;
    dm_error err;
    if (dm_test_parse_str(parse, body, &l, &err) != DM_OK)
        fail_msg("%s: [%s] %s", body, err.field, err.text);
    expect_ignored_list(&l, body, reason);
}

dm_event *dm_test_expect_one(dm_test_parse_fn parse, const char *body, dm_event_list *l)
{
    dm_error err;
    if (dm_test_parse_str(parse, body, l, &err) != DM_OK)
        fail_msg("%s: [%s] %s", body, err.field, err.text);
    assert_null(l->ignored);
    assert_int_equal(l->n, 1);
    return &l->v[0];
}

void dm_test_expect_untagged_delete(dm_test_parse_fn parse, const char *body)
{
    dm_event_list l;
    dm_event *ev = dm_test_expect_one(parse, body, &l);
    assert_int_equal(ev->action, DM_ACTION_DELETE);
    assert_int_equal(ev->ntags, 0);
    assert_null(ev->tags);
    dm_event_list_dispose(&l);
}

void dm_test_expect_error(dm_test_parse_fn parse, const char *body, const char *field,
                          const char *text)
{
    dm_event_list l;
    dm_error err;
    if (dm_test_parse_str(parse, body, &l, &err) != DM_EINVAL)
        fail_msg("accepted: %s", body);
    if (err.status != 400 || strcmp(err.field, field) != 0 || strcmp(err.text, text) != 0)
        fail_msg("%s: got %d [%s] %s, want 400 [%s] %s", body, err.status, err.field, err.text,
                 field, text);
    dm_test_assert_empty(&l);
}

/* @p parse refuses @p body (@p len bytes, unguarded) with "body is empty". */
static void expect_body_empty(dm_test_parse_fn parse, const char *body, size_t len)
{
    dm_event_list l;
    dm_error err = {0};
    memset(&l, 0x5a, sizeof l);
    assert_int_equal(parse(body, len, &l, &err), DM_EINVAL);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.field, "");
    assert_string_equal(err.text, "body is empty");
    dm_test_assert_empty(&l);
}

void dm_test_expect_short_bodies(dm_test_parse_fn parse, const char *valid)
{
    /* an empty body, with or without a pointer */
    expect_body_empty(parse, "", 0);
    expect_body_empty(parse, NULL, 0);

    /* the body length is what counts: a valid body cut short is malformed */
    dm_event_list l;
    dm_error err = {0};
    memset(&l, 0x5a, sizeof l);
    assert_int_equal(dm_test_parse_guarded(parse, valid, strlen(valid), &l, &err), DM_OK);
    dm_event_list_dispose(&l);
    memset(&l, 0x5a, sizeof l);
    assert_int_equal(dm_test_parse_guarded(parse, valid, strlen(valid) - 1, &l, &err), DM_EINVAL);
    assert_string_equal(err.field, "");
    assert_true(strncmp(err.text, "invalid JSON at ", 16) == 0);
    dm_test_assert_empty(&l);
}

void dm_test_every_fixture_parses(dm_test_parse_fn parse, const char *module, const char *prefix,
                                  int min_seen)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", DM_FIXTURES, module);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int seen = 0;
    size_t plen = strlen(prefix);
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (strncmp(de->d_name, prefix, plen) != 0 || n < 5 ||
            strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        dm_event_list l;
        dm_test_parse_fixture(parse, module, de->d_name, &l);
        assert_true(l.ignored ? l.n == 0 : l.n == 1);
        dm_event_list_dispose(&l);
        seen++;
    }
    closedir(d);
    assert_true(seen >= min_seen);
}

void dm_test_assert_empty(const dm_event_list *l)
{
    assert_null(l->v);
    assert_int_equal(l->n, 0);
    assert_null(l->ignored);
}

void dm_test_expect_json(const dm_event *ev, const char *want)
{
    char *j = dm_event_to_json(ev);
    assert_string_equal(j, want);
    free(j);
}

/* Fail naming @p where and @p what unless @p got is @p want (NULL: must be NULL). */
static void expect_str(const char *where, const char *what, const char *got, const char *want)
{
    if (want ? got && strcmp(got, want) == 0 : !got)
        return;
    fail_msg("%s: %s is \"%s\", want \"%s\"", where, what, got ? got : "(null)",
             want ? want : "(null)");
}

static void expect_int(const char *where, const char *what, long long got, long long want)
{
    if (got != want)
        fail_msg("%s: %s is %lld, want %lld", where, what, got, want);
}

/* The document dm_event_to_json makes of @p want: members in its fixed order, media_type
 * only when there is one. The values are plain (no character JSON escapes). */
static char *registry_json(const char *source, const dm_test_registry_event *want)
{
    char tags[256] = "", media[512] = "";
    if (want->tag)
        snprintf(tags, sizeof tags, "\"%s\"", want->tag);
    if (want->media_type)
        snprintf(media, sizeof media, ",\"media_type\":\"%s\"", want->media_type);
    size_t cap = 4096;
    char *j = dm_xmalloc(cap);
    snprintf(j, cap,
             "{\"side\":\"registry\",\"action\":\"%s\",\"source\":\"%s\",\"event_id\":\"%s\","
             "\"t\":%lld,\"digest\":\"%s\",\"registry\":\"%s\",\"repository\":\"%s\","
             "\"tags\":[%s]%s}",
             want->action == DM_ACTION_DELETE ? "delete" : "push", source, want->event_id,
             (long long)want->t, want->digest, want->registry, want->repository, tags, media);
    return j;
}

void dm_test_expect_registry_event(const dm_event *ev, const char *source,
                                   const dm_test_registry_event *want)
{
    const char *at = want->fixture;
    expect_int(at, "side", ev->side, DM_SIDE_REGISTRY);
    expect_int(at, "action", ev->action, want->action);
    expect_str(at, "source", ev->source, source);
    expect_str(at, "event_id", ev->event_id, want->event_id);
    expect_int(at, "event_time_ms", ev->event_time_ms, want->t);
    expect_str(at, "digest", ev->digest, want->digest);
    expect_str(at, "registry", ev->registry, want->registry);
    expect_str(at, "repository", ev->repository, want->repository);
    expect_str(at, "media_type", ev->media_type, want->media_type);
    expect_int(at, "ntags", (long long)ev->ntags, want->tag ? 1 : 0);
    if (want->tag)
        expect_str(at, "tags[0]", ev->tags[0], want->tag);
    else if (ev->tags)
        fail_msg("%s: tags is not NULL", at);
    expect_int(at, "relation", ev->relation, DM_REL_IMAGE);
    expect_str(at, "index_digest", ev->index_digest, "");
    expect_str(at, "name", ev->name, NULL);
    expect_str(at, "build.provider", ev->build.provider, NULL);
    expect_int(at, "build.verified", ev->build.verified, false);
    char *got = dm_event_to_json(ev), *doc = registry_json(source, want);
    expect_str(at, "JSON", got, doc);
    free(doc);
    free(got);
}

void dm_test_expect_registry_fixtures(dm_test_parse_fn parse, const char *module,
                                      const char *source, const dm_test_registry_event *want,
                                      size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dm_event_list l;
        dm_test_parse_fixture(parse, module, want[i].fixture, &l);
        if (want[i].ignored) {
            expect_ignored_list(&l, want[i].fixture, want[i].ignored);
            continue;
        }
        if (l.ignored || l.n != 1)
            fail_msg("%s: %zu events, ignored \"%s\"; want one", want[i].fixture, l.n,
                     l.ignored ? l.ignored : "");
        dm_test_expect_registry_event(&l.v[0], source, &want[i]);
        dm_event_list_dispose(&l);
    }
}

const dm_build_info dm_test_github_identity = {
    .provider = "github",
    .repository = "acme/api",
    .repository_url = "https://github.com/acme/api",
    .workflow = "release",
    .workflow_ref = "acme/api/.github/workflows/release.yml@refs/heads/main",
    .run_id = "12094877312",
    .run_attempt = "1",
    .run_url = "https://github.com/acme/api/actions/runs/12094877312/attempts/1",
    .commit = "3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d",
    .ref = "refs/heads/main",
    .actor = "mona",
    .issuer = "https://token.actions.githubusercontent.com",
    .verified = true,
};

const dm_build_info dm_test_azure_run = {
    .provider = "azure-devops",
    .repository = "payments/worker",
    .repository_url = "https://dev.azure.com/contoso/payments/_git/worker",
    .workflow = "worker-ci",
    .run_id = "20418",
    .run_attempt = "1",
    .run_url = "https://dev.azure.com/contoso/payments/_build/results?buildId=20418",
    .commit = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
    .ref = "refs/heads/main",
    .actor = "build-service",
};

void dm_test_expect_build_info(const dm_build_info *got, const dm_build_info *want,
                               const char *const *fields)
{
    const char *at = "build";
    expect_str(at, "provider", got->provider, want->provider);
    expect_str(at, "repository", got->repository, want->repository);
    expect_str(at, "repository_url", got->repository_url, want->repository_url);
    expect_str(at, "workflow", got->workflow, want->workflow);
    expect_str(at, "workflow_ref", got->workflow_ref, want->workflow_ref);
    expect_str(at, "run_id", got->run_id, want->run_id);
    expect_str(at, "run_attempt", got->run_attempt, want->run_attempt);
    expect_str(at, "run_url", got->run_url, want->run_url);
    expect_str(at, "commit", got->commit, want->commit);
    expect_str(at, "ref", got->ref, want->ref);
    expect_str(at, "actor", got->actor, want->actor);
    expect_str(at, "issuer", got->issuer, want->issuer);
    expect_int(at, "verified", got->verified, want->verified);
    size_t n = 0;
    while (fields && fields[n])
        n++;
    expect_int(at, "nverified_fields", (long long)got->nverified_fields, (long long)n);
    if (n == 0 && got->verified_fields)
        fail_msg("build: verified_fields is not NULL");
    for (size_t i = 0; i < n; i++)
        expect_str(at, "verified_fields[i]", got->verified_fields[i], fields[i]);
}

void dm_test_fill(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
}

void dm_test_limits_fill(dm_test_limits *m)
{
    dm_test_fill(m->id, 'i', sizeof m->id - 1);
    dm_test_fill(m->repository, 'r', sizeof m->repository - 1);
    dm_test_fill(m->host, 'h', sizeof m->host - 1);
    dm_test_fill(m->tag, 't', sizeof m->tag - 1);
    dm_test_fill(m->media_type, 'm', sizeof m->media_type - 1);
}

dm_test_registry_event dm_test_limits_event(const dm_test_limits *m, int64_t t, const char *digest,
                                            const char *registry, bool media_type)
{
    return (dm_test_registry_event){.fixture = "limits",
                                    .action = DM_ACTION_PUSH,
                                    .event_id = m->id,
                                    .t = t,
                                    .digest = digest,
                                    .registry = registry,
                                    .repository = m->repository,
                                    .tag = m->tag,
                                    .media_type = media_type ? m->media_type : NULL};
}

void dm_test_run_invalid_table(const char *module, dm_test_parse_fn parse, int min_cases)
{
    char rel[512];
    snprintf(rel, sizeof rel, "%s/invalid/expected.tsv", module);
    size_t tlen;
    char *table = dm_test_load_fixture(rel, &tlen);
    table = dm_xrealloc(table, tlen + 1);
    table[tlen] = '\0';
    int cases = 0;
    char *save = NULL;
    for (char *line = strtok_r(table, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *file = line, *field = strchr(file, '\t'), *text;
        assert_non_null(field);
        *field++ = '\0';
        text = strchr(field, '\t');
        assert_non_null(text);
        *text++ = '\0';

        snprintf(rel, sizeof rel, "%s/invalid/%s", module, file);
        size_t len;
        char *body = dm_test_load_fixture(rel, &len);
        dm_event_list l;
        dm_error err = {0};
        memset(&l, 0x5a, sizeof l);
        int rc = dm_test_parse_guarded(parse, body, len, &l, &err);
        free(body);
        if (rc != DM_EINVAL)
            fail_msg("%s: accepted", file);
        if (err.status != 400 || strcmp(err.field, field) != 0 || strcmp(err.text, text) != 0)
            fail_msg("%s: got %d [%s] %s, want [%s] %s", file, err.status, err.field, err.text,
                     field, text);
        dm_test_assert_empty(&l);
        cases++;
    }
    free(table);

    /* every input file has a row: a new case cannot be added without its expectation */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s/invalid", DM_FIXTURES, module);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n >= 5 && strcmp(de->d_name + n - 5, ".json") == 0)
            files++;
    }
    closedir(d);
    assert_int_equal(files, cases);
    assert_true(cases >= min_cases);
}
