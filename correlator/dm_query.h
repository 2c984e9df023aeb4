/* dm_query.h - read what is stored about one digest (GET /v1/images/<digest>). */
#ifndef DM_CORRELATOR_DM_QUERY_H
#define DM_CORRELATOR_DM_QUERY_H

#include "dm_join.h"

/**
 * Completion: on DM_OK, @p status is 200 (found) or 404 (nothing known) and @p body is the
 * JSON answer of DESIGN §6.3 (malloc'd, NUL-terminated; ownership passes to the callback,
 * which frees it). On error (DM_EUNAVAIL, DM_ETIMEOUT, DM_EREDIS) body is NULL.
 */
typedef void (*dm_query_cb)(int err, int status, char *body, void *arg);

/** Query @p digest (must be valid). Returns as dm_redis_eval. */
int dm_query_image(dm_redis *r, const dm_join_conf *conf, const char *digest, dm_query_cb cb,
                   void *arg);

/*---------------------------------------------------------------- GET /v1/mappings ---*/

/** The three query indexes park.lua writes (one sorted set per shard and name). */
typedef enum {
    DM_INDEX_REPOSITORY = 0, /**< "ix:repo:<build repository>", e.g. acme/api */
    DM_INDEX_RUN,            /**< "ix:run:<provider>/<run id>" */
    DM_INDEX_IMAGE,          /**< "ix:img:<registry>/<image repository>" */
} dm_index_kind;

/** An index member: "<13-digit inverted ms>|sha256:<64 hex>|<40 hex edge id>". */
#define DM_INDEX_MEMBER_LEN 126
/** A cursor: the unpadded base64url text of a member. */
#define DM_CURSOR_LEN 168
#define DM_QUERY_MAX_LIMIT 500
#define DM_QUERY_DEFAULT_LIMIT 50
/** Longest index name accepted (a repository path, "<provider>/<run id>", …). */
#define DM_QUERY_MAX_NAME 512

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
