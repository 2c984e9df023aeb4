/* dm_scan.c - Trivy and Grype JSON reports to a findings snapshot (docs/findings.md). */
#include "dm_scan.h"

#include "dm_json.h"
#include "dm_time.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sender-controlled strings end up in Redis and in records: bound them. Generous, because a
 * report is refused whole when one value is over. */
#define SCAN_MAX_ID        256 /* CVE-…, GHSA-…, vendor advisory ids */
#define SCAN_MAX_PACKAGE   512
#define SCAN_MAX_VERSION   256
#define SCAN_MAX_FIXED     1024 /* lists and ranges: ">= 3.1.0, >= 2.1.3, < 3.0.0" */
#define SCAN_MAX_STATUS    64
#define SCAN_MAX_PATH      4096
#define SCAN_MAX_REFERENCE 1024 /* "registry/repository@sha256:…" */
#define SCAN_MAX_EVENT_ID  256
#define SCAN_MAX_TAG       128 /* the distribution spec's tag grammar */
#define SCAN_MAX_HOST      255
#define SCAN_MAX_REPO      256

typedef char path_buf[128]; /* dm_error.field keeps 63 bytes: the paths of real reports fit */

/* A JSON path into @p p (cut at its size: dm_error.field keeps less anyway). */
static const char *path_at(char *p, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *path_at(char *p, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, cap, fmt, ap);
    va_end(ap);
    return p;
}

/* A severity vocabulary: the words one scanner uses, mapped to ours, and the error text that
 * lists them. */
typedef struct vocab_entry {
    const char *word;
    dm_severity sev;
} vocab_entry;

static const vocab_entry trivy_vocab[] = {
    {"CRITICAL", DM_SEV_CRITICAL}, {"HIGH", DM_SEV_HIGH},       {"MEDIUM", DM_SEV_MEDIUM},
    {"LOW", DM_SEV_LOW},           {"UNKNOWN", DM_SEV_UNKNOWN}, {NULL, DM_SEV_UNKNOWN},
};
#define TRIVY_VOCAB_TEXT "must be one of CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN"

/* Grype's "Negligible" is below low on its own scale; we have nothing lower than low. */
static const vocab_entry grype_vocab[] = {
    {"Critical", DM_SEV_CRITICAL}, {"High", DM_SEV_HIGH},      {"Medium", DM_SEV_MEDIUM},
    {"Low", DM_SEV_LOW},           {"Negligible", DM_SEV_LOW}, {"Unknown", DM_SEV_UNKNOWN},
    {NULL, DM_SEV_UNKNOWN},
};
#define GRYPE_VOCAB_TEXT "must be one of Critical, High, Medium, Low, Negligible, Unknown"

/* ------------------------------------------------------------------------------------------ */
/* Shared pieces                                                                                */
/* ------------------------------------------------------------------------------------------ */

static int get_severity(json_t *obj, const char *key, const char *path, const vocab_entry *vocab,
                        const char *vocab_text, dm_severity *out, dm_error *err)
{
    const char *s;
    size_t n;
    if (dm_json_get_string(obj, key, path, true, SIZE_MAX, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    for (const vocab_entry *v = vocab; v->word; v++) {
        if (strlen(v->word) == n && memcmp(v->word, s, n) == 0) {
            *out = v->sev;
            return DM_OK;
        }
    }
    return dm_error_set(err, path, "%s", vocab_text);
}

/* Required non-empty string member copied into *dst. */
static int copy_required(json_t *obj, const char *key, const char *path, size_t max, char **dst,
                         dm_error *err)
{
    const char *s;
    size_t n;
    if (dm_json_get_string(obj, key, path, true, max, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    return dm_json_copy_value(dm_json_member(obj, key), path, max, 0, dst, err);
}

static bool is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':';
}

/*
 * The registry and repository of a reference NAME, when it reads as one: a first component
 * with a '.' or ':' or "localhost" is a host, otherwise the name is on Docker Hub (and a
 * one-component name is under "library/"), as the distribution reference grammar has it.
 * Anything else leaves both NULL: they are hints for the reader, the digest is the key.
 */
static void split_name(const char *name, size_t n, char **registry, char **repository)
{
    *registry = *repository = NULL;
    const char *slash = memchr(name, '/', n);
    size_t hl = slash ? (size_t)(slash - name) : 0;
    bool host = slash && (memchr(name, '.', hl) || memchr(name, ':', hl) ||
                          (hl == 9 && memcmp(name, "localhost", 9) == 0));
    char *reg, *repo;
    if (host) {
        reg = dm_xstrndup(name, hl);
        repo = dm_xstrndup(slash + 1, n - hl - 1);
    } else {
        reg = dm_xstrdup("docker.io");
        size_t cap = n + sizeof "library/";
        repo = dm_xmalloc(cap);
        snprintf(repo, cap, "%s%.*s", slash ? "" : "library/", (int)n, name);
    }
    for (char *p = reg; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }
    bool ok = reg[0] && strlen(reg) <= SCAN_MAX_HOST && strlen(repo) > 0 &&
              strlen(repo) <= SCAN_MAX_REPO &&
              dm_repository_check(repo, strlen(repo), "", "", NULL) == DM_OK;
    for (const char *p = reg; ok && *p; p++)
        ok = is_host_char(*p);
    if (!ok) {
        free(reg);
        free(repo);
        return;
    }
    *registry = reg;
    *repository = repo;
}

/* "NAME@sha256:HEX" (split at the last '@') added to @p r with @p relation. */
static int add_reference(dm_finding_report *r, const json_t *v, const char *path,
                         dm_relation relation, dm_error *err)
{
    static const char text[] = "must be NAME@sha256: followed by 64 lowercase hex digits";
    if (dm_json_check_string(v, path, false, SCAN_MAX_REFERENCE, err) != DM_OK)
        return DM_EINVAL;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    const char *at = NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '@')
            at = s + i;
    }
    if (!at || at == s || !dm_digest_valid(at + 1, n - (size_t)(at + 1 - s)))
        return dm_error_set(err, path, "%s", text);
    char *registry, *repository;
    split_name(s, (size_t)(at - s), &registry, &repository);
    dm_finding_report_add_digest(r, at + 1, relation, registry, repository);
    free(registry);
    free(repository);
    return DM_OK;
}

/* A required, non-empty array of references: every one is a digest of the report. */
static int add_references(dm_finding_report *r, json_t *obj, const char *key, const char *path,
                          dm_error *err)
{
    json_t *a = dm_json_member(obj, key);
    if (!a)
        return dm_error_set(err, path, "is required");
    if (!json_is_array(a))
        return dm_error_set(err, path, "must be an array");
    if (json_array_size(a) == 0)
        return dm_error_set(err, path, "must not be empty");
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        path_buf p;
        path_at(p, sizeof p, "%s[%zu]", path, i);
        if (add_reference(r, v, p, DM_REL_IMAGE, err) != DM_OK)
            return DM_EINVAL;
        if (r->ndigests > DM_FINDING_MAX_DIGESTS) {
            dm_error_set(err, path, "names more than %d distinct digests (at most %d a report)",
                         DM_FINDING_MAX_DIGESTS, DM_FINDING_MAX_DIGESTS);
            err->status = 413;
            return DM_EINVAL;
        }
    }
    return DM_OK;
}

/* Optional array of "NAME:TAG" strings: each tag that reads as one is added. The tags are a
 * hint (the digest is the key), so one that does not parse is left out, not refused. */
static int add_tags(dm_finding_report *r, json_t *obj, const char *key, const char *path,
                    dm_error *err)
{
    json_t *a = dm_json_member(obj, key);
    if (!a)
        return DM_OK;
    if (!json_is_array(a))
        return dm_error_set(err, path, "must be an array");
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        path_buf p;
        path_at(p, sizeof p, "%s[%zu]", path, i);
        if (dm_json_check_string(v, p, false, SCAN_MAX_REFERENCE, err) != DM_OK)
            return DM_EINVAL;
        const char *s = json_string_value(v);
        const char *colon = strrchr(s, ':'), *slash = strrchr(s, '/');
        if (!colon || (slash && slash > colon))
            continue;
        const char *tag = colon + 1;
        size_t n = strlen(tag);
        bool ok = n > 0 && n <= SCAN_MAX_TAG;
        for (size_t k = 0; ok && k < n; k++) {
            char c = tag[k];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || (k > 0 && (c == '.' || c == '-'));
        }
        if (ok)
            dm_finding_report_add_tag(r, tag, n);
    }
    return DM_OK;
}

/* Optional RFC 3339 member as the report's time. */
static int get_time(json_t *obj, const char *key, const char *path, int64_t *ms, dm_error *err)
{
    const char *s;
    size_t n;
    if (dm_json_get_string(obj, key, path, false, 64, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (s && dm_time_parse_rfc3339(s, n, ms) != DM_OK)
        return dm_error_set(err, path, "must be an RFC 3339 timestamp");
    return DM_OK;
}

/* "sha256:" + hex SHA-256 of the body: the id of a report whose sender gives none. */
static char *body_id(const char *body, size_t len)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char *id = dm_xmalloc(DM_DIGEST_BUFLEN);
    if (EVP_Digest(body, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != sizeof md)
        abort(); /* only on allocation failure inside OpenSSL: fatal, like dm_xmalloc */
    memcpy(id, "sha256:", 7);
    for (size_t i = 0; i < sizeof md; i++)
        snprintf(id + 7 + 2 * i, 3, "%02x", md[i]);
    return id;
}

/* An optional member that must be an array when present; *out NULL when absent. */
static int get_opt_array(json_t *obj, const char *key, const char *path, json_t **out,
                         dm_error *err)
{
    *out = dm_json_member(obj, key);
    if (*out && !json_is_array(*out))
        return dm_error_set(err, path, "must be an array");
    return DM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Trivy                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static int trivy_vulnerability(dm_finding_report *r, json_t *v, const char *path, dm_error *err)
{
    path_buf p;
    if (!json_is_object(v))
        return dm_error_set(err, path, "must be an object");
    dm_finding *f = dm_finding_report_add(r);
#define FIELD(name) path_at(p, sizeof p, "%s." name, path)
    if (copy_required(v, "VulnerabilityID", FIELD("VulnerabilityID"), SCAN_MAX_ID, &f->id, err) !=
            DM_OK ||
        copy_required(v, "PkgName", FIELD("PkgName"), SCAN_MAX_PACKAGE, &f->package, err) !=
            DM_OK ||
        dm_json_copy_string(v, "InstalledVersion", FIELD("InstalledVersion"), SCAN_MAX_VERSION,
                            &f->installed, err) != DM_OK ||
        dm_json_copy_string(v, "FixedVersion", FIELD("FixedVersion"), SCAN_MAX_FIXED, &f->fixed,
                            err) != DM_OK ||
        dm_json_copy_string(v, "Status", FIELD("Status"), SCAN_MAX_STATUS, &f->status, err) !=
            DM_OK ||
        dm_json_copy_string(v, "PkgPath", FIELD("PkgPath"), SCAN_MAX_PATH, &f->path, err) !=
            DM_OK ||
        get_severity(v, "Severity", FIELD("Severity"), trivy_vocab, TRIVY_VOCAB_TEXT, &f->severity,
                     err) != DM_OK)
        return DM_EINVAL;
#undef FIELD
    return DM_OK;
}

/* Results[]: os-pkgs and lang-pkgs results carry Vulnerabilities; config, secret and
 * license results carry none and are passed over by the same code. */
static int trivy_results(dm_finding_report *r, json_t *root, dm_error *err)
{
    json_t *results;
    if (get_opt_array(root, "Results", "Results", &results, err) != DM_OK)
        return DM_EINVAL;
    size_t i, k;
    json_t *res, *v;
    json_array_foreach(results, i, res)
    {
        path_buf p;
        path_at(p, sizeof p, "Results[%zu]", i);
        if (!json_is_object(res))
            return dm_error_set(err, p, "must be an object");
        json_t *vulns;
        path_at(p, sizeof p, "Results[%zu].Vulnerabilities", i);
        if (get_opt_array(res, "Vulnerabilities", p, &vulns, err) != DM_OK)
            return DM_EINVAL;
        json_array_foreach(vulns, k, v)
        {
            path_at(p, sizeof p, "Results[%zu].Vulnerabilities[%zu]", i, k);
            if (trivy_vulnerability(r, v, p, err) != DM_OK)
                return DM_EINVAL;
        }
    }
    return DM_OK;
}

static int parse_trivy(json_t *root, dm_finding_report *r, dm_error *err)
{
    snprintf(r->scanner, sizeof r->scanner, "trivy");
    json_t *sv = dm_json_member(root, "SchemaVersion");
    if (sv && (!json_is_integer(sv) || json_integer_value(sv) != 2))
        return dm_error_set(err, "SchemaVersion", "must be 2");

    const char *s;
    size_t n;
    if (dm_json_get_string(root, "ArtifactType", "ArtifactType", true, SIZE_MAX, &s, &n, err) !=
        DM_OK)
        return DM_EINVAL;
    if (strcmp(s, "container_image") != 0)
        return dm_error_set(err, "ArtifactType", "must be container_image");

    json_t *meta;
    if (dm_json_get_object(root, "Metadata", "Metadata", &meta, err) != DM_OK ||
        add_references(r, meta, "RepoDigests", "Metadata.RepoDigests", err) != DM_OK ||
        add_tags(r, meta, "RepoTags", "Metadata.RepoTags", err) != DM_OK ||
        dm_json_copy_string(root, "ReportID", "ReportID", SCAN_MAX_EVENT_ID, &r->event_id, err) !=
            DM_OK ||
        get_time(root, "CreatedAt", "CreatedAt", &r->event_time_ms, err) != DM_OK)
        return DM_EINVAL;
    return trivy_results(r, root, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Grype                                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* fix.versions[] joined with ", " (Trivy's own way of listing several). */
static int grype_fixed(json_t *fix, const char *path, char **out, dm_error *err)
{
    path_buf p;
    json_t *versions;
    path_at(p, sizeof p, "%s.versions", path);
    if (get_opt_array(fix, "versions", p, &versions, err) != DM_OK)
        return DM_EINVAL;
    size_t i, len = 0;
    json_t *v;
    json_array_foreach(versions, i, v)
    {
        path_at(p, sizeof p, "%s.versions[%zu]", path, i);
        if (dm_json_check_string(v, p, true, SCAN_MAX_VERSION, err) != DM_OK)
            return DM_EINVAL;
        len += json_string_length(v) + 2;
        if (len > SCAN_MAX_FIXED + 2) {
            path_at(p, sizeof p, "%s.versions", path);
            return dm_error_set(err, p, "must be at most %d bytes joined", SCAN_MAX_FIXED);
        }
    }
    if (len == 0)
        return DM_OK;
    char *s = dm_xmalloc(len), *w = s;
    json_array_foreach(versions, i, v)
    {
        if (i > 0) {
            memcpy(w, ", ", 2);
            w += 2;
        }
        memcpy(w, json_string_value(v), json_string_length(v));
        w += json_string_length(v);
    }
    *w = '\0';
    if (strlen(s) != (size_t)(w - s)) {
        free(s);
        return dm_error_set(err, path, "must not contain NUL characters");
    }
    *out = s;
    return DM_OK;
}

static int grype_match(dm_finding_report *r, json_t *m, const char *path, dm_error *err)
{
    path_buf p;
    if (!json_is_object(m))
        return dm_error_set(err, path, "must be an object");
#define FIELD(name) path_at(p, sizeof p, "%s." name, path)
    json_t *vuln, *art, *fix, *locs;
    if (dm_json_get_object(m, "vulnerability", FIELD("vulnerability"), &vuln, err) != DM_OK ||
        dm_json_get_object(m, "artifact", FIELD("artifact"), &art, err) != DM_OK)
        return DM_EINVAL;
    dm_finding *f = dm_finding_report_add(r);
    if (copy_required(vuln, "id", FIELD("vulnerability.id"), SCAN_MAX_ID, &f->id, err) != DM_OK ||
        get_severity(vuln, "severity", FIELD("vulnerability.severity"), grype_vocab,
                     GRYPE_VOCAB_TEXT, &f->severity, err) != DM_OK ||
        copy_required(art, "name", FIELD("artifact.name"), SCAN_MAX_PACKAGE, &f->package, err) !=
            DM_OK ||
        dm_json_copy_string(art, "version", FIELD("artifact.version"), SCAN_MAX_VERSION,
                            &f->installed, err) != DM_OK)
        return DM_EINVAL;
    fix = dm_json_member(vuln, "fix");
    if (fix) {
        if (!json_is_object(fix))
            return dm_error_set(err, FIELD("vulnerability.fix"), "must be an object");
        if (grype_fixed(fix, FIELD("vulnerability.fix"), &f->fixed, err) != DM_OK ||
            dm_json_copy_string(fix, "state", FIELD("vulnerability.fix.state"), SCAN_MAX_STATUS,
                                &f->status, err) != DM_OK)
            return DM_EINVAL;
    }
    /* Where the package was found: the first location (a package.json, a jar, dpkg's status
     * file for OS packages). */
    if (get_opt_array(art, "locations", FIELD("artifact.locations"), &locs, err) != DM_OK)
        return DM_EINVAL;
    json_t *loc = json_array_get(locs, 0);
    if (loc) {
        if (!json_is_object(loc))
            return dm_error_set(err, FIELD("artifact.locations[0]"), "must be an object");
        if (dm_json_copy_string(loc, "path", FIELD("artifact.locations[0].path"), SCAN_MAX_PATH,
                                &f->path, err) != DM_OK)
            return DM_EINVAL;
    }
#undef FIELD
    return DM_OK;
}

/* The digests of an image source: repoDigests name what the reference resolved to (the index
 * of a multi-arch tag); manifestDigest the platform manifest actually read, attached as such
 * only beside them: alone it may name a manifest no registry holds. */
static int grype_target(dm_finding_report *r, json_t *root, dm_error *err)
{
    json_t *source, *target;
    const char *s;
    size_t n;
    if (dm_json_get_object(root, "source", "source", &source, err) != DM_OK ||
        dm_json_get_string(source, "type", "source.type", true, SIZE_MAX, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (strcmp(s, "image") != 0)
        return dm_error_set(err, "source.type", "must be image");
    if (dm_json_get_object(source, "target", "source.target", &target, err) != DM_OK ||
        add_references(r, target, "repoDigests", "source.target.repoDigests", err) != DM_OK)
        return DM_EINVAL;
    json_t *md = dm_json_member(target, "manifestDigest");
    if (md) {
        const char *d;
        if (dm_json_digest(md, "source.target.manifestDigest", &d, err) != DM_OK)
            return DM_EINVAL;
        dm_finding_report_add_digest(r, d, DM_REL_PLATFORM_MANIFEST, r->digests[0].registry,
                                     r->digests[0].repository);
        if (r->ndigests > DM_FINDING_MAX_DIGESTS) {
            dm_error_set(err, "source.target",
                         "names more than %d distinct digests (at most %d "
                         "a report)",
                         DM_FINDING_MAX_DIGESTS, DM_FINDING_MAX_DIGESTS);
            err->status = 413;
            return DM_EINVAL;
        }
    }
    return add_tags(r, target, "tags", "source.target.tags", err);
}

static int parse_grype(json_t *root, dm_finding_report *r, dm_error *err)
{
    snprintf(r->scanner, sizeof r->scanner, "grype");
    if (grype_target(r, root, err) != DM_OK)
        return DM_EINVAL;
    json_t *desc = dm_json_member(root, "descriptor");
    if (desc) {
        if (!json_is_object(desc))
            return dm_error_set(err, "descriptor", "must be an object");
        if (get_time(desc, "timestamp", "descriptor.timestamp", &r->event_time_ms, err) != DM_OK)
            return DM_EINVAL;
    }
    json_t *matches = dm_json_member(root, "matches");
    if (!matches)
        return dm_error_set(err, "matches", "is required");
    if (!json_is_array(matches))
        return dm_error_set(err, "matches", "must be an array");
    /* ignoredMatches are what the user's configuration set aside: not current findings. */
    size_t i;
    json_t *m;
    json_array_foreach(matches, i, m)
    {
        path_buf p;
        path_at(p, sizeof p, "matches[%zu]", i);
        if (grype_match(r, m, p, err) != DM_OK)
            return DM_EINVAL;
    }
    return DM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* API                                                                                          */
/* ------------------------------------------------------------------------------------------ */

static bool has_any(json_t *root, const char *const *keys)
{
    for (; *keys; keys++) {
        if (json_object_get(root, *keys))
            return true;
    }
    return false;
}

int dm_scan_parse(const char *body, size_t len, size_t max_findings, dm_finding_report *out,
                  dm_error *err)
{
    static const char *const trivy_keys[] = {"SchemaVersion", "ArtifactType", "Metadata", "Results",
                                             NULL};
    static const char *const grype_keys[] = {"matches", "source", "descriptor", NULL};
    json_t *root = NULL;
    memset(out, 0, sizeof *out);
    if (dm_json_load_object(body, len, &root, err) != DM_OK)
        return DM_EINVAL;

    out->kind = DM_REPORT_SNAPSHOT;
    bool trivy = has_any(root, trivy_keys), grype = has_any(root, grype_keys);
    int rc;
    if (trivy == grype)
        rc = dm_error_set(err, "",
                          trivy ? "mixes Trivy (SchemaVersion, ArtifactType, Metadata, Results) "
                                  "and Grype (matches, source, descriptor) members"
                                : "is neither a Trivy report (SchemaVersion, ArtifactType, "
                                  "Metadata, Results) nor a Grype report (matches, source)");
    else
        rc = trivy ? parse_trivy(root, out, err) : parse_grype(root, out, err);
    json_decref(root);
    if (rc != DM_OK) {
        dm_finding_report_dispose(out); /* leaves it zeroed */
        return rc;
    }
    if (!out->event_id)
        out->event_id = body_id(body, len);
    dm_finding_report_finish(out, max_findings);
    return DM_OK;
}
