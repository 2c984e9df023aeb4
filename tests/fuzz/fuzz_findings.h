/* fuzz_findings.h - invariants of a dm_finding_report shared by the findings fuzz targets
 * (fuzz_scan, fuzz_finding). Any violation is a __builtin_trap(). */
#ifndef FUZZ_FINDINGS_H
#define FUZZ_FINDINGS_H

#include "dm_common.h"
#include "dm_finding.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* A report left by a refused input or a body that is not a findings event: all zero. */
static inline void fuzz_check_zeroed(const dm_finding_report *r)
{
    static const dm_finding_report zero;
    if (memcmp(r, &zero, sizeof zero) != 0)
        __builtin_trap();
}

/* A refusal: a 400 with a non-empty, NUL-terminated, printable text, the report zeroed. */
static inline void fuzz_check_report_error(const dm_finding_report *r, const dm_error *err)
{
    fuzz_check_zeroed(r);
    if (err->status != 400 || err->text[0] == '\0')
        __builtin_trap();
    if (memchr(err->field, '\0', sizeof err->field) == NULL ||
        memchr(err->text, '\0', sizeof err->text) == NULL)
        __builtin_trap();
    for (const char *p = err->text; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            __builtin_trap();
    }
}

static inline bool fuzz_nonempty(const char *s, size_t max)
{
    return s && s[0] && strlen(s) <= max;
}

/* An accepted report: known kind and scanner, at least one valid distinct digest, findings
 * distinct by (id, package), most severe first, at most @p max, counted; and its JSON
 * document a duplicate-free object that says the same. */
static inline void fuzz_check_report(const dm_finding_report *r, size_t max)
{
    static const char *const scanners[] = {"trivy", "grype", "ecr-basic", "inspector"};
    bool known = false;
    for (size_t i = 0; i < 4; i++)
        known = known || strcmp(r->scanner, scanners[i]) == 0;
    if (!known || (unsigned)r->kind > DM_REPORT_UPDATE || r->ignored)
        __builtin_trap();
    if (!fuzz_nonempty(r->event_id, 256) || r->ndigests == 0 || !r->digests)
        __builtin_trap();
    for (size_t i = 0; i < r->ndigests; i++) {
        const dm_finding_digest *d = &r->digests[i];
        if (!dm_digest_valid(d->digest, strlen(d->digest)))
            __builtin_trap();
        if (d->relation != DM_REL_IMAGE && d->relation != DM_REL_PLATFORM_MANIFEST)
            __builtin_trap();
        if ((d->registry == NULL) != (d->repository == NULL))
            __builtin_trap();
        for (size_t k = 0; k < i; k++) {
            if (strcmp(r->digests[k].digest, d->digest) == 0)
                __builtin_trap();
        }
    }
    for (size_t i = 0; i < r->ntags; i++) {
        if (!fuzz_nonempty(r->tags[i], 128))
            __builtin_trap();
    }
    if (r->kind == DM_REPORT_COUNTS && (r->nfindings || r->findings || r->dropped))
        __builtin_trap();
    if (r->kind == DM_REPORT_UPDATE && (r->nfindings == 0 || !r->ref))
        __builtin_trap();
    if (r->nfindings > max)
        __builtin_trap();
    uint64_t counted = 0;
    for (int i = 0; i < DM_SEV_COUNT; i++)
        counted += r->counts[i];
    if (r->kind != DM_REPORT_COUNTS && counted != r->nfindings + r->dropped)
        __builtin_trap();
    for (size_t i = 0; i < r->nfindings; i++) {
        const dm_finding *f = &r->findings[i];
        if (!fuzz_nonempty(f->id, 256) || !fuzz_nonempty(f->package, 512) ||
            (unsigned)f->severity >= DM_SEV_COUNT)
            __builtin_trap();
        if (i > 0 && f->severity < r->findings[i - 1].severity)
            __builtin_trap();
        for (size_t k = 0; k < i; k++) {
            if (strcmp(r->findings[k].id, f->id) == 0 &&
                strcmp(r->findings[k].package, f->package) == 0)
                __builtin_trap();
        }
    }
    char *s = dm_finding_report_to_json(r);
    json_error_t jerr;
    json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
    if (!j || !json_is_object(j))
        __builtin_trap();
    if (json_array_size(json_object_get(j, "digests")) != r->ndigests ||
        json_array_size(json_object_get(j, "tags")) != r->ntags)
        __builtin_trap();
    if (r->kind != DM_REPORT_COUNTS &&
        json_array_size(json_object_get(j, "findings")) != r->nfindings)
        __builtin_trap();
    json_decref(j);
    free(s);
}

#endif
