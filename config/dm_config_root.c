/* dm_config_root.c - load and validate the JSON configuration file: the entry points, the root
 * object and its small sections (listen, sources, correlation, limits, api). The larger
 * sections have a file each; dm_config_loader.h says which, and how the loader reports errors.
 */
#include "dm_config_loader.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_finding.h"
#include "dm_log.h"

#define CONFIG_FILE_MAX (4 * 1024 * 1024)
#define ROUTE_PATH_MAX  256
/* Ten years: far beyond any sensible window, and seconds * 1000 stays far from overflow in
 * every consumer that works in milliseconds. */
#define SECONDS_MAX     315360000LL

/* Routes served by the daemon itself (README.md, "HTTP API"); a source must not shadow them. */
static const char *const reserved_paths[] = {"/healthz",     "/readyz",           "/metrics",
                                             "/v1/mappings", "/v1/events/stream", "/v1/exposure"};
static const char *const reserved_prefixes[] = {"/v1/images/", "/ui/"};

/*---- listen -----------------------------------------------------------------------------*/

static int parse_listen(dm_cfg_loader *ld, const char *s, dm_config *c)
{
    char sb[SHOW_BUF];
    const char *colon;
    char *host = NULL;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            goto bad_form;
        host = dm_xstrndup(s + 1, (size_t)(close - s - 1));
        colon = close + 1;
        if (!dm_cfg_is_ipv6(host))
            goto bad_host;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            goto bad_form;
        host = dm_xstrndup(s, (size_t)(colon - s));
        if (strchr(host, ':')) {
            free(host);
            return dm_cfg_fail(ld, DM_EINVAL, "listen",
                               "\"%s\": an IPv6 address must be in brackets, "
                               "e.g. \"[::1]:8080\"",
                               dm_cfg_show(s, sb));
        }
        if (strcmp(host, "localhost") == 0) {
            free(host);
            host = dm_xstrdup("127.0.0.1");
        } else if (!dm_cfg_is_ipv4(host)) {
            goto bad_host;
        }
    }
    if (!dm_cfg_parse_port(colon + 1, strlen(colon + 1), 0, &c->listen_port)) {
        free(host);
        return dm_cfg_fail(ld, DM_EINVAL, "listen", "\"%s\": port must be 0..65535",
                           dm_cfg_show(s, sb));
    }
    c->listen_host = host;
    return DM_OK;

bad_host:
    free(host);
    return dm_cfg_fail(ld, DM_EINVAL, "listen",
                       "\"%s\": host must be an IPv4 literal, an [IPv6] literal or localhost",
                       dm_cfg_show(s, sb));
bad_form:
    free(host);
    return dm_cfg_fail(ld, DM_EINVAL, "listen", "\"%s\" must have the form \"host:port\"",
                       dm_cfg_show(s, sb));
}

/*---- Sources ----------------------------------------------------------------------------*/

static int check_route_path(dm_cfg_loader *ld, const char *pb, const char *p)
{
    char sb[SHOW_BUF];
    if (p[0] != '/')
        return dm_cfg_fail(ld, DM_EINVAL, pb, "must start with \"/\"");
    if (strlen(p) > ROUTE_PATH_MAX)
        return dm_cfg_fail(ld, DM_EINVAL, pb, "must be at most %d characters", ROUTE_PATH_MAX);
    for (const char *s = p; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '?' || ch == '#')
            return dm_cfg_fail(ld, DM_EINVAL, pb, "must not contain '?' or '#'");
        if (ch <= 0x20 || ch >= 0x7f)
            return dm_cfg_fail(ld, DM_EINVAL, pb, "must be printable ASCII without spaces");
    }
    for (size_t i = 0; i < DM_ARRAY_LEN(reserved_paths); i++)
        if (strcmp(p, reserved_paths[i]) == 0)
            return dm_cfg_fail(ld, DM_EINVAL, pb, "\"%s\" is reserved for a built-in route",
                               dm_cfg_show(p, sb));
    for (size_t i = 0; i < DM_ARRAY_LEN(reserved_prefixes); i++)
        if (strncmp(p, reserved_prefixes[i], strlen(reserved_prefixes[i])) == 0)
            return dm_cfg_fail(ld, DM_EINVAL, pb, "\"%s\" is reserved for a built-in route",
                               dm_cfg_show(p, sb));
    return DM_OK;
}

/* sources[].rate: {"per_second": N (> 0, at most 1000000, may be fractional), "burst": M}. */
static int parse_rate(dm_cfg_loader *ld, const json_t *s, const char *path, dm_rate_conf *out)
{
    static const char *const keys[] = {"per_second", "burst", NULL};
    char pb[PATH_BUF];
    const json_t *o;
    long long v;
    int rc;

    if ((rc = dm_cfg_get_obj(ld, s, path, "rate", &o)) < 0 || !o)
        return rc < 0 ? rc : DM_OK;
    const char *rp = dm_cfg_key_path(pb, path, "rate");
    if ((rc = dm_cfg_check_keys(ld, o, rp, keys)) < 0)
        return rc;
    const json_t *ps = json_object_get(o, "per_second");
    double n = json_is_number(ps) ? json_number_value(ps) : 0;
    if (!json_is_number(ps) || !(n > 0 && n <= 1000000)) {
        char kb[PATH_BUF];
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(kb, rp, "per_second"),
                           "must be a number greater than 0 and at most 1000000");
    }
    long long def = (long long)n < n ? (long long)n + 1 : (long long)n;
    if ((rc = dm_cfg_get_int(ld, o, rp, "burst", 1, 10000000, def < 1 ? 1 : def, &v)) < 0)
        return rc;
    out->per_second = n;
    out->burst = (int)v;
    return DM_OK;
}

/* sources[].clusters (k8s only): the cluster names a snapshot to this source may carry, so a
 * cluster's credential cannot replace another cluster's inventory (docs/workloads.md). The
 * names as dm_k8s_parse accepts them: 1..128 of [A-Za-z0-9._:-]. */
static int parse_clusters(dm_cfg_loader *ld, const json_t *s, const char *path, dm_source_conf *out)
{
    const json_t *a = json_object_get(s, "clusters");
    char pb[PATH_BUF];
    if (!a)
        return DM_OK;
    if (out->type != DM_SRC_K8S)
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "clusters"),
                           "only a \"k8s\" source names clusters");
    if (!json_is_array(a) || json_array_size(a) == 0)
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "clusters"),
                           "must be a non-empty array of cluster names");
    out->clusters = dm_xcalloc(json_array_size(a), sizeof *out->clusters);
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *name = json_string_value(json_array_get(a, i));
        size_t n = name ? strlen(name) : 0;
        bool ok = n >= 1 && n <= 128 &&
                  strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789._:-") == n;
        if (!ok)
            return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_pathf(pb, "%s.clusters[%zu]", path, i),
                               "must be a cluster name: 1 to 128 of A-Z a-z 0-9 . _ : -");
        out->clusters[out->nclusters++] = dm_xstrdup(name);
    }
    return DM_OK;
}

static int parse_source(dm_cfg_loader *ld, const json_t *s, const char *path, dm_source_conf *out)
{
    static const char *const keys[] = {"type", "path", "auth", "rate", "clusters", NULL};
    char pb[PATH_BUF], sb[SHOW_BUF];
    const char *type, *route;
    int rc;

    if (!json_is_object(s))
        return dm_cfg_fail(ld, DM_EINVAL, path, "must be an object");
    if ((rc = dm_cfg_check_keys(ld, s, path, keys)) < 0 ||
        (rc = dm_cfg_get_str(ld, s, path, "type", true, &type)) < 0)
        return rc;
    if (!type)
        return dm_cfg_fail(ld, DM_EINVAL, path, "\"type\" is required");
    dm_cfg_key_path(pb, path, "type");
    if (strcmp(type, "acr") == 0)
        out->type = DM_SRC_ACR;
    else if (strcmp(type, "build") == 0)
        out->type = DM_SRC_BUILD;
    else if (strcmp(type, "ecr") == 0)
        out->type = DM_SRC_ECR;
    else if (strcmp(type, "gar") == 0)
        out->type = DM_SRC_GAR;
    else if (strcmp(type, "k8s") == 0)
        out->type = DM_SRC_K8S;
    else if (strcmp(type, "scan") == 0)
        out->type = DM_SRC_SCAN;
    else
        return dm_cfg_fail(ld, DM_EINVAL, pb,
                           "unknown source type \"%s\" (expected \"acr\", \"ecr\", \"gar\", "
                           "\"build\", \"scan\" or \"k8s\")",
                           dm_cfg_show(type, sb));

    if ((rc = dm_cfg_get_str(ld, s, path, "path", true, &route)) < 0)
        return rc;
    if (route && (rc = check_route_path(ld, dm_cfg_key_path(pb, path, "path"), route)) < 0)
        return rc;
    if (!route)
        route = out->type == DM_SRC_ACR    ? "/v1/registry/acr"
                : out->type == DM_SRC_ECR  ? "/v1/registry/ecr"
                : out->type == DM_SRC_GAR  ? "/v1/registry/gar"
                : out->type == DM_SRC_K8S  ? "/v1/workloads"
                : out->type == DM_SRC_SCAN ? "/v1/findings"
                                           : "/v1/builds";
    out->path = dm_xstrdup(route);
    if ((rc = parse_clusters(ld, s, path, out)) < 0 ||
        (rc = parse_rate(ld, s, path, &out->rate)) < 0 ||
        (rc = dm_cfg_parse_auth_list(ld, s, path, &out->auth)) < 0)
        return rc;
    /* An SNS signature covers only the envelope's documented fields: it authenticates the
     * EventBridge event in "Message", nothing else a body might carry. */
    for (size_t i = 0; i < out->auth.n; i++) {
        if (out->auth.v[i].type == DM_AUTH_SNS && out->type != DM_SRC_ECR)
            return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_pathf(pb, "%s.auth[%zu].type", path, i),
                               "\"sns\" authenticates only \"ecr\" sources");
    }
    return DM_OK;
}

static int parse_sources(dm_cfg_loader *ld, const json_t *root, dm_config *c)
{
    const json_t *a = json_object_get(root, "sources");
    char pb[PATH_BUF], sb[SHOW_BUF];
    int rc;

    if (!a)
        return dm_cfg_fail(ld, DM_EINVAL, "", "\"sources\" is required");
    if (!json_is_array(a) || json_array_size(a) == 0)
        return dm_cfg_fail(ld, DM_EINVAL, "sources", "must be a non-empty array");
    c->nsources = json_array_size(a);
    c->sources = dm_xcalloc(c->nsources, sizeof(*c->sources));
    for (size_t i = 0; i < c->nsources; i++) {
        if ((rc = parse_source(ld, json_array_get(a, i), dm_cfg_index_path(pb, "sources", i),
                               &c->sources[i])) < 0)
            return rc;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->sources[i].path, c->sources[j].path) == 0) {
                char pp[PATH_BUF];
                dm_cfg_pathf(pp, "sources[%zu].path", i);
                return dm_cfg_fail(ld, DM_EINVAL, pp, "\"%s\" is already used by sources[%zu]",
                                   dm_cfg_show(c->sources[i].path, sb), j);
            }
        }
    }
    return DM_OK;
}

/*---- Routing ----------------------------------------------------------------------------*/

/* routing: {"min_severity": "critical" | "high" | "medium" | "low" | "unknown"}. */
static int parse_routing(dm_cfg_loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {"min_severity", NULL};
    const json_t *o;
    const char *s;
    int rc;

    c->routing.min_severity = DM_SEV_HIGH;
    if ((rc = dm_cfg_get_obj(ld, root, "", "routing", &o)) < 0 || !o)
        return rc < 0 ? rc : DM_OK;
    if ((rc = dm_cfg_check_keys(ld, o, "routing", keys)) < 0 ||
        (rc = dm_cfg_get_str(ld, o, "routing", "min_severity", false, &s)) < 0)
        return rc;
    dm_severity sev;
    if (s && !dm_severity_from_name(s, strlen(s), &sev))
        return dm_cfg_fail(ld, DM_EINVAL, "routing.min_severity",
                           "must be one of \"critical\", \"high\", \"medium\", \"low\", "
                           "\"unknown\"");
    if (s)
        c->routing.min_severity = (int)sev;
    return DM_OK;
}

/*---- Top level --------------------------------------------------------------------------*/

static int parse_correlation(dm_cfg_loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {
        "window_seconds",      "grace_seconds",        "max_clock_skew_seconds",
        "mapping_ttl_seconds", "sweep_interval_ms",    "sweep_batch",
        "report_untagged",     "findings_ttl_seconds", NULL};
    const json_t *o;
    long long v;
    int rc;

    if ((rc = dm_cfg_get_obj(ld, root, "", "correlation", &o)) < 0)
        return rc;
    if (o && (rc = dm_cfg_check_keys(ld, o, "correlation", keys)) < 0)
        return rc;
    const char *p = "correlation";
    if ((rc = dm_cfg_get_int(ld, o, p, "window_seconds", 1, SECONDS_MAX, 1800, &v)) < 0)
        return rc;
    c->correlation.window_seconds = v;
    if ((rc = dm_cfg_get_int(ld, o, p, "grace_seconds", 0, SECONDS_MAX, 60, &v)) < 0)
        return rc;
    c->correlation.grace_seconds = v;
    if ((rc = dm_cfg_get_int(ld, o, p, "max_clock_skew_seconds", 0, SECONDS_MAX, 300, &v)) < 0)
        return rc;
    c->correlation.max_clock_skew_seconds = v;
    if ((rc = dm_cfg_get_int(ld, o, p, "mapping_ttl_seconds", 1, SECONDS_MAX, 7776000, &v)) < 0)
        return rc;
    c->correlation.mapping_ttl_seconds = v;
    /* A mapping must outlive the parked events that can still join into it. */
    long long min_ttl = c->correlation.window_seconds + c->correlation.grace_seconds;
    if (v < min_ttl)
        return dm_cfg_fail(ld, DM_EINVAL, "correlation.mapping_ttl_seconds",
                           "must be >= window_seconds + grace_seconds (%lld)", min_ttl);
    if ((rc = dm_cfg_get_int(ld, o, p, "sweep_interval_ms", 10, 60000, 1000, &v)) < 0)
        return rc;
    c->correlation.sweep_interval_ms = (int)v;
    if ((rc = dm_cfg_get_int(ld, o, p, "sweep_batch", 1, 10000, 256, &v)) < 0)
        return rc;
    c->correlation.sweep_batch = (int)v;
    const json_t *ru = o ? json_object_get(o, "report_untagged") : NULL;
    if (ru && !json_is_boolean(ru))
        return dm_cfg_fail(ld, DM_EINVAL, "correlation.report_untagged", "must be true or false");
    c->correlation.report_untagged = ru && json_is_true(ru);
    if ((rc = dm_cfg_get_int(ld, o, p, "findings_ttl_seconds", 1, SECONDS_MAX,
                             c->correlation.mapping_ttl_seconds, &v)) < 0)
        return rc;
    c->correlation.findings_ttl_seconds = v;
    return DM_OK;
}

/* k8s: {"internal_ingress_classes": ["nginx-internal", …]} (docs/workloads.md, "Exposure"). */
static int parse_k8s(dm_cfg_loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {"internal_ingress_classes", NULL};
    const json_t *o;
    int rc;

    if ((rc = dm_cfg_get_obj(ld, root, "", "k8s", &o)) < 0 || !o)
        return rc < 0 ? rc : DM_OK;
    if ((rc = dm_cfg_check_keys(ld, o, "k8s", keys)) < 0)
        return rc;
    const json_t *a = json_object_get(o, "internal_ingress_classes");
    if (!a)
        return DM_OK;
    if (!json_is_array(a))
        return dm_cfg_fail(ld, DM_EINVAL, "k8s.internal_ingress_classes",
                           "must be an array of ingress class names");
    c->k8s.internal_ingress_classes = dm_xcalloc(json_array_size(a) + 1, sizeof(char *));
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *name = json_string_value(json_array_get(a, i));
        /* An ingress class name is a Kubernetes object name: 1..253 of [a-z0-9.-]. */
        if (!name || !*name || strlen(name) > 253 ||
            strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789.-") != strlen(name)) {
            char pb[PATH_BUF];
            return dm_cfg_fail(ld, DM_EINVAL,
                               dm_cfg_pathf(pb, "k8s.internal_ingress_classes[%zu]", i),
                               "must be an ingress class name (1..253 of a-z, 0-9, '.', '-')");
        }
        c->k8s.internal_ingress_classes[c->k8s.ninternal_ingress_classes++] = dm_xstrdup(name);
    }
    return DM_OK;
}

/* What bounds a stranger's connections and an authenticated sender's work per digest. */
static int parse_limits_attack(dm_cfg_loader *ld, const json_t *o, const char *p, dm_config *c)
{
    long long v;
    int rc;

    if ((rc = dm_cfg_get_int(ld, o, p, "max_connections", 1, 1000000, 4096, &v)) < 0)
        return rc;
    c->limits.max_connections = (int)v;
    if ((rc = dm_cfg_get_int(ld, o, p, "header_timeout_ms", 100, 600000, 10000, &v)) < 0)
        return rc;
    c->limits.header_timeout_ms = (int)v;
    if ((rc = dm_cfg_get_int(ld, o, p, "body_timeout_ms", 100, 3600000, 30000, &v)) < 0)
        return rc;
    c->limits.body_timeout_ms = (int)v;
    if ((rc = dm_cfg_get_int(ld, o, p, "max_body_memory_bytes", 65536, 68719476736LL, 67108864,
                             &v)) < 0)
        return rc;
    c->limits.max_body_memory_bytes = (size_t)v;
    if (c->limits.max_body_memory_bytes < c->limits.max_body_bytes)
        return dm_cfg_fail(ld, DM_EINVAL, "limits.max_body_memory_bytes",
                           "must be at least limits.max_body_bytes (%zu): one body must fit",
                           c->limits.max_body_bytes);
    if ((rc = dm_cfg_get_int(ld, o, p, "max_builds_per_digest", 1, 100000, 256, &v)) < 0)
        return rc;
    c->limits.max_builds_per_digest = (int)v;
    if ((rc = dm_cfg_get_int(ld, o, p, "max_locations_per_digest", 1, 100000, 256, &v)) < 0)
        return rc;
    c->limits.max_locations_per_digest = (int)v;
    if ((rc = dm_cfg_get_int(ld, o, p, "max_tags_per_location", 1, 1024, 64, &v)) < 0)
        return rc;
    c->limits.max_tags_per_location = (int)v;
    if ((rc = dm_cfg_get_int(ld, o, p, "max_findings_per_digest", 1, 100000,
                             DM_FINDINGS_MAX_DEFAULT, &v)) < 0)
        return rc;
    c->limits.max_findings_per_digest = (int)v;
    /* k8s snapshots (docs/workloads.md "Bounds"): each stored in one script call per shard */
    if ((rc = dm_cfg_get_int(ld, o, p, "max_snapshot_items", 1, 1000000, 20000, &v)) < 0)
        return rc;
    c->limits.max_snapshot_items = (int)v;
    if ((rc = dm_cfg_get_int(ld, o, p, "max_workloads_per_snapshot", 1, 1000000, 10000, &v)) < 0)
        return rc;
    c->limits.max_workloads_per_snapshot = (int)v;
    if ((rc = dm_cfg_get_int(ld, o, p, "max_snapshot_workload_images", 1, 10000000, 50000, &v)) < 0)
        return rc;
    c->limits.max_snapshot_workload_images = (int)v;
    return DM_OK;
}

static int parse_limits(dm_cfg_loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {"max_body_bytes",
                                       "max_header_bytes",
                                       "max_inflight",
                                       "idle_timeout_seconds",
                                       "max_connections",
                                       "header_timeout_ms",
                                       "body_timeout_ms",
                                       "max_body_memory_bytes",
                                       "max_builds_per_digest",
                                       "max_locations_per_digest",
                                       "max_tags_per_location",
                                       "max_findings_per_digest",
                                       "max_snapshot_items",
                                       "max_workloads_per_snapshot",
                                       "max_snapshot_workload_images",
                                       NULL};
    const json_t *o;
    const char *p = "limits";
    long long v;
    int rc;

    if ((rc = dm_cfg_get_obj(ld, root, "", "limits", &o)) < 0)
        return rc;
    if (o && (rc = dm_cfg_check_keys(ld, o, p, keys)) < 0)
        return rc;
    if ((rc = dm_cfg_get_int(ld, o, p, "max_body_bytes", 1, 67108864, 1048576, &v)) < 0)
        return rc;
    c->limits.max_body_bytes = (size_t)v;
    if ((rc = dm_cfg_get_int(ld, o, p, "max_header_bytes", 1024, 1048576, 16384, &v)) < 0)
        return rc;
    c->limits.max_header_bytes = (size_t)v;
    if ((rc = dm_cfg_get_int(ld, o, p, "max_inflight", 1, 1000000, 10000, &v)) < 0)
        return rc;
    c->limits.max_inflight = (int)v;
    if ((rc = dm_cfg_get_int(ld, o, p, "idle_timeout_seconds", 1, 3600, 30, &v)) < 0)
        return rc;
    c->limits.idle_timeout_seconds = (int)v;
    return parse_limits_attack(ld, o, p, c);
}

static int parse_api(dm_cfg_loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {"auth", "max_stream_clients", NULL};
    const json_t *o;
    long long v;
    int rc;

    if ((rc = dm_cfg_get_obj(ld, root, "", "api", &o)) < 0)
        return rc;
    if (o && (rc = dm_cfg_check_keys(ld, o, "api", keys)) < 0)
        return rc;
    if ((rc = dm_cfg_get_int(ld, o, "api", "max_stream_clients", 0, 10000, 64, &v)) < 0)
        return rc;
    c->api_max_stream_clients = (int)v;
    if (!o)
        return DM_OK;
    if ((rc = dm_cfg_parse_auth_list(ld, o, "api", &c->api_auth)) < 0)
        return rc;
    c->api_configured = true;
    return DM_OK;
}

/* tls: {"cert_file", "key_file", "min_version": "1.2" | "1.3"}. The files are read when the
 * server starts (and on SIGHUP), where a bad file refuses to start. */
static int parse_tls(dm_cfg_loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {"cert_file", "key_file", "min_version", NULL};
    const json_t *o;
    const char *cert, *key, *ver;
    int rc;

    c->tls.min_version = 0x0303;
    if ((rc = dm_cfg_get_obj(ld, root, "", "tls", &o)) < 0 || !o)
        return rc < 0 ? rc : DM_OK;
    if ((rc = dm_cfg_check_keys(ld, o, "tls", keys)) < 0 ||
        (rc = dm_cfg_get_str(ld, o, "tls", "cert_file", true, &cert)) < 0 ||
        (rc = dm_cfg_get_str(ld, o, "tls", "key_file", true, &key)) < 0 ||
        (rc = dm_cfg_get_str(ld, o, "tls", "min_version", true, &ver)) < 0)
        return rc;
    if (!cert || !key)
        return dm_cfg_fail(ld, DM_EINVAL, "tls", "\"cert_file\" and \"key_file\" are required");
    if (ver && strcmp(ver, "1.2") != 0 && strcmp(ver, "1.3") != 0)
        return dm_cfg_fail(ld, DM_EINVAL, "tls.min_version", "must be \"1.2\" or \"1.3\"");
    if (ver && strcmp(ver, "1.3") == 0)
        c->tls.min_version = 0x0304;
    c->tls.cert_file = dm_cfg_resolve_path(ld, cert);
    c->tls.key_file = dm_cfg_resolve_path(ld, key);
    return DM_OK;
}

static int parse_root(dm_cfg_loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {"listen",  "workers",     "data_dir", "log_level", "tls",
                                       "redis",   "correlation", "limits",   "sources",   "api",
                                       "outputs", "spool",       "k8s",      "routing",   NULL};
    const char *s;
    long long v;
    dm_log_level lvl;
    int rc;

    if ((rc = dm_cfg_check_keys(ld, root, "", keys)) < 0)
        return rc;
    if ((rc = parse_tls(ld, root, c)) < 0)
        return rc;

    if ((rc = dm_cfg_get_str(ld, root, "", "listen", true, &s)) < 0 ||
        (rc = parse_listen(ld, s ? s : "127.0.0.1:8080", c)) < 0)
        return rc;
    if ((rc = dm_cfg_get_int(ld, root, "", "workers", 1, 64, 2, &v)) < 0)
        return rc;
    c->workers = (int)v;
    if ((rc = dm_cfg_get_str(ld, root, "", "data_dir", true, &s)) < 0)
        return rc;
    c->data_dir = dm_xstrdup(s ? s : "var");
    if ((rc = dm_cfg_get_str(ld, root, "", "log_level", false, &s)) < 0)
        return rc;
    if (s && dm_log_parse_level(s, &lvl) != DM_OK)
        return dm_cfg_fail(ld, DM_EINVAL, "log_level",
                           "must be one of \"debug\", \"info\", \"warn\", \"error\"");
    c->log_level = dm_xstrdup(s ? s : "info");

    if ((rc = dm_cfg_parse_redis(ld, root, c)) < 0 || (rc = parse_correlation(ld, root, c)) < 0 ||
        (rc = parse_limits(ld, root, c)) < 0 || (rc = parse_sources(ld, root, c)) < 0 ||
        (rc = parse_api(ld, root, c)) < 0 || (rc = dm_cfg_parse_outputs(ld, root, c)) < 0 ||
        (rc = dm_cfg_parse_spool(ld, root, c)) < 0 || (rc = parse_k8s(ld, root, c)) < 0 ||
        (rc = parse_routing(ld, root, c)) < 0)
        return rc;
    return DM_OK;
}

/*---- API --------------------------------------------------------------------------------*/

static int load(const char *json, size_t len, const char *base_dir, unsigned flags, dm_config **out,
                char *err, size_t errlen)
{
    dm_cfg_loader ld = {.err = err, .errlen = errlen, .base_dir = base_dir, .flags = flags};
    json_error_t jerr;
    dm_config *c = NULL;
    int rc;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    /* Duplicate keys are refused: with "last one wins", a second "auth" further down could
     * quietly replace the one a reviewer checked. Without JSON_ALLOW_NUL, "\u0000" is refused
     * too, so no string or key we read can be silently truncated at a NUL. */
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return dm_cfg_fail(&ld, DM_EINVAL, "", "invalid JSON at line %d, column %d: %s", jerr.line,
                           jerr.column, jerr.text);
    if (!json_is_object(root)) {
        rc = dm_cfg_fail(&ld, DM_EINVAL, "", "the configuration must be a JSON object");
        goto fail;
    }
    c = dm_xcalloc(1, sizeof(*c));
    if ((rc = parse_root(&ld, root, c)) < 0)
        goto fail;
    json_decref(root);
    *out = c;
    return DM_OK;

fail:
    dm_config_free(c);
    json_decref(root);
    return rc;
}

int dm_config_load_buffer(const char *json, size_t len, const char *base_dir, dm_config **out,
                          char *err, size_t errlen)
{
    return load(json, len, base_dir, 0, out, err, errlen);
}

int dm_config_load_buffer_opts(const char *json, size_t len, const char *base_dir, unsigned flags,
                               dm_config **out, char *err, size_t errlen)
{
    return load(json, len, base_dir, flags, out, err, errlen);
}

int dm_config_load_file(const char *path, dm_config **out, char *err, size_t errlen)
{
    return dm_config_load_file_opts(path, 0, out, err, errlen);
}

int dm_config_load_file_opts(const char *path, unsigned flags, dm_config **out, char *err,
                             size_t errlen)
{
    dm_cfg_loader ld = {.err = err, .errlen = errlen};
    unsigned char *buf = NULL;
    size_t len = 0;
    char sb[SHOW_BUF];

    *out = NULL;
    int rc = dm_cfg_read_file(path, CONFIG_FILE_MAX, &buf, &len);
    if (rc == DM_EINVAL)
        return dm_cfg_fail(&ld, DM_EINVAL, "", "\"%s\" is larger than %d bytes",
                           dm_cfg_show(path, sb), CONFIG_FILE_MAX);
    if (rc < 0)
        return dm_cfg_fail(&ld, DM_EIO, "", "cannot read \"%s\": %s", dm_cfg_show(path, sb),
                           strerror(-rc));

    const char *slash = strrchr(path, '/');
    char *base = slash ? dm_xstrndup(path, (size_t)(slash - path)) : dm_xstrdup(".");
    if (slash == path) { /* "/digestmap.json" */
        free(base);
        base = dm_xstrdup("/");
    }
    rc = load((const char *)buf, len, base, flags, out, err, errlen);
    free(base);
    /* The file may hold inline secrets (dev configs do). */
    dm_cfg_free_secret(buf, len + 1);
    return rc;
}

void dm_config_free(dm_config *c)
{
    if (!c)
        return;
    free(c->listen_host);
    free(c->data_dir);
    free(c->log_level);
    free(c->tls.cert_file);
    free(c->tls.key_file);
    dm_cfg_free_redis(c);
    for (size_t i = 0; i < c->nsources; i++) {
        free(c->sources[i].path);
        for (size_t j = 0; j < c->sources[i].nclusters; j++)
            free(c->sources[i].clusters[j]);
        free(c->sources[i].clusters);
        dm_cfg_free_auth_list(&c->sources[i].auth);
    }
    free(c->sources);
    dm_cfg_free_auth_list(&c->api_auth);
    dm_cfg_free_outputs(c);
    dm_cfg_free_spool(c);
    for (size_t i = 0; i < c->k8s.ninternal_ingress_classes; i++)
        free(c->k8s.internal_ingress_classes[i]);
    free(c->k8s.internal_ingress_classes);
    free(c);
}
