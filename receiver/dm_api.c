#include "dm_common.h"
#include "dm_api.h"
#include "dm_http.h"

void dm_api_mappings(dm_worker *w, struct evhttp_request *req)
{
    (void)w;
    dm_http_error(req, DM_ROUTE_MAPPINGS, 404, "not implemented yet");
}
