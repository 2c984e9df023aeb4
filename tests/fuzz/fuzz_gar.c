/* fuzz_gar.c - libFuzzer target for dm_gar_parse: any bytes either give a well-formed event
 * list or a precise error, never a crash, a leak or an invalid event.
 *
 * Each input is parsed twice: as a push body, and base64-wrapped by OpenSSL as the
 * message.data of a valid envelope, so mutations reach the reference parser directly instead
 * of having to produce base64 that decodes to JSON. */
#include "dm_common.h"
#include "dm_gar.h"
#include "fuzz_events.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WRAP_MAX 70000 /* a little over the 64 KiB data limit, to reach that check */

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
    fuzz_check_registry_json(ev, "repository", ev->repository);
}

static const char *const ignored_reasons[] = {"unknown action", "tag-only delete", NULL};

static void run(const char *body, size_t size)
{
    fuzz_run_registry(dm_gar_parse, body, size, ignored_reasons, check_event);
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
