/* dm_ingest.h - the sources' routes: authenticate, adapt, park in Redis, answer.
 *
 * A webhook is answered 2xx only after Redis confirmed every event it carried; if Redis is
 * unavailable the sender gets 503 with Retry-After and can retry (parking is idempotent).
 */
#ifndef DM_RECEIVER_DM_INGEST_H
#define DM_RECEIVER_DM_INGEST_H

#include "dm_worker.h"

/** POST to a source's path (@p m->source). Route handler (dm_routes.h). */
void dm_ingest_handle(dm_worker *w, struct evhttp_request *req, const dm_route_match *m);

#endif
