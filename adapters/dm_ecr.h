/* dm_ecr.h - Amazon ECR EventBridge events: "ECR Image Action" (docs/registries.md) and the
 * scan events "ECR Image Scan", "Inspector2 Scan" and "Inspector2 Finding" (docs/findings.md).
 * Pure. */
#ifndef DM_ADAPTERS_DM_ECR_H
#define DM_ADAPTERS_DM_ECR_H

#include "dm_event.h"
#include "dm_finding.h"

/**
 * Parse one EventBridge event (the body of an API-destination delivery, or the "Message" of
 * an SNS notification) of @p len bytes.
 * - detail-type "ECR Image Action", source "aws.ecr", result SUCCESS, action-type PUSH → one
 *   push event; DELETE → one delete event. Registry host derived from account and region:
 *   "<account>.dkr.ecr.<region>.amazonaws.com" (".amazonaws.com.cn" for "cn-" regions).
 *   repository = detail.repository-name, digest = detail.image-digest, tag = detail.image-tag
 *   (optional), media type = detail.manifest-media-type (optional), event_id = "id", event
 *   time = "time".
 * - result FAILURE, other action types, other detail-types → out->ignored (static reason).
 * Returns DM_OK (caller disposes out) or DM_EINVAL with @p err naming the field.
 */
int dm_ecr_parse(const char *body, size_t len, dm_event_list *out, dm_error *err);

/** dm_ecr_parse_finding's answer for an event that is not a findings event: hand the body to
 *  dm_ecr_parse. Positive, so it is neither DM_OK nor an error. */
#define DM_ECR_NOT_FINDING 1

/**
 * Parse one EventBridge event of @p len bytes as a findings event. The ingest of an `ecr`
 * source calls this first and dm_ecr_parse when it answers DM_ECR_NOT_FINDING (one JSON
 * parse more for pushes; a body that is not JSON gives the same error from either).
 * - source "aws.ecr", detail-type "ECR Image Scan" (basic scanning): a COUNTS report, scanner
 *   "ecr-basic", from detail.finding-severity-counts (keys CRITICAL, HIGH, MEDIUM, LOW,
 *   INFORMATIONAL → low, UNDEFINED → unknown); scan-status other than COMPLETE → ignored.
 * - source "aws.inspector2", detail-type "Inspector2 Scan": a COUNTS report, scanner
 *   "inspector"; repository = what follows ":repository/" in detail.repository-name (an
 *   ARN); low = LOW + INFORMATIONAL + what TOTAL counts beyond the listed keys, unknown =
 *   UNTRIAGED; scan-status other than INITIAL_SCAN_COMPLETE → ignored.
 * - source "aws.inspector2", detail-type "Inspector2 Finding": an UPDATE report, scanner
 *   "inspector", one finding per detail.packageVulnerabilityDetails.vulnerablePackages[]
 *   entry; digest(s) from detail.resources[].details.awsEcrContainerImage.imageHash; status
 *   ACTIVE upserts, SUPPRESSED and CLOSED set .removed; severity INFORMATIONAL → low,
 *   UNTRIAGED → unknown; ref = findingArn. A type other than PACKAGE_VULNERABILITY → ignored.
 * - anything else (other aws.ecr and aws.inspector2 detail-types, other or missing sources
 *   or detail-types) → DM_ECR_NOT_FINDING, @p out zeroed: dm_ecr_parse answers for those
 *   exactly as it did before findings were read (another service's event is an error there).
 * The envelope (id, time, account, region) is checked as by dm_ecr_parse; the registry host
 * is "<account>.dkr.ecr.<region>.amazonaws.com[.cn]" (Inspector findings: the image's own
 * registry account). Returns DM_OK (caller disposes @p out; out->ignored set for what is
 * acknowledged without a report), DM_ECR_NOT_FINDING, or DM_EINVAL with @p err naming the
 * field and @p out zeroed.
 */
int dm_ecr_parse_finding(const char *body, size_t len, dm_finding_report *out, dm_error *err);

#endif
