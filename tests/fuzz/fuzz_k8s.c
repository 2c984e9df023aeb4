/* fuzz_k8s.c - libFuzzer target for dm_k8s_parse: any bytes either give a well-formed, sorted
 * workload list whose JSON reads back the same, or a precise error; never a crash or a leak. */
#include "dm_common.h"
#include "dm_k8s.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const internal_classes[] = {"internal-nginx"};

static bool dns(const char *s, size_t max, bool dots)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              (dots && *s == '.')))
            return false;
    }
    return true;
}

static int cmp3(const dm_k8s_workload *a, const dm_k8s_workload *b)
{
    int r = strcmp(a->namespace_, b->namespace_);
    if (!r)
        r = strcmp(a->kind, b->kind);
    return r ? r : strcmp(a->name, b->name);
}

static void check_snapshot(const dm_k8s_snapshot *s, const dm_k8s_options *o)
{
    if (!s->cluster || !s->cluster[0] || strlen(s->cluster) > 128)
        __builtin_trap();
    if (s->n > o->max_workloads)
        __builtin_trap();
    for (size_t k = 0; k < s->n; k++) {
        const dm_k8s_workload *w = &s->v[k];
        if (!dns(w->namespace_, 63, false) || !dns(w->name, 253, true) || !w->kind[0] ||
            strlen(w->kind) > 63)
            __builtin_trap();
        if (w->exposure > DM_K8S_INTERNET)
            __builtin_trap();
        if (w->nimages == 0 || w->nimages > DM_K8S_MAX_IMAGES)
            __builtin_trap();
        for (size_t d = 0; d < w->nimages; d++) {
            if (!dm_digest_valid(w->images[d], strlen(w->images[d])))
                __builtin_trap();
            if (d > 0 && strcmp(w->images[d - 1], w->images[d]) >= 0)
                __builtin_trap(); /* sorted, each once */
        }
        if (k > 0 && cmp3(&s->v[k - 1], w) >= 0)
            __builtin_trap();
    }
    /* The JSON for Redis reads back as the same workloads. */
    char *j = dm_k8s_to_json(s);
    json_error_t jerr;
    json_t *root = json_loads(j, JSON_REJECT_DUPLICATES, &jerr);
    json_t *arr = json_object_get(root, "workloads");
    if (!root || !json_is_array(arr) || json_array_size(arr) != s->n ||
        strcmp(json_string_value(json_object_get(root, "cluster")), s->cluster) != 0 ||
        json_integer_value(json_object_get(root, "taken_at")) != s->taken_at_ms)
        __builtin_trap();
    for (size_t k = 0; k < s->n; k++) {
        json_t *w = json_array_get(arr, k);
        if (strcmp(json_string_value(json_object_get(w, "name")), s->v[k].name) != 0 ||
            json_array_size(json_object_get(w, "images")) != s->v[k].nimages ||
            strcmp(json_string_value(json_object_get(w, "exposure")),
                   dm_k8s_exposure_name(s->v[k].exposure)) != 0)
            __builtin_trap();
    }
    json_decref(root);
    free(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dm_k8s_options o = {.internal_ingress_classes = internal_classes,
                        .n_internal_ingress_classes = 1,
                        .max_items = 5000,
                        .max_workloads = 1000};
    dm_k8s_snapshot s;
    dm_error err;
    memset(&s, 0xa5, sizeof s); /* the parser must not read what it is given in out */
    memset(&err, 0, sizeof err);
    int rc = dm_k8s_parse((const char *)data, size, &o, &s, &err);
    if (rc == DM_OK) {
        check_snapshot(&s, &o);
        dm_k8s_snapshot_dispose(&s);
    } else if (rc == DM_EINVAL) {
        if (s.v || s.n || s.cluster)
            __builtin_trap(); /* out must be left empty */
        if ((err.status != 400 && err.status != 413) || err.text[0] == '\0' ||
            !memchr(err.field, '\0', sizeof err.field) || !memchr(err.text, '\0', sizeof err.text))
            __builtin_trap();
        for (const char *p = err.text; *p; p++) {
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                __builtin_trap();
        }
    } else {
        __builtin_trap();
    }
    return 0;
}
