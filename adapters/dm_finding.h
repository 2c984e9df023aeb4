/* dm_finding.h - the normalized form of vulnerability findings (docs/findings.md).
 *
 * Every findings parser (dm_scan for Trivy and Grype reports, dm_ecr_parse_finding for the
 * ECR/Inspector events) produces one dm_finding_report. Pure: no I/O, no globals. Every
 * string in these structs is owned by the report and freed by dm_finding_report_dispose().
 */
#ifndef DM_ADAPTERS_DM_FINDING_H
#define DM_ADAPTERS_DM_FINDING_H

#include "dm_event.h"

/** limits.max_findings_per_digest's default: what a parser keeps when the caller gives 0. */
#define DM_FINDINGS_MAX_DEFAULT 2000

/** Distinct digests one report may name: each costs one script call that carries the report's
 *  findings, so a report naming thousands (a Trivy scan through a daemon that lists every
 *  registry's RepoDigests) would hold its Redis connection for seconds. Beyond it the report
 *  is refused with a 413 (docs/findings.md "Limits"). */
#define DM_FINDING_MAX_DIGESTS 16

/** Severities, most severe first: the order findings are kept in when a report is bounded
 *  (unknown ranks last: a scanner that cannot rate a flaw says less than "low"). The values
 *  index dm_finding_report.counts. */
typedef enum {
    DM_SEV_CRITICAL = 0,
    DM_SEV_HIGH,
    DM_SEV_MEDIUM,
    DM_SEV_LOW,
    DM_SEV_UNKNOWN,
} dm_severity;

#define DM_SEV_COUNT 5

/** "critical", "high", "medium", "low" or "unknown"; "unknown" for an out-of-range value. */
const char *dm_severity_name(dm_severity s);

/** The severity named exactly (lowercase) @p name (@p n bytes); false for anything else. */
bool dm_severity_from_name(const char *name, size_t n, dm_severity *out);

/** One finding: a flaw (id) in a package. Identified by (id, package); NULL members absent. */
typedef struct dm_finding {
    char *id;        /**< vulnerability id: CVE-…, GHSA-…, never NULL */
    char *package;   /**< package name, never NULL */
    char *installed; /**< installed version */
    char *fixed;     /**< fixed version(s) as the scanner words them ("1.2.3, 2.0.1") */
    char *status;    /**< the scanner's status word, as sent ("fixed", "will_not_fix", "ACTIVE") */
    char *path;      /**< where the package was found (language packages), optional */
    dm_severity severity;
} dm_finding;

typedef enum {
    DM_REPORT_SNAPSHOT = 0, /**< a scanner's whole report: replaces that scanner's findings */
    DM_REPORT_COUNTS,       /**< per-severity counts only (ECR basic scan, Inspector2 Scan) */
    DM_REPORT_UPDATE,       /**< one Inspector finding: upsert, or remove when .removed */
} dm_report_kind;

/** A registry digest a report attaches to. registry/repository are NULL when unknown. */
typedef struct dm_finding_digest {
    char digest[DM_DIGEST_BUFLEN];
    dm_relation relation; /**< DM_REL_IMAGE, or DM_REL_PLATFORM_MANIFEST (Grype manifestDigest) */
    char *registry;       /**< host, lowercase */
    char *repository;
} dm_finding_digest;

typedef struct dm_finding_report {
    dm_report_kind kind;
    char scanner[16];           /**< "trivy", "grype", "ecr-basic" or "inspector" */
    char *event_id;             /**< sender's id, or "sha256:<hex of the body>" when it has none */
    int64_t event_time_ms;      /**< from the payload; 0 = not given (arrival time is used) */
    dm_finding_digest *digests; /**< every distinct digest, at least one unless ignored */
    size_t ndigests;
    char **tags; /**< tags named by the sender (a set) */
    size_t ntags;
    dm_finding *findings; /**< distinct (id, package), most severe first; SNAPSHOT, UPDATE */
    size_t nfindings;
    size_t dropped; /**< distinct findings left out by the bound */
    /** SNAPSHOT: distinct findings per severity before the bound (the summary stays true
     *  when findings were dropped); COUNTS: as sent, mapped; UPDATE: of .findings. */
    uint32_t counts[DM_SEV_COUNT];
    bool removed;        /**< UPDATE: the finding left (status CLOSED or SUPPRESSED) */
    char *ref;           /**< UPDATE: the sender's key of the finding (Inspector findingArn) */
    char *updated_at;    /**< UPDATE: the sender's own timestamp, raw (not RFC 3339) */
    const char *ignored; /**< static reason when acknowledged but ignored; nothing else set */
} dm_finding_report;

/** Append a zeroed finding to @p r and return it (owned by the report). */
dm_finding *dm_finding_report_add(dm_finding_report *r);

/**
 * Add digest @p digest (valid, NUL-terminated) with @p relation unless it is listed already
 * (the first listing keeps its relation); @p registry / @p repository (may be NULL) are
 * copied. Returns the entry.
 */
dm_finding_digest *dm_finding_report_add_digest(dm_finding_report *r, const char *digest,
                                                dm_relation relation, const char *registry,
                                                const char *repository);

/** Add tag @p tag (@p n bytes) unless it is there already. */
void dm_finding_report_add_tag(dm_finding_report *r, const char *tag, size_t n);

/**
 * Make .findings distinct by (id, package): a pair given twice keeps its highest severity
 * (the other members of the first of the most severe listings). Sort most severe first, then
 * by id and package (byte order). Fill .counts from the distinct set, then keep the first
 * @p max (0: DM_FINDINGS_MAX_DEFAULT) and count the rest in .dropped.
 */
void dm_finding_report_finish(dm_finding_report *r, size_t max);

/**
 * Per-severity counts of @p n findings, distinct by (id, package), each pair counted once at
 * its highest severity: the summary of a findings list. @p out is overwritten.
 */
void dm_finding_summary(const dm_finding *f, size_t n, uint32_t out[DM_SEV_COUNT]);

/** Free everything the report owns and zero it. Safe on a zeroed report. */
void dm_finding_report_dispose(dm_finding_report *r);

/**
 * Serialize @p r as the compact JSON document the findings script reads. Members, in order:
 *   "kind": "snapshot" | "counts" | "update"
 *   "scanner", "event_id": strings; "t": event time in ms (0 = not given)
 *   "digests": [{"digest", "relation": "image" | "platform-manifest", "registry"?,
 *                "repository"?}]
 *   "tags": [strings]
 *   "counts": {"critical", "high", "medium", "low", "unknown"} (integers)
 *   "findings": [{"id", "package", "severity", "installed"?, "fixed"?, "status"?, "path"?}]
 *               (snapshot and update only; most severe first)
 *   "dropped": integer (snapshot and update only)
 *   "removed": boolean, "ref"?, "updated_at"? (update only)
 * ("?" = absent when unknown). Returns a malloc'd NUL-terminated string the caller frees.
 */
char *dm_finding_report_to_json(const dm_finding_report *r);

/**
 * The document the findings script stores for each digest: dm_finding_report_to_json without
 * "digests" and "tags" (the caller passes the digest itself), so a report naming several
 * digests does not send every call the whole list. Freed by the caller.
 */
char *dm_finding_report_to_store_json(const dm_finding_report *r);

#endif
