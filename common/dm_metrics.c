#include "dm_common.h"
#include "dm_metrics.h"
#include "dm_time.h"

#include <event2/buffer.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const int statuses[] = {200, 202, 204, 400, 401, 403, 404, 405,
                               408, 413, 417, 429, 431, 500, 501, 503};
#define NSTATUS (DM_ARRAY_LEN(statuses) + 1) /* + "other" */

static const char *const sources[] = {"acr",          "ecr",    "gar",     "github",
                                      "azure-devops", "gitlab", "generic", "other"};

static const struct {
    const char *name, *help;
} metric_info[DM_M_COUNT] = {
    [DM_M_EDGES] = {"digestmap_edges_emitted_total", "Confirmed mapping edges emitted."},
    [DM_M_DELETES] = {"digestmap_deletes_recorded_total", "image.deleted records emitted."},
    [DM_M_DUPLICATES] = {"digestmap_duplicates_absorbed_total",
                         "Events seen before that produced nothing new."},
    [DM_M_SKEW_REPLACED] = {"digestmap_skew_replaced_total",
                            "Event times replaced by the arrival time (clock skew)."},
    [DM_M_REDIS_UNAVAILABLE] = {"digestmap_redis_unavailable_total",
                                "Requests answered 503 because Redis was not usable."},
    [DM_M_REDIS_TIMEOUT] = {"digestmap_redis_timeouts_total", "Redis commands past deadline."},
    [DM_M_REDIS_ERROR] = {"digestmap_redis_errors_total", "Error replies from Redis."},
    [DM_M_OVERLOADED] = {"digestmap_overloaded_total", "Requests refused by max_inflight."},
    [DM_M_AUTH_FAILED] = {"digestmap_auth_failures_total",
                          "Requests refused for missing or bad credentials."},
    [DM_M_INVALID] = {"digestmap_invalid_requests_total", "Requests refused as malformed."},
    [DM_M_IGNORED] = {"digestmap_ignored_total", "Requests acknowledged but ignored."},
    [DM_M_TOO_LARGE] = {"digestmap_body_too_large_total",
                        "Requests refused for a body over limits.max_body_bytes."},
    [DM_M_UNMATCHED_REGISTRY] = {"digestmap_unmatched_registry_total",
                                 "Unmatched records: pushes that no pipeline claimed."},
    [DM_M_UNMATCHED_BUILD] = {"digestmap_unmatched_build_total",
                              "Unmatched records: build digests never seen in a registry."},
    [DM_M_SINK_DELIVERED] = {"digestmap_sink_delivered_total",
                             "Records acknowledged (2xx) by a webhook sink."},
    [DM_M_SINK_RETRIED] = {"digestmap_sink_retries_total",
                           "Failed webhook delivery attempts that will be retried."},
    [DM_M_SINK_DEAD] = {"digestmap_sink_dead_lettered_total",
                        "Records moved to the dead-letter stream after max_attempts."},
    [DM_M_SINK_FILTERED] = {"digestmap_sink_filtered_total",
                            "Records acknowledged without delivery (sink types filter)."},
    [DM_M_SINK_CLAIMED] = {"digestmap_sink_claimed_total",
                           "Pending records taken over from another instance."},
    [DM_M_SSE_RECORDS] = {"digestmap_sse_records_total", "Records sent to event-stream clients."},
    [DM_M_STREAM_TRIMMED] = {"digestmap_stream_trimmed_total",
                             "Output-stream entries removed by trimming."},
    [DM_M_RATE_LIMITED] = {"digestmap_rate_limited_total",
                           "Requests refused 429 by a source's quota (sources[].rate)."},
    [DM_M_SNS_FETCH_REFUSED] = {"digestmap_sns_cert_fetch_refused_total",
                                "SNS certificate fetches refused: URL not of AWS's form, or the "
                                "host's fetch rate reached."},
    [DM_M_TLS_FAILED] = {"digestmap_tls_handshake_failures_total",
                         "TLS handshakes of the listener that failed."},
    [DM_M_ITEMS_EVICTED] = {"digestmap_items_evicted_total",
                            "Parked builds, pushes and delete records dropped by the per-digest "
                            "limits (the least recent of a digest)."},
    [DM_M_REDIS_OOM] = {"digestmap_redis_oom_total",
                        "Events Redis refused because it was over its maxmemory (spooled, or "
                        "503 when the spool could not take them)."},
    [DM_M_GROUP_LAG_DROPPED] = {"digestmap_group_lag_dropped_total",
                                "Trimmed entries that a consumer group past "
                                "outputs.max_group_lag had not acknowledged."},
    [DM_M_SINK_DEAD_DROPPED] = {"digestmap_sink_dead_dropped_total",
                                "Oldest dead-letter entries removed to keep the dead-letter "
                                "stream at outputs.stream_maxlen."},
    [DM_M_SINK_REUSED] = {"digestmap_sink_connections_reused_total",
                          "Webhook delivery attempts sent on a kept-alive connection."},
    [DM_M_SINK_RESENT] = {"digestmap_sink_resent_total",
                          "Webhook delivery attempts sent a second time on a new connection "
                          "because the kept-alive one had been closed by the receiver."},
    [DM_M_SPOOLED] = {"digestmap_spooled_total",
                      "Events written to the local spool because Redis could not take them "
                      "(answered 202 with \"spooled\": true)."},
    [DM_M_SPOOL_REPLAYED] = {"digestmap_spool_replayed_total",
                             "Spooled events parked in Redis by the replayer (an interrupted "
                             "replay parks some again)."},
    [DM_M_SPOOL_FULL] = {"digestmap_spool_full_total",
                         "Requests refused (503) because the spool was at spool.max_bytes."},
    [DM_M_SPOOL_DROPPED] = {"digestmap_spool_dropped_total",
                            "Spool records dropped: a torn last record after a crash (never "
                            "acknowledged)."},
    [DM_M_SPOOL_REPLAY_REFUSED] = {"digestmap_spool_replay_refused_total",
                                   "Spooled events refused at replay: their token's jti was "
                                   "used by another request meanwhile."},
    [DM_M_WAIT_SHORT] = {"digestmap_redis_wait_short_total",
                         "Requests whose WAIT confirmed fewer than redis.wait_replicas replicas "
                         "in time (spooled as well)."},
    [DM_M_SPOOL_DEAD_LETTER] = {"digestmap_spool_dead_letter_total",
                                "Spooled records the replayer moved to the spool's "
                                "dead-letter file: the join script refused them, or they "
                                "cannot be read."},
    [DM_M_K8S_SNAPSHOTS] = {"digestmap_k8s_snapshots_total",
                            "Kubernetes cluster snapshots stored (k8s sources)."},
    [DM_M_K8S_STALE] = {"digestmap_k8s_snapshots_stale_total",
                        "Kubernetes snapshots ignored: older than the one stored for the cluster."},
    [DM_M_K8S_WORKLOADS] = {"digestmap_k8s_workloads_total",
                            "Workloads in the stored Kubernetes snapshots, summed over snapshots."},
    [DM_M_FINDINGS_RECEIVED] = {"digestmap_findings_received_total",
                                "Findings in accepted findings reports and events, before the "
                                "per-digest bound."},
    [DM_M_FINDINGS_STORED] = {"digestmap_findings_stored_total",
                              "Findings of accepted reports stored, once per digest."},
    [DM_M_FINDINGS_DROPPED] = {"digestmap_findings_dropped_total",
                               "Findings left out by limits.max_findings_per_digest (the least "
                               "severe of a report or of a digest)."},
    [DM_M_FINDINGS_ROUTED] = {"digestmap_findings_routed_records_total",
                              "dev.digestmap.finding.routed.v1 records appended."},
};

static const struct {
    const char *name, *help;
} gauge_info[DM_G_COUNT] = {
    [DM_G_SWEEP_LAG_MS] = {"digestmap_sweep_lag_ms",
                           "Age of the oldest expired item claimed by the last sweep."},
    [DM_G_PARKED_REGISTRY] = {"digestmap_parked_registry_items",
                              "Parked registry pushes, as of the last sweep."},
    [DM_G_PARKED_BUILD] = {"digestmap_parked_build_items",
                           "Parked build digests, as of the last sweep."},
    [DM_G_SSE_CLIENTS] = {"digestmap_sse_clients", "Open /v1/events/stream answers."},
    [DM_G_SINK_INFLIGHT] = {"digestmap_sink_inflight",
                            "Webhook deliveries in flight or waiting to retry."},
    [DM_G_SPOOL_EVENTS] = {"digestmap_spool_events",
                           "Events in the local spool, not yet replayed."},
    [DM_G_SPOOL_BYTES] = {"digestmap_spool_bytes", "Bytes of the local spool's segments."},
    [DM_G_REDIS_CLOCK_OFFSET_MS] = {"digestmap_redis_clock_offset_ms",
                                    "digestmapd's clock minus Redis's TIME, in ms, as measured "
                                    "at the last connection to Redis (park.lua takes arrivals "
                                    "from digestmapd's clock)."},
    [DM_G_STREAM_GROUP_LAG] = {"digestmap_stream_group_lag",
                               "Largest backlog of a protected consumer group (last trim)."},
};

static const char *const conn_reasons[DM_CONN_REASON_COUNT] = {
    [DM_CONN_HEADER_TIMEOUT] = "header_timeout", [DM_CONN_BODY_TIMEOUT] = "body_timeout",
    [DM_CONN_MALFORMED] = "malformed",           [DM_CONN_HEAD_TOO_LARGE] = "head_too_large",
    [DM_CONN_BODY_MEMORY] = "body_memory",
};

static _Atomic uint64_t counters[DM_M_COUNT];
static _Atomic uint64_t conn_refused[DM_CONN_REASON_COUNT];
static _Atomic uint64_t accept_paused[2]; /* max_connections, fd_limit */
static _Atomic int64_t connections;
static _Atomic uint64_t redis_events[DM_RE_COUNT];
static _Atomic int64_t gauges[DM_G_COUNT];
static _Atomic uint64_t parked[DM_ARRAY_LEN(sources)];
static _Atomic int64_t inflight;
static _Atomic uint64_t *requests; /* nroutes * NSTATUS */
static char **route_names;
static size_t nroutes;

void dm_metrics_init(const char *const *names, size_t n)
{
    dm_metrics_shutdown();
    nroutes = n;
    route_names = dm_xcalloc(n, sizeof *route_names);
    for (size_t i = 0; i < n; i++)
        route_names[i] = dm_xstrdup(names[i]);
    requests = dm_xcalloc(n * NSTATUS, sizeof *requests);
}

void dm_metrics_shutdown(void)
{
    for (size_t i = 0; i < nroutes; i++)
        free(route_names[i]);
    free(route_names);
    free((void *)requests);
    route_names = NULL;
    requests = NULL;
    nroutes = 0;
}

void dm_metrics_inc(dm_metric m)
{
    dm_metrics_add(m, 1);
}

void dm_metrics_add(dm_metric m, uint64_t n)
{
    atomic_fetch_add_explicit(&counters[m], n, memory_order_relaxed);
}

void dm_metrics_request(size_t route, int status)
{
    if (route >= nroutes)
        return;
    size_t s = 0;
    while (s < DM_ARRAY_LEN(statuses) && statuses[s] != status)
        s++;
    atomic_fetch_add_explicit(&requests[route * NSTATUS + s], 1, memory_order_relaxed);
}

void dm_metrics_parked(const char *source, uint64_t n)
{
    size_t i = 0;
    while (i < DM_ARRAY_LEN(sources) - 1 && strcmp(sources[i], source) != 0)
        i++;
    atomic_fetch_add_explicit(&parked[i], n, memory_order_relaxed);
}

void dm_metrics_set(dm_gauge g, int64_t v)
{
    atomic_store_explicit(&gauges[g], v, memory_order_relaxed);
}

void dm_metrics_gauge_add(dm_gauge g, int64_t delta)
{
    atomic_fetch_add_explicit(&gauges[g], delta, memory_order_relaxed);
}

static _Atomic int64_t spool_oldest_ms;

void dm_metrics_spool_oldest(int64_t arrival_ms)
{
    atomic_store_explicit(&spool_oldest_ms, arrival_ms, memory_order_relaxed);
}

void dm_metrics_inflight(int delta)
{
    atomic_fetch_add_explicit(&inflight, delta, memory_order_relaxed);
}

void dm_metrics_conn_refused(dm_conn_reason r)
{
    atomic_fetch_add_explicit(&conn_refused[r], 1, memory_order_relaxed);
}

void dm_metrics_accept_paused(bool fd_limit)
{
    atomic_fetch_add_explicit(&accept_paused[fd_limit], 1, memory_order_relaxed);
}

void dm_metrics_connections(int delta)
{
    atomic_fetch_add_explicit(&connections, delta, memory_order_relaxed);
}

void dm_metrics_redis_event(dm_redis_event e)
{
    atomic_fetch_add_explicit(&redis_events[e], 1, memory_order_relaxed);
}

/* The Redis Cluster router's figures (correlator/dm_redis.h). */
static void render_redis(struct evbuffer *out)
{
    static const char *const kinds[] = {"moved", "ask", "tryagain", "clusterdown"};
    evbuffer_add_printf(out, "# HELP digestmap_redis_redirects_total Redis Cluster redirects and "
                             "retries followed, by kind.\n"
                             "# TYPE digestmap_redis_redirects_total counter\n");
    for (size_t i = 0; i < DM_ARRAY_LEN(kinds); i++)
        evbuffer_add_printf(out, "digestmap_redis_redirects_total{kind=\"%s\"} %llu\n", kinds[i],
                            (unsigned long long)atomic_load(&redis_events[i]));
    evbuffer_add_printf(
        out,
        "# HELP digestmap_redis_topology_refreshes_total Redis Cluster slot maps read.\n"
        "# TYPE digestmap_redis_topology_refreshes_total counter\n"
        "digestmap_redis_topology_refreshes_total %llu\n"
        "# HELP digestmap_redis_topology_changes_total Slot maps read that differed from the "
        "one in use.\n"
        "# TYPE digestmap_redis_topology_changes_total counter\n"
        "digestmap_redis_topology_changes_total %llu\n"
        "# HELP digestmap_redis_dns_failures_total Redis host names that did not resolve.\n"
        "# TYPE digestmap_redis_dns_failures_total counter\n"
        "digestmap_redis_dns_failures_total %llu\n",
        (unsigned long long)atomic_load(&redis_events[DM_RE_TOPOLOGY_REFRESH]),
        (unsigned long long)atomic_load(&redis_events[DM_RE_TOPOLOGY_CHANGE]),
        (unsigned long long)atomic_load(&redis_events[DM_RE_DNS_FAILURE]));
}

/* The connection layer's figures (receiver/dm_conn.h). */
static void render_connections(struct evbuffer *out)
{
    evbuffer_add_printf(out, "# HELP digestmap_connections_refused_total Requests refused by the "
                             "connection layer, by reason.\n"
                             "# TYPE digestmap_connections_refused_total counter\n");
    for (size_t i = 0; i < DM_CONN_REASON_COUNT; i++)
        evbuffer_add_printf(out, "digestmap_connections_refused_total{reason=\"%s\"} %llu\n",
                            conn_reasons[i], (unsigned long long)atomic_load(&conn_refused[i]));
    evbuffer_add_printf(out,
                        "# HELP digestmap_accept_paused_total Pauses of a listener, by reason.\n"
                        "# TYPE digestmap_accept_paused_total counter\n"
                        "digestmap_accept_paused_total{reason=\"max_connections\"} %llu\n"
                        "digestmap_accept_paused_total{reason=\"fd_limit\"} %llu\n"
                        "# HELP digestmap_connections_open Open client connections.\n"
                        "# TYPE digestmap_connections_open gauge\n"
                        "digestmap_connections_open %lld\n",
                        (unsigned long long)atomic_load(&accept_paused[0]),
                        (unsigned long long)atomic_load(&accept_paused[1]),
                        (long long)atomic_load(&connections));
}

void dm_metrics_render(struct evbuffer *out)
{
    evbuffer_add_printf(out, "# HELP digestmap_requests_total HTTP requests by route and status.\n"
                             "# TYPE digestmap_requests_total counter\n");
    for (size_t r = 0; r < nroutes; r++) {
        for (size_t s = 0; s < NSTATUS; s++) {
            uint64_t v = atomic_load_explicit(&requests[r * NSTATUS + s], memory_order_relaxed);
            if (!v)
                continue;
            if (s < DM_ARRAY_LEN(statuses))
                evbuffer_add_printf(out,
                                    "digestmap_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                                    route_names[r], statuses[s], (unsigned long long)v);
            else
                evbuffer_add_printf(
                    out, "digestmap_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                    route_names[r], (unsigned long long)v);
        }
    }
    evbuffer_add_printf(out,
                        "# HELP digestmap_events_parked_total Events parked in Redis by source.\n"
                        "# TYPE digestmap_events_parked_total counter\n");
    for (size_t i = 0; i < DM_ARRAY_LEN(sources); i++)
        evbuffer_add_printf(out, "digestmap_events_parked_total{source=\"%s\"} %llu\n", sources[i],
                            (unsigned long long)atomic_load(&parked[i]));
    for (size_t m = 0; m < DM_M_COUNT; m++)
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", metric_info[m].name,
                            metric_info[m].help, metric_info[m].name, metric_info[m].name,
                            (unsigned long long)atomic_load(&counters[m]));
    for (size_t g = 0; g < DM_G_COUNT; g++)
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", gauge_info[g].name,
                            gauge_info[g].help, gauge_info[g].name, gauge_info[g].name,
                            (long long)atomic_load(&gauges[g]));
    evbuffer_add_printf(out,
                        "# HELP digestmap_inflight_requests Requests being processed.\n"
                        "# TYPE digestmap_inflight_requests gauge\n"
                        "digestmap_inflight_requests %lld\n",
                        (long long)atomic_load(&inflight));
    int64_t oldest = atomic_load(&spool_oldest_ms), age = oldest ? dm_now_ms() - oldest : 0;
    evbuffer_add_printf(out,
                        "# HELP digestmap_spool_oldest_age_seconds Age of the oldest spooled "
                        "event (0: the spool is empty).\n"
                        "# TYPE digestmap_spool_oldest_age_seconds gauge\n"
                        "digestmap_spool_oldest_age_seconds %.3f\n",
                        age > 0 ? (double)age / 1000.0 : 0.0);
    render_connections(out);
    render_redis(out);
}
