/* dm_config.h - the JSON configuration file (every key: configs/README.md).
 *
 * Unknown keys are errors (a typo must not silently disable security). Secrets may be given
 * as "x", "x_env": "VAR" or "x_file": "path" (relative paths are resolved against the
 * directory of the config file); they are resolved at load time. Tools that need only some
 * of them (the digestmap client) load with DM_CONFIG_SECRETS_OPTIONAL: a secret that cannot
 * be resolved is then left NULL, with the would-be error kept beside it (secret_missing).
 * A dm_config is plain data (strings, numbers, the bytes of the files it names), immutable
 * after loading and shared read-only by all threads. What is learned while running, the keys
 * fetched from a jwks_url and the SNS certificates fetched from AWS, lives in the runtime
 * objects that dm_trust_new (trust/dm_trust.h) builds from a loaded configuration. Loading
 * reads files but never touches the network.
 */
#ifndef DM_CONFIG_DM_CONFIG_H
#define DM_CONFIG_DM_CONFIG_H

#include "dm_common.h"

#include <jansson.h>

typedef enum {
    DM_AUTH_NONE = 0, /**< accepts everything; warned about at startup */
    DM_AUTH_HEADER,   /**< header `name` must equal `value` exactly */
    DM_AUTH_HMAC,     /**< header `name` holds "sha256=<hex HMAC-SHA256(secret, body)>" */
    DM_AUTH_OIDC,     /**< "Authorization: Bearer <JWT>" verified with keys from a JWKS */
    DM_AUTH_SNS,      /**< an Amazon SNS envelope (x-amz-sns-message-type): signature + topic */
} dm_auth_type;

/** An SNS signing certificate we trust: its SigningCertURL and PEM bytes. */
typedef struct dm_sns_cert {
    char *url;
    char *pem;
    size_t pem_len;
} dm_sns_cert;

typedef struct dm_auth_entry {
    dm_auth_type type;
    char *name; /**< header name (HEADER: "name", HMAC: "header", default X-Digestmap-Signature) */
    unsigned char *secret; /**< HEADER: the expected value; HMAC: the key. NULL for NONE,
                                and for an unresolved secret (see secret_missing) */
    size_t secret_len;
    char *secret_missing; /**< DM_CONFIG_SECRETS_OPTIONAL only: why the secret is NULL, the
                                error a strict load gives ("api.auth[0].value_env: environment
                                variable \"X\" is not set or empty"); else NULL */

    /* OIDC only */
    char **issuers; /**< accepted "iss": the configured issuer (+ Google's bare alias) */
    size_t nissuers;
    char *audience; /**< required "aud" */
    char *jwks;     /**< the jwks_file's JWKS document (read and checked at load: it holds at
                         least one usable key), or NULL without jwks_file */
    size_t jwks_len;
    char *jwks_url; /**< where to fetch keys (https://, or http:// to loopback), or NULL */
    int jwks_refresh_seconds; /**< with jwks_url: refetch period, default 3600, 60..86400 */
    json_t *claims;           /**< allowlist object ({"claim": [values]}), or NULL; owned */
    int provider;             /**< dm_oidc_provider: how claims become a build identity */
    char *server_url;         /**< GitHub server for run URLs (GHES), or NULL for github.com */
    bool replay; /**< "replay" (default true): a token's jti is accepted once; false for
                      tokens reused by design (Kubernetes projected service-account tokens) */

    /* SNS only */
    char **topic_arns; /**< accepted TopicArn values */
    size_t ntopic_arns;
    dm_sns_cert *certs; /**< from "certs" (URL → PEM file); may be empty with fetch_certs */
    size_t ncerts;
    bool fetch_certs;           /**< fetch unknown SigningCertURLs (validated) into the entry's
                                     certificate cache (dm_trust) */
    bool confirm_subscriptions; /**< GET the SubscribeURL of verified confirmations */
} dm_auth_entry;

typedef struct dm_auth_list {
    dm_auth_entry *v;
    size_t n;
} dm_auth_list;

typedef enum {
    DM_SRC_ACR = 0,
    DM_SRC_BUILD,
    DM_SRC_ECR,
    DM_SRC_GAR,
    DM_SRC_K8S,  /**< Kubernetes cluster snapshots (docs/workloads.md) */
    DM_SRC_SCAN, /**< scanner reports (Trivy, Grype): findings, docs/findings.md */
} dm_source_type;

/** A request quota (sources[].rate): a token bucket per source and per credential. */
typedef struct dm_rate_conf {
    double per_second; /**< tokens added per second; 0: no quota (the key is absent) */
    int burst;         /**< bucket size, default ceil(per_second), at least 1 */
} dm_rate_conf;

typedef struct dm_source_conf {
    dm_source_type type;
    char *path; /**< route path, default "/v1/registry/acr" or "/v1/builds" */
    dm_auth_list auth;
    dm_rate_conf rate; /**< over it: 429 with Retry-After */
    char **clusters;   /**< k8s only: "clusters", the cluster names this source may report
                            (another is a 403); none (NULL, 0): any */
    size_t nclusters;
} dm_source_conf;

/** One webhook sink (outputs.webhooks[i]); see dm_sink.h for the delivery rules. */
typedef struct dm_sink_conf {
    char *name;            /**< [A-Za-z0-9._-]{1,64}, unique; default "sink-" + 12 hex digits of
                                SHA-256(url). Names the consumer group "digestmap:<name>" */
    char *url;             /**< https://, or http:// to 127.0.0.1, [::1] or localhost only */
    unsigned char *secret; /**< HMAC-SHA256 key of X-Digestmap-Signature (required; NULL
                                only when unresolved, see secret_missing) */
    size_t secret_len;
    char *secret_missing; /**< as in dm_auth_entry */
    char **types;         /**< record types to deliver (full names); none = all. Others are
                                acknowledged without delivery */
    size_t ntypes;
    char *ca_file;          /**< PEM trust anchors for https instead of the system store, or NULL */
    int timeout_ms;         /**< one attempt, connect to last byte; default 10000 */
    int max_attempts;       /**< then dead-lettered; default 8 */
    int max_inflight;       /**< deliveries in flight per instance; default 16 */
    int backoff_initial_ms; /**< first retry delay; doubles per attempt, full jitter; default 1000 */
    int backoff_max_ms;     /**< cap of the delay and of an honoured Retry-After; default 300000 */
    int claim_idle_ms;      /**< another instance's pending record idle this long is taken over
                                (XAUTOCLAIM); default 60000 */
} dm_sink_conf;

typedef struct dm_config {
    char *listen_host; /**< literal IP, default "127.0.0.1" */
    int listen_port;   /**< default 8080; 0 = any free port (printed at startup) */
    int workers;       /**< default 2, 1..64 */
    char *data_dir;    /**< default "var" (relative to the working directory) */
    char *log_level;   /**< default "info" */

    struct {
        char *url;      /**< NULL: digestmapd starts its own redis-server in data_dir.
                               May hold the password: never log it. */
        char *username; /**< ACL user from "redis://user:pw@…" (AUTH user pw); NULL: default */
        char *password; /**< from the url or password/_env/_file; NULL if none */
        char *password_missing; /**< as dm_auth_entry.secret_missing, for password_env/_file */
        char *prefix;           /**< default "dm" */
        int shards;             /**< default 1, 1..1024 */
        bool cluster;           /**< Redis Cluster (url names a seed node; db 0), default false */
        /* parsed from url (or set for the embedded server): */
        char *host; /**< IP literal or DNS name for TCP, NULL for a unix socket */
        int port;
        char *unix_path;        /**< unix socket path, NULL for TCP; for the embedded server
                                     "<data_dir>/redis.sock" (digestmapd connects through the
                                     started server's absolute path: dm_redis_conf_opts) */
        int db;                 /**< database number, default 0 */
        char *server_bin;       /**< embedded server binary, default "redis-server" */
        long long maxmemory;    /**< embedded server only: bytes, with noeviction; 0 (absent):
                                     25 % of the machine's memory, decided at start */
        int command_timeout_ms; /**< default 2000 */
        int connect_timeout_ms; /**< default 2000 */
        int wait_replicas;      /**< default 0: replicas WAIT must confirm before an answer */
    } redis;

    /** The local journal of events Redis could not take (spool/dm_spool.h). */
    struct {
        char *dir;           /**< default "<data_dir>/spool" */
        long long max_bytes; /**< default 1 GiB: full beyond it (503 + Retry-After) */
    } spool;

    struct {
        int64_t window_seconds;         /**< default 1800 */
        int64_t grace_seconds;          /**< default 60 */
        int64_t max_clock_skew_seconds; /**< default 300 */
        int64_t mapping_ttl_seconds;    /**< default 7776000 (90 days) */
        int sweep_interval_ms;          /**< default 1000: how often expired items are swept */
        int sweep_batch;                /**< default 256: items claimed per shard per sweep */
        bool report_untagged;           /**< default false: report untagged platform manifests */
        int64_t findings_ttl_seconds;   /**< default mapping_ttl_seconds: findings and workloads
                                             keys live this long after their last write */
    } correlation;

    /** The k8s sources' derivation rules (docs/workloads.md). */
    struct {
        char **internal_ingress_classes; /**< ingress classes not reachable from the internet */
        size_t ninternal_ingress_classes;
    } k8s;

    struct {
        size_t max_body_bytes;    /**< default 1048576 */
        size_t max_header_bytes;  /**< default 16384 */
        int max_inflight;         /**< default 10000 (per process, split across workers) */
        int idle_timeout_seconds; /**< default 30: read/write timeout of a connection */
        int max_connections;      /**< default 4096: open client connections per process (the
                                       server lowers it to the fd limit less a reserve) */
        int header_timeout_ms;    /**< default 10000: the whole request head must arrive within */
        int body_timeout_ms;      /**< default 30000: the whole body must arrive within */
        size_t max_body_memory_bytes; /**< default 64 MiB: bytes of all bodies in flight together
                                           (503 beyond); at least max_body_bytes */
        int max_builds_per_digest;    /**< default 256: parked builds kept per digest */
        int max_locations_per_digest; /**< default 256: registry locations kept per digest */
        int max_tags_per_location;    /**< default 64: tags kept per location or mapping */
        int max_findings_per_digest;  /**< default 2000: findings kept per digest (most severe) */
        int max_snapshot_items;       /**< default 20000: items of one k8s snapshot (413 beyond) */
        int max_workloads_per_snapshot;   /**< default 10000: workloads of one snapshot (413) */
        int max_snapshot_workload_images; /**< default 50000: (workload, digest) pairs of one
                                               snapshot (413 beyond) */
    } limits;

    /** routing: which findings start a finding.routed record (docs/findings.md). */
    struct {
        int min_severity; /**< a dm_severity (adapters/dm_finding.h), default DM_SEV_HIGH:
                               findings at or above it are routed */
    } routing;

    /** tls: the listener speaks TLS only. Paths resolved against the config file's directory;
     *  the files are read (and checked) when the server starts. NULL cert_file: plain HTTP. */
    struct {
        char *cert_file; /**< PEM certificate chain, leaf first */
        char *key_file;  /**< PEM private key */
        int min_version; /**< 0x0303 (TLS 1.2, default) or 0x0304 (TLS 1.3): TLS1_x_VERSION */
    } tls;

    dm_source_conf *sources;
    size_t nsources;

    bool api_configured; /**< false: "api" absent, the query routes answer 401 to everyone */
    dm_auth_list api_auth;
    int api_max_stream_clients; /**< api.max_stream_clients: open /v1/events/stream answers per
                                     process, default 64 (then 503); 0 disables the route (403) */

    struct {
        long long stream_maxlen; /**< default 1000000: entries kept per output stream, more
                                       only while a protected consumer group has not read them */
        int trim_interval_ms;    /**< default 1000: how often the streams are trimmed */
        long long max_group_lag; /**< default stream_maxlen: a protected group further behind
                                       than this no longer holds trimming back (logged, counted) */
        char **stream_groups;    /**< consumer groups (besides the sinks') trimming waits for */
        size_t nstream_groups;
        dm_sink_conf *webhooks;
        size_t nwebhooks;
    } outputs;
} dm_config;

/**
 * Load and validate the file at @p path. On success returns DM_OK and *out (free with
 * dm_config_free). On failure returns DM_EINVAL/DM_EIO and writes a one-line reason that
 * names the offending key (e.g. "sources[1].auth[0]: unknown key \"valeu\"") into @p err.
 */
int dm_config_load_file(const char *path, dm_config **out, char *err, size_t errlen);

/** Same, from @p len bytes of JSON; relative *_file secrets are resolved against @p base_dir. */
int dm_config_load_buffer(const char *json, size_t len, const char *base_dir, dm_config **out,
                          char *err, size_t errlen);

/**
 * Flag of the *_opts loaders, for tools that need only some secrets: a secret whose
 * environment variable is unset or empty, or whose file cannot be read (open/read error), is
 * left NULL (length 0) and the error a strict load would give is kept in the entry's
 * secret_missing (redis.password_missing) instead of failing the load. Everything else is
 * checked as strictly as without the flag: the shape of every secret ("give only one of …",
 * "… is required"), a secret file that is empty or too large, and the files that are not
 * secrets (jwks_file, SNS certs, ca_file). digestmapd never uses it.
 */
#define DM_CONFIG_SECRETS_OPTIONAL 0x1u

/** dm_config_load_file with @p flags (DM_CONFIG_*); flags 0 is dm_config_load_file. */
int dm_config_load_file_opts(const char *path, unsigned flags, dm_config **out, char *err,
                             size_t errlen);

/** dm_config_load_buffer with @p flags (DM_CONFIG_*). */
int dm_config_load_buffer_opts(const char *json, size_t len, const char *base_dir, unsigned flags,
                               dm_config **out, char *err, size_t errlen);

/** Free @p c (NULL is fine). Secrets are wiped before being freed. */
void dm_config_free(dm_config *c);

/** Where a redis.url points (see dm_config_parse_redis_url); all strings owned. */
typedef struct dm_redis_endpoint {
    char *host; /**< IP literal or DNS name for TCP, NULL for a unix socket */
    int port;
    char *unix_path; /**< unix socket path, NULL for TCP */
    int db;
    char *username; /**< ACL user, or NULL */
    char *password; /**< or NULL */
} dm_redis_endpoint;

/**
 * Parse @p url with exactly the rules of redis.url (redis://[[user]:password@]HOST[:PORT][/DB],
 * unix:///abs/path[?db=N], unix:relative/path[?db=N]), for tools that take the same URL.
 * Returns DM_OK with @p out filled (free with dm_redis_endpoint_clear), or DM_EINVAL with the
 * daemon's reason, without the "redis.url: " key path, in @p err (never the URL itself: it
 * may hold the password) and @p out empty.
 */
int dm_config_parse_redis_url(const char *url, dm_redis_endpoint *out, char *err, size_t errlen);

/** Free what @p e holds (secrets wiped) and zero it. */
void dm_redis_endpoint_clear(dm_redis_endpoint *e);

/** Whether @p prefix is a valid redis.prefix: 1..64 characters of [A-Za-z0-9_.:-]. */
bool dm_config_prefix_valid(const char *prefix);

#endif
