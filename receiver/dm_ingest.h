/* dm_ingest.h - the sources' routes: authenticate, adapt, park in Redis, answer.
 *
 * A webhook is answered 2xx only after Redis confirmed every event it carried; if Redis is
 * unavailable the sender gets 503 with Retry-After and can retry (parking is idempotent).
 */
#ifndef DM_RECEIVER_DM_INGEST_H
#define DM_RECEIVER_DM_INGEST_H

#include "dm_auth.h"
#include "dm_keys.h"
#include "dm_worker.h"

#include <jansson.h>

/** POST to a source's path (@p m->source). Route handler (dm_routes.h). */
void dm_ingest_handle(dm_worker *w, struct evhttp_request *req, const dm_route_match *m);

/**
 * Whether the request @p auth let in carries a token whose jti must be accepted once: an OIDC
 * token with a jti, iss and exp, from an entry without "replay": false (configs/README.md).
 */
bool dm_ingest_wants_replay_check(const dm_auth_outcome *auth);

/**
 * The replay marker of such a token: its key (dm_key_jti, from the sha256 of issuer and jti)
 * into @p key and its expiry (ms since the epoch: exp + 60 s leeway, at most a day from now)
 * into @p pxat. Returns DM_OK, or DM_EINVAL for claims without them.
 */
int dm_ingest_replay_marker(const dm_app *app, const json_t *claims, char key[DM_KEY_BUFLEN],
                            int64_t *pxat);

/**
 * A snapshot POSTed to a k8s source (dm_ingest_k8s.c, docs/workloads.md): @p body (@p len
 * bytes) authenticated by @p auth (taken over: disposed here), stored shard by shard; answers
 * 202, 200 stale, 400/413, or 503 + Retry-After (no spool for snapshots: the reporter retries).
 */
void dm_ingest_k8s(dm_worker *w, struct evhttp_request *req, const dm_route_match *m,
                   const char *body, size_t len, dm_auth_outcome *auth);

#endif
