/* dm_test.h - helpers shared by the cmocka unit tests (linked as dm_testutil). Every helper
 * fails the running cmocka test (fail_msg / assert_*) instead of returning an error. */
#ifndef DM_TEST_H
#define DM_TEST_H

#include "dm_common.h"
#include "dm_event.h"

#include <stddef.h>

/* A parser under test: dm_acr_parse and friends, usually wrapped in a guard-page copy. */
typedef int (*dm_test_parse_fn)(const char *body, size_t len, dm_event_list *out, dm_error *err);

/* Read all of @p path into a dm_xmalloc'ed buffer (not NUL-terminated); fails if unreadable. */
char *dm_test_read_file(const char *path, size_t *len);

/* Read DM_FIXTURES/@p rel, e.g. "acr/push.json". */
char *dm_test_load_fixture(const char *rel, size_t *len);

/* Copy @p len bytes of @p src so that the last one is followed by an unreadable page: any read
 * past len faults, even without ASan (picohttpparser's test trick). Returns the copy; release
 * it with munmap(*map, *maplen). */
char *dm_test_guarded_copy(const char *src, size_t len, char **map, size_t *maplen);

/* Run @p parse on a dm_test_guarded_copy of @p body (NULL body when @p len is 0). */
int dm_test_parse_guarded(dm_test_parse_fn parse, const char *body, size_t len, dm_event_list *out,
                          dm_error *err);

/* Parse DM_FIXTURES/@p module/@p name with @p parse over a list poisoned with 0x5a (the
 * parser must not rely on a zeroed list) and expect DM_OK. */
void dm_test_parse_fixture(dm_test_parse_fn parse, const char *module, const char *name,
                           dm_event_list *out);

/* Fixture @p name parses to an ignored list with exactly @p reason and no events. */
void dm_test_expect_ignored_fixture(dm_test_parse_fn parse, const char *module, const char *name,
                                    const char *reason);

/* Every DM_FIXTURES/@p module/<@p prefix>*.json parses to one event or an ignored empty list;
 * at least @p min_seen of them. */
void dm_test_every_fixture_parses(dm_test_parse_fn parse, const char *module, const char *prefix,
                                  int min_seen);

/* The list a failed parse must leave: no events, nothing ignored. */
void dm_test_assert_empty(const dm_event_list *l);

/* dm_event_to_json(@p ev) is exactly @p want. */
void dm_test_expect_json(const dm_event *ev, const char *want);

/* DM_FIXTURES/@p module/invalid/expected.tsv names every *.json there with its exact error
 * ("file<TAB>field<TAB>text"): each must give DM_EINVAL, status 400, that field and text and
 * an empty list; every *.json must have a row; and there must be at least @p min_cases. */
void dm_test_run_invalid_table(const char *module, dm_test_parse_fn parse, int min_cases);

#endif
