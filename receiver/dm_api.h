/* dm_api.h - GET /v1/mappings: which images a code repository, a run or a registry
 * repository produced (DESIGN §6.3), newest first, paginated. */
#ifndef DM_RECEIVER_DM_API_H
#define DM_RECEIVER_DM_API_H

#include "dm_query.h"
#include "dm_server.h"

struct evhttp_request;

/** GET /v1/mappings?repository=… | ?run=<provider>/<id> | ?registry=…&image_repository=… */
void dm_api_mappings(dm_worker *w, struct evhttp_request *req);

/**
 * Parse and validate a GET /v1/mappings query string (@p query may be NULL: no parameters)
 * into @p q. Exactly one of repository=, run=<provider>/<run id>, or registry= with
 * image_repository=, each UTF-8 and together at most DM_QUERY_MAX_NAME bytes; limit 1..500
 * (default 50); cursor as returned by a previous answer. Unknown and repeated parameters are
 * refused. Returns DM_OK, or DM_EINVAL with @p err naming the parameter ("" when the question
 * itself is missing or ambiguous) and the reason.
 */
int dm_api_parse_mappings(const char *query, dm_mappings_query *q, dm_error *err);

#endif
