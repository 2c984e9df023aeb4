/* fuzz_build.c - libFuzzer target for dm_build_parse, run both with and without a verified
 * identity on each input: well-formed events or a precise error, nothing else. */
#include "dm_common.h"
#include "dm_build.h"
#include "fuzz_events.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const dm_build_info token = {
    .provider = "github",
    .repository = "acme/api",
    .run_id = "12094877312",
    .run_attempt = "2",
    .commit = "3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d",
    .issuer = "https://token.actions.githubusercontent.com",
    .verified = true,
};

static const char *const providers[] = {"github", "azure-devops", "gitlab", "generic"};

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
    json_t *b = json_object_get(j, "build");
    if (!json_is_object(b) || !json_is_boolean(json_object_get(b, "verified")) ||
        json_is_true(json_object_get(b, "verified")) != ev->build.verified)
        __builtin_trap();
    if ((json_object_get(j, "index") != NULL) != (ev->relation == DM_REL_PLATFORM_MANIFEST))
        __builtin_trap();
    if (json_array_size(json_object_get(j, "tags")) != ev->ntags)
        __builtin_trap();
    json_decref(j);
    free(s);
    fuzz_check_park_args(ev);
}

static void check_list(const dm_event_list *l, const dm_build_info *verified)
{
    if (l->ignored || l->n == 0 || l->n > DM_BUILD_MAX_IMAGES * (1 + DM_BUILD_MAX_MANIFESTS))
        __builtin_trap();
    for (size_t i = 0; i < l->n; i++) {
        const dm_event *ev = &l->v[i];
        if (!dm_digest_valid(ev->digest, strlen(ev->digest)))
            __builtin_trap();
        if (ev->side != DM_SIDE_BUILD || ev->action != DM_ACTION_BUILD)
            __builtin_trap();
        if (!ev->event_id || !ev->build.provider || !ev->build.run_id || !ev->build.run_attempt)
            __builtin_trap();
        if (strncmp(ev->source, ev->build.provider, sizeof ev->source - 1) != 0)
            __builtin_trap();
        if (verified) {
            if (!ev->build.verified || strcmp(ev->build.repository, token.repository) != 0 ||
                strcmp(ev->build.issuer, token.issuer) != 0)
                __builtin_trap();
        } else {
            bool known = false;
            for (size_t k = 0; k < sizeof providers / sizeof providers[0]; k++)
                known |= strcmp(ev->build.provider, providers[k]) == 0;
            if (!known || ev->build.verified || ev->build.issuer)
                __builtin_trap();
        }
        /* event_id ends with the digest */
        size_t n = strlen(ev->event_id);
        if (n < DM_DIGEST_LEN || strcmp(ev->event_id + n - DM_DIGEST_LEN, ev->digest) != 0)
            __builtin_trap();
        if (ev->relation == DM_REL_PLATFORM_MANIFEST) {
            if (!dm_digest_valid(ev->index_digest, strlen(ev->index_digest)) || ev->ntags)
                __builtin_trap();
        } else if (ev->relation != DM_REL_IMAGE || ev->index_digest[0]) {
            __builtin_trap();
        }
        if (ev->ntags > DM_BUILD_MAX_TAGS)
            __builtin_trap();
        for (size_t t = 0; t < ev->ntags; t++) {
            if (!ev->tags[t] || !ev->tags[t][0])
                __builtin_trap();
        }
        if (ev->name && !ev->name[0])
            __builtin_trap();
        /* one event per digest; a pairwise scan is fine for the sizes fuzzing reaches */
        for (size_t k = 0; k < i && l->n <= 512; k++) {
            if (strcmp(l->v[k].digest, ev->digest) == 0)
                __builtin_trap();
        }
        check_json(ev);
    }
}

static void run(const uint8_t *data, size_t size, const dm_build_info *verified)
{
    dm_event_list l;
    dm_error err;
    memset(&l, 0xa5, sizeof l);
    memset(&err, 0, sizeof err);
    int rc = dm_build_parse((const char *)data, size, verified, &l, &err);
    if (rc == DM_OK)
        check_list(&l, verified);
    else if (rc == DM_EINVAL)
        fuzz_check_error(&l, &err);
    else
        __builtin_trap();
    dm_event_list_dispose(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size, NULL);
    run(data, size, &token);
    return 0;
}
