/* dm_test.h - helpers shared by the cmocka unit tests (linked as dm_testutil). Every helper
 * fails the running cmocka test (fail_msg / assert_*) instead of returning an error. */
#ifndef DM_TEST_H
#define DM_TEST_H

#include "dm_common.h"
#include "dm_event.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>

/* A parser under test: dm_acr_parse and friends. The helpers below run it on guarded copies
 * (dm_test_guarded_copy) over a list poisoned with 0x5a (the parser must not rely on a zeroed
 * one). */
typedef int (*dm_test_parse_fn)(const char *body, size_t len, dm_event_list *out, dm_error *err);

/* Read all of @p path into a dm_xmalloc'ed buffer (not NUL-terminated); fails if unreadable. */
char *dm_test_read_file(const char *path, size_t *len);

/* Read DM_FIXTURES/@p rel, e.g. "acr/push.json". */
char *dm_test_load_fixture(const char *rel, size_t *len);

/* DM_FIXTURES/@p rel parsed as JSON (duplicate keys refused); a new reference. */
json_t *dm_test_load_json(const char *rel);

/* Keys for the signature tests, made once per group: RSA keygen is their slow part. */
typedef struct dm_test_keys {
    EVP_PKEY *rsa, *rsa2; /* RSA-2048 */
    EVP_PKEY *rsa1024;    /* too small to be trusted */
    EVP_PKEY *ec, *ec2;   /* EC P-256 */
} dm_test_keys;

/* Generate every key of @p k; false, with none held, when OpenSSL fails. */
bool dm_test_keys_make(dm_test_keys *k);

/* Free the keys of @p k and zero it. */
void dm_test_keys_free(dm_test_keys *k);

/* Copy @p len bytes of @p src so that the last one is followed by an unreadable page: any read
 * past len faults, even without ASan (picohttpparser's test trick). Returns the copy; release
 * it with munmap(*map, *maplen). */
char *dm_test_guarded_copy(const char *src, size_t len, char **map, size_t *maplen);

/* Run @p parse on a dm_test_guarded_copy of @p body (NULL body when @p len is 0). */
int dm_test_parse_guarded(dm_test_parse_fn parse, const char *body, size_t len, dm_event_list *out,
                          dm_error *err);

/* dm_test_parse_guarded on NUL-terminated @p body, over a poisoned list, with @p err zeroed. */
int dm_test_parse_str(dm_test_parse_fn parse, const char *body, dm_event_list *out, dm_error *err);

/* Parse DM_FIXTURES/@p module/@p name and expect DM_OK. */
void dm_test_parse_fixture(dm_test_parse_fn parse, const char *module, const char *name,
                           dm_event_list *out);

/* @p body parses to an ignored list with exactly @p reason and no events. */
void dm_test_expect_ignored(dm_test_parse_fn parse, const char *body, const char *reason);

/* @p body parses to exactly one event, not ignored; returns it (@p l is the caller's to
 * dispose). */
dm_event *dm_test_expect_one(dm_test_parse_fn parse, const char *body, dm_event_list *l);

/* @p body is one delete event that carries no tag (a delete removes the manifest with all its
 * tags, whatever tag the sender names). */
void dm_test_expect_untagged_delete(dm_test_parse_fn parse, const char *body);

/* @p body is refused: DM_EINVAL, status 400, exactly @p field and @p text, an empty list. */
void dm_test_expect_error(dm_test_parse_fn parse, const char *body, const char *field,
                          const char *text);

/* What is too short to be a body: "" and NULL (length 0) are "body is empty", and @p valid
 * cut one byte short is invalid JSON (field ""); each leaves an empty list. */
void dm_test_expect_short_bodies(dm_test_parse_fn parse, const char *valid);

/* Every DM_FIXTURES/@p module/<@p prefix>*.json parses to one event or an ignored empty list;
 * at least @p min_seen of them. */
void dm_test_every_fixture_parses(dm_test_parse_fn parse, const char *module, const char *prefix,
                                  int min_seen);

/* The list a failed parse must leave: no events, nothing ignored. */
void dm_test_assert_empty(const dm_event_list *l);

/* dm_event_to_json(@p ev) is exactly @p want. */
void dm_test_expect_json(const dm_event *ev, const char *want);

/* One registry event as a test expects it, field by field. */
typedef struct dm_test_registry_event {
    const char *fixture; /* the file under DM_FIXTURES/<module>/ that gives it */
    dm_action action;
    const char *event_id;
    int64_t t;
    const char *digest, *registry, *repository;
    const char *tag;        /* the one tag, or NULL for none */
    const char *media_type; /* NULL for none */
    const char *ignored;    /* set instead of the above: acknowledged for this reason */
} dm_test_registry_event;

/* @p ev is @p want from registry @p source ("acr", ...) in every field: side registry,
 * relation image, no index, name or build identity; and dm_event_to_json(@p ev) is the
 * document park.lua reads, spelled out from @p want member by member in its fixed order. */
void dm_test_expect_registry_event(const dm_event *ev, const char *source,
                                   const dm_test_registry_event *want);

/* Each of the @p n fixtures of @p module named in @p want parses to exactly one event, and it
 * is that entry of @p want, or (.ignored) to no event, ignored for exactly that reason. */
void dm_test_expect_registry_fixtures(dm_test_parse_fn parse, const char *module,
                                      const char *source, const dm_test_registry_event *want,
                                      size_t n);

/* @p n times @p c, then a NUL, into @p buf (n + 1 bytes): a value exactly at a limit. */
void dm_test_fill(char *buf, char c, size_t n);

/* Values exactly at the bounds every registry adapter takes: id and repository 256 bytes,
 * host and media type 255, tag 128 (each of one lowercase letter, repeated). */
typedef struct dm_test_limits {
    char id[257], repository[257], host[256], tag[129], media_type[256];
} dm_test_limits;

void dm_test_limits_fill(dm_test_limits *m);

/* The push event of digest @p digest at @p t for values @p m, from registry @p registry. */
dm_test_registry_event dm_test_limits_event(const dm_test_limits *m, int64_t t, const char *digest,
                                            const char *registry, bool media_type);

/* What the OIDC verifier makes of tests/fixtures/build/github-oidc-claims.json (issuer
 * "https://token.actions.githubusercontent.com"). */
extern const dm_build_info dm_test_github_identity;

/* What the pipeline itself says in the "run" of tests/fixtures/build/event-azure-pipelines.json
 * (unverified, no issuer). */
extern const dm_build_info dm_test_azure_run;

/* Every member of @p got equals @p want's (NULL: absent); @p fields is the exact, NULL-ended
 * verified_fields list, or NULL for none (the whole identity comes from a token or from the
 * body). */
void dm_test_expect_build_info(const dm_build_info *got, const dm_build_info *want,
                               const char *const *fields);

/* DM_FIXTURES/@p module/invalid/expected.tsv names every *.json there with its exact error
 * ("file<TAB>field<TAB>text"): each must give DM_EINVAL, status 400, that field and text and
 * an empty list; every *.json must have a row; and there must be at least @p min_cases. */
void dm_test_run_invalid_table(const char *module, dm_test_parse_fn parse, int min_cases);

#endif
