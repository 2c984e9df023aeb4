/* dm_build.h - CI build-event bodies (docs/ci.md). Pure function. */
#ifndef DM_ADAPTERS_DM_BUILD_H
#define DM_ADAPTERS_DM_BUILD_H

#include "dm_event.h"

/** Upper bounds on one body, so a request's Redis work is bounded. */
#define DM_BUILD_MAX_IMAGES       64
#define DM_BUILD_MAX_MANIFESTS    128
#define DM_BUILD_MAX_TAGS         64
/** The most events one build body can produce (each image and each of its manifests). */
#define DM_MAX_EVENTS_PER_REQUEST (DM_BUILD_MAX_IMAGES * (1 + DM_BUILD_MAX_MANIFESTS))

/**
 * Parse one build event body of @p len bytes (not NUL-terminated) into one build event per
 * digest named: each image's "digest" (relation image) and each of its "manifests"
 * (relation platform-manifest, index_digest = the image's digest).
 *
 * @p verified is the identity taken from a verified OIDC token, or NULL. When given, it
 * overrides the body's "run" (which is then optional); when NULL, "run" with "provider" and
 * "run_id" is required and the events say verified = false. Either way the identity must name
 * a provider and a run id (a token that carries no run id, without a body "run" that gives
 * one, is refused: field "run.run_id"); run_attempt defaults to "1".
 *
 * Returns DM_OK (out filled; the caller disposes it) or DM_EINVAL (err filled, out empty).
 */
int dm_build_parse(const char *body, size_t len, const dm_build_info *verified, dm_event_list *out,
                   dm_error *err);

/**
 * Parse only the body's optional "run" (for a verified token that proves part of the identity:
 * the rest comes from the body and is marked unverified). *present says whether "run" was
 * there; @p out is zeroed when it was not. Returns DM_OK, or DM_EINVAL with @p err filled.
 */
int dm_build_parse_run(const char *body, size_t len, dm_build_info *out, bool *present,
                       dm_error *err);

#endif
