/* fuzz_ecr.c - libFuzzer target for dm_ecr_parse: any bytes either give a well-formed event
 * list or a precise error, never a crash, a leak or an invalid event. */
#include "dm_common.h"
#include "dm_ecr.h"

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
    const char *r = json_string_value(json_object_get(j, "registry"));
    if (!r || strcmp(r, ev->registry) != 0)
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
    if (ev->ntags > 1 || (ev->ntags && (!ev->tags || !ev->tags[0] || !ev->tags[0][0] ||
                                        strlen(ev->tags[0]) > 128)))
        __builtin_trap();
    if (ev->action == DM_ACTION_DELETE && ev->ntags != 0)
        __builtin_trap();
    if (ev->media_type && (!ev->media_type[0] || strlen(ev->media_type) > 255))
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
    int rc = dm_ecr_parse((const char *)data, size, &l, &err);
    if (rc == DM_OK) {
        if (l.ignored) {
            if (l.n != 0 || l.v != NULL)
                __builtin_trap();
            if (strcmp(l.ignored, "detail-type not handled") != 0 &&
                strcmp(l.ignored, "failed action") != 0 &&
                strcmp(l.ignored, "action-type not handled") != 0)
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
    return 0;
}
