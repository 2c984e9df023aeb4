/* dm_api.h - GET /v1/mappings: which images a code repository, a run or a registry
 * repository produced (DESIGN §6.3), newest first, paginated. */
#ifndef DM_RECEIVER_DM_API_H
#define DM_RECEIVER_DM_API_H

#include "dm_server.h"

struct evhttp_request;

/** GET /v1/mappings?repository=… | ?run=<provider>/<id> | ?registry=…&image_repository=… */
void dm_api_mappings(dm_worker *w, struct evhttp_request *req);

#endif
