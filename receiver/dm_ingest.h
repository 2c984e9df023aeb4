/* dm_ingest.h - request handlers: authenticate, adapt, park in Redis, answer.
 *
 * A webhook is answered 2xx only after Redis confirmed every event it carried; if Redis is
 * unavailable the sender gets 503 with Retry-After and can retry (parking is idempotent).
 */
#ifndef DM_RECEIVER_DM_INGEST_H
#define DM_RECEIVER_DM_INGEST_H

#include "dm_server.h"

/** POST to a source's path. */
void dm_ingest_handle(dm_worker *w, struct evhttp_request *req, const dm_source_conf *src,
                      size_t route);

/** GET /v1/images/<digest>; @p digest is the percent-decoded rest of the path. */
void dm_ingest_query_image(dm_worker *w, struct evhttp_request *req, const char *digest);

/**
 * Authenticate a request to a query route (api.auth; 401 to everyone when "api" is not
 * configured). Returns true when it may proceed; otherwise it has been answered (401, 403 or
 * 503), logged with @p route_name and counted.
 */
bool dm_ingest_api_auth(dm_worker *w, struct evhttp_request *req, size_t route,
                        const char *route_name);

/** GET /readyz: 200 only when a PING through this worker's Redis connection succeeds. */
void dm_ingest_readyz(dm_worker *w, struct evhttp_request *req);

#endif
