/* fuzz_acr.c - libFuzzer target for dm_acr_parse: any bytes either give a well-formed event
 * list or a precise error, never a crash, a leak or an invalid event. */
#include "dm_common.h"
#include "dm_acr.h"
#include "fuzz_events.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_event(const dm_event *ev)
{
    if (!dm_digest_valid(ev->digest, strlen(ev->digest)))
        __builtin_trap();
    if (ev->side != DM_SIDE_REGISTRY || strcmp(ev->source, "acr") != 0)
        __builtin_trap();
    if (ev->action != DM_ACTION_PUSH && ev->action != DM_ACTION_DELETE)
        __builtin_trap();
    if (!ev->event_id || !ev->event_id[0] || !ev->repository || !ev->repository[0] ||
        !ev->registry || !ev->registry[0])
        __builtin_trap();
    for (const char *p = ev->registry; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            __builtin_trap(); /* lowercased */
    }
    if (ev->ntags > 1 || (ev->ntags && (!ev->tags || !ev->tags[0] || !ev->tags[0][0])))
        __builtin_trap();
    if (ev->action == DM_ACTION_DELETE && ev->ntags != 0)
        __builtin_trap();
    if (ev->media_type && !ev->media_type[0])
        __builtin_trap();
    if (ev->name || ev->build.provider || ev->index_digest[0])
        __builtin_trap();
    fuzz_check_registry_json(ev, NULL, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_run_registry(dm_acr_parse, (const char *)data, size, NULL, check_event);
    return 0;
}
