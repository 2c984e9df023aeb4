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

void dm_test_parse_fixture(dm_test_parse_fn parse, const char *module, const char *name,
                           dm_event_list *out)
{
    char rel[512];
    snprintf(rel, sizeof rel, "%s/%s", module, name);
    size_t len;
    char *body = dm_test_load_fixture(rel, &len);
    dm_error err = {0};
    memset(out, 0x5a, sizeof *out); /* the parser must not rely on a zeroed list */
    int rc = parse(body, len, out, &err);
    free(body);
    if (rc != DM_OK)
        fail_msg("%s: [%s] %s", name, err.field, err.text);
}

void dm_test_expect_ignored_fixture(dm_test_parse_fn parse, const char *module, const char *name,
                                    const char *reason)
{
    dm_event_list l;
    dm_test_parse_fixture(parse, module, name, &l);
    assert_non_null(l.ignored);
    assert_string_equal(l.ignored, reason);
    assert_int_equal(l.n, 0);
    assert_null(l.v);
    dm_event_list_dispose(&l);
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
        int rc = parse(body, len, &l, &err);
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
