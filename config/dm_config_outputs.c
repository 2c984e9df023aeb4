/* dm_config_outputs.c - the "outputs" section: stream length and trimming, the consumer
 * groups trimming waits for, and the webhook sinks (outputs.webhooks).
 */
#include "dm_config_loader.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

/* The record types (README.md, "Output records"): the only values a sink's "types" filter
 * may name. */
static const char *const record_types[] = {
    "dev.digestmap.mapping.confirmed.v1", "dev.digestmap.mapping.unmatched.v1",
    "dev.digestmap.image.deleted.v1", "dev.digestmap.finding.routed.v1"};

/* Sink and consumer-group names go into Redis group names and log lines. */
static bool is_simple_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-' || ch == ':'))
            return false;
    }
    return true;
}

/* A stable default name: the group (and so the delivery position) survives restarts. */
static char *default_sink_name(const char *url)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(url, strlen(url), md, &mdlen, EVP_sha256(), NULL) != 1)
        abort();
    char *name = dm_xmalloc(5 + 12 + 1);
    memcpy(name, "sink-", 5);
    for (int i = 0; i < 6; i++)
        snprintf(name + 5 + 2 * i, 3, "%02x", md[i]);
    return name;
}

/* "types": the record types to deliver, full names; absent: all. */
static int parse_sink_types(dm_cfg_loader *ld, const json_t *w, const char *path, dm_sink_conf *out)
{
    char pb[PATH_BUF];
    const json_t *types = json_object_get(w, "types");
    if (types && (!json_is_array(types) || json_array_size(types) == 0))
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "types"),
                           "must be a non-empty array of record types");
    out->ntypes = 0;
    out->types = json_array_size(types) ? dm_xcalloc(json_array_size(types), sizeof(char *)) : NULL;
    for (size_t i = 0; i < json_array_size(types); i++) {
        const json_t *t = json_array_get(types, i);
        bool known = false;
        for (size_t k = 0; json_is_string(t) && k < DM_ARRAY_LEN(record_types) && !known; k++)
            known = strcmp(json_string_value(t), record_types[k]) == 0;
        if (!known)
            return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "types"),
                               "must hold record types (\"dev.digestmap.mapping.confirmed.v1\", "
                               "\"dev.digestmap.mapping.unmatched.v1\", "
                               "\"dev.digestmap.image.deleted.v1\", "
                               "\"dev.digestmap.finding.routed.v1\")");
        out->types[out->ntypes++] = dm_xstrdup(json_string_value(t));
    }
    return DM_OK;
}

/* "ca_file": trust anchors for an https:// url, readable now. */
static int parse_sink_ca_file(dm_cfg_loader *ld, const json_t *w, const char *path,
                              dm_sink_conf *out)
{
    char pb[PATH_BUF], sb[SHOW_BUF];
    const char *s;
    int rc;
    if ((rc = dm_cfg_get_str(ld, w, path, "ca_file", true, &s)) < 0 || !s)
        return rc;
    if (strncmp(out->url, "https://", 8) != 0)
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "ca_file"),
                           "needs an https:// url");
    out->ca_file = dm_cfg_resolve_path(ld, s);
    if (access(out->ca_file, R_OK) != 0)
        return dm_cfg_fail(ld, DM_EIO, dm_cfg_key_path(pb, path, "ca_file"),
                           "cannot read \"%s\": %s", dm_cfg_show(out->ca_file, sb),
                           strerror(errno));
    return DM_OK;
}

/* The delivery limits: timeouts, attempts, backoff and the claim of idle records. */
static int parse_sink_limits(dm_cfg_loader *ld, const json_t *w, const char *path,
                             dm_sink_conf *out)
{
    static const struct {
        const char *key;
        long long min, max, def;
        size_t off;
    } ints[] = {
        {"timeout_ms", 100, 600000, 10000, offsetof(dm_sink_conf, timeout_ms)},
        {"max_attempts", 1, 1000, 8, offsetof(dm_sink_conf, max_attempts)},
        {"max_inflight", 1, 1000, 16, offsetof(dm_sink_conf, max_inflight)},
        {"backoff_initial_ms", 1, 3600000, 1000, offsetof(dm_sink_conf, backoff_initial_ms)},
        {"backoff_max_ms", 1, 86400000, 300000, offsetof(dm_sink_conf, backoff_max_ms)},
        {"claim_idle_ms", 1000, 86400000, 60000, offsetof(dm_sink_conf, claim_idle_ms)},
    };
    char pb[PATH_BUF];
    long long v;
    int rc;
    for (size_t i = 0; i < DM_ARRAY_LEN(ints); i++) {
        if ((rc = dm_cfg_get_int(ld, w, path, ints[i].key, ints[i].min, ints[i].max, ints[i].def,
                                 &v)) < 0)
            return rc;
        *(int *)((char *)out + ints[i].off) = (int)v;
    }
    if (out->backoff_max_ms < out->backoff_initial_ms)
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "backoff_max_ms"),
                           "must be at least backoff_initial_ms");
    /* A record held for a retry must not look abandoned to the other instances: the holder
     * refreshes its claim, but an attempt in progress cannot, so it must end well before. */
    if (out->claim_idle_ms < 2 * out->timeout_ms)
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "claim_idle_ms"),
                           "must be at least twice timeout_ms");
    return DM_OK;
}

/* One webhook sink: url, name and secret, then what it delivers and how. */
static int parse_sink(dm_cfg_loader *ld, const json_t *w, const char *path, dm_sink_conf *out)
{
    static const char *const keys[] = {"name",
                                       "url",
                                       "secret",
                                       "secret_env",
                                       "secret_file",
                                       "types",
                                       "ca_file",
                                       "timeout_ms",
                                       "max_attempts",
                                       "max_inflight",
                                       "backoff_initial_ms",
                                       "backoff_max_ms",
                                       "claim_idle_ms",
                                       NULL};
    char pb[PATH_BUF], sb[SHOW_BUF];
    const char *s;
    int rc;

    if (!json_is_object(w))
        return dm_cfg_fail(ld, DM_EINVAL, path, "must be an object");
    if ((rc = dm_cfg_check_keys(ld, w, path, keys)) < 0)
        return rc;
    if ((rc = dm_cfg_get_str(ld, w, path, "url", true, &s)) < 0)
        return rc;
    if (!s)
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, path, "url"), "is required");
    if ((rc = dm_cfg_check_http_url(ld, dm_cfg_key_path(pb, path, "url"), s)) < 0)
        return rc;
    out->url = dm_xstrdup(s);
    if ((rc = dm_cfg_get_str(ld, w, path, "name", true, &s)) < 0)
        return rc;
    if (s && !is_simple_name(s, 64))
        return dm_cfg_fail(
            ld, DM_EINVAL, dm_cfg_key_path(pb, path, "name"),
            "\"%s\" must be 1..64 characters of A-Z a-z 0-9 . _ - :", dm_cfg_show(s, sb));
    out->name = s ? dm_xstrdup(s) : default_sink_name(out->url);
    if ((rc = dm_cfg_get_secret(ld, w, path, "secret", true, &out->secret, &out->secret_len,
                                &out->secret_missing)) < 0 ||
        (rc = parse_sink_types(ld, w, path, out)) < 0 ||
        (rc = parse_sink_ca_file(ld, w, path, out)) < 0)
        return rc;
    return parse_sink_limits(ld, w, path, out);
}

int dm_cfg_parse_outputs(dm_cfg_loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {"stream_maxlen", "trim_interval_ms", "stream_groups",
                                       "max_group_lag", "webhooks",         NULL};
    const json_t *o;
    char pb[PATH_BUF], sb[SHOW_BUF];
    long long v;
    int rc;

    if ((rc = dm_cfg_get_obj(ld, root, "", "outputs", &o)) < 0)
        return rc;
    if (o && (rc = dm_cfg_check_keys(ld, o, "outputs", keys)) < 0)
        return rc;
    if ((rc = dm_cfg_get_int(ld, o, "outputs", "stream_maxlen", 1, LLONG_MAX, 1000000, &v)) < 0)
        return rc;
    c->outputs.stream_maxlen = v;
    if ((rc = dm_cfg_get_int(ld, o, "outputs", "trim_interval_ms", 10, 3600000, 1000, &v)) < 0)
        return rc;
    c->outputs.trim_interval_ms = (int)v;
    /* A dead consumer must not grow a stream without end: past this backlog its group stops
     * holding trimming back (and it loses the oldest records, logged and counted). */
    if ((rc = dm_cfg_get_int(ld, o, "outputs", "max_group_lag", 1, LLONG_MAX,
                             c->outputs.stream_maxlen, &v)) < 0)
        return rc;
    c->outputs.max_group_lag = v;

    const json_t *groups = o ? json_object_get(o, "stream_groups") : NULL;
    if (groups && !json_is_array(groups))
        return dm_cfg_fail(ld, DM_EINVAL, "outputs.stream_groups",
                           "must be an array of group names");
    c->outputs.stream_groups =
        json_array_size(groups) ? dm_xcalloc(json_array_size(groups), sizeof(char *)) : NULL;
    for (size_t i = 0; i < json_array_size(groups); i++) {
        const json_t *g = json_array_get(groups, i);
        if (!json_is_string(g) || !is_simple_name(json_string_value(g), 128))
            return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_index_path(pb, "outputs.stream_groups", i),
                               "must be a group name of 1..128 characters of A-Z a-z 0-9 . _ - :");
        c->outputs.stream_groups[c->outputs.nstream_groups++] = dm_xstrdup(json_string_value(g));
    }

    const json_t *hooks = o ? json_object_get(o, "webhooks") : NULL;
    if (hooks && !json_is_array(hooks))
        return dm_cfg_fail(ld, DM_EINVAL, "outputs.webhooks", "must be an array of sinks");
    if (json_array_size(hooks) > 64)
        return dm_cfg_fail(ld, DM_EINVAL, "outputs.webhooks", "at most 64 sinks");
    c->outputs.webhooks =
        json_array_size(hooks) ? dm_xcalloc(json_array_size(hooks), sizeof(dm_sink_conf)) : NULL;
    for (size_t i = 0; i < json_array_size(hooks); i++) {
        dm_cfg_index_path(pb, "outputs.webhooks", i);
        dm_sink_conf *sk = &c->outputs.webhooks[c->outputs.nwebhooks++];
        if ((rc = parse_sink(ld, json_array_get(hooks, i), pb, sk)) < 0)
            return rc;
        for (size_t k = 0; k + 1 < c->outputs.nwebhooks; k++) {
            if (strcmp(c->outputs.webhooks[k].name, sk->name) == 0)
                return dm_cfg_fail(ld, DM_EINVAL, pb,
                                   "sink name \"%s\" is used twice (give each a distinct \"name\")",
                                   dm_cfg_show(sk->name, sb));
        }
    }
    return DM_OK;
}

void dm_cfg_free_outputs(dm_config *c)
{
    for (size_t i = 0; i < c->outputs.nstream_groups; i++)
        free(c->outputs.stream_groups[i]);
    free(c->outputs.stream_groups);
    for (size_t i = 0; i < c->outputs.nwebhooks; i++) {
        dm_sink_conf *w = &c->outputs.webhooks[i];
        free(w->name);
        free(w->url);
        dm_cfg_free_secret(w->secret, w->secret_len);
        free(w->secret_missing);
        for (size_t k = 0; k < w->ntypes; k++)
            free(w->types[k]);
        free(w->types);
        free(w->ca_file);
    }
    free(c->outputs.webhooks);
}
