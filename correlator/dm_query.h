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

#endif
