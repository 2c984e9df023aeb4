/* fuzz_gar.c - libFuzzer target for dm_gar_parse: any bytes either give a well-formed event
 * list or a precise error, never a crash, a leak or an invalid event.
 *
 * Each input is parsed twice: as a push body, and base64-wrapped by OpenSSL as the
 * message.data of a valid envelope, so mutations reach the reference parser directly instead
 * of having to produce base64 that decodes to JSON. */
#include "dm_common.h"
#include "dm_gar.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WRAP_MAX 70000 /* a little over the 64 KiB data limit, to reach that check */

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
    const char *r = json_string_value(json_object_get(j, "repository"));
    if (!r || strcmp(r, ev->repository) != 0)
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
    if (ev->side != DM_SIDE_REGISTRY || strcmp(ev->source, "gar") != 0)
        __builtin_trap();
    if (ev->action != DM_ACTION_PUSH && ev->action != DM_ACTION_DELETE)
        __builtin_trap();
    if (!ev->event_id || !ev->event_id[0] || strlen(ev->event_id) > 256 || !ev->repository ||
        !ev->registry)
        __builtin_trap();
    /* a host: non-empty, lowercase, no '/' or '@' (it is the first part of a location) */
    size_t hl = strlen(ev->registry);
    if (hl == 0 || hl > 255)
        __builtin_trap();
    for (const char *p = ev->registry; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
              *p == ':'))
            __builtin_trap();
    }
    size_t rl = strlen(ev->repository);
    if (rl == 0 || rl > 256 || ev->repository[0] == '/' || ev->repository[rl - 1] == '/' ||
        strstr(ev->repository, "//"))
        __builtin_trap();
    for (const char *p = ev->repository; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
              *p == '-' || *p == '/'))
            __builtin_trap();
    }
    if (ev->ntags > 1)
        __builtin_trap();
    if (ev->ntags) {
        const char *t = ev->tags ? ev->tags[0] : NULL;
        if (!t || !t[0] || strlen(t) > 128 || t[0] == '.' || t[0] == '-')
            __builtin_trap();
        for (const char *p = t; *p; p++) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
                __builtin_trap();
        }
    }
    if (ev->action == DM_ACTION_DELETE && ev->ntags != 0)
        __builtin_trap();
    if (ev->media_type || ev->name || ev->build.provider || ev->index_digest[0])
        __builtin_trap();
    check_json(ev);
}

static void run(const char *body, size_t size)
{
    dm_event_list l;
    dm_error err;
    memset(&l, 0xa5, sizeof l); /* the parser must not read what it is given in out */
    memset(&err, 0, sizeof err);
    int rc = dm_gar_parse(body, size, &l, &err);
    if (rc == DM_OK) {
        if (l.ignored) {
            if (l.n != 0 || l.v != NULL)
                __builtin_trap();
            if (strcmp(l.ignored, "unknown action") != 0 &&
                strcmp(l.ignored, "tag-only delete") != 0)
                __builtin_trap();
        } else if (l.n != 1) {
            __builtin_trap();
        }
        for (size_t i = 0; i < l.n; i++)
            check_event(&l.v[i]);
    } else if (rc == DM_EINVAL) {
        check_error(&l, &err);
    } else {
        __builtin_trap();
    }
    dm_event_list_dispose(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run((const char *)data, size);

    if (size > WRAP_MAX)
        return 0;
    static const char head[] = "{\"message\":{\"data\":\"";
    static const char tail[] = "\",\"messageId\":\"1\",\"publishTime\":\"2026-11-28T14:04:21Z\"}}";
    size_t enc = (size + 2) / 3 * 4;
    size_t cap = sizeof head - 1 + enc + sizeof tail;
    char *body = malloc(cap);
    if (!body)
        return 0;
    memcpy(body, head, sizeof head - 1);
    int n = EVP_EncodeBlock((unsigned char *)body + sizeof head - 1, data, (int)size);
    if (n < 0 || (size_t)n != enc)
        __builtin_trap();
    memcpy(body + sizeof head - 1 + enc, tail, sizeof tail);
    /* exact length without the NUL, so a read past it is caught */
    size_t len = cap - 1;
    char *exact = malloc(len ? len : 1);
    if (exact) {
        memcpy(exact, body, len);
        run(exact, len);
        free(exact);
    }
    free(body);
    return 0;
}
