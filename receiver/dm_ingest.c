#include "dm_common.h"
#include "dm_ingest.h"
#include "dm_access.h"
#include "dm_acr.h"
#include "dm_json.h"
#include "dm_build.h"
#include "dm_req.h"
#include "dm_keyring.h"
#include "dm_keys.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_redis.h"
#include "dm_spool.h"
#include "dm_jtiset.h"
#include "dm_wait.h"

#include "dm_ecr.h"
#include "dm_gar.h"
#include "dm_jwt.h"
#include "dm_oidc.h"
#include "dm_quota.h"
#include "dm_rate.h"
#include "dm_sns.h"
#include "dm_time.h"

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdatomic.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One webhook being parked: owns its events until they are parked or spooled, and the right
 * to answer the request once. The answer is 202 only when every event is durable: parked in
 * Redis (and confirmed by redis.wait_replicas replicas), or written to the spool
 * (docs/spool.md). */
typedef struct ingest ingest;

typedef struct event_slot {
    ingest *in;
    size_t i;
} event_slot;

struct ingest {
    dm_worker *w;
    dm_req *req;
    size_t route;
    const char *path; /**< the source's route path (config, lives as long as the server) */
    char source[16];
    dm_event_list list;
    size_t events, pending;
    event_slot *slots;     /**< one per event: its completion's argument */
    unsigned char *parked; /**< per event: 1 once park.lua took it */
    int first_err;
    bool fatal; /**< a failure that keeping the events for later cannot cure (a script error) */
    int edges, duplicates, skewed, deletes;
    int waits, waits_short; /**< redis.wait_replicas: WAITs in flight, and those short */
    int64_t arrival_ms;
    size_t nspooled;
    char jti_key[DM_KEY_BUFLEN]; /**< replay marker of this request's token, or "" */
    int64_t jti_pxat;            /**< its expiry (ms since the epoch) */
    bool jti_set;                /**< this request's SET NX set the marker in Redis */
    char rid[33];                /**< with jti_key: this request's id, the marker's value */
};

void dm_ingest_refuse(dm_req *req, size_t route, const char *path, int status, const dm_error *err)
{
    /* The reason may quote the request (jansson's "near '…'", a field name): quoted. */
    char field[160], text[400];
    dm_metrics_inc(status == 413 ? DM_M_TOO_LARGE : DM_M_INVALID);
    dm_warn("request refused", "status=%d route=%s field=%s reason=%s peer=%s", status, path,
            dm_log_quote_str(err->field, field, sizeof field),
            dm_log_quote_str(err->text, text, sizeof text), dm_req_peer(req));
    if (err->field[0])
        dm_req_error(req, route, status, "%s: %s", err->field, err->text);
    else
        dm_req_error(req, route, status, "%s", err->text);
}

static void ignore_reply(int err, redisReply *rep, void *arg)
{
    (void)err, (void)rep, (void)arg;
}

static void ingest_free(ingest *in)
{
    dm_event_list_dispose(&in->list);
    dm_worker_end(in->w);
    free(in); /* its slots and marks too */
}

static size_t count_parked(const ingest *in)
{
    size_t n = 0;
    for (size_t i = 0; i < in->events; i++)
        n += in->parked[i];
    return n;
}

static void count_results(const ingest *in)
{
    dm_metrics_parked(in->source, count_parked(in));
    dm_metrics_add(DM_M_EDGES, (uint64_t)in->edges);
    dm_metrics_add(DM_M_DELETES, (uint64_t)in->deletes);
    dm_metrics_add(DM_M_DUPLICATES, (uint64_t)in->duplicates);
    dm_metrics_add(DM_M_SKEW_REPLACED, (uint64_t)in->skewed);
}

/* Not stored: 503, and the token's marker goes, so the sender can retry with the same token. */
static void answer_failed(ingest *in, int err)
{
    if (in->jti_key[0]) {
        const char *argv[] = {"DEL", in->jti_key};
        size_t lens[] = {3, strlen(in->jti_key)};
        dm_redis_command(dm_worker_redis(in->w), in->jti_key, ignore_reply, NULL, 2, argv, lens);
    }
    dm_req_unavailable(in->req, in->route, in->path, err);
    ingest_free(in);
}

/* {"status":"accepted","events":N,"edges":M[,"spooled":true]} into @p out (128 bytes), built
 * without printf (every push answers it); returns its length. */
static size_t accepted_json(char *out, const ingest *in, bool spooled)
{
    static const char a[] = "{\"status\":\"accepted\",\"events\":", b[] = ",\"edges\":",
                      c[] = ",\"spooled\":true";
    char *p = out;
    memcpy(p, a, sizeof a - 1);
    p = dm_put_uint(p + sizeof a - 1, in->events);
    memcpy(p, b, sizeof b - 1);
    p = dm_put_uint(p + sizeof b - 1, (unsigned long long)(in->edges > 0 ? in->edges : 0));
    if (spooled) {
        memcpy(p, c, sizeof c - 1);
        p += sizeof c - 1;
    }
    *p++ = '}';
    return (size_t)(p - out);
}

static void answer_parked(ingest *in)
{
    char body[128];
    size_t n = accepted_json(body, in, false);
    count_results(in);
    dm_debug("events parked", "source=%s events=%zu edges=%d duplicates=%d", in->source, in->events,
             in->edges, in->duplicates);
    dm_req_json_n(in->req, in->route, 202, body, n);
    ingest_free(in);
}

/* Neither Redis nor the spool can keep the events (the spool is full, or its disk failed):
 * 503 + Retry-After, counted, and the token's marker goes, so the sender can retry. */
static void refuse_spool(ingest *in, const char *why)
{
    dm_metrics_inc(DM_M_SPOOL_FULL);
    dm_warn("request refused", "status=503 route=%s reason=\"%s and %s\" peer=%s", in->path,
            dm_strerror(in->first_err != DM_OK ? in->first_err : DM_EUNAVAIL), why,
            dm_req_peer(in->req));
    if (in->jti_key[0]) {
        const char *argv[] = {"DEL", in->jti_key};
        size_t lens[] = {3, strlen(in->jti_key)};
        dm_redis_command(dm_worker_redis(in->w), in->jti_key, ignore_reply, NULL, 2, argv, lens);
    }
    dm_req_error(in->req, in->route, 503, "storage unavailable and the spool is full; retry later");
    ingest_free(in);
}

static void on_spooled(int err, void *arg)
{
    ingest *in = arg;
    if (err != DM_OK) {
        refuse_spool(in, "the spool cannot write (see the spool's log line)");
        return;
    }
    char body[128];
    size_t n = accepted_json(body, in, true);
    count_results(in);
    dm_metrics_add(DM_M_SPOOLED, in->nspooled);
    if (in->first_err == DM_EUNAVAIL)
        dm_metrics_inc(DM_M_REDIS_UNAVAILABLE);
    else if (in->first_err == DM_ETIMEOUT)
        dm_metrics_inc(DM_M_REDIS_TIMEOUT);
    dm_info("events spooled", "route=%s source=%s events=%zu spooled=%zu reason=\"%s\"", in->path,
            in->source, in->events, in->nspooled,
            in->waits_short ? "too few replicas confirmed" : dm_strerror(in->first_err));
    dm_req_json_n(in->req, in->route, 202, body, n);
    ingest_free(in);
}

/* The token was used by another request: 401, counted and logged. */
static void refuse_token(ingest *in, const char *why)
{
    dm_metrics_inc(DM_M_AUTH_FAILED);
    dm_warn("request refused", "status=401 route=%s reason=\"%s\" peer=%s", in->path, why,
            dm_req_peer(in->req));
    dm_req_error(in->req, in->route, 401, "bad credentials: token already used");
    ingest_free(in);
}

/* Redis cannot take the events now: write them to the spool (those not parked, or with
 * @p all every one: parked but not confirmed by the replicas) and answer once they are on
 * disk. A full spool is a 503 + Retry-After. */
static void spool_request(ingest *in, bool all)
{
    dm_spool_client *cl = dm_worker_spool(in->w);
    if (!cl) {
        answer_failed(in, in->first_err != DM_OK ? in->first_err : DM_EUNAVAIL);
        return;
    }
    /* A token Redis could not check: one spooled use per token, not a spool full of them. */
    if (in->jti_key[0] &&
        dm_jtiset_claim(dm_spool_jti(dm_worker_app(in->w)->spool), in->jti_key, in->rid) != DM_OK) {
        if (in->jti_set) { /* the spooled use that came first keeps the token */
            const char *argv[] = {"DEL", in->jti_key};
            size_t lens[] = {3, strlen(in->jti_key)};
            dm_redis_command(dm_worker_redis(in->w), in->jti_key, ignore_reply, NULL, 2, argv,
                             lens);
        }
        refuse_token(in, "token replayed (jti of a request spooled meanwhile)");
        return;
    }
    struct evbuffer *buf = evbuffer_new();
    if (!buf) {
        answer_failed(in, DM_ENOMEM);
        return;
    }
    in->nspooled = 0;
    for (size_t i = 0; i < in->events; i++) {
        if (in->parked[i] && !all)
            continue;
        char *json = dm_event_to_json(&in->list.v[i]);
        dm_spool_record rec = {.arrival_ms = in->arrival_ms,
                               .event = json,
                               .event_len = strlen(json),
                               .jti_key = in->jti_key[0] ? in->jti_key : NULL,
                               .request_id = in->jti_key[0] ? in->rid : NULL,
                               .jti_pxat = in->jti_pxat};
        size_t len;
        char *line = dm_spool_encode(&rec, &len);
        free(json);
        if (line)
            evbuffer_add(buf, line, len);
        free(line);
        in->nspooled++;
    }
    size_t len = evbuffer_get_length(buf);
    int rc = dm_spool_append(cl, (const char *)evbuffer_pullup(buf, -1), len, in->nspooled,
                             in->arrival_ms, on_spooled, in);
    evbuffer_free(buf);
    if (rc == DM_OK)
        return;
    refuse_spool(in, "the spool is full (spool.max_bytes)");
}

static void on_wait(bool confirmed, void *arg)
{
    ingest *in = arg;
    if (!confirmed)
        in->waits_short++;
    if (--in->waits > 0)
        return;
    if (in->waits_short == 0) {
        answer_parked(in);
        return;
    }
    /* In Redis, but a failover could lose it: keep it locally as well. */
    int want = dm_worker_app(in->w)->conf->redis.wait_replicas;
    dm_metrics_inc(DM_M_WAIT_SHORT);
    dm_warn("replicas did not confirm the writes in time: events spooled too",
            "route=%s wait_replicas=%d", in->path, want);
    spool_request(in, true);
}

/* redis.wait_replicas: a WAIT on the connection that wrote each shard (routed by a key of that
 * shard), before the answer. The worker's waiter (dm_wait.h) shares one WAIT among the
 * requests of a connection, so that none queues behind another's. */
static void wait_replicas(ingest *in)
{
    const dm_app *app = dm_worker_app(in->w);
    char route[DM_KEY_BUFLEN];
    unsigned char *seen = dm_xcalloc(app->join.shards / 8 + 1, 1);
    in->waits = 1; /* held until every WAIT is asked for: none answers inside dm_waiter_wait */
    for (size_t i = 0; i < in->events; i++) {
        unsigned s = dm_digest_shard(in->list.v[i].digest, app->join.shards);
        if (seen[s / 8] & (1u << (s % 8)))
            continue;
        seen[s / 8] |= (unsigned char)(1u << (s % 8));
        dm_join_route_key(route, &app->join, in->list.v[i].digest);
        if (dm_waiter_wait(dm_worker_waiter(in->w), route, on_wait, in) == DM_OK)
            in->waits++;
        else
            in->waits_short++;
    }
    free(seen);
    on_wait(true, in); /* drops the hold */
}

static void ingest_done(ingest *in)
{
    if (in->first_err == DM_OK) {
        if (dm_worker_app(in->w)->conf->redis.wait_replicas > 0)
            wait_replicas(in);
        else
            answer_parked(in);
    } else if (!in->fatal) {
        /* Redis could not take them now: parking is idempotent, so spooling those that did
         * park too is harmless, and with redis.wait_replicas required: no WAIT confirmed them,
         * so a failover could still lose them. */
        spool_request(in, dm_worker_app(in->w)->conf->redis.wait_replicas > 0);
    } else {
        answer_failed(in, in->first_err);
    }
}

static void on_parked(int err, const dm_join_result *res, void *arg)
{
    event_slot *slot = arg;
    ingest *in = slot->in;
    if (err != DM_OK) {
        if (in->first_err == DM_OK)
            in->first_err = err;
        if (!dm_join_retryable(err, res))
            in->fatal = true;
    } else {
        in->parked[slot->i] = 1;
        in->edges += res->edges;
        in->duplicates += res->duplicate;
        in->skewed += res->skewed;
        in->deletes += res->deleted;
    }
    if (--in->pending == 0)
        ingest_done(in);
}

static void submit_all(ingest *in)
{
    const dm_app *app = dm_worker_app(in->w);
    /* Callbacks never run inside dm_join_submit, so counting while submitting is safe. */
    for (size_t i = 0; i < in->list.n; i++) {
        int rc = dm_join_submit(dm_worker_redis(in->w), &app->join, &in->list.v[i], on_parked,
                                &in->slots[i]);
        if (rc == DM_OK) {
            in->pending++;
        } else {
            /* Unavailable (on a cluster: that shard's master is away) → this one is spooled
             * and the others still go to Redis; anything else → the sender retries it all
             * (503): parking is idempotent either way. */
            if (in->first_err == DM_OK)
                in->first_err = rc;
            if (rc != DM_EUNAVAIL) {
                in->fatal = true;
                break;
            }
        }
    }
    if (in->pending == 0)
        ingest_done(in);
}

static void on_jti(int err, redisReply *rep, void *arg)
{
    ingest *in = arg;
    if (err != DM_OK || rep->type == REDIS_REPLY_ERROR) {
        in->first_err = err != DM_OK ? err : DM_EREDIS;
        /* Any error reply to a SET is Redis refusing writes for now (over its maxmemory, a
         * replica during a failover, LOADING, BUSY, MISCONF, NOPERM, CLUSTERDOWN, …): spooled.
         * Unknown whether the marker is set: the spool keeps the key, and the replay checks
         * it (a marker with this request's id is this request's). */
        in->fatal = false;
        ingest_done(in);
        return;
    }
    if (rep->type == REDIS_REPLY_NIL) {
        /* SET NX found the marker: this token was used before. */
        refuse_token(in, "token replayed (jti seen)");
        return;
    }
    in->jti_set = true;
    submit_all(in);
}

/* The replay marker of a token with a jti: its key, and how long it is kept (until the token
 * could no longer be accepted anyway: exp + leeway, but never more than a day). A numeric jti
 * counts as well as a string (dm_jwt_jti_text). */
int dm_ingest_replay_marker(const dm_app *app, const json_t *claims, char key[DM_KEY_BUFLEN],
                            int64_t *pxat)
{
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    json_t *exp = json_object_get(claims, "exp");
    char numbuf[DM_JWT_JTI_NUMBER_BUFLEN];
    const char *jti = NULL;
    size_t jti_len = 0;
    if (!iss || !json_is_number(exp) ||
        !dm_jwt_jti_text(json_object_get(claims, "jti"), numbuf, &jti, &jti_len))
        return DM_EINVAL;
    unsigned char md[SHA256_DIGEST_LENGTH];
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(ctx, iss, strlen(iss)) || !EVP_DigestUpdate(ctx, "\n", 1) ||
        !EVP_DigestUpdate(ctx, jti, jti_len) || !EVP_DigestFinal_ex(ctx, md, NULL)) {
        EVP_MD_CTX_free(ctx);
        return DM_ENOMEM;
    }
    EVP_MD_CTX_free(ctx);
    for (size_t i = 0; i < sizeof md; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    dm_key_jti(key, app->join.prefix, hex);
    /* In double first: a signed exp of 1e300 must not overflow. */
    double until_s = json_number_value(exp) + 60;
    double cap_s = (double)(dm_now_ms() / 1000) + 86400;
    *pxat = (int64_t)(until_s < cap_s ? until_s : cap_s) * 1000;
    return DM_OK;
}

bool dm_ingest_wants_replay_check(const dm_auth_outcome *auth)
{
    /* dm_auth refused a token whose jti is neither a string nor a number. */
    json_t *jti = auth->claims ? json_object_get(auth->claims, "jti") : NULL;
    return (json_is_string(jti) || json_is_number(jti)) &&
           json_is_string(json_object_get(auth->claims, "iss")) &&
           json_is_number(json_object_get(auth->claims, "exp")) &&
           !(auth->entry && auth->entry->type == DM_AUTH_OIDC && !auth->entry->replay);
}

static int replay_marker(ingest *in, const json_t *claims)
{
    return dm_ingest_replay_marker(dm_worker_app(in->w), claims, in->jti_key, &in->jti_pxat);
}

/* Remember the token's jti until it expires, atomically (SET NX): a captured token cannot be
 * replayed within its lifetime. The marker's value is this request's id, so that the spool's
 * replay (dm_replay.h) recognizes its own request. Returns DM_OK when the check was queued. */
static int check_replay(ingest *in)
{
    char pxat[24];
    snprintf(pxat, sizeof pxat, "%lld", (long long)in->jti_pxat);
    const char *argv[] = {"SET", in->jti_key, in->rid, "NX", "PXAT", pxat};
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    return dm_redis_command(dm_worker_redis(in->w), in->jti_key, on_jti, in, 6, argv, lens);
}

/* A signed SNS subscription or unsubscribe confirmation: acknowledged (SNS would retry
 * anything else) and logged. A subscription is confirmed by a GET of its SubscribeURL: with
 * confirm_subscriptions the fetcher (dm_fetch.h, main thread) issues it and logs the outcome;
 * otherwise the URL is logged for an operator to open. */
static void sns_control(dm_req *req, size_t route, const char *path, const dm_auth_entry *e,
                        dm_sns_cache *cache, const dm_sns_message *m)
{
    char url[600], topic[300];
    bool confirmation = m->type == DM_SNS_SUBSCRIPTION_CONFIRMATION;
    const char *su = m->subscribe_url ? m->subscribe_url : "";
    if (confirmation && !dm_sns_url_ok(su, false)) {
        dm_error err = {0};
        dm_error_set(&err, "SubscribeURL", "is not an SNS URL");
        dm_ingest_refuse(req, route, path, 400, &err);
        return;
    }
    dm_log_quote(m->topic_arn, strlen(m->topic_arn), topic, sizeof topic);
    dm_log_quote(su, strlen(su), url, sizeof url);
    if (confirmation && e && e->confirm_subscriptions && cache) {
        if (!dm_sns_cache_confirm(cache, su)) {
            dm_warn("request refused",
                    "status=503 route=%s reason=\"too many subscription "
                    "confirmations pending\" topic=%s peer=%s",
                    path, topic, dm_req_peer(req));
            dm_req_error(req, route, 503,
                         "too many subscription confirmations pending; "
                         "retry later");
            return;
        }
        dm_metrics_inc(DM_M_IGNORED);
        dm_info("sns subscription confirmation: confirming", "route=%s topic=%s subscribe_url=%s",
                path, topic, url);
        dm_req_json(req, route, 200,
                    "{\"status\":\"ignored\",\"reason\":\"subscription being confirmed\"}");
        return;
    }
    dm_metrics_inc(DM_M_IGNORED);
    dm_log(confirmation ? DM_LOG_WARN : DM_LOG_INFO,
           confirmation ? "sns subscription confirmation: open subscribe_url to confirm"
                        : "sns unsubscribe confirmation",
           "route=%s topic=%s subscribe_url=%s", path, topic, url);
    dm_req_json(req, route, 200,
                confirmation
                    ? "{\"status\":\"ignored\",\"reason\":\"subscription confirmation logged\"}"
                    : "{\"status\":\"ignored\",\"reason\":\"unsubscribe confirmation\"}");
}

/* A verified CI token: the build identity comes from its claims, never from the body. */
static int token_identity(const dm_auth_outcome *auth, const char *body, size_t len,
                          dm_build_info *id, int *status, dm_error *err)
{
    const dm_auth_entry *e = auth->entry;
    const char *iss = json_string_value(json_object_get(auth->claims, "iss"));
    dm_oidc_provider p = e->provider ? (dm_oidc_provider)e->provider : dm_oidc_detect(iss);
    dm_build_info body_run;
    bool present = false;
    *status = 400;
    if (dm_build_parse_run(body, len, &body_run, &present, err) != DM_OK)
        return DM_EINVAL;
    int rc =
        dm_oidc_identity(p, iss, auth->claims, e->server_url, present ? &body_run : NULL, id, err);
    dm_build_info_dispose(&body_run);
    if (rc != DM_OK)
        *status = 403; /* a valid token that does not identify a build */
    return rc;
}

/* libevent refuses only bodies over twice the limit (dm_server.c sets that cap), so the limit
 * itself is enforced here, with a JSON 413, a log line and a counter. Returns false after
 * answering. */
static bool body_fits(dm_worker *w, dm_req *req, size_t route, const char *path, size_t len)
{
    size_t limit = dm_worker_app(w)->conf->limits.max_body_bytes;
    if (len <= limit)
        return true;
    dm_metrics_inc(DM_M_TOO_LARGE);
    dm_warn("request refused", "status=413 route=%s bytes=%zu limit=%zu peer=%s", path, len, limit,
            dm_req_peer(req));
    dm_req_error(req, route, 413, "body of %zu bytes exceeds limits.max_body_bytes (%zu)", len,
                 limit);
    return false;
}

/* The source's quota (sources[].rate): per source and per credential, shared by the workers.
 * Returns false after answering 429 with Retry-After; @p auth is then disposed. */
static bool within_quota(dm_req *req, size_t route, const dm_source_conf *src,
                         dm_auth_outcome *auth)
{
    if (!(src->rate.per_second > 0))
        return true;
    char cred[DM_QUOTA_CREDENTIAL_LEN];
    dm_quota_credential(&src->auth, auth, cred, sizeof cred);
    int64_t wait_ms = 0;
    dm_quota_verdict v =
        dm_quota_take(dm_quota_shared(), src->path, &src->rate, cred, dm_mono_ms(), &wait_ms);
    if (v == DM_QUOTA_OK)
        return true;
    int64_t after_s = dm_rate_retry_after_s(wait_ms);
    char credq[200], after[24];
    dm_metrics_inc(DM_M_RATE_LIMITED);
    dm_warn("request refused",
            "status=429 route=%s reason=\"quota exceeded\" quota=%s credential=%s "
            "retry_after_s=%lld peer=%s",
            src->path, v == DM_QUOTA_SOURCE ? "source" : "credential",
            dm_log_quote_str(cred, credq, sizeof credq), (long long)after_s, dm_req_peer(req));
    snprintf(after, sizeof after, "%lld", (long long)after_s);
    dm_req_add_header(req, "Retry-After", after);
    dm_req_error(req, route, 429, "too many requests for this %s (sources[].rate); retry in %lld s",
                 v == DM_QUOTA_SOURCE ? "source" : "credential", (long long)after_s);
    dm_auth_outcome_dispose(auth);
    return false;
}

/* The events of @p body (or of a verified SNS envelope's message) by the source's type; the
 * document lives only in here, in the thread's parse arena (dm_json.h). */
static int parse_events(const dm_source_conf *src, const dm_auth_outcome *auth, const char *body,
                        size_t len, dm_event_list *events, int *status, dm_error *err)
{
    int rc;
    dm_json_arena_begin();
    if (src->type == DM_SRC_ACR) {
        rc = dm_acr_parse(body, len, events, err);
    } else if (src->type == DM_SRC_ECR && auth->sns) {
        /* The EventBridge event travels as a JSON string inside the signed envelope. */
        rc = dm_ecr_parse(auth->sns->message, strlen(auth->sns->message), events, err);
    } else if (src->type == DM_SRC_ECR) {
        rc = dm_ecr_parse(body, len, events, err);
    } else if (src->type == DM_SRC_GAR) {
        rc = dm_gar_parse(body, len, events, err);
    } else if (auth->claims) {
        dm_build_info id = {0};
        rc = token_identity(auth, body, len, &id, status, err);
        if (rc == DM_OK)
            rc = dm_build_parse(body, len, &id, events, err);
        dm_build_info_dispose(&id);
    } else {
        rc = dm_build_parse(body, len, NULL, events, err);
    }
    dm_json_arena_end();
    return rc;
}

/* Adapt the body (or the message of a verified SNS envelope) by the source's type into
 * @p events. Returns false after answering: refused, or an SNS control message. */
static bool adapt(dm_req *req, size_t route, const dm_source_conf *src, const dm_auth_outcome *auth,
                  const char *body, size_t len, dm_event_list *events)
{
    dm_error err = {0};
    int status = 400;
    if (auth->sns && src->type != DM_SRC_ECR && src->type != DM_SRC_ACR) {
        /* The configuration refuses this; never trust an unsigned body on its strength. */
        dm_error e = {0};
        dm_error_set(&e, "", "SNS envelopes are accepted on ECR sources only");
        dm_ingest_refuse(req, route, src->path, 401, &e);
        return false;
    }
    if (src->type == DM_SRC_ECR && auth->sns && auth->sns->type != DM_SNS_NOTIFICATION) {
        sns_control(req, route, src->path, auth->entry, auth->sns_cache, auth->sns);
        return false;
    }
    if (parse_events(src, auth, body, len, events, &status, &err) != DM_OK) {
        dm_ingest_refuse(req, route, src->path, err.status && status == 400 ? err.status : status,
                         &err);
        return false;
    }
    return true;
}

/* A request that carried nothing to park (a ping, a chart push, …): acknowledged, 200. */
static void answer_ignored(dm_req *req, size_t route, const char *path, const dm_event_list *events)
{
    char out[160];
    const char *why = events->ignored ? events->ignored : "no events";
    dm_metrics_inc(DM_M_IGNORED);
    char q[96];
    dm_info("request ignored", "route=%s reason=%s", path, dm_log_quote_str(why, q, sizeof q));
    snprintf(out, sizeof out, "{\"status\":\"ignored\",\"reason\":\"%s\"}", why);
    dm_req_json(req, route, 200, out);
}

/* A random id for this request (the value of its token's replay marker). */
static void request_id(char out[33])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1) {
        /* Unique enough within a process: a marker is only compared with its own request's. */
        static _Atomic uint64_t counter;
        uint64_t v[2] = {(uint64_t)dm_now_ms(), atomic_fetch_add(&counter, 1)};
        memcpy(r, v, sizeof r);
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* Park @p events (taken over) after the replay check of a token with a jti; @p auth is
 * disposed. Redis not ready: the events go to the spool at once. */
static void park(dm_worker *w, dm_req *req, size_t route, const char *path, dm_event_list *events,
                 dm_auth_outcome *auth)
{
    dm_redis *r = dm_worker_redis(w);
    /* On a cluster, ready while any master is: the events of a shard whose master is away
     * are spooled one by one (submit_all), the others parked. */
    bool ready = dm_redis_ready_for(r, NULL);
    bool spool = !ready && r && dm_worker_spool(w);
    /* All or nothing: a request whose events do not all fit is refused before any is parked
     * (a partial write would be retried forever at the same point). A draining worker (no
     * Redis) refuses too: its loop ends before a spool write could be answered. */
    if ((!spool && dm_redis_room_for(r, NULL) < events->n + 1) || !dm_worker_begin(w)) {
        int why = ready ? DM_EBUSY : DM_EUNAVAIL;
        dm_event_list_dispose(events);
        dm_auth_outcome_dispose(auth);
        dm_req_unavailable(req, route, path, why);
        return;
    }
    /* One allocation: the request, a slot per event, a mark per event. */
    size_t n = events->n;
    ingest *in = dm_xcalloc(1, sizeof *in + n * sizeof *in->slots + n);
    in->slots = (event_slot *)(in + 1);
    in->parked = (unsigned char *)(in->slots + n);
    in->w = w;
    in->req = req;
    in->route = route;
    in->path = path;
    in->list = *events;
    in->events = events->n;
    in->arrival_ms = dm_now_ms();
    for (size_t i = 0; i < events->n; i++)
        in->slots[i] = (event_slot){in, i};
    size_t sl = strnlen(events->v[0].source, sizeof in->source - 1);
    memcpy(in->source, events->v[0].source, sl); /* in->source is zeroed */
    bool has_jti = dm_ingest_wants_replay_check(auth);
    if (has_jti) /* only a token's replay marker needs one */
        request_id(in->rid);
    int rc = has_jti ? replay_marker(in, auth->claims) : DM_OK;
    dm_auth_outcome_dispose(auth);
    if (rc != DM_OK) {
        in->first_err = rc;
        in->fatal = true;
        ingest_done(in);
    } else if (spool) {
        in->first_err = DM_EUNAVAIL;
        spool_request(in, true);
    } else if (!has_jti) {
        submit_all(in);
    } else if ((rc = check_replay(in)) != DM_OK) {
        in->first_err = rc;
        in->fatal = rc != DM_EUNAVAIL;
        ingest_done(in);
    }
}

void dm_ingest_handle(dm_worker *w, dm_req *req, const dm_route_match *m)
{
    const dm_source_conf *src = m->source;
    size_t len = req->len;
    if (!body_fits(w, req, m->id, src->path, len))
        return;
    const char *body = req->body;
    dm_auth_outcome auth;
    if (!dm_access_verify(req, m->id, src->path, dm_worker_app(w)->trust, &src->auth, &auth))
        return;
    if (!within_quota(req, m->id, src, &auth))
        return;
    if (src->type == DM_SRC_K8S) { /* a snapshot, not events: dm_ingest_k8s.c */
        dm_ingest_k8s(w, req, m, body, len, &auth);
        return;
    }
    /* Findings reports (a scan source; an ECR source's scan events) are stored, not parked. */
    if (dm_ingest_findings(w, req, m->id, src, &auth, body, len))
        return;
    dm_event_list events = {0};
    if (!adapt(req, m->id, src, &auth, body, len, &events)) {
        dm_auth_outcome_dispose(&auth);
        return;
    }
    if (events.ignored || events.n == 0) {
        answer_ignored(req, m->id, src->path, &events);
        dm_event_list_dispose(&events);
        dm_auth_outcome_dispose(&auth);
        return;
    }
    park(w, req, m->id, src->path, &events, &auth);
}
