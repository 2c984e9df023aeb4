/* dm_exposure.h - GET /v1/exposure: the workloads of one exposure level whose images have
 * findings at or above a severity, each image with its findings summary and the builds that
 * produced it (README.md "Query API", docs/workloads.md).
 */
#ifndef DM_CORRELATOR_DM_EXPOSURE_H
#define DM_CORRELATOR_DM_EXPOSURE_H

#include "dm_query.h"

/*---------------------------------------------------------------- GET /v1/exposure ---*/

/** Longest workload key "<cluster>/<namespace>/<kind>/<name>" (dm_k8s.h's name bounds). */
#define DM_WORKLOAD_KEY_MAX       (128 + 1 + 63 + 1 + 63 + 1 + 253)
#define DM_EXPOSURE_DEFAULT_LIMIT 50
#define DM_EXPOSURE_MAX_LIMIT     500
/** Mappings answered per image, the newest. */
#define DM_EXPOSURE_MAX_MAPPINGS  20

typedef struct dm_exposure_query {
    const char *exposure;     /**< "internet", "node" or "cluster" (static) */
    const char *min_severity; /**< "critical" .. "unknown" (static) */
    int min_rank;             /**< its rank: 0 critical .. 4 unknown */
    unsigned limit;           /**< workloads per page, 1..DM_EXPOSURE_MAX_LIMIT */
    /** Start strictly after this workload key (a decoded cursor), "" = from the first. */
    char after[DM_WORKLOAD_KEY_MAX + 1];
} dm_exposure_query;

/** Whether @p key (@p len bytes) is a workload key: four non-empty parts of the names' bytes
 *  (dm_k8s.h), separated by '/'. */
bool dm_exposure_key_valid(const char *key, size_t len);

/**
 * The order of workloads in the index (lua/exposure.lua): byte order of "<key>|". Negative,
 * zero or positive as strcmp.
 */
int dm_exposure_key_cmp(const char *a, const char *b);

/** One shard's page (lua/exposure.lua), as the merge needs it; every pointer borrowed. */
typedef struct dm_exposure_page {
    bool exhausted;
    const char *frontier; /**< the last workload key examined ("" none); read when !exhausted */
    size_t n;
    const char *const *keys; /**< n workload keys, in index order */
} dm_exposure_page;

/** One workload of a merged page (its key points into the pages). */
typedef struct dm_exposure_pick {
    const char *key;
} dm_exposure_pick;

/**
 * Merge the shards' pages into one page of distinct workload keys in index order: at most
 * @p limit into @p out, never past the smallest frontier of a shard that is not exhausted.
 * Returns their number; @p next gets the key the next cursor stands for (pointing into
 * @p pages), or NULL when the walk is complete. No I/O.
 */
size_t dm_exposure_merge(const dm_exposure_page *pages, size_t npages, unsigned limit,
                         dm_exposure_pick *out, const char **next);

/**
 * One page of exposed workloads, merged over all shards (one script call per shard; needs
 * conf->shards free slots on @p r). On DM_OK the callback gets status 200 and
 * {"query":{…},"workloads":[…],"next_cursor":…}. Returns as dm_redis_eval; DM_EBUSY when the
 * calls do not all fit (nothing queued then).
 */
int dm_query_exposure(dm_redis *r, const dm_join_conf *conf, const dm_exposure_query *q,
                      dm_query_cb cb, void *arg);

#endif
