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
void dm_ingest_handle(dm_worker *w, dm_req *req, const dm_route_match *m);

/**
 * Refuse a request an adapter or a check turned down with @p err: answer @p status with
 * "field: text", log the reason quoted (it may quote the request) and count it (413 as
 * digestmap_body_too_large_total, anything else as an invalid request). Every ingest route
 * (events, findings, snapshots) refuses this way.
 */
void dm_ingest_refuse(dm_req *req, size_t route, const char *path, int status, const dm_error *err);

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
void dm_ingest_k8s(dm_worker *w, dm_req *req, const dm_route_match *m, const char *body, size_t len,
                   dm_auth_outcome *auth);

/**
 * Findings reports on the sources' routes (dm_ingest_findings.c, docs/findings.md): the
 * scanner reports of a `scan` source and the scan events of an `ecr` source. A report is
 * parsed (dm_scan_parse, dm_ecr_parse_finding), then stored by one call of lua/findings.lua per
 * digest it names, which also routes what became routable. The answer is 202
 * {"status":"accepted","findings":N,"routed":M} only once Redis has every digest's part (and
 * redis.wait_replicas replicas confirmed it); when Redis cannot take it, 503 + Retry-After:
 * findings are not spooled (scanners and the ECR/Inspector senders retry, and a report is a
 * snapshot, so storing it again is harmless).
 *
 * Handle @p body (@p len bytes, authenticated: @p auth) of a request to source @p src as a
 * findings report when it is one: every request of a `scan` source, and on an `ecr` source
 * the events dm_ecr_parse_finding reads (of an SNS envelope: its notification's message).
 * Returns true when the request was answered (refused, ignored or taken; @p auth disposed),
 * false when it is not a findings report (an ECR push or delete, an SNS control message):
 * the caller goes on with it, @p auth untouched.
 */
bool dm_ingest_findings(dm_worker *w, dm_req *req, size_t route, const dm_source_conf *src,
                        dm_auth_outcome *auth, const char *body, size_t len);

#endif
