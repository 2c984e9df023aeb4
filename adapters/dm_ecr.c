/* dm_ecr.c - Amazon ECR EventBridge events: image actions (docs/registries.md) and scan
 * results (docs/findings.md). */
#include "dm_ecr.h"

#include "dm_json.h"
#include "dm_time.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sender-controlled strings end up in Redis keys and records: bound them. */
#define ECR_MAX_ID         256
#define ECR_MAX_REPOSITORY 256 /* ECR's own limit for repository names */
#define ECR_MAX_TAG        128 /* the distribution spec's tag grammar allows 128 characters */
#define ECR_MAX_MEDIA_TYPE 255
#define ECR_MAX_REGION     32 /* the longest region names today are about 15 characters */
#define ECR_ACCOUNT_LEN    12

/* The EventBridge envelope: the same for every service's events. */
typedef struct ecr_envelope {
    const char *detail_type, *id, *account, *region; /* borrowed from the document */
    size_t id_len, account_len, region_len;
    int64_t time_ms;
} ecr_envelope;

/* ------------------------------------------------------------------------------------------ */
/* Envelope                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* account and region become the registry host: nothing else may slip into it. */
static int parse_account_region(json_t *root, ecr_envelope *env, dm_error *err)
{
    if (dm_json_get_string(root, "account", "account", true, SIZE_MAX, &env->account,
                           &env->account_len, err) != DM_OK)
        return DM_EINVAL;
    bool digits = env->account_len == ECR_ACCOUNT_LEN;
    for (size_t i = 0; digits && i < env->account_len; i++)
        digits = env->account[i] >= '0' && env->account[i] <= '9';
    if (!digits)
        return dm_error_set(err, "account", "must be 12 digits");

    if (dm_json_get_string(root, "region", "region", true, ECR_MAX_REGION, &env->region,
                           &env->region_len, err) != DM_OK)
        return DM_EINVAL;
    /* One or more DNS labels' worth of [a-z0-9-], not starting or ending with '-'. */
    const char *region = env->region;
    size_t n = env->region_len;
    bool region_ok = is_lower_alnum(region[0]) && is_lower_alnum(region[n - 1]);
    for (size_t i = 0; region_ok && i < n; i++)
        region_ok = is_lower_alnum(region[i]) || region[i] == '-';
    if (!region_ok)
        return dm_error_set(err, "region", "must be a region name (a-z, 0-9 and inner '-')");
    return DM_OK;
}

/* Everything of the envelope after its source: the same for every service's events. */
static int parse_envelope_rest(json_t *root, ecr_envelope *env, dm_error *err)
{
    const char *s;
    size_t n;
    if (dm_json_get_string(root, "detail-type", "detail-type", true, SIZE_MAX, &env->detail_type,
                           &n, err) != DM_OK ||
        dm_json_get_string(root, "id", "id", true, ECR_MAX_ID, &env->id, &env->id_len, err) !=
            DM_OK ||
        dm_json_get_string(root, "time", "time", true, SIZE_MAX, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (dm_time_parse_rfc3339(s, n, &env->time_ms) != DM_OK)
        return dm_error_set(err, "time", "must be an RFC 3339 timestamp");
    return parse_account_region(root, env, err);
}

/*
 * The envelope is checked even for events that are then ignored: a body without it is not
 * from EventBridge. A rule that forwards another service's events here is a misconfiguration
 * the operator should see as an error, not a silent "ignored".
 */
static int parse_envelope(json_t *root, ecr_envelope *env, dm_error *err)
{
    const char *s;
    size_t n;
    if (dm_json_get_string(root, "source", "source", true, SIZE_MAX, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (strcmp(s, "aws.ecr") != 0)
        return dm_error_set(err, "source", "must be \"aws.ecr\"");
    return parse_envelope_rest(root, env, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Detail                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/*
 * The action of an "ECR Image Action" event, or *ignored set. A failed push names no digest
 * (nothing was stored): it is acknowledged before one is asked for.
 */
static int parse_action(json_t *detail, dm_action *action, const char **ignored, dm_error *err)
{
    const char *s;
    size_t n;
    if (dm_json_get_string(detail, "result", "detail.result", true, SIZE_MAX, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (strcmp(s, "SUCCESS") != 0) {
        *ignored = "failed action";
        return DM_OK;
    }
    if (dm_json_get_string(detail, "action-type", "detail.action-type", true, SIZE_MAX, &s, &n,
                           err) != DM_OK)
        return DM_EINVAL;
    if (strcmp(s, "PUSH") == 0)
        *action = DM_ACTION_PUSH;
    else if (strcmp(s, "DELETE") == 0)
        *action = DM_ACTION_DELETE;
    else
        *ignored = "action-type not handled";
    return DM_OK;
}

/* The registry host is not in the event: "<account>.dkr.ecr.<region>.amazonaws.com", and
 * China partitions use their own top-level domain. */
static char *registry_host(const ecr_envelope *env)
{
    bool china = env->region_len > 3 && memcmp(env->region, "cn-", 3) == 0;
    size_t cap = env->account_len + env->region_len + sizeof ".dkr.ecr..amazonaws.com.cn";
    char *host = dm_xmalloc(cap);
    snprintf(host, cap, "%.*s.dkr.ecr.%.*s.amazonaws.com%s", (int)env->account_len, env->account,
             (int)env->region_len, env->region, china ? ".cn" : "");
    return host;
}

/* The one event of a push or delete: the envelope's id, time and host, the detail's image. */
static int parse_event(const ecr_envelope *env, json_t *detail, dm_action action,
                       dm_event_list *list, dm_error *err)
{
    dm_event *ev = dm_event_list_add_registry(list, "ecr", action);
    ev->event_id = dm_xstrndup(env->id, env->id_len);
    ev->event_time_ms = env->time_ms;
    ev->registry = registry_host(env);

    const char *s;
    size_t n;
    if (dm_json_get_string(detail, "repository-name", "detail.repository-name", true,
                           ECR_MAX_REPOSITORY, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (dm_repository_check(s, n, "detail.repository-name",
                            "must contain only a-z, 0-9, '.', '_', '-' and '/'", err) != DM_OK)
        return DM_EINVAL;
    ev->repository = dm_xstrndup(s, n);

    if (dm_json_get_digest(detail, "image-digest", "detail.image-digest", ev->digest, err) != DM_OK)
        return DM_EINVAL;

    /* Deletes are per manifest, and AWS's own delete example still carries an image-tag that
     * must not be relied on: as for ACR, a delete carries no tag. Pushes by digest (platform
     * manifests) have none. */
    if (action == DM_ACTION_PUSH) {
        if (dm_json_get_string(detail, "image-tag", "detail.image-tag", false, ECR_MAX_TAG, &s, &n,
                               err) != DM_OK)
            return DM_EINVAL;
        if (s && n > 0)
            dm_event_add_tag(ev, s, n);
    }
    return dm_json_copy_string(detail, "manifest-media-type", "detail.manifest-media-type",
                               ECR_MAX_MEDIA_TYPE, &ev->media_type, err);
}

/* Everything after the envelope; *ignored set for what is acknowledged without an event. */
static int parse_detail(json_t *root, const ecr_envelope *env, dm_event_list *out, dm_error *err)
{
    if (strcmp(env->detail_type, "ECR Image Action") != 0) {
        out->ignored = "detail-type not handled";
        return DM_OK;
    }
    json_t *detail;
    if (dm_json_get_object(root, "detail", "detail", &detail, err) != DM_OK)
        return DM_EINVAL;
    dm_action action = DM_ACTION_PUSH;
    if (parse_action(detail, &action, &out->ignored, err) != DM_OK)
        return DM_EINVAL;
    if (out->ignored)
        return DM_OK;
    return parse_event(env, detail, action, out, err);
}

/* ------------------------------------------------------------------------------------------ */
/* API                                                                                          */
/* ------------------------------------------------------------------------------------------ */

int dm_ecr_parse(const char *body, size_t len, dm_event_list *out, dm_error *err)
{
    json_t *root = NULL;
    memset(out, 0, sizeof *out);
    if (dm_json_load_object(body, len, &root, err) != DM_OK)
        return DM_EINVAL;

    ecr_envelope env = {0};
    int rc = parse_envelope(root, &env, err);
    if (rc == DM_OK)
        rc = parse_detail(root, &env, out, err);
    json_decref(root);
    if (rc != DM_OK)
        dm_event_list_dispose(out); /* leaves it zeroed */
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Findings events: ECR Image Scan, Inspector2 Scan, Inspector2 Finding                        */
/* ------------------------------------------------------------------------------------------ */

#define ECR_MAX_ARN     1024
#define ECR_MAX_VULN_ID 256
#define ECR_MAX_PACKAGE 512
#define ECR_MAX_VERSION 256
#define ECR_MAX_PATH    4096
#define ECR_MAX_STAMP   64         /* the sender's own timestamp, kept raw */
#define ECR_MAX_COUNT   1000000000 /* six of them still fit a uint32_t sum */
#define ECR_COUNT_TOTAL (-1)       /* Inspector2 Scan's TOTAL: not a severity of its own */

typedef char ecr_path[128]; /* dm_error.field keeps 63 bytes; room for any index here */

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

/* A count key and the severity it adds to. */
typedef struct count_key {
    const char *key;
    int sev; /* a dm_severity, or ECR_COUNT_TOTAL */
} count_key;

/* Basic scanning: the ECR API's ImageScanFindings keys. INFORMATIONAL has no place of its own
 * in the summary and is folded into low. */
static const count_key basic_keys[] = {
    {"CRITICAL", DM_SEV_CRITICAL},
    {"HIGH", DM_SEV_HIGH},
    {"MEDIUM", DM_SEV_MEDIUM},
    {"LOW", DM_SEV_LOW},
    {"INFORMATIONAL", DM_SEV_LOW},
    {"UNDEFINED", DM_SEV_UNKNOWN},
    {NULL, 0},
};
#define BASIC_KEYS_TEXT \
    "must have only the keys CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNDEFINED"

/* Inspector's Severity enum, plus the TOTAL its scan events add. */
static const count_key inspector_keys[] = {
    {"CRITICAL", DM_SEV_CRITICAL}, {"HIGH", DM_SEV_HIGH},
    {"MEDIUM", DM_SEV_MEDIUM},     {"LOW", DM_SEV_LOW},
    {"INFORMATIONAL", DM_SEV_LOW}, {"UNTRIAGED", DM_SEV_UNKNOWN},
    {"TOTAL", ECR_COUNT_TOTAL},    {NULL, 0},
};
#define INSPECTOR_KEYS_TEXT \
    "must have only the keys CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNTRIAGED, TOTAL"
#define INSPECTOR_SEVERITY_TEXT \
    "must be one of CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNTRIAGED"

static const count_key *find_key(const count_key *keys, const char *k)
{
    for (; keys->key; keys++) {
        if (strcmp(keys->key, k) == 0)
            return keys;
    }
    return NULL;
}

/*
 * detail.finding-severity-counts into r->counts. A key appears only when its count is not
 * zero (basic scanning) or always (Inspector). Inspector's examples list CRITICAL, HIGH and
 * MEDIUM with a TOTAL larger than their sum: what TOTAL counts beyond the listed keys is
 * low, informational or untriaged, and is folded into low.
 */
static int parse_counts(json_t *detail, const count_key *keys, const char *keys_text,
                        dm_finding_report *r, dm_error *err)
{
    static const char path[] = "detail.finding-severity-counts";
    json_t *counts;
    if (dm_json_get_object(detail, "finding-severity-counts", path, &counts, err) != DM_OK)
        return DM_EINVAL;
    int64_t sum = 0, total = -1, by_sev[DM_SEV_COUNT] = {0};
    const char *k;
    json_t *v;
    json_object_foreach(counts, k, v)
    {
        const count_key *ck = find_key(keys, k);
        if (!ck)
            return dm_error_set(err, path, "%s", keys_text); /* the key is the sender's */
        ecr_path p;
        path_at(p, sizeof p, "%s.%s", path, ck->key);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return dm_error_set(err, p, "must be a non-negative integer");
        if (json_integer_value(v) > ECR_MAX_COUNT)
            return dm_error_set(err, p, "must be at most %d", ECR_MAX_COUNT);
        int64_t c = json_integer_value(v);
        if (ck->sev == ECR_COUNT_TOTAL) {
            total = c;
        } else {
            by_sev[ck->sev] += c;
            sum += c;
        }
    }
    if (total >= 0) {
        if (total < sum)
            return dm_error_set(err, "detail.finding-severity-counts.TOTAL",
                                "must be at least the sum of the other counts");
        by_sev[DM_SEV_LOW] += total - sum;
    }
    for (int i = 0; i < DM_SEV_COUNT; i++)
        r->counts[i] = (uint32_t)by_sev[i];
    return DM_OK;
}

/* Optional array of tag strings; "" entries say nothing. */
static int parse_tags(json_t *obj, const char *key, const char *path, dm_finding_report *r,
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
        ecr_path p;
        path_at(p, sizeof p, "%s[%zu]", path, i);
        if (dm_json_check_string(v, p, false, ECR_MAX_TAG, err) != DM_OK)
            return DM_EINVAL;
        if (json_string_length(v) > 0)
            dm_finding_report_add_tag(r, json_string_value(v), json_string_length(v));
    }
    return DM_OK;
}

/* A repository name as ECR spells it, checked as for pushes. */
static int check_repository(const char *s, size_t n, const char *path, dm_error *err)
{
    return dm_repository_check(s, n, path, "must contain only a-z, 0-9, '.', '_', '-' and '/'",
                               err);
}

static void set_target(dm_finding_report *r, const ecr_envelope *env, const char *digest,
                       const char *repo, size_t repo_len)
{
    char *host = registry_host(env);
    char *repository = dm_xstrndup(repo, repo_len);
    dm_finding_report_add_digest(r, digest, DM_REL_IMAGE, host, repository);
    free(host);
    free(repository);
}

/* The common start of both scan events: *ignored unless scan-status is @p complete. */
static int scan_status(json_t *detail, const char *complete, dm_finding_report *r, dm_error *err)
{
    const char *s;
    size_t n;
    if (dm_json_get_string(detail, "scan-status", "detail.scan-status", true, SIZE_MAX, &s, &n,
                           err) != DM_OK)
        return DM_EINVAL;
    if (strcmp(s, complete) != 0)
        r->ignored = "scan not complete";
    return DM_OK;
}

/* "ECR Image Scan" (basic scanning) and "Inspector2 Scan": counts for one image. */
static int parse_scan_counts(const ecr_envelope *env, json_t *detail, bool inspector,
                             dm_finding_report *r, dm_error *err)
{
    r->kind = DM_REPORT_COUNTS;
    snprintf(r->scanner, sizeof r->scanner, "%s", inspector ? "inspector" : "ecr-basic");
    if (scan_status(detail, inspector ? "INITIAL_SCAN_COMPLETE" : "COMPLETE", r, err) != DM_OK)
        return DM_EINVAL;
    if (r->ignored)
        return DM_OK;

    const char *s;
    size_t n;
    if (dm_json_get_string(detail, "repository-name", "detail.repository-name", true,
                           inspector ? ECR_MAX_ARN : ECR_MAX_REPOSITORY, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    /* Inspector names the repository by its ARN "arn:<partition>:ecr:<region>:<account>:
     * repository/<name>"; a plain name is taken as is. */
    if (inspector && n > 4 && memcmp(s, "arn:", 4) == 0) {
        const char *name = strstr(s, ":repository/");
        if (!name || strlen(name) != n - (size_t)(name - s))
            return dm_error_set(err, "detail.repository-name",
                                "must be a repository ARN (arn:...:repository/NAME) or a name");
        name += strlen(":repository/");
        n -= (size_t)(name - s);
        s = name;
    }
    if (n == 0 || n > ECR_MAX_REPOSITORY)
        return dm_error_set(err, "detail.repository-name",
                            "must name a repository of 1 to %d "
                            "bytes",
                            ECR_MAX_REPOSITORY);
    if (check_repository(s, n, "detail.repository-name", err) != DM_OK)
        return DM_EINVAL;
    char digest[DM_DIGEST_BUFLEN];
    if (dm_json_get_digest(detail, "image-digest", "detail.image-digest", digest, err) != DM_OK)
        return DM_EINVAL;
    set_target(r, env, digest, s, n);
    if (parse_tags(detail, "image-tags", "detail.image-tags", r, err) != DM_OK)
        return DM_EINVAL;
    return parse_counts(detail, inspector ? inspector_keys : basic_keys,
                        inspector ? INSPECTOR_KEYS_TEXT : BASIC_KEYS_TEXT, r, err);
}

/* An error about member M of an element is reported on the element's path with "M …" as the
 * text: the full path of a package member does not fit dm_error.field. */
static int nest_error(dm_error *err, const char *elem)
{
    if (!err)
        return DM_EINVAL;
    char text[sizeof err->field + sizeof err->text + 2];
    snprintf(text, sizeof text, "%s %s", err->field, err->text);
    return dm_error_set(err, elem, "%s", text);
}

/* installed = [epoch:]version[-release], the way dpkg and rpm spell a full version. */
static int package_version(json_t *pkg, char **out, dm_error *err)
{
    const char *ver, *rel;
    size_t vn, rn;
    if (dm_json_get_string(pkg, "version", "version", false, ECR_MAX_VERSION, &ver, &vn, err) !=
            DM_OK ||
        dm_json_get_string(pkg, "release", "release", false, ECR_MAX_VERSION, &rel, &rn, err) !=
            DM_OK)
        return DM_EINVAL;
    json_t *ep = dm_json_member(pkg, "epoch");
    if (ep &&
        (!json_is_integer(ep) || json_integer_value(ep) < 0 || json_integer_value(ep) > 0x7fffffff))
        return dm_error_set(err, "epoch", "must be a non-negative integer");
    if (!ver || vn == 0)
        return DM_OK;
    long long epoch = ep ? (long long)json_integer_value(ep) : 0;
    size_t cap = vn + rn + 32;
    char *s = dm_xmalloc(cap);
    int w = epoch > 0 ? snprintf(s, cap, "%lld:", epoch) : 0;
    snprintf(s + w, cap - (size_t)w, "%.*s%s%.*s", (int)vn, ver, rn ? "-" : "", (int)rn,
             rel ? rel : "");
    if (strlen(s) != (size_t)w + vn + (rn ? rn + 1 : 0)) {
        free(s);
        return dm_error_set(err, "version", "must not contain NUL characters");
    }
    *out = s;
    return DM_OK;
}

/* One vulnerablePackages[] entry as a finding of vulnerability @p id. */
static int parse_package(json_t *pkg, const char *elem, const char *id, const char *status,
                         dm_severity sev, dm_finding_report *r, dm_error *err)
{
    if (!json_is_object(pkg))
        return dm_error_set(err, elem, "must be an object");
    dm_finding *f = dm_finding_report_add(r);
    f->id = dm_xstrdup(id);
    f->status = dm_xstrdup(status);
    f->severity = sev;
    const char *s;
    size_t n;
    if (dm_json_get_string(pkg, "name", "name", true, ECR_MAX_PACKAGE, &s, &n, err) != DM_OK ||
        dm_json_copy_value(dm_json_member(pkg, "name"), "name", ECR_MAX_PACKAGE, 0, &f->package,
                           err) != DM_OK ||
        package_version(pkg, &f->installed, err) != DM_OK ||
        dm_json_copy_string(pkg, "fixedInVersion", "fixedInVersion", ECR_MAX_VERSION, &f->fixed,
                            err) != DM_OK ||
        dm_json_copy_string(pkg, "filePath", "filePath", ECR_MAX_PATH, &f->path, err) != DM_OK)
        return nest_error(err, elem);
    /* Inspector writes "NotAvailable" when there is no fix: absent, as for the scanners. */
    if (f->fixed && strcmp(f->fixed, "NotAvailable") == 0) {
        free(f->fixed);
        f->fixed = NULL;
    }
    return DM_OK;
}

/* detail.resources[]: every ECR container image the finding is about (one in practice). */
static int finding_images(const ecr_envelope *env, json_t *detail, dm_finding_report *r,
                          dm_error *err)
{
    json_t *res = dm_json_member(detail, "resources");
    if (!res)
        return dm_error_set(err, "detail.resources", "is required");
    if (!json_is_array(res))
        return dm_error_set(err, "detail.resources", "must be an array");
    size_t i;
    json_t *e;
    json_array_foreach(res, i, e)
    {
        ecr_path p;
        path_at(p, sizeof p, "detail.resources[%zu]", i);
        if (!json_is_object(e))
            return dm_error_set(err, p, "must be an object");
        json_t *details = dm_json_member(e, "details");
        json_t *img =
            json_is_object(details) ? dm_json_member(details, "awsEcrContainerImage") : NULL;
        if (!img)
            continue; /* another kind of resource */
        path_at(p, sizeof p, "detail.resources[%zu].details.awsEcrContainerImage", i);
        if (!json_is_object(img))
            return dm_error_set(err, p, "must be an object");
        char digest[DM_DIGEST_BUFLEN];
        const char *repo, *acct;
        size_t rn, an;
        if (dm_json_get_digest(img, "imageHash", "imageHash", digest, err) != DM_OK ||
            dm_json_get_string(img, "repositoryName", "repositoryName", true, ECR_MAX_REPOSITORY,
                               &repo, &rn, err) != DM_OK ||
            check_repository(repo, rn, "repositoryName", err) != DM_OK ||
            dm_json_get_string(img, "registry", "registry", false, SIZE_MAX, &acct, &an, err) !=
                DM_OK)
            return nest_error(err, p);
        /* The image's own registry account: with a delegated administrator the event may
         * come through another account than the one that holds the repository. */
        ecr_envelope at = *env;
        if (acct && an > 0) {
            bool digits = an == ECR_ACCOUNT_LEN;
            for (size_t k = 0; digits && k < an; k++)
                digits = acct[k] >= '0' && acct[k] <= '9';
            if (!digits) {
                dm_error_set(err, "registry", "must be 12 digits");
                return nest_error(err, p);
            }
            at.account = acct;
            at.account_len = an;
        }
        set_target(r, &at, digest, repo, rn);
        if (parse_tags(img, "imageTags", "imageTags", r, err) != DM_OK)
            return nest_error(err, p);
    }
    if (r->ndigests == 0)
        return dm_error_set(err, "detail.resources",
                            "must name an ECR container image (details.awsEcrContainerImage)");
    return DM_OK;
}

static int finding_status(json_t *detail, const char **status, dm_error *err)
{
    static const char *const statuses[] = {"ACTIVE", "SUPPRESSED", "CLOSED"};
    size_t n;
    if (dm_json_get_string(detail, "status", "detail.status", true, SIZE_MAX, status, &n, err) !=
        DM_OK)
        return DM_EINVAL;
    for (size_t i = 0; i < DM_ARRAY_LEN(statuses); i++) {
        if (strcmp(*status, statuses[i]) == 0)
            return DM_OK;
    }
    return dm_error_set(err, "detail.status", "must be one of ACTIVE, SUPPRESSED, CLOSED");
}

/* "Inspector2 Finding": one vulnerability of one image, one finding per package. */
static int parse_inspector_finding(const ecr_envelope *env, json_t *detail, dm_finding_report *r,
                                   dm_error *err)
{
    r->kind = DM_REPORT_UPDATE;
    snprintf(r->scanner, sizeof r->scanner, "inspector");
    const char *s, *status;
    size_t n;
    if (dm_json_get_string(detail, "type", "detail.type", true, SIZE_MAX, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    /* NETWORK_REACHABILITY and CODE_VULNERABILITY are about EC2 instances and Lambda code. */
    if (strcmp(s, "PACKAGE_VULNERABILITY") != 0) {
        r->ignored = "finding type not handled";
        return DM_OK;
    }
    dm_severity sev = DM_SEV_UNKNOWN;
    if (dm_json_get_string(detail, "findingArn", "detail.findingArn", true, ECR_MAX_ARN, &s, &n,
                           err) != DM_OK ||
        dm_json_copy_value(dm_json_member(detail, "findingArn"), "detail.findingArn", ECR_MAX_ARN,
                           0, &r->ref, err) != DM_OK ||
        finding_status(detail, &status, err) != DM_OK)
        return DM_EINVAL;
    r->removed = strcmp(status, "ACTIVE") != 0;
    if (dm_json_get_string(detail, "severity", "detail.severity", true, SIZE_MAX, &s, &n, err) !=
        DM_OK)
        return DM_EINVAL;
    const count_key *ck = find_key(inspector_keys, s);
    if (!ck || ck->sev == ECR_COUNT_TOTAL)
        return dm_error_set(err, "detail.severity", INSPECTOR_SEVERITY_TEXT);
    sev = (dm_severity)ck->sev;
    if (dm_json_copy_string(detail, "updatedAt", "detail.updatedAt", ECR_MAX_STAMP, &r->updated_at,
                            err) != DM_OK ||
        finding_images(env, detail, r, err) != DM_OK)
        return DM_EINVAL;

    static const char pvd_path[] = "detail.packageVulnerabilityDetails";
    json_t *pvd, *pkgs;
    if (dm_json_get_object(detail, "packageVulnerabilityDetails", pvd_path, &pvd, err) != DM_OK ||
        dm_json_get_string(pvd, "vulnerabilityId",
                           "detail.packageVulnerabilityDetails."
                           "vulnerabilityId",
                           true, ECR_MAX_VULN_ID, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (strlen(s) != n)
        return dm_error_set(err, "detail.packageVulnerabilityDetails.vulnerabilityId",
                            "must not contain NUL characters");
    static const char pkgs_path[] = "detail.packageVulnerabilityDetails.vulnerablePackages";
    pkgs = dm_json_member(pvd, "vulnerablePackages");
    if (!pkgs)
        return dm_error_set(err, pkgs_path, "is required");
    if (!json_is_array(pkgs))
        return dm_error_set(err, pkgs_path, "must be an array");
    if (json_array_size(pkgs) == 0)
        return dm_error_set(err, pkgs_path, "must not be empty");
    size_t i;
    json_t *pkg;
    json_array_foreach(pkgs, i, pkg)
    {
        ecr_path p;
        path_at(p, sizeof p, "%s[%zu]", pkgs_path, i);
        if (parse_package(pkg, p, s, status, sev, r, err) != DM_OK)
            return DM_EINVAL;
    }
    return DM_OK;
}

/* Which findings event this is, from source and detail-type: 0 none (dm_ecr_parse's), 1
 * basic scan, 2 Inspector2 Scan, 3 Inspector2 Finding. Other Inspector events (coverage, ...)
 * are none: dm_ecr_parse refuses them as another service's, which tells the operator that the
 * EventBridge rule matches more than it should. */
static int finding_kind(json_t *root)
{
    const char *src = json_string_value(json_object_get(root, "source"));
    const char *dt = json_string_value(json_object_get(root, "detail-type"));
    if (!src || !dt)
        return 0;
    if (strcmp(src, "aws.ecr") == 0)
        return strcmp(dt, "ECR Image Scan") == 0 ? 1 : 0;
    if (strcmp(src, "aws.inspector2") != 0)
        return 0;
    if (strcmp(dt, "Inspector2 Scan") == 0)
        return 2;
    return strcmp(dt, "Inspector2 Finding") == 0 ? 3 : 0;
}

int dm_ecr_parse_finding(const char *body, size_t len, dm_finding_report *out, dm_error *err)
{
    json_t *root = NULL;
    memset(out, 0, sizeof *out);
    if (dm_json_load_object(body, len, &root, err) != DM_OK)
        return DM_EINVAL;
    int kind = finding_kind(root);
    if (kind == 0) {
        json_decref(root);
        return DM_ECR_NOT_FINDING;
    }
    ecr_envelope env = {0};
    json_t *detail = NULL;
    int rc = parse_envelope_rest(root, &env, err);
    if (rc == DM_OK)
        rc = dm_json_get_object(root, "detail", "detail", &detail, err);
    if (rc == DM_OK) {
        out->event_id = dm_xstrndup(env.id, env.id_len);
        out->event_time_ms = env.time_ms;
        if (kind == 3)
            rc = parse_inspector_finding(&env, detail, out, err);
        else
            rc = parse_scan_counts(&env, detail, kind == 2, out, err);
    }
    json_decref(root);
    if (rc != DM_OK) {
        dm_finding_report_dispose(out);
        return rc;
    }
    if (out->ignored) {
        /* acknowledged without a report: nothing else set */
        const char *why = out->ignored;
        dm_finding_report_dispose(out);
        out->ignored = why;
        return DM_OK;
    }
    if (out->kind == DM_REPORT_UPDATE)
        dm_finding_report_finish(out, 0);
    return DM_OK;
}
