/* dm_metrics.h - process-wide counters, rendered as Prometheus text on GET /metrics.
 *
 * Counters are relaxed atomics shared by all workers: two or a few threads increment them,
 * and a scrape reads each one once, so no lock and no per-thread aggregation are needed.
 * Routes are numbered by the server (dm_metrics_init names them); statuses outside the
 * known set are counted as "other".
 */
#ifndef DM_COMMON_DM_METRICS_H
#define DM_COMMON_DM_METRICS_H

#include "dm_common.h"

struct evbuffer;

typedef enum {
    DM_M_EDGES = 0,          /**< mapping edges emitted */
    DM_M_DELETES,            /**< image.deleted records emitted */
    DM_M_DUPLICATES,         /**< events seen before that produced nothing new */
    DM_M_SKEW_REPLACED,      /**< event times replaced by arrival time */
    DM_M_REDIS_UNAVAILABLE,  /**< requests refused or failed because Redis was not usable */
    DM_M_REDIS_TIMEOUT,      /**< commands that hit their deadline */
    DM_M_REDIS_ERROR,        /**< error replies from Redis */
    DM_M_OVERLOADED,         /**< requests refused by max_inflight */
    DM_M_AUTH_FAILED,        /**< requests refused for missing or bad credentials */
    DM_M_INVALID,            /**< requests refused as malformed (400) */
    DM_M_IGNORED,            /**< requests acknowledged but ignored (ping, chart, …) */
    DM_M_TOO_LARGE,          /**< requests refused for a body over limits.max_body_bytes */
    DM_M_UNMATCHED_REGISTRY, /**< unmatched records for pushes no pipeline claimed */
    DM_M_UNMATCHED_BUILD,    /**< unmatched records for builds never seen in a registry */
    DM_M_SINK_DELIVERED,     /**< records a webhook sink acknowledged (2xx) */
    DM_M_SINK_RETRIED,       /**< failed delivery attempts that will be retried */
    DM_M_SINK_DEAD,          /**< records moved to the dead-letter stream */
    DM_M_SINK_FILTERED,      /**< records acknowledged without delivery (sink "types" filter) */
    DM_M_SINK_CLAIMED,       /**< pending records taken over from another instance */
    DM_M_SSE_RECORDS,        /**< records sent on /v1/events/stream */
    DM_M_STREAM_TRIMMED,     /**< output-stream entries removed by trimming */
    DM_M_RATE_LIMITED,       /**< requests refused 429 by a source's quota (sources[].rate) */
    DM_M_SNS_FETCH_REFUSED,  /**< SNS certificate fetches refused (URL form, host rate limit) */
    DM_M_TLS_FAILED,         /**< failed TLS handshakes of the listener */
    DM_M_ITEMS_EVICTED,      /**< parked items, delete records dropped by the per-digest bounds */
    DM_M_REDIS_OOM,          /**< events refused because Redis was over maxmemory */
    DM_M_GROUP_LAG_DROPPED,  /**< trimmed entries a group past max_group_lag had not acked */
    DM_M_SINK_DEAD_DROPPED,  /**< oldest dead-letter entries removed past stream_maxlen */
    DM_M_SINK_REUSED,        /**< delivery attempts sent on a kept-alive connection */
    DM_M_SINK_RESENT,        /**< attempts sent again on a new connection (stale kept-alive) */
    /* The spool (spool/dm_spool.h, docs/spool.md) and redis.wait_replicas: */
    DM_M_SPOOLED,              /**< events written to the spool (answered 202 spooled) */
    DM_M_SPOOL_REPLAYED,       /**< spooled events parked by the replayer */
    DM_M_SPOOL_FULL,           /**< requests refused 503 because the spool was full */
    DM_M_SPOOL_DROPPED,        /**< spool records dropped: torn tails (never acknowledged) */
    DM_M_SPOOL_REPLAY_REFUSED, /**< spooled events refused at replay (token seen before) */
    DM_M_WAIT_SHORT,           /**< requests whose WAIT confirmed fewer than wait_replicas */
    DM_M_SPOOL_DEAD_LETTER,    /**< spooled records moved to the spool's dead-letter file */
    /* Workloads (k8s sources, docs/workloads.md): */
    DM_M_K8S_SNAPSHOTS, /**< cluster snapshots stored */
    DM_M_K8S_STALE,     /**< snapshots ignored: older than the one stored */
    DM_M_K8S_WORKLOADS, /**< workloads stored (per snapshot, summed) */
    /* Findings (docs/findings.md): */
    DM_M_FINDINGS_RECEIVED, /**< findings in accepted reports (before the per-digest bound) */
    DM_M_FINDINGS_STORED,   /**< findings of accepted reports stored (per digest) */
    DM_M_FINDINGS_DROPPED,  /**< findings left out by limits.max_findings_per_digest */
    DM_M_FINDINGS_ROUTED,   /**< finding.routed records appended */
    DM_M_COUNT
} dm_metric;

typedef enum {
    DM_G_SWEEP_LAG_MS = 0,      /**< age of the oldest expired item claimed by the last sweep */
    DM_G_PARKED_REGISTRY,       /**< parked pushes (all shards), as of the last sweep */
    DM_G_PARKED_BUILD,          /**< parked build digests (all shards), as of the last sweep */
    DM_G_SSE_CLIENTS,           /**< open /v1/events/stream answers */
    DM_G_SINK_INFLIGHT,         /**< webhook deliveries in flight or waiting to retry (all sinks) */
    DM_G_STREAM_GROUP_LAG,      /**< largest backlog of a protected consumer group, last trim */
    DM_G_SPOOL_EVENTS,          /**< events in the spool (set by the spool's thread) */
    DM_G_SPOOL_BYTES,           /**< bytes of the spool's segments */
    DM_G_REDIS_CLOCK_OFFSET_MS, /**< digestmapd's clock minus Redis's, at the last connect */
    DM_G_COUNT
} dm_gauge;

/** Why the connection layer refused a request: digestmap_connections_refused_total{reason}. */
typedef enum {
    DM_CONN_HEADER_TIMEOUT = 0, /**< "header_timeout": head incomplete after header_timeout_ms */
    DM_CONN_BODY_TIMEOUT,       /**< "body_timeout": body incomplete after body_timeout_ms */
    DM_CONN_MALFORMED,          /**< "malformed": framing refused (two Content-Length, …) */
    DM_CONN_HEAD_TOO_LARGE,     /**< "head_too_large": head over limits.max_header_bytes */
    DM_CONN_BODY_MEMORY,        /**< "body_memory": limits.max_body_memory_bytes reached */
    DM_CONN_REASON_COUNT
} dm_conn_reason;

/** What the Redis Cluster router and its connections count (docs/redis-cluster-router.md). */
typedef enum {
    DM_RE_MOVED = 0,        /**< digestmap_redis_redirects_total{kind="moved"} */
    DM_RE_ASK,              /**< {kind="ask"} */
    DM_RE_TRYAGAIN,         /**< {kind="tryagain"} */
    DM_RE_CLUSTERDOWN,      /**< {kind="clusterdown"} */
    DM_RE_TOPOLOGY_REFRESH, /**< digestmap_redis_topology_refreshes_total */
    DM_RE_TOPOLOGY_CHANGE,  /**< digestmap_redis_topology_changes_total */
    DM_RE_DNS_FAILURE,      /**< digestmap_redis_dns_failures_total */
    DM_RE_COUNT
} dm_redis_event;

/** Name the routes (index = route number), before any worker starts. Strings are copied. */
void dm_metrics_init(const char *const *route_names, size_t nroutes);
void dm_metrics_shutdown(void);

void dm_metrics_inc(dm_metric m);
void dm_metrics_add(dm_metric m, uint64_t n);
/** Count one answered request. */
void dm_metrics_request(size_t route, int status);
/** Count events parked for @p source ("acr", "github", …). Unknown sources count as "other". */
void dm_metrics_parked(const char *source, uint64_t n);
/** Set a gauge. */
void dm_metrics_set(dm_gauge g, int64_t v);
/** Add @p delta to a gauge atomically (for gauges moved from several threads). */
void dm_metrics_gauge_add(dm_gauge g, int64_t delta);
/** Arrival time (ms since the epoch) of the oldest spooled event, 0 when the spool is empty:
 *  rendered as its age, digestmap_spool_oldest_age_seconds. */
void dm_metrics_spool_oldest(int64_t arrival_ms);
/** Gauge of requests being processed, across workers. */
void dm_metrics_inflight(int delta);

/** Count one request refused by the connection layer. */
void dm_metrics_conn_refused(dm_conn_reason r);
/** Count one pause of a listener: at limits.max_connections, or (@p fd_limit) out of file
 *  descriptors (digestmap_accept_paused_total{reason}). */
void dm_metrics_accept_paused(bool fd_limit);
/** Gauge of open client connections, across workers (digestmap_connections_open). */
void dm_metrics_connections(int delta);

/** Count one Redis Cluster redirect, topology refresh or change, or failed name lookup. */
void dm_metrics_redis_event(dm_redis_event e);

/** Append the Prometheus text exposition to @p out. */
void dm_metrics_render(struct evbuffer *out);

#endif
