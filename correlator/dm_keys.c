/* dm_keys.c - see dm_keys.h. */
#include "dm_common.h"
#include "dm_keys.h"

#include <string.h>

/* Names are built with memcpy and a small integer writer, not snprintf: five of them are built
 * for every push, and snprintf's format interpretation cost more than the copies themselves
 * (docs/hot-path.md). The result is the same as snprintf's into DM_KEY_BUFLEN bytes: a name that
 * would not fit is cut at DM_KEY_BUFLEN - 1 bytes (never happens: dm_keys.h). */

/* Append @p n bytes of @p s at @p at of a name of at most @p cap bytes; the new length. */
static size_t put(char *buf, size_t cap, size_t at, const char *s, size_t n)
{
    if (n > cap - at)
        n = cap - at;
    memcpy(buf + at, s, n);
    return at + n;
}

static size_t put_str(char *buf, size_t cap, size_t at, const char *s)
{
    return put(buf, cap, at, s, strlen(s));
}

/* "<prefix>:{<shard>}:" at the start of @p buf. */
static size_t put_base(char *buf, size_t cap, const char *prefix, unsigned shard)
{
    char tag[24] = ":{";
    char *e = dm_put_uint(tag + 2, shard);
    *e++ = '}';
    *e++ = ':';
    size_t at = put_str(buf, cap, 0, prefix);
    return put(buf, cap, at, tag, (size_t)(e - tag));
}

static size_t digest_key(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                         const char *kind, const char *digest)
{
    size_t at = put_base(buf, DM_KEY_BUFLEN - 1, prefix, shard);
    at = put_str(buf, DM_KEY_BUFLEN - 1, at, kind);
    at = put(buf, DM_KEY_BUFLEN - 1, at, ":", 1);
    at = put_str(buf, DM_KEY_BUFLEN - 1, at, digest);
    buf[at] = '\0';
    return at;
}

static size_t shard_key(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                        const char *kind)
{
    size_t at = put_base(buf, DM_KEY_BUFLEN - 1, prefix, shard);
    at = put_str(buf, DM_KEY_BUFLEN - 1, at, kind);
    buf[at] = '\0';
    return at;
}

size_t dm_key_pushes(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                     const char *digest)
{
    return digest_key(buf, prefix, shard, "r", digest);
}

size_t dm_key_builds(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                     const char *digest)
{
    return digest_key(buf, prefix, shard, "b", digest);
}

size_t dm_key_mappings(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                       const char *digest)
{
    return digest_key(buf, prefix, shard, "m", digest);
}

size_t dm_key_mapping_ids(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                          const char *digest)
{
    return digest_key(buf, prefix, shard, "mi", digest);
}

size_t dm_key_deletes(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                      const char *digest)
{
    return digest_key(buf, prefix, shard, "d", digest);
}

size_t dm_key_reported(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                       const char *digest)
{
    return digest_key(buf, prefix, shard, "u", digest);
}

size_t dm_key_workloads(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                        const char *digest)
{
    return digest_key(buf, prefix, shard, "w", digest);
}

size_t dm_key_exposure(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                       const char *exposure)
{
    return digest_key(buf, prefix, shard, "xw", exposure);
}

char *dm_key_cluster_inventory(const char *prefix, unsigned shard, const char *cluster, size_t *len)
{
    char base[DM_KEY_BUFLEN];
    size_t blen = dm_key_shard_base(base, prefix, shard);
    size_t n = blen + strlen("wc:") + strlen(cluster);
    char *key = dm_xmalloc(n + 1);
    size_t at = put(key, n, 0, base, blen);
    at = put(key, n, at, "wc:", 3);
    at = put_str(key, n, at, cluster);
    key[at] = '\0';
    *len = at;
    return key;
}

size_t dm_key_findings(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                       const char *digest)
{
    return digest_key(buf, prefix, shard, "f", digest);
}

size_t dm_key_finding_summary(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                              const char *digest)
{
    return digest_key(buf, prefix, shard, "fs", digest);
}

size_t dm_key_findings_routed(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                              const char *digest)
{
    return digest_key(buf, prefix, shard, "fr", digest);
}

size_t dm_key_due(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard)
{
    return shard_key(buf, prefix, shard, "due");
}

size_t dm_key_stats(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard)
{
    return shard_key(buf, prefix, shard, "stats");
}

size_t dm_key_out(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard)
{
    return shard_key(buf, prefix, shard, "out");
}

size_t dm_key_dead(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard)
{
    return shard_key(buf, prefix, shard, "dead");
}

size_t dm_key_shard_base(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard)
{
    size_t at = put_base(buf, DM_KEY_BUFLEN - 1, prefix, shard);
    buf[at] = '\0';
    return at;
}

const char *dm_key_index_kind(dm_index_kind kind)
{
    static const char *const words[] = {
        [DM_INDEX_REPOSITORY] = "repo", [DM_INDEX_RUN] = "run", [DM_INDEX_IMAGE] = "img"};
    return (unsigned)kind < DM_ARRAY_LEN(words) ? words[kind] : "";
}

char *dm_key_index(const char *prefix, unsigned shard, dm_index_kind kind, const char *name,
                   size_t *len)
{
    char base[DM_KEY_BUFLEN];
    size_t blen = dm_key_shard_base(base, prefix, shard);
    const char *word = dm_key_index_kind(kind);
    size_t n = blen + strlen("ix:") + strlen(word) + 1 + strlen(name);
    char *key = dm_xmalloc(n + 1);
    size_t at = put(key, n, 0, base, blen);
    at = put(key, n, at, "ix:", 3);
    at = put_str(key, n, at, word);
    at = put(key, n, at, ":", 1);
    at = put_str(key, n, at, name);
    key[at] = '\0';
    *len = at;
    return key;
}

size_t dm_key_jti(char buf[DM_KEY_BUFLEN], const char *prefix, const char *hex)
{
    size_t at = put_str(buf, DM_KEY_BUFLEN - 1, 0, prefix);
    at = put(buf, DM_KEY_BUFLEN - 1, at, ":jti:", 5);
    at = put_str(buf, DM_KEY_BUFLEN - 1, at, hex);
    buf[at] = '\0';
    return at;
}
