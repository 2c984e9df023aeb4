/* dm_keys.c - see dm_keys.h. */
#include "dm_common.h"
#include "dm_keys.h"

#include <stdio.h>
#include <string.h>

/* snprintf's length, bounded by what fits: names are sized never to be cut (dm_keys.h). */
static size_t written(int n)
{
    if (n < 0)
        return 0;
    return (size_t)n < DM_KEY_BUFLEN ? (size_t)n : DM_KEY_BUFLEN - 1;
}

static size_t digest_key(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                         const char *kind, const char *digest)
{
    return written(snprintf(buf, DM_KEY_BUFLEN, "%s:{%u}:%s:%s", prefix, shard, kind, digest));
}

static size_t shard_key(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                        const char *kind)
{
    return written(snprintf(buf, DM_KEY_BUFLEN, "%s:{%u}:%s", prefix, shard, kind));
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
    snprintf(key, n + 1, "%swc:%s", base, cluster);
    *len = n;
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
    return written(snprintf(buf, DM_KEY_BUFLEN, "%s:{%u}:", prefix, shard));
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
    snprintf(key, n + 1, "%six:%s:%s", base, word, name);
    *len = n;
    return key;
}

size_t dm_key_jti(char buf[DM_KEY_BUFLEN], const char *prefix, const char *hex)
{
    return written(snprintf(buf, DM_KEY_BUFLEN, "%s:jti:%s", prefix, hex));
}
