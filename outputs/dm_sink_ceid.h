/* dm_sink_ceid.h - the CloudEvent id of an output record's event: the webhook sinks send it as
 * Idempotency-Key and refuse a record without one (dm_sink.h, "Delivery"). Pure. */
#ifndef DM_OUTPUTS_DM_SINK_CEID_H
#define DM_OUTPUTS_DM_SINK_CEID_H

#include <stddef.h>

/**
 * The CloudEvent id of @p event (@p len bytes): the string value of its top-level "id" member,
 * as jansson reads the document (the last of duplicate keys), or NULL when @p event is not a
 * JSON object, has no such member, or it is not a non-empty string. Malloc'd (the caller
 * frees it).
 */
char *dm_sink_cloudevent_id(const char *event, size_t len);

#endif
