/* dm_gar.h - Google Artifact Registry notifications via Pub/Sub push (docs/registries.md). Pure. */
#ifndef DM_ADAPTERS_DM_GAR_H
#define DM_ADAPTERS_DM_GAR_H

#include "dm_event.h"

/**
 * Parse one Pub/Sub push envelope ({"message": {"data": base64, "messageId", "publishTime",
 * …}, "subscription"}) of @p len bytes. data decodes (OpenSSL base64) to {"action", "digest",
 * "tag"} with full references ("HOST/PROJECT/REPO/IMAGE@sha256:…", "HOST/…/IMAGE:TAG"):
 * registry = HOST, repository = "PROJECT/REPO/IMAGE", digest after the last '@', tag after the
 * last ':' of the tag reference (must name the same image).
 * - INSERT with a digest → push (tag optional); DELETE with a digest → delete.
 * - DELETE with only a tag → out->ignored ("tag-only delete"); unknown actions → ignored.
 * event_id = message.messageId (or message_id), event time = publishTime (or publish_time).
 * Returns DM_OK (caller disposes out) or DM_EINVAL with @p err naming the field
 * (e.g. "message.data", "data.digest").
 */
int dm_gar_parse(const char *body, size_t len, dm_event_list *out, dm_error *err);

#endif
