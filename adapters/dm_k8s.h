/* dm_k8s.h - Kubernetes cluster snapshots: Pods, Services and Ingresses in, the cluster's
 * workloads out (docs/workloads.md). Pure: bytes in, a dm_k8s_snapshot or a dm_error out; no
 * I/O, no globals. */
#ifndef DM_ADAPTERS_DM_K8S_H
#define DM_ADAPTERS_DM_K8S_H

#include "dm_event.h"

/** How far a workload is reachable; the order is the precedence (the highest wins). */
typedef enum dm_k8s_exposure {
    DM_K8S_CLUSTER = 0,  /**< only from inside the cluster */
    DM_K8S_NODE = 1,     /**< a NodePort, or an internal-only LoadBalancer's node ports */
    DM_K8S_INTERNET = 2, /**< a LoadBalancer that is not internal-only, or an Ingress */
} dm_k8s_exposure;

/** "cluster", "node" or "internet". */
const char *dm_k8s_exposure_name(dm_k8s_exposure e);

/** Most distinct digests one workload may run (every container and init container of every
 *  pod, deduplicated); more is a 413. */
#define DM_K8S_MAX_IMAGES 128

/** One workload; every string is owned by the snapshot that holds it. */
typedef struct dm_k8s_workload {
    char *namespace_; /**< metadata.namespace of its pods */
    char *kind;       /**< Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, Pod,
                           or another controller's kind as the pods' owner names it */
    char *name;
    dm_k8s_exposure exposure;
    char (*images)[DM_DIGEST_BUFLEN]; /**< "sha256:<hex>", sorted, distinct, at least one */
    size_t nimages;
} dm_k8s_workload;

/** A parsed snapshot: the cluster's whole inventory at taken_at. */
typedef struct dm_k8s_snapshot {
    char *cluster;
    int64_t taken_at_ms;
    dm_k8s_workload *v; /**< sorted by (namespace, kind, name), byte-wise; each one once */
    size_t n;
    size_t pods, services, ingresses, other_items; /**< what items held (for logs) */
} dm_k8s_snapshot;

/** What the caller decides. Zero bounds mean "no bound". */
typedef struct dm_k8s_options {
    /** ingress classes that are not reachable from the internet (config
     *  k8s.internal_ingress_classes); borrowed for the call */
    const char *const *internal_ingress_classes;
    size_t n_internal_ingress_classes;
    size_t max_items;     /**< more items is a 413 on "items" */
    size_t max_workloads; /**< more workloads is a 413 on "items" */
} dm_k8s_options;

/**
 * Parse a snapshot `{"cluster", "taken_at", "items": [...]}` of @p len bytes, where items are
 * objects as `kubectl get pods,services,ingresses -A -o json` prints them (other kinds are
 * counted in other_items and otherwise ignored). Derivation and exposure rules:
 * docs/workloads.md. A workload whose pods report no registry digest (not yet pulled, or only
 * local image ids) is left out.
 * - cluster: 1..128 bytes of [A-Za-z0-9._:-]; taken_at: an RFC 3339 timestamp.
 * - namespaces: DNS labels (1..63 bytes of [a-z0-9-]); object and owner names: 1..253 bytes of
 *   [a-z0-9.-]; an owner's kind: 1..63 bytes of [A-Za-z0-9].
 * Returns DM_OK (the caller disposes @p out), or DM_EINVAL with @p err naming the item and
 * field ("items[3].metadata.namespace"): status 400, or 413 for a bound exceeded. On error
 * @p out is left zeroed. @p opts may be NULL (no internal classes, no bounds).
 */
int dm_k8s_parse(const char *body, size_t len, const dm_k8s_options *opts, dm_k8s_snapshot *out,
                 dm_error *err);

/** Free what @p s owns and zero it (a zeroed snapshot is fine). */
void dm_k8s_snapshot_dispose(dm_k8s_snapshot *s);

/**
 * The compact JSON of @p s, for Redis and its Lua scripts (a new string the caller frees):
 * `{"cluster":"prod-weu","taken_at":<ms>,"workloads":[{"cluster":"prod-weu","namespace":"shop",
 * "kind":"Deployment","name":"api","exposure":"internet","images":["sha256:…"]}]}` with
 * members in that order and workloads in the snapshot's order. Each workload object is
 * complete on its own (it carries its cluster), as the queries answer it.
 */
char *dm_k8s_to_json(const dm_k8s_snapshot *s);

#endif
