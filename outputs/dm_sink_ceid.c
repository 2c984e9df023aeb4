/* dm_sink_ceid.c - a record's CloudEvent id (see dm_sink_ceid.h).
 *
 * Only for entries without an "id" field (written before the field existed, or by another
 * writer): the daemon's own records carry the id beside the event (correlator/lua/lib.lua
 * emit), so a delivery does not decode its whole document for one string
 * (docs/sink-connections.md).
 */
#include "dm_common.h"
#include "dm_sink_ceid.h"

#include <jansson.h>

char *dm_sink_cloudevent_id(const char *event, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(event, len, 0, &jerr);
    const json_t *id = root ? json_object_get(root, "id") : NULL;
    char *out = json_is_string(id) && json_string_length(id) > 0
                    ? dm_xstrndup(json_string_value(id), json_string_length(id))
                    : NULL;
    json_decref(root);
    return out;
}
