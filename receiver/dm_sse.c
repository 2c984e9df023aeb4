#include "dm_common.h"
#include "dm_sse.h"
#include "dm_http.h"

struct dm_sse_hub {
    dm_worker *w;
};

dm_sse_hub *dm_sse_hub_new(dm_worker *w)
{
    dm_sse_hub *h = dm_xcalloc(1, sizeof *h);
    h->w = w;
    return h;
}

void dm_sse_hub_close(dm_sse_hub *h)
{
    (void)h;
}

void dm_sse_hub_free(dm_sse_hub *h)
{
    free(h);
}

void dm_sse_handle(dm_worker *w, struct evhttp_request *req)
{
    (void)w;
    dm_http_error(req, DM_ROUTE_EVENTS, 404, "not implemented yet");
}
