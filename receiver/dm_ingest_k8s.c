/* dm_ingest_k8s.c - POST to a k8s source: a cluster snapshot (docs/workloads.md) parsed,
 * split by the shard of each digest and stored with one workloads.lua call per shard.
 *
 * Every shard is written, also those the snapshot has no digest of: a shard can lose all its
 * workloads. The answer is 202 only once every shard took its part; a snapshot older than the
 * one stored is 200 "stale". There is no spool for snapshots: when Redis cannot take one the
 * answer is 503 + Retry-After and the reporter posts it again (the next snapshot would replace
 * it anyway), and a retry of the same snapshot completes the shards a failure left behind
 * (workloads.lua applies a snapshot as old as the stored one again).
 */
#include "dm_common.h"
#include "dm_ingest.h"
#include "dm_req.h"
#include "dm_k8s.h"
#include "dm_keys.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_redis.h"
#include "dm_scripts.h"
#include "dm_time.h"
#include "dm_wait.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One snapshot being stored: owns its per-shard arguments and the right to answer once. */
typedef struct k8s_ingest {
    dm_worker *w;
    dm_req *req;
    size_t route;
    const char *path; /**< the source's path (config, lives as long as the server) */
    char *cluster;
    int64_t taken_at_ms;
    size_t workloads, pods;
    unsigned shards;
    char **keys;  /**< per shard: its wc:<cluster> key (routes the call) */
    size_t *klen; /**< their lengths */
    char **parts; /**< per shard: its part of the snapshot (workloads.lua ARGV[5]) */
    unsigned pending;
    int first_err;
    unsigned stale, applied; /**< shards that called the snapshot stale / that stored it */
    long long stored_at, removed;
    int waits, waits_short;
    char jti_key[DM_KEY_BUFLEN]; /**< the token's replay marker, or "" */
    int64_t jti_pxat;
} k8s_ingest;

static void ignore_reply(int err, redisReply *rep, void *arg)
{
    (void)err, (void)rep, (void)arg;
}

static void k8s_free(k8s_ingest *in)
{
    for (unsigned s = 0; s < in->shards; s++) {
        free(in->keys[s]);
        free(in->parts[s]);
    }
    free(in->keys);
    free(in->klen);
    free(in->parts);
    free(in->cluster);
    dm_worker_end(in->w);
    free(in);
}

/* Not (wholly) stored: 503 + Retry-After; the token's marker goes, so the retry may reuse it. */
static void answer_failed(k8s_ingest *in, int err)
{
    if (in->jti_key[0]) {
        const char *argv[] = {"DEL", in->jti_key};
        size_t lens[] = {3, strlen(in->jti_key)};
        dm_redis_command(dm_worker_redis(in->w), in->jti_key, ignore_reply, NULL, 2, argv, lens);
    }
    dm_req_unavailable(in->req, in->route, in->path, err);
    k8s_free(in);
}

static void answer(k8s_ingest *in)
{
    char cq[300], body[128];
    dm_log_quote_str(in->cluster, cq, sizeof cq);
    if (in->applied == 0) {
        dm_metrics_inc(DM_M_K8S_STALE);
        dm_info("snapshot ignored",
                "route=%s cluster=%s reason=stale taken_at_ms=%lld "
                "stored_taken_at_ms=%lld",
                in->path, cq, (long long)in->taken_at_ms, in->stored_at);
        dm_req_json(in->req, in->route, 200, "{\"status\":\"ignored\",\"reason\":\"stale\"}");
    } else {
        dm_metrics_inc(DM_M_K8S_SNAPSHOTS);
        dm_metrics_add(DM_M_K8S_WORKLOADS, in->workloads);
        dm_info("snapshot stored",
                "route=%s cluster=%s taken_at_ms=%lld workloads=%zu pods=%zu "
                "removed=%lld",
                in->path, cq, (long long)in->taken_at_ms, in->workloads, in->pods, in->removed);
        /* Some shards hold a newer snapshot (one that reached only them, then failed): those
         * keep it, the others now hold this one until the cluster reports again. */
        if (in->stale)
            dm_warn("snapshot partly stale",
                    "route=%s cluster=%s taken_at_ms=%lld applied_shards=%u stale_shards=%u "
                    "stored_taken_at_ms=%lld",
                    in->path, cq, (long long)in->taken_at_ms, in->applied, in->stale,
                    in->stored_at);
        snprintf(body, sizeof body, "{\"status\":\"accepted\",\"workloads\":%zu}", in->workloads);
        dm_req_json(in->req, in->route, 202, body);
    }
    k8s_free(in);
}

static void on_wait(bool confirmed, void *arg)
{
    k8s_ingest *in = arg;
    if (!confirmed)
        in->waits_short++;
    if (--in->waits > 0)
        return;
    if (in->waits_short == 0) {
        answer(in);
        return;
    }
    /* In Redis, but a failover could lose it: the reporter posts it again. */
    dm_metrics_inc(DM_M_WAIT_SHORT);
    dm_warn("replicas did not confirm the snapshot in time", "route=%s wait_replicas=%d", in->path,
            dm_worker_app(in->w)->conf->redis.wait_replicas);
    answer_failed(in, DM_EUNAVAIL);
}

static void stored(k8s_ingest *in)
{
    if (in->first_err != DM_OK) {
        answer_failed(in, in->first_err);
        return;
    }
    /* Nothing written (every shard stale): nothing to wait for. */
    if (in->applied == 0 || dm_worker_app(in->w)->conf->redis.wait_replicas <= 0) {
        answer(in);
        return;
    }
    /* Every shard, also the stale ones: their WAIT confirms at once, and asking it keeps the
     * per-shard bookkeeping out of the reply callbacks. */
    in->waits = 1; /* held until every WAIT is asked for */
    for (unsigned s = 0; s < in->shards; s++) {
        if (dm_waiter_wait(dm_worker_waiter(in->w), in->keys[s], on_wait, in) == DM_OK)
            in->waits++;
        else
            in->waits_short++;
    }
    on_wait(true, in);
}

/* workloads.lua's answer: {stale, stored taken_at, workloads, removed}. */
static void on_shard(int err, redisReply *rep, void *arg)
{
    k8s_ingest *in = arg;
    if (err == DM_OK) {
        bool shape = rep->type == REDIS_REPLY_ARRAY && rep->elements == 4;
        for (size_t i = 0; shape && i < 4; i++)
            shape = rep->element[i]->type == REDIS_REPLY_INTEGER;
        if (!shape) {
            char reply[200];
            bool oom =
                rep->type == REDIS_REPLY_ERROR && rep->len >= 4 && memcmp(rep->str, "OOM ", 4) == 0;
            if (oom)
                dm_metrics_inc(DM_M_REDIS_OOM);
            dm_log(oom ? DM_LOG_WARN : DM_LOG_ERROR, "workloads script failed",
                   "reply_type=%d reply=%s", rep->type,
                   dm_log_quote(rep->type == REDIS_REPLY_ERROR ? rep->str : "",
                                rep->type == REDIS_REPLY_ERROR ? rep->len : 0, reply,
                                sizeof reply));
            err = DM_EREDIS;
        } else if (rep->element[0]->integer) {
            in->stale++;
            in->stored_at = rep->element[1]->integer;
        } else {
            in->applied++;
            in->removed += rep->element[3]->integer;
        }
    }
    if (err != DM_OK && in->first_err == DM_OK)
        in->first_err = err;
    if (--in->pending == 0)
        stored(in);
}

static void submit(k8s_ingest *in)
{
    const dm_app *app = dm_worker_app(in->w);
    char taken[24], ttl[24], base[DM_KEY_BUFLEN];
    snprintf(taken, sizeof taken, "%lld", (long long)in->taken_at_ms);
    snprintf(ttl, sizeof ttl, "%lld",
             (long long)app->conf->correlation.findings_ttl_seconds * 1000);
    /* Callbacks never run inside dm_redis_eval, so counting while submitting is safe. */
    in->pending = 1;
    for (unsigned s = 0; s < in->shards; s++) {
        size_t blen = dm_key_shard_base(base, app->join.prefix, s);
        const char *argv[] = {in->keys[s], base, in->cluster, taken, ttl, in->parts[s]};
        size_t lens[] = {in->klen[s],   blen,        strlen(in->cluster),
                         strlen(taken), strlen(ttl), strlen(in->parts[s])};
        int rc = dm_redis_eval(dm_worker_redis(in->w), DM_SCRIPT_WORKLOADS, on_shard, in, 1, 6,
                               argv, lens);
        if (rc == DM_OK) {
            in->pending++;
        } else if (in->first_err == DM_OK) {
            in->first_err = rc;
        }
    }
    if (--in->pending == 0)
        stored(in);
}

static void on_jti(int err, redisReply *rep, void *arg)
{
    k8s_ingest *in = arg;
    if (err != DM_OK || rep->type == REDIS_REPLY_ERROR) {
        in->jti_key[0] = '\0'; /* not known to be set: nothing to remove */
        answer_failed(in, err != DM_OK ? err : DM_EREDIS);
        return;
    }
    if (rep->type == REDIS_REPLY_NIL) {
        dm_metrics_inc(DM_M_AUTH_FAILED);
        dm_warn("request refused",
                "status=401 route=%s reason=\"token replayed (jti seen)\" peer=%s", in->path,
                dm_req_peer(in->req));
        dm_req_error(in->req, in->route, 401, "bad credentials: token already used");
        k8s_free(in);
        return;
    }
    submit(in);
}

/* A snapshot the source may not store (docs/workloads.md "Who may report a cluster"): 403 for
 * a cluster the source's "clusters" does not list, 413 for more (workload, image) pairs than
 * limits.max_snapshot_workload_images, 400 for a taken_at beyond the clock skew (it would make
 * every honest snapshot of the cluster stale until then). Logged and counted; false when the
 * snapshot may be stored. */
static bool refused(dm_req *req, size_t route, const dm_source_conf *src, const dm_app *app,
                    const dm_k8s_snapshot *snap)
{
    char cq[300];
    bool listed = src->nclusters == 0;
    for (size_t i = 0; !listed && i < src->nclusters; i++)
        listed = strcmp(src->clusters[i], snap->cluster) == 0;
    if (!listed) {
        dm_metrics_inc(DM_M_AUTH_FAILED);
        dm_warn("request refused",
                "status=403 route=%s cluster=%s reason=\"cluster not in the source's clusters\" "
                "peer=%s",
                src->path, dm_log_quote_str(snap->cluster, cq, sizeof cq), dm_req_peer(req));
        dm_req_error(req, route, 403, "cluster: \"%s\" is not a cluster this source may report",
                     snap->cluster); /* checked by dm_k8s_parse: no quote or control byte */
        return true;
    }
    /* Each (workload, digest) pair is a w: field and an index member, written in one script
     * call per shard that blocks Redis meanwhile. */
    size_t pairs = 0;
    for (size_t i = 0; i < snap->n; i++)
        pairs += snap->v[i].nimages;
    if (pairs > (size_t)app->conf->limits.max_snapshot_workload_images) {
        dm_error err = {0};
        snprintf(err.field, sizeof err.field, "items");
        snprintf(err.text, sizeof err.text,
                 "the workloads run %zu (workload, image) pairs, more than "
                 "limits.max_snapshot_workload_images (%d)",
                 pairs, app->conf->limits.max_snapshot_workload_images);
        dm_ingest_refuse(req, route, src->path, 413, &err);
        return true;
    }
    int64_t skew_ms = app->conf->correlation.max_clock_skew_seconds * 1000;
    int64_t now = dm_now_ms();
    if (snap->taken_at_ms > now + skew_ms) {
        dm_error err = {0};
        snprintf(err.field, sizeof err.field, "taken_at");
        snprintf(err.text, sizeof err.text,
                 "later than now + correlation.max_clock_skew_seconds (%lld s)",
                 (long long)app->conf->correlation.max_clock_skew_seconds);
        dm_ingest_refuse(req, route, src->path, 400, &err);
        return true;
    }
    return false;
}

/* The workload as w:<digest> stores it: without its images, which its wc:<cluster> field keeps
 * once per shard (a workload of 128 digests would otherwise be copied into 128 hashes, each
 * copy listing all 128); the readers add them back (query.lua). */
static char *workload_text(const dm_k8s_snapshot *snap, const dm_k8s_workload *wl)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s}", "cluster", snap->cluster, "namespace",
                          wl->namespace_, "kind", wl->kind, "name", wl->name, "exposure",
                          dm_k8s_exposure_name(wl->exposure));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        abort(); /* allocation failure inside jansson: fatal, like dm_xmalloc's */
    return text;
}

/* Each shard's part: [{"k", "x", "w", "d": [its digests in the shard]}], every shard listed
 * (an empty part removes what the shard held of the cluster). */
static void split(k8s_ingest *in, const dm_k8s_snapshot *snap)
{
    json_t **parts = dm_xcalloc(in->shards, sizeof *parts);
    for (unsigned s = 0; s < in->shards; s++)
        parts[s] = json_array();
    json_t **digests = dm_xcalloc(in->shards, sizeof *digests);
    for (size_t i = 0; i < snap->n; i++) {
        const dm_k8s_workload *wl = &snap->v[i];
        for (size_t j = 0; j < wl->nimages; j++) {
            unsigned s = dm_digest_shard(wl->images[j], in->shards);
            if (!digests[s])
                digests[s] = json_array();
            json_array_append_new(digests[s], json_string(wl->images[j]));
        }
        char *text = workload_text(snap, wl);
        json_t *all = json_array();
        for (size_t j = 0; j < wl->nimages; j++)
            json_array_append_new(all, json_string(wl->images[j]));
        size_t klen = strlen(wl->namespace_) + strlen(wl->kind) + strlen(wl->name) + 3;
        char *k = dm_xmalloc(klen);
        snprintf(k, klen, "%s/%s/%s", wl->namespace_, wl->kind, wl->name);
        for (unsigned s = 0; s < in->shards; s++) {
            if (!digests[s])
                continue;
            json_array_append_new(parts[s], json_pack("{s:s,s:s,s:s,s:o,s:O}", "k", k, "x",
                                                      dm_k8s_exposure_name(wl->exposure), "w", text,
                                                      "d", digests[s], "i", all));
            digests[s] = NULL;
        }
        free(k);
        free(text);
        json_decref(all);
    }
    const dm_app *app = dm_worker_app(in->w);
    for (unsigned s = 0; s < in->shards; s++) {
        in->parts[s] = json_dumps(parts[s], JSON_COMPACT);
        if (!in->parts[s])
            abort();
        json_decref(parts[s]);
        in->keys[s] = dm_key_cluster_inventory(app->join.prefix, s, snap->cluster, &in->klen[s]);
    }
    free(parts);
    free(digests);
}

void dm_ingest_k8s(dm_worker *w, dm_req *req, const dm_route_match *m, const char *body, size_t len,
                   dm_auth_outcome *auth)
{
    const dm_source_conf *src = m->source;
    const dm_app *app = dm_worker_app(w);
    dm_k8s_options opts = {.internal_ingress_classes =
                               (const char *const *)app->conf->k8s.internal_ingress_classes,
                           .n_internal_ingress_classes = app->conf->k8s.ninternal_ingress_classes,
                           .max_items = (size_t)app->conf->limits.max_snapshot_items,
                           .max_workloads = (size_t)app->conf->limits.max_workloads_per_snapshot};
    dm_k8s_snapshot snap = {0};
    dm_error err = {0};
    if (dm_k8s_parse(body, len, &opts, &snap, &err) != DM_OK) {
        dm_ingest_refuse(req, m->id, src->path, err.status ? err.status : 400, &err);
        dm_auth_outcome_dispose(auth);
        return;
    }
    if (refused(req, m->id, src, app, &snap)) {
        dm_k8s_snapshot_dispose(&snap);
        dm_auth_outcome_dispose(auth);
        return;
    }
    dm_redis *r = dm_worker_redis(w);
    unsigned shards = app->join.shards;
    /* All shards or none: a partly queued snapshot would answer 503 after doing the work. */
    if (!dm_redis_ready(r) || dm_redis_room(r) < shards + 1 || !dm_worker_begin(w)) {
        dm_req_unavailable(req, m->id, src->path, dm_redis_ready(r) ? DM_EBUSY : DM_EUNAVAIL);
        dm_k8s_snapshot_dispose(&snap);
        dm_auth_outcome_dispose(auth);
        return;
    }
    k8s_ingest *in = dm_xcalloc(1, sizeof *in);
    in->w = w;
    in->req = req;
    in->route = m->id;
    in->path = src->path;
    in->cluster = dm_xstrdup(snap.cluster);
    in->taken_at_ms = snap.taken_at_ms;
    in->workloads = snap.n;
    in->pods = snap.pods;
    in->shards = shards;
    in->first_err = DM_OK;
    in->keys = dm_xcalloc(shards, sizeof *in->keys);
    in->klen = dm_xcalloc(shards, sizeof *in->klen);
    in->parts = dm_xcalloc(shards, sizeof *in->parts);
    split(in, &snap);
    dm_k8s_snapshot_dispose(&snap);

    int rc = DM_OK;
    if (dm_ingest_wants_replay_check(auth))
        rc = dm_ingest_replay_marker(app, auth->claims, in->jti_key, &in->jti_pxat);
    dm_auth_outcome_dispose(auth);
    if (rc != DM_OK) {
        in->jti_key[0] = '\0';
        answer_failed(in, rc);
    } else if (!in->jti_key[0]) {
        submit(in);
    } else {
        /* SET NX PXAT: a captured token cannot be replayed within its lifetime. */
        char pxat[24];
        snprintf(pxat, sizeof pxat, "%lld", (long long)in->jti_pxat);
        const char *argv[] = {"SET", in->jti_key, "k8s", "NX", "PXAT", pxat};
        size_t lens[6];
        for (int i = 0; i < 6; i++)
            lens[i] = strlen(argv[i]);
        if ((rc = dm_redis_command(r, in->jti_key, on_jti, in, 6, argv, lens)) != DM_OK) {
            in->jti_key[0] = '\0';
            answer_failed(in, rc);
        }
    }
}
