/* dm_api.h - the query API, behind api.auth (dm_access.h): GET /v1/images/<digest> (what is
 * known about one image), GET /v1/mappings (which images a code repository, a run or a
 * registry repository produced, newest first, paginated; README.md "Query API") and
 * GET /v1/events/stream (output records as Server-Sent Events, outputs/dm_sse.h).
 * Route handlers (dm_routes.h).
 */
#ifndef DM_RECEIVER_DM_API_H
#define DM_RECEIVER_DM_API_H

#include "dm_exposure.h"
#include "dm_query.h"
#include "dm_worker.h"

/** GET /v1/images/<digest>: @p m->rest is the digest, still percent-encoded. */
void dm_api_image(dm_worker *w, struct evhttp_request *req, const dm_route_match *m);

/** GET /v1/mappings?repository=… | ?run=<provider>/<id> | ?registry=…&image_repository=… */
void dm_api_mappings(dm_worker *w, struct evhttp_request *req, const dm_route_match *m);

/** GET /v1/exposure?exposure=…&min_severity=…&limit=…&cursor=… (dm_exposure.h). */
void dm_api_exposure(dm_worker *w, struct evhttp_request *req, const dm_route_match *m);

/** GET (or HEAD) /v1/events/stream. */
void dm_api_events(dm_worker *w, struct evhttp_request *req, const dm_route_match *m);

/**
 * Parse and validate a GET /v1/mappings query string (@p query may be NULL: no parameters)
 * into @p q. Exactly one of repository=, run=<provider>/<run id>, or registry= with
 * image_repository=, each UTF-8 and together at most DM_QUERY_MAX_NAME bytes; limit 1..500
 * (default 50); cursor as returned by a previous answer. Unknown and repeated parameters are
 * refused. Returns DM_OK, or DM_EINVAL with @p err naming the parameter ("" when the question
 * itself is missing or ambiguous) and the reason.
 */
int dm_api_parse_mappings(const char *query, dm_mappings_query *q, dm_error *err);

/**
 * Parse and validate a GET /v1/images/<digest> query string (@p query may be NULL) into the
 * page of @p q (its digest is the caller's): limit 1..500 (default 100), cursor as returned by
 * a previous answer's next_cursor; findings_limit 1..500 (default 100), findings_cursor as
 * returned by a previous answer's findings.next_cursor; nothing else. Returns DM_OK, or
 * DM_EINVAL with @p err as dm_api_parse_mappings.
 */
int dm_api_parse_image(const char *query, dm_image_query *q, dm_error *err);

/**
 * Parse and validate a GET /v1/exposure query string (@p query may be NULL) into @p q:
 * exposure internet (default), node or cluster; min_severity critical, high (default),
 * medium, low or unknown; limit 1..500 (default 50); cursor as returned by a previous
 * answer's next_cursor. Returns DM_OK, or DM_EINVAL with @p err as dm_api_parse_mappings.
 */
int dm_api_parse_exposure(const char *query, dm_exposure_query *q, dm_error *err);

#endif
