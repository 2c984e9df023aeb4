/* fuzz_events.h - invariants of a dm_event_list shared by the parser fuzz targets
 * (fuzz_acr, fuzz_ecr, fuzz_gar, fuzz_build). Any violation is a __builtin_trap(). */
#ifndef FUZZ_EVENTS_H
#define FUZZ_EVENTS_H

#include "dm_common.h"
#include "dm_event.h"
#include "dm_event_park.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A rejected input: out left empty, a 400 with a non-empty, NUL-terminated, printable text. */
static inline void fuzz_check_error(const dm_event_list *l, const dm_error *err)
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

static inline void fuzz_check_park_args(const dm_event *ev);

/* dm_event_to_json of a registry event is a duplicate-free object whose digest, tags count,
 * t and side match @p ev, and whose string member @p key (if not NULL) is @p value. */
static inline void fuzz_check_registry_json(const dm_event *ev, const char *key, const char *value)
{
    char *s = dm_event_to_json(ev);
    json_error_t jerr;
    json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
    if (!j || !json_is_object(j))
        __builtin_trap();
    const char *d = json_string_value(json_object_get(j, "digest"));
    if (!d || strcmp(d, ev->digest) != 0)
        __builtin_trap();
    if (key) {
        const char *r = json_string_value(json_object_get(j, key));
        if (!r || strcmp(r, value) != 0)
            __builtin_trap();
    }
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
    fuzz_check_park_args(ev);
}

/* What park.lua takes of @p ev (dm_event_park_args): its members in braces are a
 * duplicate-free JSON object, a build's "f" and "v" together are its record object (with the
 * verified flag of @p ev), and the field is the location or the run key; and the spool's form
 * reads back into the same document (dm_event_from_json). */
static inline void fuzz_check_park_args(const dm_event *ev)
{
    dm_park_args a;
    dm_event_park_args(ev, 64, &a);
    if (strlen(a.members) != a.members_len || a.kind[1] != '\0')
        __builtin_trap();
    char *text = dm_xmalloc(a.members_len + 3);
    text[0] = '{';
    memcpy(text + 1, a.members, a.members_len);
    memcpy(text + 1 + a.members_len, "}", 2);
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!j || !json_is_object(j))
        __builtin_trap();
    size_t want = ev->side == DM_SIDE_BUILD ? 2 : 1; /* slashes in the field */
    size_t slashes = 0;
    for (size_t i = 0; i < a.field_len; i++)
        slashes += a.field[i] == '/';
    if (ev->side == DM_SIDE_BUILD) {
        const char *f = json_string_value(json_object_get(j, "f"));
        const char *v = json_string_value(json_object_get(j, "v"));
        if (!f || !v || a.kind[0] != 'b' || slashes != want)
            __builtin_trap();
        size_t n = strlen(f) + strlen(v) + 4;
        char *obj = dm_xmalloc(n);
        snprintf(obj, n, "{%s%s%s}", f, *f ? "," : "", v);
        json_t *b = json_loads(obj, JSON_REJECT_DUPLICATES, &jerr);
        if (!b || json_is_true(json_object_get(b, "verified")) != ev->build.verified)
            __builtin_trap();
        json_decref(b);
        free(obj);
    } else if (slashes < want || !json_is_string(json_object_get(j, "e")) ||
               a.kind[0] != (ev->action == DM_ACTION_DELETE ? 'd' : 'p')) {
        __builtin_trap();
    }
    json_decref(j);
    free(text);
    dm_park_args_dispose(&a);

    char *s = dm_event_to_json(ev);
    json_t *doc = json_loads(s, 0, &jerr);
    dm_event back;
    if (!doc || dm_event_from_json(doc, &back) != DM_OK)
        __builtin_trap();
    char *again = dm_event_to_json(&back);
    if (strcmp(s, again) != 0)
        __builtin_trap();
    free(again);
    dm_event_dispose(&back);
    json_decref(doc);
    free(s);
}

/* Run a registry parser on @p body over a list poisoned with 0xa5 (the parser must not read
 * what it is given in out). DM_OK: either ignored (no events; the reason one of the
 * NULL-terminated @p reasons, or any reason if @p reasons is NULL) or exactly one event, which
 * @p check_event vets. DM_EINVAL: fuzz_check_error. Anything else traps. */
static inline void
fuzz_run_registry(int (*parse)(const char *, size_t, dm_event_list *, dm_error *), const char *body,
                  size_t size, const char *const *reasons, void (*check_event)(const dm_event *))
{
    dm_event_list l;
    dm_error err;
    memset(&l, 0xa5, sizeof l); /* the parser must not read what it is given in out */
    memset(&err, 0, sizeof err);
    int rc = parse(body, size, &l, &err);
    if (rc == DM_OK) {
        if (l.ignored) {
            if (l.n != 0 || l.v != NULL)
                __builtin_trap();
            if (reasons) {
                size_t i = 0;
                while (reasons[i] && strcmp(l.ignored, reasons[i]) != 0)
                    i++;
                if (!reasons[i])
                    __builtin_trap();
            }
        } else if (l.n != 1) {
            __builtin_trap();
        }
        for (size_t i = 0; i < l.n; i++)
            check_event(&l.v[i]);
    } else if (rc == DM_EINVAL) {
        fuzz_check_error(&l, &err);
    } else {
        __builtin_trap();
    }
    dm_event_list_dispose(&l);
}

#endif
