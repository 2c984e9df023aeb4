/* dm_ecr.h - Amazon ECR "ECR Image Action" EventBridge events (docs/registries.md). Pure. */
#ifndef DM_ADAPTERS_DM_ECR_H
#define DM_ADAPTERS_DM_ECR_H

#include "dm_event.h"

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

#endif
