/* dm_sink_record.c - the records a sink holds: delivery, retries, acknowledgement,
 * dead-lettering (see dm_sink_record.h; the rules are dm_sink.h's "Delivery").
 *
 * A record's steps: attempt (HTTP POST) -> on_response -> ack (XACK) on a 2xx; after a failed
 * attempt, a retry timer (waiting) or dead_letter (sink_dead.lua). A failed XACK or
 * sink_dead.lua is tried again every OP_RETRY_MS; the record stays held meanwhile, so its claim
 * keeps being refreshed. Every answer ends in drop, which frees the record.
 */
#include "dm_common.h"
#include "dm_sink_record.h"
#include "dm_sink_ceid.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_sign.h"
#include "dm_time.h"
#include "dm_scripts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/http.h>
#include <hiredis/hiredis.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#define OP_RETRY_MS   1000 /* a failed XACK / dead-lettering is tried again */
#define ACK_BATCH     256  /* entry ids per XACK */
#define OP_WARN_EVERY 10   /* ... and logged as a warning at the 1st, 10th, 20th, ... try */

typedef enum {
    R_DELIVERING, /**< an HTTP attempt is in flight (req) */
    R_WAITING,    /**< the next attempt waits for its timer */
    R_ACKING,     /**< delivered: XACK in flight, or its retry timer runs */
    R_DEADING,    /**< given up: sink_dead.lua in flight, or its retry timer runs */
} rec_state;

struct dm_sink_rec {
    dm_sink_held *h;
    unsigned shard;
    char *id;                    /* stream entry id; the record's allocation holds the strings */
    char *type, *digest, *event; /* the entry's fields ("" when absent) */
    size_t event_len;
    char *ce_id;       /* the CloudEvent id, NULL when the event has none */
    bool ce_id_malloc; /* ce_id is an allocation of its own (decoded from the event) */
    char sig[DM_SIGN_LEN];
    int attempts;
    int status;                    /* of the last attempt (0: none) */
    char error[DM_HCLIENT_ERRLEN]; /* of the last attempt */
    rec_state state;
    bool busy;       /* its XACK / sink_dead.lua is queued or in flight */
    bool queued;     /* in h->acks */
    bool lost;       /* no longer ours: abandon it when that command answers */
    int op_failures; /* failed XACK / sink_dead.lua tries so far */
    dm_hclient_req *req;
    struct event *timer;
    LIST_ENTRY(dm_sink_rec) link;     /* in h->recs */
    LIST_ENTRY(dm_sink_rec) ack_link; /* in h->acks while queued */
};

typedef struct dm_sink_rec rec;

static void attempt(rec *r);
static void ack(rec *r);
static void on_ack_turn(evutil_socket_t fd, short what, void *arg);
static void dead_letter(rec *r);

/*---- Pure parts -------------------------------------------------------------------------*/

dm_sink_outcome dm_sink_classify(int status)
{
    if (status >= 200 && status <= 299)
        return DM_SINK_DELIVERED;
    if (status == 0 || status == 408 || status == 425 || status == 429 ||
        (status >= 500 && status <= 599))
        return DM_SINK_RETRY;
    return DM_SINK_PERMANENT;
}

int64_t dm_sink_retry_delay_ms(int attempt_no, int backoff_initial_ms, int backoff_max_ms,
                               int64_t retry_after_ms, uint32_t rnd)
{
    int64_t d = backoff_initial_ms > 0 ? backoff_initial_ms : 1;
    for (int i = 1; i < attempt_no && d < backoff_max_ms; i++)
        d *= 2;
    if (d > backoff_max_ms)
        d = backoff_max_ms;
    int64_t half = d / 2;
    int64_t delay = half + (int64_t)(rnd % (uint64_t)(half + 1));
    if (retry_after_ms >= 0) {
        int64_t ra = retry_after_ms < backoff_max_ms ? retry_after_ms : backoff_max_ms;
        if (delay < ra)
            delay = ra;
    }
    return delay;
}

static uint32_t random_u32(void)
{
    uint32_t v = 0;
    if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
        v = (uint32_t)dm_mono_ms() * 2654435761u; /* jitter only: any spread will do */
    return v;
}

/*---- The set of records -----------------------------------------------------------------*/

static void publish_gauge(const dm_sink_shared *all)
{
    dm_metrics_set(DM_G_SINK_INFLIGHT, (int64_t)all->held_total);
}

/* HMAC-SHA256 keyed once with the sink's secret: dm_sign_body (OpenSSL's one-shot HMAC)
 * fetches the algorithm and sets the key again at every call, 2-4 us of each delivery. NULL
 * when OpenSSL cannot make it (dm_sign_body signs then). */
static EVP_MAC_CTX *new_mac(const dm_sink_conf *c)
{
    EVP_MAC *alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = alg ? EVP_MAC_CTX_new(alg) : NULL;
    EVP_MAC_free(alg); /* the context keeps its own reference */
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (ctx && (!c->secret || c->secret_len == 0 ||
                EVP_MAC_init(ctx, c->secret, c->secret_len, params) != 1)) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    ERR_clear_error();
    return ctx;
}

/* "sha256=<hex>" of @p body, as dm_sign_body writes it (README "Webhooks"). */
static void sign(const dm_sink_held *h, const char *body, size_t len, char out[DM_SIGN_LEN])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[32];
    size_t n = 0;
    /* A NULL key keeps the one set in new_mac. */
    if (h->mac && EVP_MAC_init(h->mac, NULL, 0, NULL) == 1 &&
        EVP_MAC_update(h->mac, (const unsigned char *)body, len) == 1 &&
        EVP_MAC_final(h->mac, mac, &n, sizeof mac) == 1 && n == sizeof mac) {
        memcpy(out, "sha256=", 7);
        for (size_t i = 0; i < sizeof mac; i++) {
            out[7 + 2 * i] = hex[mac[i] >> 4];
            out[7 + 2 * i + 1] = hex[mac[i] & 15];
        }
        out[7 + 2 * sizeof mac] = '\0';
        return;
    }
    ERR_clear_error();
    const dm_sink_conf *c = h->g->c;
    dm_sign_body(c->secret, c->secret_len, body, len, out);
}

void dm_sink_held_init(dm_sink_held *h, dm_sink_group *g, void (*on_leave)(void *arg), void *arg)
{
    h->g = g;
    LIST_INIT(&h->recs);
    h->n = 0;
    h->on_leave = on_leave;
    h->on_leave_arg = arg;
    h->mac = new_mac(g->c);
    LIST_INIT(&h->acks);
    h->ack_ev = event_new(g->all->base, -1, 0, on_ack_turn, h);
}

static void rec_free(rec *r)
{
    if (r->req)
        dm_hclient_cancel(r->req);
    if (r->timer)
        event_free(r->timer);
    if (r->ce_id_malloc)
        free(r->ce_id);
    free(r); /* and its strings after it */
}

void dm_sink_held_clear(dm_sink_held *h)
{
    rec *r;
    while ((r = LIST_FIRST(&h->recs)) != NULL) {
        LIST_REMOVE(r, link);
        rec_free(r);
    }
    LIST_INIT(&h->acks); /* its records are gone; their batches in flight were answered */
    EVP_MAC_CTX_free(h->mac);
    h->mac = NULL;
    if (h->ack_ev)
        event_free(h->ack_ev);
    h->ack_ev = NULL;
}

/* The record leaves this instance (done, or no longer ours). */
static void drop(rec *r)
{
    dm_sink_held *h = r->h;
    dm_sink_shared *all = h->g->all;
    LIST_REMOVE(r, link);
    if (r->queued)
        LIST_REMOVE(r, ack_link);
    h->n--;
    all->held_total--;
    publish_gauge(all);
    rec_free(r);
    h->on_leave(h->on_leave_arg);
}

dm_sink_rec *dm_sink_find(const dm_sink_held *h, unsigned shard, const char *id)
{
    rec *r;
    LIST_FOREACH(r, &h->recs, link)
    {
        if (r->shard == shard && strcmp(r->id, id) == 0)
            return r;
    }
    return NULL;
}

void dm_sink_held_each(const dm_sink_held *h, void (*fn)(unsigned shard, const char *id, void *arg),
                       void *arg)
{
    rec *r;
    LIST_FOREACH(r, &h->recs, link)
    {
        fn(r->shard, r->id, arg);
    }
}

/*---- Taking an entry over ---------------------------------------------------------------*/

static void on_rec_timer(evutil_socket_t fd, short what, void *arg)
{
    rec *r = arg;
    (void)fd;
    (void)what;
    switch (r->state) {
    case R_WAITING:
        attempt(r);
        break;
    case R_ACKING:
        ack(r);
        break;
    case R_DEADING:
        dead_letter(r);
        break;
    case R_DELIVERING:
        break;
    }
}

static bool wanted_type(const dm_sink_conf *c, const char *type)
{
    if (c->ntypes == 0)
        return true;
    for (size_t i = 0; i < c->ntypes; i++)
        if (strcmp(c->types[i], type) == 0)
            return true;
    return false;
}

static const redisReply *field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1];
    }
    return NULL;
}

/* A record of entry @p id with the fields it has, signed, not held yet; NULL when its timer
 * cannot be made (the entry stays pending; a later claim brings it back). */
static rec *rec_new(dm_sink_held *h, unsigned shard, const char *id, const redisReply *type,
                    const redisReply *digest, const redisReply *event, const redisReply *ceid)
{
    size_t id_n = strlen(id) + 1, type_n = type ? type->len + 1 : 1,
           digest_n = digest ? digest->len + 1 : 1, event_n = event ? event->len + 1 : 1,
           ceid_n = ceid && ceid->len > 0 ? ceid->len + 1 : 0;
    /* One allocation per record: the record, then its strings. */
    rec *r = dm_xmalloc(sizeof *r + id_n + type_n + digest_n + event_n + ceid_n);
    memset(r, 0, sizeof *r);
    r->h = h;
    r->shard = shard;
    r->event_len = event_n - 1;
    r->id = (char *)(r + 1);
    r->type = r->id + id_n;
    r->digest = r->type + type_n;
    r->event = r->digest + digest_n;
    memcpy(r->id, id, id_n);
    memcpy(r->type, type ? type->str : "", type_n - 1);
    r->type[type_n - 1] = '\0';
    memcpy(r->digest, digest ? digest->str : "", digest_n - 1);
    r->digest[digest_n - 1] = '\0';
    memcpy(r->event, event ? event->str : "", r->event_len);
    r->event[r->event_len] = '\0';
    /* The entry's "id" field is the event's id (lib.lua emit writes both); an entry without
     * it has its document decoded. */
    if (ceid_n) {
        r->ce_id = r->event + event_n;
        memcpy(r->ce_id, ceid->str, ceid_n - 1);
        r->ce_id[ceid_n - 1] = '\0';
    } else if (event) {
        r->ce_id = dm_sink_cloudevent_id(r->event, r->event_len);
        r->ce_id_malloc = r->ce_id != NULL;
    }
    r->timer = evtimer_new(h->g->all->base, on_rec_timer, r);
    if (!r->timer) {
        rec_free(r);
        return NULL;
    }
    sign(h, r->event, r->event_len, r->sig);
    return r;
}

void dm_sink_take(dm_sink_held *h, unsigned shard, const redisReply *entry, bool claimed)
{
    dm_sink_group *g = h->g;
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING)
        return; /* Redis 6.2 reports a trimmed entry of XAUTOCLAIM as a bare nil */
    const char *id = entry->element[0]->str;
    const redisReply *fields = entry->element[1];
    if (dm_sink_find(h, shard, id))
        return; /* ours already (a claim found it idle during a Redis outage) */
    if (fields->type != REDIS_REPLY_ARRAY) {
        /* Trimmed meanwhile: nothing left to deliver. */
        dm_info("sink entry vanished", "sink=%s id=%s", g->c->name, id);
        dm_sink_group_ack_loose(g, shard, id);
        return;
    }
    const redisReply *type = field(fields, "type"), *digest = field(fields, "digest"),
                     *event = field(fields, "event"), *ceid = field(fields, "id");
    if (claimed)
        dm_metrics_inc(DM_M_SINK_CLAIMED);
    if (!wanted_type(g->c, type ? type->str : "")) {
        dm_metrics_inc(DM_M_SINK_FILTERED);
        dm_sink_group_ack_loose(g, shard, id);
        return;
    }
    rec *r = rec_new(h, shard, id, type, digest, event, ceid);
    if (!r)
        return;
    LIST_INSERT_HEAD(&h->recs, r, link);
    h->n++;
    g->all->held_total++;
    publish_gauge(g->all);
    if (claimed)
        dm_info("sink record claimed", "sink=%s id=%s", g->c->name, id);
    if (!event || !r->ce_id) {
        snprintf(r->error, sizeof r->error, "%s",
                 event ? "malformed record: the event has no CloudEvent id"
                       : "malformed record: no event field");
        dead_letter(r);
        return;
    }
    attempt(r);
}

/*---- Delivery ---------------------------------------------------------------------------*/

/* Record the outcome of a failed attempt and retry or give up. */
static void after_failure(rec *r, int64_t retry_after_ms)
{
    const dm_sink_conf *c = r->h->g->c;
    char eq[DM_HCLIENT_ERRLEN + 16];
    dm_sink_quote(r->error, eq, sizeof eq);
    bool last = dm_sink_classify(r->status) == DM_SINK_PERMANENT || r->attempts >= c->max_attempts;
    if (last) {
        dm_warn("sink delivery failed",
                "sink=%s id=%s attempt=%d status=%d error=%s "
                "retry_in_ms=none",
                c->name, r->id, r->attempts, r->status, eq);
        dead_letter(r);
        return;
    }
    int64_t delay = dm_sink_retry_delay_ms(r->attempts, c->backoff_initial_ms, c->backoff_max_ms,
                                           retry_after_ms, random_u32());
    dm_warn("sink delivery failed",
            "sink=%s id=%s attempt=%d status=%d error=%s "
            "retry_in_ms=%lld",
            c->name, r->id, r->attempts, r->status, eq, (long long)delay);
    dm_metrics_inc(DM_M_SINK_RETRIED);
    r->state = R_WAITING;
    dm_sink_set_timer(r->timer, delay);
}

static void on_response(const dm_hclient_response *res, void *arg)
{
    rec *r = arg;
    r->req = NULL;
    r->status = res->status;
    if (res->reused)
        dm_metrics_inc(DM_M_SINK_REUSED);
    if (res->resent) {
        /* Not silent: the receiver may have got this attempt twice (same Idempotency-Key). */
        char eq[DM_HCLIENT_ERRLEN + 16];
        dm_metrics_inc(DM_M_SINK_RESENT);
        dm_info("sink delivery resent on a new connection", "sink=%s id=%s attempt=%d reason=%s",
                r->h->g->c->name, r->id, r->attempts, dm_sink_quote(res->resent, eq, sizeof eq));
    }
    if (dm_sink_classify(res->status) == DM_SINK_DELIVERED) {
        /* A 2xx counts even if its body was cut short or too large: the sink has it. */
        dm_debug("record delivered", "sink=%s id=%s attempt=%d status=%d", r->h->g->c->name, r->id,
                 r->attempts, res->status);
        dm_metrics_inc(DM_M_SINK_DELIVERED);
        ack(r);
        return;
    }
    if (res->status == 0)
        snprintf(r->error, sizeof r->error, "%s", res->error ? res->error : "no response");
    else
        snprintf(r->error, sizeof r->error, "HTTP %d", res->status);
    int64_t retry_after = -1;
    const char *ra = res->headers ? evhttp_find_header(res->headers, "Retry-After") : NULL;
    if (ra && dm_hclient_retry_after_ms(ra, dm_now_ms(), &retry_after) != DM_OK)
        retry_after = -1;
    after_failure(r, retry_after);
}

static void attempt(rec *r)
{
    const dm_sink_conf *c = r->h->g->c;
    char n[16], err[DM_HCLIENT_ERRLEN];
    r->attempts++;
    r->state = R_DELIVERING;
    snprintf(n, sizeof n, "%d", r->attempts);
    const dm_hclient_header h[] = {
        {"Content-Type", "application/cloudevents+json"},
        {"X-Digestmap-Signature", r->sig},
        {"Idempotency-Key", r->ce_id},
        {"X-Digestmap-Attempt", n},
        {"User-Agent", "digestmap"},
    };
    dm_hclient_request_opts o = {
        .method = "POST",
        .url = c->url,
        .headers = h,
        .nheaders = DM_ARRAY_LEN(h),
        .body = r->event,
        .body_len = r->event_len,
        .timeout_ms = c->timeout_ms,
        .max_body = DM_SINK_MAX_RESPONSE,
        .ca_file = c->ca_file,
        .pool = r->h->g->pool,
    };
    r->req = dm_hclient_request(r->h->g->all->http, &o, on_response, r, err, sizeof err);
    if (!r->req) {
        r->status = 0;
        snprintf(r->error, sizeof r->error, "%s", err);
        after_failure(r, -1);
    }
}

/*---- Acknowledging and dead-lettering ---------------------------------------------------*/

/* The record's XACK / sink_dead.lua failed: it stays held (and its claim refreshed), and the
 * command is tried again in OP_RETRY_MS, for as long as it takes. A record that is no longer
 * ours meanwhile is abandoned instead. */
static void op_failed(rec *r, const char *what, int err, const redisReply *reply)
{
    if (r->lost) {
        drop(r);
        return;
    }
    char q[160];
    const char *name = r->h->g->c->name;
    const char *why = err != DM_OK ? dm_strerror(err) : reply && reply->str ? reply->str : "?";
    r->op_failures++;
    if (r->op_failures == 1 || r->op_failures % OP_WARN_EVERY == 0)
        dm_warn("sink redis command failed",
                "sink=%s id=%s command=%s reason=%s failures=%d "
                "retry_in_ms=%d",
                name, r->id, what, dm_sink_quote(why, q, sizeof q), r->op_failures, OP_RETRY_MS);
    else
        dm_debug("sink redis command failed",
                 "sink=%s id=%s command=%s reason=%s failures=%d "
                 "retry_in_ms=%d",
                 name, r->id, what, dm_sink_quote(why, q, sizeof q), r->op_failures, OP_RETRY_MS);
    dm_sink_set_timer(r->timer, OP_RETRY_MS);
}

static void on_ack(int err, redisReply *reply, void *arg)
{
    rec *r = arg;
    r->busy = false;
    if (r->h->g->all->stopping)
        return;
    /* NOGROUP: Redis lost the group (and the pending entry with it): nothing to acknowledge. */
    if (err != DM_OK ||
        (dm_sink_error_reply(reply, NULL) && !dm_sink_error_reply(reply, "NOGROUP"))) {
        op_failed(r, "XACK", err, reply);
        return;
    }
    drop(r);
}

/* The XACK of one record alone (when the set has no batching event). */
static void ack_one(rec *r)
{
    int rc = dm_sink_group_ack(r->h->g, r->shard, r->id, on_ack, r);
    if (rc == DM_OK)
        r->busy = true;
    else
        op_failed(r, "XACK", rc, NULL);
}

/* Delivered: acknowledge it with the other records delivered in this loop turn (one XACK per
 * shard costs Redis and this loop a command, a reply and a callback per batch, not per
 * record). */
static void ack(rec *r)
{
    dm_sink_held *h = r->h;
    r->state = R_ACKING;
    if (!h->ack_ev) {
        ack_one(r);
        return;
    }
    r->busy = true;
    r->queued = true;
    LIST_INSERT_HEAD(&h->acks, r, ack_link);
    event_active(h->ack_ev, EV_TIMEOUT, 0);
}

/* One XACK's records. */
typedef struct ack_batch {
    dm_sink_held *h;
    size_t n;
    rec *recs[ACK_BATCH];
} ack_batch;

static void on_acks(int err, redisReply *reply, void *arg)
{
    ack_batch *b = arg;
    for (size_t i = 0; i < b->n; i++)
        b->recs[i]->busy = false;
    if (!b->h->g->all->stopping) {
        bool failed = err != DM_OK ||
                      (dm_sink_error_reply(reply, NULL) && !dm_sink_error_reply(reply, "NOGROUP"));
        for (size_t i = 0; i < b->n; i++) {
            if (failed)
                op_failed(b->recs[i], "XACK", err, reply); /* each retries on its own */
            else
                drop(b->recs[i]);
        }
    }
    free(b);
}

/* Send the XACKs of the records queued in @p h: per shard, up to ACK_BATCH ids a command. A
 * record that is no longer ours meanwhile is left unacknowledged. */
static void on_ack_turn(evutil_socket_t fd, short what, void *arg)
{
    dm_sink_held *h = arg;
    dm_sink_group *g = h->g;
    (void)fd;
    (void)what;
    rec *r;
    while ((r = LIST_FIRST(&h->acks)) != NULL) {
        unsigned shard = r->shard;
        ack_batch *b = dm_xcalloc(1, sizeof *b);
        b->h = h;
        const char *argv[3 + ACK_BATCH] = {"XACK", g->out_keys[shard], g->name};
        rec *next;
        for (r = LIST_FIRST(&h->acks); r && b->n < ACK_BATCH; r = next) {
            next = LIST_NEXT(r, ack_link);
            if (r->shard != shard)
                continue;
            LIST_REMOVE(r, ack_link);
            r->queued = false;
            if (r->lost) {
                r->busy = false;
                drop(r);
                continue;
            }
            argv[3 + b->n] = r->id;
            b->recs[b->n++] = r;
        }
        if (b->n == 0) {
            free(b);
            continue;
        }
        int rc = dm_sink_command(g->all->ctl, g->out_keys[shard], on_acks, b, 3 + (int)b->n, argv);
        if (rc != DM_OK) {
            for (size_t i = 0; i < b->n; i++) {
                b->recs[i]->busy = false;
                op_failed(b->recs[i], "XACK", rc, NULL);
            }
            free(b);
        }
    }
}

static void on_dead(int err, redisReply *reply, void *arg)
{
    rec *r = arg;
    dm_sink_group *g = r->h->g;
    r->busy = false;
    if (g->all->stopping)
        return;
    if (err != DM_OK || !reply || reply->type != REDIS_REPLY_INTEGER) {
        op_failed(r, "sink_dead.lua", err, reply);
        return;
    }
    if (reply->integer == 1) {
        char eq[DM_HCLIENT_ERRLEN + 16];
        dm_metrics_inc(DM_M_SINK_DEAD);
        dm_warn("record dead-lettered", "sink=%s id=%s attempts=%d error=%s stream=%s", g->c->name,
                r->id, r->attempts, dm_sink_quote(r->error, eq, sizeof eq), g->dead_keys[r->shard]);
    } else {
        dm_info("record not dead-lettered: no longer pending", "sink=%s id=%s", g->c->name, r->id);
    }
    drop(r);
}

static void dead_letter(rec *r)
{
    dm_sink_group *g = r->h->g;
    char maxlen[24], attempts[16], failed_at[24];
    r->state = R_DEADING;
    snprintf(maxlen, sizeof maxlen, "%lld", g->all->conf->outputs.stream_maxlen);
    snprintf(attempts, sizeof attempts, "%d", r->attempts);
    snprintf(failed_at, sizeof failed_at, "%lld", (long long)dm_now_ms());
    const char *argv[] = {g->out_keys[r->shard],
                          g->dead_keys[r->shard],
                          g->name,
                          r->id,
                          maxlen,
                          r->type,
                          r->digest,
                          r->event,
                          g->c->name,
                          attempts,
                          r->error,
                          failed_at};
    size_t lens[DM_ARRAY_LEN(argv)];
    for (size_t i = 0; i < DM_ARRAY_LEN(argv); i++)
        lens[i] = strlen(argv[i]);
    lens[7] = r->event_len;
    int rc = dm_redis_eval(g->all->ctl, DM_SCRIPT_SINK_DEAD, on_dead, r, 2, (int)DM_ARRAY_LEN(argv),
                           argv, lens);
    if (rc == DM_OK)
        r->busy = true;
    else
        op_failed(r, "sink_dead.lua", rc, NULL);
}

/*---- Abandoning -------------------------------------------------------------------------*/

static const char *state_name(rec_state st)
{
    switch (st) {
    case R_DELIVERING:
        return "delivering";
    case R_WAITING:
        return "waiting";
    case R_ACKING:
        return "acknowledging";
    case R_DEADING:
        return "dead-lettering";
    }
    return "?";
}

void dm_sink_abandon(dm_sink_rec *r, const char *why, const char *owner)
{
    char oq[320];
    dm_warn("sink record no longer ours: abandoned",
            "sink=%s id=%s state=%s reason=\"%s\" "
            "owner=%s",
            r->h->g->c->name, r->id, state_name(r->state), why,
            dm_sink_quote(owner ? owner : "", oq, sizeof oq));
    if (r->busy)
        r->lost = true;
    else
        drop(r);
}
