/* dm_keys.h - the name of every Redis key digestmap uses, one function per kind of key.
 *
 * Keys are per shard and carry the shard's hash tag "{s}" even with one shard, so every key one
 * script touches lives in one hash slot (Redis Cluster ready) and the layout never changes
 * shape. s is dm_digest_shard(digest, shards) for the keys of a digest. The Lua scripts get
 * these names as KEYS (lua/park.lua's header lists them with their contents); the only names
 * a script makes itself are the query indexes (park.lua, mappings.lua), from the shard base
 * of dm_key_shard_base. README.md "Redis layout" shows them all.
 *
 * Every function writes a NUL-terminated name into @p buf (DM_KEY_BUFLEN bytes, always enough:
 * the prefix is at most 64 bytes, dm_config_prefix_valid) and returns its length.
 */
#ifndef DM_CORRELATOR_DM_KEYS_H
#define DM_CORRELATOR_DM_KEYS_H

#include <stddef.h>

/** Room for any name written into a caller's buffer below. */
#define DM_KEY_BUFLEN 160

/*---- one digest's keys: "<prefix>:{<shard>}:<kind>:<digest>" ----*/

/** Hash "r": registry location -> parked push (the stored form, lua/lib.lua). */
size_t dm_key_pushes(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                     const char *digest);
/** Hash "b": "<provider>/<run id>/<attempt>" -> parked build (the stored form). */
size_t dm_key_builds(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                     const char *digest);
/** Hash "m": edge id -> mapping (a record's data, contract JSON). */
size_t dm_key_mappings(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                       const char *digest);
/** Sorted set "mi": the edge ids of hash "m", score 0, so GET /v1/images pages the mappings
 * in id order (ZRANGE BYLEX) without reading them all. */
size_t dm_key_mapping_ids(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                          const char *digest);
/** Hash "d": registry location -> delete record. */
size_t dm_key_deletes(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                      const char *digest);
/** Hash "u": what was reported unmatched (lua/sweep_report.lua). */
size_t dm_key_reported(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                       const char *digest);
/** Hash "w": "<cluster>/<namespace>/<kind>/<name>" -> workload JSON, every workload running
 * the digest (lua/workloads.lua, docs/workloads.md). */
size_t dm_key_workloads(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                        const char *digest);
/* Findings (docs/findings.md, lua/findings.lua), kept correlation.findings_ttl_seconds: */
/** Hash "f": scanner -> JSON array of its current findings; "<scanner>#counts" -> counts. */
size_t dm_key_findings(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                       const char *digest);
/** String "fs": the digest's findings summary (absent without findings). */
size_t dm_key_finding_summary(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                              const char *digest);
/** Set "fr": "<id>|<package>" of every finding routed for the digest. */
size_t dm_key_findings_routed(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                              const char *digest);

/*---- one shard's keys: "<prefix>:{<shard>}:<kind>" ----*/

/** Sorted set "due": (side, digest) -> earliest expiry, for the sweeper. */
size_t dm_key_due(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard);
/** Hash "stats": parked items per side. */
size_t dm_key_stats(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard);
/** Stream "out": the output records. */
size_t dm_key_out(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard);
/** Stream "dead": the records a webhook sink gave up on. */
size_t dm_key_dead(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard);
/** "<prefix>:{<shard>}:", what every key of the shard starts with (scripts that name keys of
 * their own, such as mappings.lua, get it). */
size_t dm_key_shard_base(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard);

/** Sorted set "xw:<exposure>" (score 0): "<cluster>/<namespace>/<kind>/<name>|<digest>" for
 * every workload of that exposure ("internet", "node", "cluster") running a digest of the
 * shard: the GET /v1/exposure index (lua/workloads.lua). */
size_t dm_key_exposure(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                       const char *exposure);
/**
 * Hash "wc:<cluster>": the part of a cluster's inventory whose digests are in the shard:
 * "<namespace>/<kind>/<name>" -> JSON array of its digests in the shard, and "\t" -> taken_at
 * (ms) of the snapshot stored. A cluster name is up to 128 bytes, so the name is malloc'd (the
 * caller frees it); @p len gets its length.
 */
char *dm_key_cluster_inventory(const char *prefix, unsigned shard, const char *cluster,
                               size_t *len);

/** The three query indexes park.lua writes (one sorted set per shard and name). */
typedef enum {
    DM_INDEX_REPOSITORY = 0, /**< "ix:repo:<build repository>", e.g. acme/api */
    DM_INDEX_RUN,            /**< "ix:run:<provider>/<run id>" */
    DM_INDEX_IMAGE,          /**< "ix:img:<registry>/<image repository>" */
} dm_index_kind;

/** The kind's word in the key name ("repo", "run", "img"). */
const char *dm_key_index_kind(dm_index_kind kind);

/**
 * Sorted set "<prefix>:{<shard>}:ix:<kind>:<name>". Index names are user data (repository
 * paths, up to 2 KB), so the name is malloc'd to fit (the caller frees it); @p len gets its
 * length.
 */
char *dm_key_index(const char *prefix, unsigned shard, dm_index_kind kind, const char *name,
                   size_t *len);

/*---- keys without a shard ----*/

/** String "<prefix>:jti:<hex>": an accepted OIDC token (@p hex: sha256 of issuer and jti). */
size_t dm_key_jti(char buf[DM_KEY_BUFLEN], const char *prefix, const char *hex);

#endif
