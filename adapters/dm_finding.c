/* dm_finding.c - the normalized findings report: ownership, the bound and the JSON document
 * the findings script reads (docs/findings.md). */
#include "dm_finding.h"
#include "dm_jsonw.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Severities                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static const char *const severity_names[DM_SEV_COUNT] = {"critical", "high", "medium", "low",
                                                         "unknown"};

const char *dm_severity_name(dm_severity s)
{
    if ((unsigned)s >= DM_SEV_COUNT)
        return "unknown";
    return severity_names[s];
}

bool dm_severity_from_name(const char *name, size_t n, dm_severity *out)
{
    if (!name)
        return false;
    for (int i = 0; i < DM_SEV_COUNT; i++) {
        if (strlen(severity_names[i]) == n && memcmp(severity_names[i], name, n) == 0) {
            *out = (dm_severity)i;
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* Ownership                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Capacity is the next power of two >= n (as dm_event_list): grow when n is 0 or a power of
 * two, so appends stay amortized O(1) without a capacity member. */
static void *grow(void *v, size_t n, size_t size)
{
    if (n == 0 || (n & (n - 1)) == 0)
        return dm_xrealloc(v, (n ? n * 2 : 1) * size);
    return v;
}

dm_finding *dm_finding_report_add(dm_finding_report *r)
{
    r->findings = grow(r->findings, r->nfindings, sizeof *r->findings);
    dm_finding *f = &r->findings[r->nfindings++];
    memset(f, 0, sizeof *f);
    return f;
}

static char *dup_or_null(const char *s)
{
    return s ? dm_xstrdup(s) : NULL;
}

dm_finding_digest *dm_finding_report_add_digest(dm_finding_report *r, const char *digest,
                                                dm_relation relation, const char *registry,
                                                const char *repository)
{
    for (size_t i = 0; i < r->ndigests; i++) {
        if (strcmp(r->digests[i].digest, digest) == 0)
            return &r->digests[i];
    }
    r->digests = grow(r->digests, r->ndigests, sizeof *r->digests);
    dm_finding_digest *d = &r->digests[r->ndigests++];
    memset(d, 0, sizeof *d);
    snprintf(d->digest, sizeof d->digest, "%s", digest);
    d->relation = relation;
    d->registry = dup_or_null(registry);
    d->repository = dup_or_null(repository);
    return d;
}

void dm_finding_report_add_tag(dm_finding_report *r, const char *tag, size_t n)
{
    for (size_t i = 0; i < r->ntags; i++) {
        if (strlen(r->tags[i]) == n && memcmp(r->tags[i], tag, n) == 0)
            return;
    }
    r->tags = dm_xrealloc(r->tags, (r->ntags + 1) * sizeof *r->tags);
    r->tags[r->ntags++] = dm_xstrndup(tag, n);
}

static void finding_dispose(dm_finding *f)
{
    free(f->id);
    free(f->package);
    free(f->installed);
    free(f->fixed);
    free(f->status);
    free(f->path);
    memset(f, 0, sizeof *f);
}

void dm_finding_report_dispose(dm_finding_report *r)
{
    if (!r)
        return;
    free(r->event_id);
    for (size_t i = 0; i < r->ndigests; i++) {
        free(r->digests[i].registry);
        free(r->digests[i].repository);
    }
    free(r->digests);
    for (size_t i = 0; i < r->ntags; i++)
        free(r->tags[i]);
    free(r->tags);
    for (size_t i = 0; i < r->nfindings; i++)
        finding_dispose(&r->findings[i]);
    free(r->findings);
    free(r->ref);
    free(r->updated_at);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------------------------------ */
/* Distinct findings and the bound                                                             */
/* ------------------------------------------------------------------------------------------ */

static int cmp_key(const dm_finding *a, const dm_finding *b)
{
    int c = strcmp(a->id, b->id);
    return c ? c : strcmp(a->package, b->package);
}

/* Index order breaks ties so that "the first listing" is well defined after qsort. */
typedef struct ranked {
    const dm_finding *f;
    size_t pos;
} ranked;

static int cmp_by_key(const void *x, const void *y)
{
    const ranked *a = x, *b = y;
    int c = cmp_key(a->f, b->f);
    if (c)
        return c;
    if (a->f->severity != b->f->severity)
        return a->f->severity < b->f->severity ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static int cmp_by_severity(const void *x, const void *y)
{
    const dm_finding *a = x, *b = y;
    if (a->severity != b->severity)
        return a->severity < b->severity ? -1 : 1;
    return cmp_key(a, b);
}

/* Sorted by key, then most severe first: the first of each run of equal keys is the one kept
 * (its highest severity, first listing). Returns how many are kept, marking them in keep[]. */
static size_t mark_distinct(const dm_finding *f, size_t n, ranked *order, bool *keep)
{
    for (size_t i = 0; i < n; i++)
        order[i] = (ranked){&f[i], i};
    qsort(order, n, sizeof *order, cmp_by_key);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        bool first = i == 0 || cmp_key(order[i - 1].f, order[i].f) != 0;
        keep[order[i].pos] = first;
        kept += first;
    }
    return kept;
}

void dm_finding_summary(const dm_finding *f, size_t n, uint32_t out[DM_SEV_COUNT])
{
    memset(out, 0, DM_SEV_COUNT * sizeof *out);
    if (n == 0)
        return;
    ranked *order = dm_xcalloc(n, sizeof *order);
    bool *keep = dm_xcalloc(n, sizeof *keep);
    mark_distinct(f, n, order, keep);
    for (size_t i = 0; i < n; i++) {
        if (keep[i] && (unsigned)f[i].severity < DM_SEV_COUNT)
            out[f[i].severity]++;
    }
    free(order);
    free(keep);
}

void dm_finding_report_finish(dm_finding_report *r, size_t max)
{
    if (max == 0)
        max = DM_FINDINGS_MAX_DEFAULT;
    size_t n = r->nfindings;
    if (n == 0) {
        if (r->kind != DM_REPORT_COUNTS)
            memset(r->counts, 0, sizeof r->counts);
        r->dropped = 0;
        return;
    }
    ranked *order = dm_xcalloc(n, sizeof *order);
    bool *keep = dm_xcalloc(n, sizeof *keep);
    mark_distinct(r->findings, n, order, keep);
    free(order);

    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (keep[i])
            r->findings[kept++] = r->findings[i];
        else
            finding_dispose(&r->findings[i]);
    }
    free(keep);
    qsort(r->findings, kept, sizeof *r->findings, cmp_by_severity);

    memset(r->counts, 0, sizeof r->counts);
    for (size_t i = 0; i < kept; i++) {
        if ((unsigned)r->findings[i].severity < DM_SEV_COUNT)
            r->counts[r->findings[i].severity]++;
    }
    r->dropped = 0;
    if (kept > max) {
        for (size_t i = max; i < kept; i++)
            finding_dispose(&r->findings[i]);
        r->dropped = kept - max;
        kept = max;
    }
    r->nfindings = kept;
}

/* ------------------------------------------------------------------------------------------ */
/* JSON document for the findings script                                                       */
/* ------------------------------------------------------------------------------------------ */

static void append(json_t *a, json_t *v)
{
    if (!v || json_array_append_new(a, v) != 0)
        abort();
}

static json_t *new_array(void)
{
    json_t *a = json_array();
    if (!a)
        abort();
    return a;
}

static json_t *new_object(void)
{
    json_t *o = json_object();
    if (!o)
        abort();
    return o;
}

static const char *kind_name(dm_report_kind k)
{
    switch (k) {
    case DM_REPORT_SNAPSHOT:
        return "snapshot";
    case DM_REPORT_COUNTS:
        return "counts";
    case DM_REPORT_UPDATE:
        return "update";
    }
    return "snapshot";
}

static json_t *digests_array(const dm_finding_report *r)
{
    json_t *a = new_array();
    for (size_t i = 0; i < r->ndigests; i++) {
        const dm_finding_digest *d = &r->digests[i];
        json_t *o = new_object();
        char digest[DM_DIGEST_BUFLEN + 1];
        snprintf(digest, sizeof digest, "%.*s", (int)DM_DIGEST_BUFLEN, d->digest);
        dm_jsonw_put(o, "digest", dm_jsonw_str(digest));
        dm_jsonw_put(
            o, "relation",
            dm_jsonw_str(d->relation == DM_REL_PLATFORM_MANIFEST ? "platform-manifest" : "image"));
        dm_jsonw_put_opt_str(o, "registry", d->registry);
        dm_jsonw_put_opt_str(o, "repository", d->repository);
        append(a, o);
    }
    return a;
}

static json_t *findings_array(const dm_finding_report *r)
{
    json_t *a = new_array();
    for (size_t i = 0; i < r->nfindings; i++) {
        const dm_finding *f = &r->findings[i];
        json_t *o = new_object();
        dm_jsonw_put(o, "id", dm_jsonw_str(f->id));
        dm_jsonw_put(o, "package", dm_jsonw_str(f->package));
        dm_jsonw_put(o, "severity", dm_jsonw_str(dm_severity_name(f->severity)));
        dm_jsonw_put_opt_str(o, "installed", f->installed);
        dm_jsonw_put_opt_str(o, "fixed", f->fixed);
        dm_jsonw_put_opt_str(o, "status", f->status);
        dm_jsonw_put_opt_str(o, "path", f->path);
        append(a, o);
    }
    return a;
}

static char *report_json(const dm_finding_report *r, bool with_digests)
{
    json_t *o = new_object();
    char scanner[sizeof r->scanner + 1];
    snprintf(scanner, sizeof scanner, "%.*s", (int)sizeof r->scanner, r->scanner);
    dm_jsonw_put(o, "kind", dm_jsonw_str(kind_name(r->kind)));
    dm_jsonw_put(o, "scanner", dm_jsonw_str(scanner));
    dm_jsonw_put(o, "event_id", dm_jsonw_str(r->event_id));
    dm_jsonw_put(o, "t", json_integer(r->event_time_ms));
    if (with_digests) {
        dm_jsonw_put(o, "digests", digests_array(r));
        json_t *tags = new_array();
        for (size_t i = 0; i < r->ntags; i++)
            append(tags, dm_jsonw_str(r->tags[i]));
        dm_jsonw_put(o, "tags", tags);
    }
    json_t *counts = new_object();
    for (int i = 0; i < DM_SEV_COUNT; i++)
        dm_jsonw_put(counts, severity_names[i], json_integer(r->counts[i]));
    dm_jsonw_put(o, "counts", counts);
    if (r->kind != DM_REPORT_COUNTS) {
        dm_jsonw_put(o, "findings", findings_array(r));
        dm_jsonw_put(o, "dropped", json_integer((json_int_t)r->dropped));
    }
    if (r->kind == DM_REPORT_UPDATE) {
        dm_jsonw_put(o, "removed", json_boolean(r->removed));
        dm_jsonw_put_opt_str(o, "ref", r->ref);
        dm_jsonw_put_opt_str(o, "updated_at", r->updated_at);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s)
        abort();
    return s;
}

char *dm_finding_report_to_json(const dm_finding_report *r)
{
    return report_json(r, true);
}

char *dm_finding_report_to_store_json(const dm_finding_report *r)
{
    return report_json(r, false);
}
