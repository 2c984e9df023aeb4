/* dm_scan.h - scanner reports posted to a `scan` source: Trivy (`trivy image --format json`)
 * and Grype (`grype -o json`), told apart by the document's shape (docs/findings.md). Pure. */
#ifndef DM_ADAPTERS_DM_SCAN_H
#define DM_ADAPTERS_DM_SCAN_H

#include "dm_finding.h"

/**
 * Parse one scanner report of @p len bytes into a SNAPSHOT report (scanner "trivy" or
 * "grype") that replaces that scanner's findings for each digest it names.
 * - Trivy (members SchemaVersion, ArtifactType, Metadata, Results): ArtifactType must be
 *   container_image; digests = every Metadata.RepoDigests entry ("NAME@sha256:HEX", split at
 *   the last '@'), relation image; findings from Results[].Vulnerabilities[]; event id =
 *   ReportID; time = CreatedAt.
 * - Grype (members matches, source, descriptor): source.type must be image; digests = every
 *   source.target.repoDigests entry (relation image) and source.target.manifestDigest
 *   (relation platform-manifest unless it is one of those); findings from matches[]; time =
 *   descriptor.timestamp.
 * A report naming no registry digest, or a severity outside the scanner's vocabulary, is
 * refused. Without a sender id, event_id is "sha256:" + the hex SHA-256 of the body (the same
 * report posted twice has one id). Findings are made distinct by (id, package) and bounded
 * to @p max_findings (0: DM_FINDINGS_MAX_DEFAULT), most severe kept (dm_finding_report_finish).
 * Returns DM_OK (caller disposes @p out) or DM_EINVAL with @p err naming the field, @p out
 * left zeroed.
 */
int dm_scan_parse(const char *body, size_t len, size_t max_findings, dm_finding_report *out,
                  dm_error *err);

#endif
