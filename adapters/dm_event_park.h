/* dm_event_park.h - what the join script takes of a normalized event.
 *
 * correlator/lua/park.lua gets an event as a few arguments instead of a JSON document it would
 * decode on every call: its kind, the field it is parked under, and the members of its stored
 * item as JSON text. Pure: no I/O, no globals.
 */
#ifndef DM_ADAPTERS_DM_EVENT_PARK_H
#define DM_ADAPTERS_DM_EVENT_PARK_H

#include "dm_event.h"

/**
 * What the join script takes of an event (correlator/lua/park.lua ARGV 1 to 3): its kind, the
 * field its item is parked under, and the members of its stored item (correlator/lua/lib.lua
 * "Parked items") as compact JSON text without the braces, so that park.lua stores a new item
 * by concatenation and decodes nothing. The text of a build's record object is written here
 * too (members "f" and "v"), with the escapes cjson would write, so that records stay the same
 * bytes whichever side wrote them.
 */
typedef struct dm_park_args {
    char kind[2];      /**< "p" registry push, "d" registry delete, "b" build */
    const char *field; /**< "<registry>/<repository>", or "<provider>/<run id>/<run attempt>" */
    size_t field_len;
    const char *members; /**< e.g. "s":"acr","e":"…","m":"oi","g":["1.4.0"] */
    size_t members_len;
    char *buf; /**< owns field and members */
} dm_park_args;

/**
 * Fill @p out for @p ev, its tags cut to the last @p max_tags (limits.max_tags_per_location, as
 * park.lua keeps them). Strings that are not valid UTF-8 (only a hand-built event has them)
 * get '?' for their non-ASCII bytes, as dm_event_to_json does. Free with dm_park_args_dispose.
 */
void dm_event_park_args(const dm_event *ev, size_t max_tags, dm_park_args *out);

void dm_park_args_dispose(dm_park_args *a);

#endif
