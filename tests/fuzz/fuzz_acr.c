/* fuzz_acr.c - libFuzzer target for dm_acr_parse: any bytes either give a well-formed event
 * list or a precise error, never a crash, a leak or an invalid event. */
#include "dm_common.h"
#include "dm_acr.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(const dm_event_list *l, const dm_error *err)
{
    if (l->v || l->n || l->ignored)
        __builtin_trap(); /* out must be left empty */
    if (err->status != 400 || err->text[0] == '\0')
        __builtin_trap();
    if (memchr(err->field, '\0', sizeof err->field) == NULL ||
        memchr(err->text, '\0', sizeof err->text) == NULL)
        __builtin_trap();
    for (const char *p = err->text; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            __builtin_trap(); /* texts go into JSON answers and log lines */
    }
}

static void check_json(const dm_event *ev)
{
    char *s = dm_event_to_json(ev);
    json_error_t jerr;
    json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
    if (!j || !json_is_object(j))
        __builtin_trap();
    const char *d = json_string_value(json_object_get(j, "digest"));
    if (!d || strcmp(d, ev->digest) != 0)
        __builtin_trap();
    if (!json_is_array(json_object_get(j, "tags")) ||
        json_array_size(json_object_get(j, "tags")) != ev->ntags)
        __builtin_trap();
    if (!json_is_integer(json_object_get(j, "t")) ||
        json_integer_value(json_object_get(j, "t")) != ev->event_time_ms)
        __builtin_trap();
    if (strcmp(json_string_value(json_object_get(j, "side")), "registry") != 0)
        __builtin_trap();
    json_decref(j);
    free(s);
}

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
    check_json(ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dm_event_list l;
    dm_error err;
    memset(&l, 0xa5, sizeof l); /* the parser must not read what it is given in out */
    memset(&err, 0, sizeof err);
    int rc = dm_acr_parse((const char *)data, size, &l, &err);
    if (rc == DM_OK) {
        if (l.ignored ? l.n != 0 || l.v != NULL : l.n != 1)
            __builtin_trap();
        for (size_t i = 0; i < l.n; i++)
            check_event(&l.v[i]);
    } else if (rc == DM_EINVAL) {
        check_error(&l, &err);
    } else {
        __builtin_trap();
    }
    dm_event_list_dispose(&l);
    return 0;
}
