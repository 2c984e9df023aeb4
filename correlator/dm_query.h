/* dm_query.h - read what is stored about one digest (GET /v1/images/<digest>). */
#ifndef DM_CORRELATOR_DM_QUERY_H
#define DM_CORRELATOR_DM_QUERY_H

#include "dm_join.h"
#include "dm_keys.h"

struct redisReply;

/**
 * Completion: on DM_OK, @p status is 200 (found) or 404 (nothing known) and @p body is the
 * JSON answer (malloc'd, NUL-terminated; ownership passes to the callback, which frees it). On
 * error (DM_EUNAVAIL, DM_ETIMEOUT, DM_EREDIS) body is NULL.
 */
typedef void (*dm_query_cb)(int err, int status, char *body, void *arg);

/*---------------------------------------------------------------- text cursors ---*/

/** The cursor of @p len bytes of @p text: unpadded base64url, malloc'd, NUL-terminated. */
char *dm_cursor_encode(const char *text, size_t len);

/**
 * Decode cursor @p cursor (@p len bytes, untrusted) into @p out (room for @p cap bytes and a
 * NUL): true only for exactly what dm_cursor_encode produces from 1..@p cap bytes without a
 * NUL; @p outlen gets their number.
 */
bool dm_cursor_decode(const char *cursor, size_t len, char *out, size_t cap, size_t *outlen);

/*---------------------------------------------------------------- GET /v1/images ---*/

#define DM_IMAGE_DEFAULT_LIMIT 100
#define DM_IMAGE_MAX_LIMIT     500
/** An edge id: the SHA-1 of the edge identity in lowercase hex (lua/park.lua). */
#define DM_EDGE_ID_LEN         40
/** An image cursor: the unpadded base64url text of the edge id's 20 bytes. */
#define DM_IMAGE_CURSOR_LEN    27

/** Longest sort key of a finding a findings_cursor may stand for (lua/query.lua). */
#define DM_FINDINGS_KEY_MAX 4096

/** One page of what is known about one digest. */
typedef struct dm_image_query {
    char digest[DM_DIGEST_BUFLEN]; /**< valid (dm_digest_valid) */
    unsigned limit;                /**< mappings per page, 1..DM_IMAGE_MAX_LIMIT */
    /** Start strictly after this edge id (a decoded cursor), "" = from the first. */
    char after[DM_EDGE_ID_LEN + 1];
    unsigned findings_limit; /**< findings per page, 1..DM_IMAGE_MAX_LIMIT */
    /** Start strictly after this finding sort key (a decoded findings_cursor), "" = first. */
    char findings_after[DM_FINDINGS_KEY_MAX + 1];
} dm_image_query;

/** Whether @p key (@p len bytes, a decoded findings_cursor) has the form of a finding's sort
 *  key: "<rank 0..4>\x1f<id>\x1f<package>\x1f<scanner>". */
bool dm_query_findings_key_valid(const char *key, size_t len);

/** Encode edge id @p id (DM_EDGE_ID_LEN lowercase hex digits) as a cursor into @p out. */
void dm_query_image_cursor_encode(const char *id, char out[DM_IMAGE_CURSOR_LEN + 1]);

/**
 * Decode cursor @p text (@p len bytes, untrusted) into the edge id it stands for. Returns true
 * only for exactly what dm_query_image_cursor_encode produces.
 */
bool dm_query_image_cursor_decode(const char *text, size_t len, char id[DM_EDGE_ID_LEN + 1]);

/**
 * One page of @p q->digest: {"digest", "mappings", "next_cursor", "pending": {"registry",
 * "build"}, "deleted", "findings": {"summary", "items", "next_cursor"}, "workloads"}
 * (README.md "Query API"): at most q->limit mappings in edge-id order after q->after,
 * next_cursor null on the last page; at most q->findings_limit findings after
 * q->findings_after (most severe first); the pending, delete and workload lists whole on every
 * page (the per-digest bounds keep them small). Plus "error" with status 404 when nothing at
 * all is known. Returns as dm_redis_eval.
 */
int dm_query_image(dm_redis *r, const dm_join_conf *conf, const dm_image_query *q, dm_query_cb cb,
                   void *arg);

/**
 * The answer of dm_query_image from lua/query.lua's reply @p rep (borrowed): four texts of
 * JSON arrays, already in their final form (C never reads the stored form), which this only
 * places into the document, the next page's edge id ("" on the last page), the number of
 * stored mappings, the findings summary ("" when none), the findings page (a JSON array), its
 * next sort key ("" on the last page), the number of findings and the workloads (a JSON
 * array). Returns the body (malloc'd) with @p status 200 or 404, or NULL when @p rep is not
 * that shape. No I/O.
 */
char *dm_query_image_answer(const char *digest, const struct redisReply *rep, int *status);

/*---------------------------------------------------------------- GET /v1/mappings ---*/

/** An index member: "<13-digit inverted ms>|sha256:<64 hex>|<40 hex edge id>". */
#define DM_INDEX_MEMBER_LEN    126
/** A cursor: the unpadded base64url text of a member. */
#define DM_CURSOR_LEN          168
#define DM_QUERY_MAX_LIMIT     500
#define DM_QUERY_DEFAULT_LIMIT 50
/**
 * Longest index name accepted: the longest name park.lua may index, a build's run.repository
 * (2048 bytes, adapters/dm_build.c and the OIDC claims of dm_oidc.c). The other names are
 * shorter: "<provider>/<run id>" at most 269 bytes, "<registry>/<image repository>" at most
 * 512 (host 255 + '/' + repository 256, the registry adapters' limits).
 */
#define DM_QUERY_MAX_NAME      2048

typedef struct dm_mappings_query {
    dm_index_kind kind;
    /** The index name, NUL-terminated: for DM_INDEX_IMAGE "<registry>/<image repository>"
     * (a registry host holds no '/', so the split is unambiguous). */
    char name[DM_QUERY_MAX_NAME + 1];
    unsigned limit; /**< 1..DM_QUERY_MAX_LIMIT */
    /** Start strictly after this member (a decoded cursor), "" = from the newest. */
    char after[DM_INDEX_MEMBER_LEN + 1];
} dm_mappings_query;

/** Encode index member @p member (DM_INDEX_MEMBER_LEN bytes) as a cursor into @p out. */
void dm_query_cursor_encode(const char *member, char out[DM_CURSOR_LEN + 1]);

/**
 * Decode cursor @p text (@p len bytes, untrusted) into the member it stands for. Returns true
 * only for exactly what dm_query_cursor_encode produces from a well-formed member.
 */
bool dm_query_cursor_decode(const char *text, size_t len, char member[DM_INDEX_MEMBER_LEN + 1]);

/** One shard's answer to a page request (lua/mappings.lua), as the merge needs it. */
typedef struct dm_query_shard_page {
    /** Nothing follows @c frontier in the shard's index. */
    bool exhausted;
    /** The last member the shard examined (DM_INDEX_MEMBER_LEN bytes): read when !exhausted. */
    const char *frontier;
    /** The live members it returned: @c n × DM_INDEX_MEMBER_LEN bytes back to back, no NULs. */
    const char *members;
    size_t n;
} dm_query_shard_page;

/** One entry of a merged page: member @c index of page @c shard (@c member points into it). */
typedef struct dm_query_pick {
    const char *member;
    size_t shard, index;
} dm_query_pick;

/**
 * Merge the shards' answers into one page, newest first: at most @p limit picks into @p out,
 * never past the smallest frontier of a shard that is not exhausted, since that shard may hold
 * live members right after it that it did not return (it stopped at its own limit or work
 * budget). Returns the number of picks; @p next gets the member the next cursor stands for
 * (pointing into @p pages), or NULL when the walk is complete. No I/O; @p pages are only read.
 */
size_t dm_query_merge(const dm_query_shard_page *pages, size_t npages, unsigned limit,
                      dm_query_pick *out, const char **next);

/**
 * The GET /v1/mappings answer, {"query":{…},"mappings":[…],"next_cursor":…}: the echo of @p q,
 * the page's @p n mappings in order (@p lens bytes each, lua/mappings.lua's elements, already
 * in their final form, which this only places into the document) and the cursor of member
 * @p next (NULL: null, the walk is complete). Returns the body (malloc'd). No I/O.
 */
char *dm_query_mappings_answer(const dm_mappings_query *q, const char *const *mappings,
                               const size_t *lens, size_t n, const char *next);

/**
 * Live mappings each shard is asked for when a page of @p limit is merged over @p shards:
 * min(limit, max(8, 2 × ceil(limit / shards))), so the work of one request stays near
 * 2 × limit (at least 8 per shard) instead of shards × limit. A shard that holds more stops at
 * its frontier and the merge stops there too: a page may be shorter than limit, never wrong.
 */
unsigned dm_query_shard_limit(unsigned limit, unsigned shards);

/**
 * One page of mappings, newest first by confirmation time, merged over all shards (one script
 * call per shard, so it needs conf->shards free slots on @p r). On DM_OK the callback gets
 * status 200 and {"query":{…},"mappings":[<mapping data + confirmed_at>…],"next_cursor":…}
 * (an empty list when nothing matches). Returns as dm_redis_eval; DM_EBUSY when the calls do
 * not all fit in the in-flight cap (nothing is queued then).
 */
int dm_query_mappings(dm_redis *r, const dm_join_conf *conf, const dm_mappings_query *q,
                      dm_query_cb cb, void *arg);

#endif
