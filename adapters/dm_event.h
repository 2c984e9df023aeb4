/* dm_event.h - the normalized event every adapter produces.
 *
 * Adapters are pure: bytes in, a dm_event_list or a dm_error out; no I/O, no globals.
 * Every string in these structs is owned by the struct and freed by dm_event_list_dispose().
 */
#ifndef DM_ADAPTERS_DM_EVENT_H
#define DM_ADAPTERS_DM_EVENT_H

#include "dm_common.h"

#include <jansson.h>

/** "sha256:" + 64 lowercase hex + NUL. */
#define DM_DIGEST_LEN    71
#define DM_DIGEST_BUFLEN 72

typedef enum {
    DM_SIDE_REGISTRY = 0,
    DM_SIDE_BUILD
} dm_side;

typedef enum {
    DM_ACTION_PUSH = 0, /**< registry: a manifest was pushed */
    DM_ACTION_DELETE,   /**< registry: a manifest was deleted */
    DM_ACTION_BUILD,    /**< build: a pipeline run built this digest */
} dm_action;

typedef enum {
    DM_REL_IMAGE = 0,         /**< the digest a build names as its image (usually an index) */
    DM_REL_PLATFORM_MANIFEST, /**< a platform manifest listed under an image's "manifests" */
} dm_relation;

/** Build identity: the "build" object of output records (README.md "Output records"). NULL
 *  members are absent. */
typedef struct dm_build_info {
    char *provider;   /**< github | azure-devops | gitlab | generic */
    char *repository; /**< code repository, e.g. "acme/api" */
    char *repository_url;
    char *workflow;
    char *workflow_ref;
    char *run_id;
    char *run_attempt; /**< "1" when the sender gave none */
    char *run_url;
    char *commit;
    char *ref;
    char *actor;
    char *issuer;           /**< OIDC issuer when verified */
    bool verified;          /**< identity taken from a verified token, not from the body */
    char **verified_fields; /**< when only some fields come from the token (Azure DevOps):
                                 their names; NULL/0 otherwise */
    size_t nverified_fields;
} dm_build_info;

typedef struct dm_event {
    dm_side side;
    dm_action action;
    char source[16];       /**< "acr", "ecr", "gar", or the build provider */
    char *event_id;        /**< sender's id (registry) or "<run key>/<digest>" (build) */
    int64_t event_time_ms; /**< from the payload; 0 = not given (arrival time is used) */
    char digest[DM_DIGEST_BUFLEN];

    /* registry side */
    char *registry;   /**< host, lowercase, e.g. "contoso.azurecr.io" */
    char *repository; /**< e.g. "team/api" */
    char *media_type; /**< may be NULL */

    /* both sides: tags named by the sender (registry: 0 or 1; build: any) */
    char **tags;
    size_t ntags;

    /* build side */
    dm_relation relation;
    char index_digest
        [DM_DIGEST_BUFLEN]; /**< platform manifests: the image they belong to, else "" */
    char *name;             /**< build's "name" (registry/repository) if given, else NULL */
    dm_build_info build;
} dm_event;

/** What one request turned into: zero or more events, or "ignored" with a reason. */
typedef struct dm_event_list {
    dm_event *v;
    size_t n;
    const char *ignored; /**< static string when the request is acknowledged but ignored */
} dm_event_list;

/** A precise, sender-safe reason for rejecting a request (400 unless status says otherwise). */
typedef struct dm_error {
    int status;     /**< HTTP status to answer, 400 by default */
    char field[64]; /**< JSON path of the offending field, "" if none */
    char text[192]; /**< human reason, e.g. "must be sha256: followed by 64 lowercase hex" */
} dm_error;

/** Fill @p err (status 400) and return DM_EINVAL. printf-style @p fmt for the text. */
int dm_error_set(dm_error *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** True if @p s (@p len bytes) is "sha256:" followed by 64 lowercase hex digits. */
bool dm_digest_valid(const char *s, size_t len);

/** Append a zeroed event to @p list and return it (owned by the list). */
dm_event *dm_event_list_add(dm_event_list *list);

/** Append a registry event (relation image) from registry @p source ("acr", ...) for @p action. */
dm_event *dm_event_list_add_registry(dm_event_list *list, const char *source, dm_action action);

/** Set ev->registry to host @p host (@p n bytes) in lowercase: host names are
 *  case-insensitive, and the join keys on one spelling. */
void dm_event_set_registry(dm_event *ev, const char *host, size_t n);

/** Add tag @p tag (@p n bytes) to @p ev unless it is there already: tags are a set. */
void dm_event_add_tag(dm_event *ev, const char *tag, size_t n);

/**
 * Check repository name @p s (@p n bytes): lowercase path components of [a-z0-9._-]
 * separated by single '/'. The name follows the host in "<host>/<repository>" locations, so
 * an empty component ("a//b", "/a", "a/") would make two spellings of one location.
 * DM_OK, or DM_EINVAL with @p err naming @p path: @p bad_char_text (each adapter words it for
 * its member) for another character, "must not have an empty path component" for the rest.
 */
int dm_repository_check(const char *s, size_t n, const char *path, const char *bad_char_text,
                        dm_error *err);

/** Free everything the list owns and zero it. Safe on a zeroed list. */
void dm_event_list_dispose(dm_event_list *list);

/** Deep-copy @p src into @p dst (dst is overwritten, not freed first). */
void dm_build_info_copy(dm_build_info *dst, const dm_build_info *src);

/**
 * Copy what @p src says about the run (repository through actor: not provider, issuer or
 * verification) into @p dst, whose members of that range must be NULL. @p src may be NULL.
 */
void dm_build_info_copy_run(dm_build_info *dst, const dm_build_info *src);

/** Free the strings of @p b and zero it. */
void dm_build_info_dispose(dm_build_info *b);

/**
 * Serialize @p ev as a compact JSON document: the form the spool keeps events in
 * (docs/spool.md), read back by dm_event_from_json. Returns a malloc'd NUL-terminated string
 * the caller frees.
 */
char *dm_event_to_json(const dm_event *ev);

/**
 * Read a document of dm_event_to_json (@p doc, an object; also those an earlier version
 * spooled) into @p ev, which is overwritten (dispose it with dm_event_dispose). Members it
 * does not know are ignored; what it needs (side, action, digest, the location of a registry
 * event, the run of a build) must be there and well-formed. Returns DM_OK, or DM_EINVAL with
 * @p ev zeroed.
 */
int dm_event_from_json(const json_t *doc, dm_event *ev);

/** Free everything @p ev owns and zero it (an event not in a list, e.g. dm_event_from_json's). */
void dm_event_dispose(dm_event *ev);

/** Shard of a valid digest: first 4 hex digits as an integer, mod @p shards (every Redis key
 *  and stream of a digest carries its shard as the hash tag "{s}", README.md). */
unsigned dm_digest_shard(const char *digest, unsigned shards);

#endif
