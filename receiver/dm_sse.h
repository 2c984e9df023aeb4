/* dm_sse.h - GET /v1/events/stream: output records as Server-Sent Events (DESIGN §6.3). */
#ifndef DM_RECEIVER_DM_SSE_H
#define DM_RECEIVER_DM_SSE_H

#include "dm_server.h"

struct evhttp_request;
typedef struct dm_sse_hub dm_sse_hub;

/** The event streams of worker @p w (created before its thread starts). */
dm_sse_hub *dm_sse_hub_new(dm_worker *w);
/** Draining: end every open stream (on the worker's thread). NULL is fine. */
void dm_sse_hub_close(dm_sse_hub *h);
/** Free (after the worker's loop ended). NULL is fine. */
void dm_sse_hub_free(dm_sse_hub *h);

/** GET /v1/events/stream. */
void dm_sse_handle(dm_worker *w, struct evhttp_request *req);

#endif
