/* fuzz_ecr.c - libFuzzer target for dm_ecr_parse: any bytes either give a well-formed event
 * list or a precise error, never a crash, a leak or an invalid event. */
#include "dm_common.h"
#include "dm_ecr.h"
#include "fuzz_events.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* "<12 digits>.dkr.ecr.<region>.amazonaws.com[.cn]", the ".cn" exactly for "cn-" regions. */
static void check_registry(const char *host)
{
    for (int i = 0; i < 12; i++) {
        if (host[i] < '0' || host[i] > '9')
            __builtin_trap();
    }
    if (strncmp(host + 12, ".dkr.ecr.", 9) != 0)
        __builtin_trap();
    const char *region = host + 21;
    bool cn = strncmp(region, "cn-", 3) == 0 && region[3] != '\0';
    const char *suffix = cn ? ".amazonaws.com.cn" : ".amazonaws.com";
    size_t n = strlen(host), sl = strlen(suffix);
    if (n < 21 + 1 + sl || strcmp(host + n - sl, suffix) != 0)
        __builtin_trap();
    size_t rl = n - 21 - sl;
    if (rl > 32 || region[0] == '-' || region[rl - 1] == '-')
        __builtin_trap();
    for (size_t i = 0; i < rl; i++) {
        if (!lower_alnum(region[i]) && region[i] != '-')
            __builtin_trap();
    }
}

static void check_event(const dm_event *ev)
{
    if (!dm_digest_valid(ev->digest, strlen(ev->digest)))
        __builtin_trap();
    if (ev->side != DM_SIDE_REGISTRY || strcmp(ev->source, "ecr") != 0)
        __builtin_trap();
    if (ev->action != DM_ACTION_PUSH && ev->action != DM_ACTION_DELETE)
        __builtin_trap();
    if (!ev->event_id || !ev->event_id[0] || strlen(ev->event_id) > 256 || !ev->repository ||
        !ev->registry)
        __builtin_trap();
    check_registry(ev->registry);
    size_t rl = strlen(ev->repository);
    if (rl == 0 || rl > 256 || ev->repository[0] == '/' || ev->repository[rl - 1] == '/' ||
        strstr(ev->repository, "//"))
        __builtin_trap();
    for (const char *p = ev->repository; *p; p++) {
        if (!lower_alnum(*p) && *p != '.' && *p != '_' && *p != '-' && *p != '/')
            __builtin_trap();
    }
    if (ev->ntags > 1 ||
        (ev->ntags && (!ev->tags || !ev->tags[0] || !ev->tags[0][0] || strlen(ev->tags[0]) > 128)))
        __builtin_trap();
    if (ev->action == DM_ACTION_DELETE && ev->ntags != 0)
        __builtin_trap();
    if (ev->media_type && (!ev->media_type[0] || strlen(ev->media_type) > 255))
        __builtin_trap();
    if (ev->name || ev->build.provider || ev->index_digest[0])
        __builtin_trap();
    fuzz_check_registry_json(ev, "registry", ev->registry);
}

static const char *const ignored_reasons[] = {"detail-type not handled", "failed action",
                                              "action-type not handled", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_run_registry(dm_ecr_parse, (const char *)data, size, ignored_reasons, check_event);
    return 0;
}
