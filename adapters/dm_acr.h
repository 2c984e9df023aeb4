/* dm_acr.h - Azure Container Registry webhook bodies (docs/registries.md). Pure function. */
#ifndef DM_ADAPTERS_DM_ACR_H
#define DM_ADAPTERS_DM_ACR_H

#include "dm_event.h"

/**
 * Parse one ACR webhook body of @p len bytes (not NUL-terminated).
 *
 * - push   → one registry event (action push), tag optional, registry from request.host.
 * - delete → one registry event (action delete).
 * - ping, chart_push, chart_delete, quarantine, unknown actions → out->ignored set, no event.
 *
 * Returns DM_OK (out filled; the caller disposes it) or DM_EINVAL (err filled, out empty).
 */
int dm_acr_parse(const char *body, size_t len, dm_event_list *out, dm_error *err);

#endif
