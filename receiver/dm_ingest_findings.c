/* dm_ingest_findings.c - findings reports on the sources' routes: see dm_ingest.h. */
#include "dm_common.h"
#include "dm_build.h"
#include "dm_ecr.h"
#include "dm_finding.h"
#include "dm_req.h"
#include "dm_ingest.h"
#include "dm_join.h"
#include "dm_keys.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_redis.h"
#include "dm_scan.h"
#include "dm_scripts.h"
#include "dm_sns.h"
#include "dm_wait.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A report's calls (one per digest, and the token's marker) always fit the worker's Redis
 * queue when it is empty (dm_worker.c sizes it for the largest build event): a report that
 * could never fit is refused with a 413 (DM_FINDING_MAX_DIGESTS), never answered 503 for
 * ever. */
_Static_assert(DM_FINDING_MAX_DIGESTS + 2 <= DM_MAX_EVENTS_PER_REQUEST * 2,
               "a findings report must fit the Redis queue");

/* One findings report being stored: owns its JSON document and the right to answer once. */
typedef struct findings_req {
    dm_worker *w;
    dm_req *req;
    size_t route;
    const char *path; /**< the source's route path (config, lives as long as the server) */
    char scanner[16];
    char *doc; /**< dm_finding_report_to_store_json of the report: findings.lua's ARGV 1 */
    char (*digests)[DM_DIGEST_BUFLEN];
    size_t ndigests;
    size_t pending;
    int first_err;
    char reply[200]; /**< the first error reply, quoted, for the log line */
    uint64_t received, stored, dropped, records, routed;
    int waits, waits_short;      /**< redis.wait_replicas: WAITs in flight, and those short */
    char jti_key[DM_KEY_BUFLEN]; /**< replay marker of this request's token, or "" */
    int64_t jti_pxat;
} findings_req;

static void req_free(findings_req *fq)
{
    dm_worker_end(fq->w);
    free(fq->doc);
    free(fq->digests);
    free(fq);
}

static void answer_stored(findings_req *fq)
{
    char body[160];
    dm_metrics_add(DM_M_FINDINGS_RECEIVED, fq->received);
    dm_metrics_add(DM_M_FINDINGS_STORED, fq->stored);
    dm_metrics_add(DM_M_FINDINGS_DROPPED, fq->dropped);
    dm_metrics_add(DM_M_FINDINGS_ROUTED, fq->records);
    dm_info("findings stored",
            "route=%s scanner=%s digests=%zu findings=%llu stored=%llu dropped=%llu "
            "records=%llu routed=%llu",
            fq->path, fq->scanner, fq->ndigests, (unsigned long long)fq->received,
            (unsigned long long)fq->stored, (unsigned long long)fq->dropped,
            (unsigned long long)fq->records, (unsigned long long)fq->routed);
    snprintf(body, sizeof body, "{\"status\":\"accepted\",\"findings\":%llu,\"routed\":%llu}",
             (unsigned long long)fq->received, (unsigned long long)fq->routed);
    dm_req_json(fq->req, fq->route, 202, body);
    req_free(fq);
}

/* Redis did not take (all of) it, or the replicas did not confirm it: 503 + Retry-After. What
 * was stored stays: the sender's retry stores the same again. */
static void ignore_reply(int err, redisReply *rep, void *arg)
{
    (void)err, (void)rep, (void)arg;
}

static void answer_failed(findings_req *fq)
{
    if (fq->jti_key[0]) { /* not stored: the sender may retry with the same token */
        const char *argv[] = {"DEL", fq->jti_key};
        size_t lens[] = {3, strlen(fq->jti_key)};
        dm_redis_command(dm_worker_redis(fq->w), fq->jti_key, ignore_reply, NULL, 2, argv, lens);
    }
    if (fq->reply[0])
        dm_warn("findings not stored", "route=%s scanner=%s reply=%s", fq->path, fq->scanner,
                fq->reply);
    dm_req_unavailable(fq->req, fq->route, fq->path, fq->first_err);
    req_free(fq);
}

static void on_wait(bool confirmed, void *arg)
{
    findings_req *fq = arg;
    if (!confirmed)
        fq->waits_short++;
    if (--fq->waits > 0)
        return;
    if (fq->waits_short == 0) {
        answer_stored(fq);
        return;
    }
    dm_metrics_inc(DM_M_WAIT_SHORT);
    dm_warn("replicas did not confirm the findings in time", "route=%s wait_replicas=%d", fq->path,
            dm_worker_app(fq->w)->conf->redis.wait_replicas);
    fq->first_err = DM_EUNAVAIL;
    answer_failed(fq);
}

/* redis.wait_replicas: one WAIT per shard written, on the connection that wrote it. */
static void wait_replicas(findings_req *fq)
{
    const dm_app *app = dm_worker_app(fq->w);
    char route[DM_KEY_BUFLEN];
    fq->waits = 1; /* held until every WAIT is asked for */
    for (size_t i = 0; i < fq->ndigests; i++) {
        /* A report names one digest or a few: a repeated shard only costs a shared WAIT. */
        dm_join_route_key(route, &app->join, fq->digests[i]);
        if (dm_waiter_wait(dm_worker_waiter(fq->w), route, on_wait, fq) == DM_OK)
            fq->waits++;
        else
            fq->waits_short++;
    }
    on_wait(true, fq); /* drops the hold */
}

static void done_one(findings_req *fq)
{
    if (--fq->pending > 0)
        return;
    if (fq->first_err != DM_OK)
        answer_failed(fq);
    else if (dm_worker_app(fq->w)->conf->redis.wait_replicas > 0)
        wait_replicas(fq);
    else
        answer_stored(fq);
}

static long long int_at(const redisReply *rep, size_t i)
{
    return i < rep->elements && rep->element[i]->type == REDIS_REPLY_INTEGER
               ? rep->element[i]->integer
               : 0;
}

static void on_stored(int err, redisReply *rep, void *arg)
{
    findings_req *fq = arg;
    if (err == DM_OK && rep->type == REDIS_REPLY_ERROR) {
        /* Over maxmemory, a failover, the script itself: not stored (or not all of it). */
        if (rep->len >= 4 && memcmp(rep->str, "OOM ", 4) == 0)
            dm_metrics_inc(DM_M_REDIS_OOM);
        if (!fq->reply[0])
            dm_log_quote(rep->str, rep->len, fq->reply, sizeof fq->reply);
        err = DM_EREDIS;
    } else if (err == DM_OK && rep->type != REDIS_REPLY_ARRAY) {
        err = DM_EREDIS;
    }
    if (err != DM_OK) {
        if (fq->first_err == DM_OK)
            fq->first_err = err;
    } else {
        fq->stored += (uint64_t)int_at(rep, 0);
        fq->dropped += (uint64_t)int_at(rep, 1);
        fq->records += (uint64_t)int_at(rep, 2);
        fq->routed += (uint64_t)int_at(rep, 3);
    }
    done_one(fq);
}

/* One EVAL of findings.lua for the report's part of @p digest. */
static int store_digest(findings_req *fq, const char *digest)
{
    const dm_app *app = dm_worker_app(fq->w);
    const char *prefix = app->join.prefix;
    unsigned shard = dm_digest_shard(digest, app->join.shards);
    char keys[5][DM_KEY_BUFLEN], nums[3][24];
    const char *argv[10];
    size_t lens[10];
    lens[0] = dm_key_findings(keys[0], prefix, shard, digest);
    lens[1] = dm_key_finding_summary(keys[1], prefix, shard, digest);
    lens[2] = dm_key_findings_routed(keys[2], prefix, shard, digest);
    lens[3] = dm_key_mappings(keys[3], prefix, shard, digest);
    lens[4] = dm_key_out(keys[4], prefix, shard);
    for (int i = 0; i < 5; i++)
        argv[i] = keys[i];
    argv[5] = fq->doc;
    lens[5] = strlen(fq->doc);
    argv[6] = digest;
    lens[6] = strlen(digest);
    const dm_config *conf = app->conf;
    long long vals[3] = {conf->correlation.findings_ttl_seconds * 1000,
                         conf->limits.max_findings_per_digest, conf->routing.min_severity};
    for (int i = 0; i < 3; i++) {
        snprintf(nums[i], sizeof nums[i], "%lld", vals[i]);
        argv[7 + i] = nums[i];
        lens[7 + i] = strlen(nums[i]);
    }
    return dm_redis_eval(dm_worker_redis(fq->w), DM_SCRIPT_FINDINGS, on_stored, fq, 5, 10, argv,
                         lens);
}

static void store_all(findings_req *fq)
{
    fq->pending = 1; /* held until every call is queued */
    for (size_t i = 0; i < fq->ndigests; i++) {
        int rc = store_digest(fq, fq->digests[i]);
        if (rc == DM_OK) {
            fq->pending++;
        } else {
            fq->first_err = rc;
            break;
        }
    }
    done_one(fq);
}

/* The token's marker (SET NX): a token with a jti is accepted once, as on every source. */
static void on_jti(int err, redisReply *rep, void *arg)
{
    findings_req *fq = arg;
    if (err != DM_OK || rep->type == REDIS_REPLY_ERROR) {
        fq->first_err = err != DM_OK ? err : DM_EREDIS;
        answer_failed(fq); /* the marker may be set: answer_failed removes it */
        return;
    }
    if (rep->type == REDIS_REPLY_NIL) {
        dm_metrics_inc(DM_M_AUTH_FAILED);
        dm_warn("request refused",
                "status=401 route=%s reason=\"token replayed (jti seen)\" peer=%s", fq->path,
                dm_req_peer(fq->req));
        dm_req_error(fq->req, fq->route, 401, "bad credentials: token already used");
        req_free(fq);
        return;
    }
    store_all(fq);
}

/* Store @p rep (taken over) digest by digest, after the replay check of a token with a jti
 * (@p jti_key, or NULL; its marker expires at @p jti_pxat). */
static void store_report(dm_worker *w, dm_req *req, size_t route, const char *path,
                         dm_finding_report *rep, const char *jti_key, int64_t jti_pxat)
{
    dm_redis *r = dm_worker_redis(w);
    if (dm_redis_room_for(r, NULL) < rep->ndigests + 1 || !dm_worker_begin(w)) {
        int why = dm_redis_ready_for(r, NULL) ? DM_EBUSY : DM_EUNAVAIL;
        dm_finding_report_dispose(rep);
        dm_req_unavailable(req, route, path, why);
        return;
    }
    findings_req *fq = dm_xcalloc(1, sizeof *fq);
    fq->w = w;
    fq->req = req;
    fq->route = route;
    fq->path = path;
    snprintf(fq->scanner, sizeof fq->scanner, "%s", rep->scanner);
    fq->doc = dm_finding_report_to_store_json(rep);
    fq->ndigests = rep->ndigests;
    fq->digests = dm_xcalloc(rep->ndigests, sizeof *fq->digests);
    for (size_t i = 0; i < rep->ndigests; i++)
        memcpy(fq->digests[i], rep->digests[i].digest, DM_DIGEST_BUFLEN);
    fq->received = rep->nfindings + rep->dropped;
    fq->dropped = rep->dropped;
    dm_finding_report_dispose(rep);
    snprintf(fq->jti_key, sizeof fq->jti_key, "%s", jti_key ? jti_key : "");
    fq->jti_pxat = jti_pxat;
    if (!fq->jti_key[0]) {
        store_all(fq);
        return;
    }
    char pxat[24];
    snprintf(pxat, sizeof pxat, "%lld", (long long)fq->jti_pxat);
    const char *argv[] = {"SET", fq->jti_key, "findings", "NX", "PXAT", pxat};
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    int rc = dm_redis_command(r, fq->jti_key, on_jti, fq, 6, argv, lens);
    if (rc != DM_OK) {
        fq->jti_key[0] = '\0'; /* not set */
        fq->first_err = rc;
        answer_failed(fq);
    }
}

bool dm_ingest_findings(dm_worker *w, dm_req *req, size_t route, const dm_source_conf *src,
                        dm_auth_outcome *auth, const char *body, size_t len)
{
    if (src->type != DM_SRC_SCAN && src->type != DM_SRC_ECR)
        return false;
    if (auth->sns) {
        /* Confirmations are the ECR ingest's; a notification carries the event as a string. */
        if (src->type != DM_SRC_ECR || auth->sns->type != DM_SNS_NOTIFICATION)
            return false;
        body = auth->sns->message;
        len = strlen(body);
    }
    dm_finding_report rep = {0};
    dm_error err = {0};
    int rc;
    if (src->type == DM_SRC_SCAN) {
        size_t max = (size_t)dm_worker_app(w)->conf->limits.max_findings_per_digest;
        rc = dm_scan_parse(body, len, max, &rep, &err);
    } else {
        rc = dm_ecr_parse_finding(body, len, &rep, &err);
        if (rc == DM_ECR_NOT_FINDING)
            return false;
    }
    if (rc == DM_OK && rep.ndigests > DM_FINDING_MAX_DIGESTS) {
        /* The parsers of scanner reports stop at the bound themselves; any other report too. */
        dm_error_set(&err, "", "report names %zu distinct digests (at most %d a report)",
                     rep.ndigests, DM_FINDING_MAX_DIGESTS);
        err.status = 413;
        dm_finding_report_dispose(&rep);
        rc = DM_EINVAL;
    }
    if (rc != DM_OK) {
        dm_ingest_refuse(req, route, src->path, err.status ? err.status : 400, &err);
        dm_auth_outcome_dispose(auth);
        return true;
    }
    char jti_key[DM_KEY_BUFLEN] = "";
    int64_t jti_pxat = 0;
    if (dm_ingest_wants_replay_check(auth) &&
        dm_ingest_replay_marker(dm_worker_app(w), auth->claims, jti_key, &jti_pxat) != DM_OK)
        jti_key[0] = '\0';
    dm_auth_outcome_dispose(auth);
    if (rep.ignored || rep.ndigests == 0) {
        const char *why = rep.ignored ? rep.ignored : "no digests";
        char out[160], q[96];
        dm_metrics_inc(DM_M_IGNORED);
        dm_info("request ignored", "route=%s reason=%s", src->path,
                dm_log_quote_str(why, q, sizeof q));
        snprintf(out, sizeof out, "{\"status\":\"ignored\",\"reason\":\"%s\"}", why);
        dm_req_json(req, route, 200, out);
        dm_finding_report_dispose(&rep);
        return true;
    }
    store_report(w, req, route, src->path, &rep, jti_key[0] ? jti_key : NULL, jti_pxat);
    return true;
}
