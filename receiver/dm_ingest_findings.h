/* dm_ingest_findings.h - findings reports on the sources' routes (docs/findings.md): the
 * scanner reports of a `scan` source and the scan events of an `ecr` source.
 *
 * A report is parsed (dm_scan_parse, dm_ecr_parse_finding), then stored by one call of
 * lua/findings.lua per digest it names, which also routes what became routable. The answer is
 * 202 {"status":"accepted","findings":N,"routed":M} only once Redis has every digest's part
 * (and redis.wait_replicas replicas confirmed it); when Redis cannot take it, 503 +
 * Retry-After: findings are not spooled (scanners and the ECR/Inspector senders retry, and a
 * report is a snapshot, so storing it again is harmless).
 */
#ifndef DM_RECEIVER_DM_INGEST_FINDINGS_H
#define DM_RECEIVER_DM_INGEST_FINDINGS_H

#include "dm_auth.h"
#include "dm_worker.h"

/**
 * Handle @p body (@p len bytes, authenticated: @p auth) of a request to source @p src as a
 * findings report when it is one: every request of a `scan` source, and on an `ecr` source
 * the events dm_ecr_parse_finding reads (of an SNS envelope: its notification's message).
 * Returns true when the request was answered (refused, ignored or taken; @p auth disposed),
 * false when it is not a findings report (an ECR push or delete, an SNS control message):
 * the caller goes on with it, @p auth untouched.
 */
bool dm_ingest_findings(dm_worker *w, struct evhttp_request *req, size_t route,
                        const dm_source_conf *src, dm_auth_outcome *auth, const char *body,
                        size_t len);

#endif
