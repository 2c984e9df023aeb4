/* dm_sink.c - webhook sinks (see dm_sink.h for the rules).
 *
 * Shape: one dm_sinks on the main thread's base holds one control Redis connection (XGROUP,
 * XACK, XCLAIM, XAUTOCLAIM, sink_dead.lua), one HTTP client, and the sinks; each sink has its
 * own reader connection for XREADGROUP … BLOCK and a list of the records it holds.
 *
 * Ownership: a record is created when a read or a claim hands it over and freed in exactly
 * one place (drop), always from the completion of its last step (XACK or sink_dead.lua
 * answered) or from a claim refresh that shows it is no longer ours (abandon: at once when no
 * Redis command of the record is in flight, else from that command's completion). At most one
 * asynchronous step of a record is outstanding at any time (an HTTP attempt, a timer, or one
 * Redis command), so a completion never finds its record freed; claim refreshes refer to
 * records by shard and id, not by pointer. On stop, the Redis clients
 * are freed first: their callbacks run (with DM_EUNAVAIL) while every record still exists, and
 * do nothing because `stopping` is set; only then are the records freed.
 */
#include "dm_common.h"
#include "dm_sink.h"
#include "dm_hclient.h"
#include "dm_join.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_redis.h"
#include "dm_redis_conf.h"
#include "dm_sign.h"
#include "dm_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/rand.h>

#define READ_BACKOFF_MIN_MS 250
#define READ_BACKOFF_MAX_MS 5000
#define OP_RETRY_MS         1000 /* a failed XACK / dead-lettering is tried again */
#define OP_WARN_EVERY       10   /* ... and logged as a warning at the 1st, 10th, 20th, ... try */
#define CREATE_RETRY_MS     1000
#define CLAIM_CALLS_MAX     32 /* XAUTOCLAIM calls per shard and claim round */
#define GROUP_BUF           (64 + 16)
#define ORIGIN_BUF          300
#define CURSOR_BUF          48
/* Consumers left behind by stopped instances (see dm_sink.h, "Consumers"): removed when idle
 * longer than PRUNE_IDLE_FACTOR x claim_idle_ms with nothing pending, checked every
 * max(claim_idle_ms, min(PRUNE_EVERY_MAX_MS, that idle time / 4)). */
#define PRUNE_IDLE_FACTOR   10
#define PRUNE_EVERY_MAX_MS  60000
#define PRUNE_DEL_MAX       16 /* consumers removed per shard and round at most */

/*---- Types ------------------------------------------------------------------------------*/

typedef struct sink sink;

typedef enum {
    R_DELIVERING, /**< an HTTP attempt is in flight (req) */
    R_WAITING,    /**< the next attempt waits for its timer */
    R_ACKING,     /**< delivered: XACK in flight, or its retry timer runs */
    R_DEADING,    /**< given up: sink_dead.lua in flight, or its retry timer runs */
} rec_state;

typedef struct rec {
    sink *s;
    unsigned shard;
    char *id;                    /* stream entry id */
    char *type, *digest, *event; /* the entry's fields ("" when absent) */
    size_t event_len;
    char *ce_id; /* the CloudEvent id, NULL when the event has none */
    char sig[DM_SIGN_LEN];
    int attempts;
    int status;                    /* of the last attempt (0: none) */
    char error[DM_HCLIENT_ERRLEN]; /* of the last attempt */
    rec_state state;
    bool busy;       /* its XACK / sink_dead.lua is in flight */
    bool lost;       /* no longer ours: abandon it when that command answers */
    int op_failures; /* failed XACK / sink_dead.lua tries so far */
    dm_hclient_req *req;
    struct event *timer;
    struct rec *prev, *next;
} rec;

struct sink {
    dm_sinks *all;
    const dm_sink_conf *c;
    char group[GROUP_BUF];   /* "digestmap:<name>" */
    char origin[ORIGIN_BUF]; /* scheme://host:port of the url, for logs (the path and
                                     query may carry credentials) */
    unsigned nshards;
    char (*out_keys)[DM_KEY_BUFLEN];
    char (*dead_keys)[DM_KEY_BUFLEN];
    dm_redis *reader;  /* XREADGROUP only */
    bool started;      /* "sink started" was logged */
    bool running;      /* the groups exist: reads and claims may run */
    unsigned creating; /* XGROUP CREATE replies outstanding */
    bool create_failed;
    bool reading; /* an XREADGROUP is in flight */
    int read_backoff_ms;
    size_t read_reserved;  /* entries the read in flight may hand over */
    size_t claim_reserved; /* entries the claim in flight may hand over */
    unsigned rr;           /* first shard of the next partial read */
    bool claiming;         /* an XAUTOCLAIM round is under way (no reads meanwhile) */
    bool claim_wanted;     /* a round is due: it starts when no read is in flight */
    unsigned claim_shard;
    unsigned claim_calls;        /* XAUTOCLAIM calls on claim_shard in this round */
    unsigned refreshing;         /* claim refresh commands in flight */
    char (*cursors)[CURSOR_BUF]; /* XAUTOCLAIM cursor per shard */
    bool pruning;                /* a round of stale-consumer removal is under way */
    unsigned prune_shard;        /* the shard whose check is in flight */
    int64_t prune_next_ms;       /* dm_mono_ms() from which the next round may start */
    struct event *read_timer, *create_timer, *refresh_timer, *claim_timer;
    rec *held;
    size_t nheld;
};

struct dm_sinks {
    struct event_base *base;
    const dm_config *conf;
    dm_redis *ctl;
    dm_hclient *http;
    sink *v;
    size_t n;
    char consumer[300]; /* "<hostname>:<pid>" */
    bool stopping;
    size_t held_total;
};

/* The claim refresh of one held record (looked up again by id when the answer comes). */
typedef struct refresh_ctx {
    sink *s;
    unsigned shard;
    char *id;
} refresh_ctx;

static void maybe_read(sink *s);
static void start_claim(sink *s);
static void attempt(rec *r);
static void ack(rec *r);
static void dead_letter(rec *r);
static void create_groups(sink *s);

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

/*---- Helpers ----------------------------------------------------------------------------*/

static uint32_t random_u32(void)
{
    uint32_t v = 0;
    if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
        v = (uint32_t)dm_mono_ms() * 2654435761u; /* jitter only: any spread will do */
    return v;
}

static void set_timer(struct event *ev, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(ev, &tv);
}

static bool is_error_reply(const redisReply *rep, const char *prefix)
{
    return rep && rep->type == REDIS_REPLY_ERROR && rep->str &&
           (!prefix || strncmp(rep->str, prefix, strlen(prefix)) == 0);
}

static const char *quote(const char *s, char *buf, size_t size)
{
    return dm_log_quote(s, strlen(s), buf, size);
}

static size_t room(const sink *s)
{
    size_t max = (size_t)s->c->max_inflight;
    size_t used = s->nheld + s->read_reserved + s->claim_reserved;
    return used >= max ? 0 : max - used;
}

static void publish_gauge(dm_sinks *all)
{
    dm_metrics_set(DM_G_SINK_INFLIGHT, (int64_t)all->held_total);
}

static rec *find_held(sink *s, unsigned shard, const char *id)
{
    for (rec *r = s->held; r; r = r->next)
        if (r->shard == shard && strcmp(r->id, id) == 0)
            return r;
    return NULL;
}

static int shard_of_key(const sink *s, const char *key)
{
    for (unsigned i = 0; i < s->nshards; i++)
        if (strcmp(s->out_keys[i], key) == 0)
            return (int)i;
    return -1;
}

static bool wanted_type(const sink *s, const char *type)
{
    if (s->c->ntypes == 0)
        return true;
    for (size_t i = 0; i < s->c->ntypes; i++)
        if (strcmp(s->c->types[i], type) == 0)
            return true;
    return false;
}

/* Completion of an XACK nobody waits for (filtered or vanished entries): if it fails, the
 * entry stays pending and a later claim acknowledges it again. */
static void on_loose_ack(int err, redisReply *reply, void *arg)
{
    (void)arg;
    if (err != DM_OK || is_error_reply(reply, NULL))
        dm_debug("sink acknowledgement failed", "reason=\"%s\"",
                 err != DM_OK ? dm_strerror(err) : "error reply");
}

static void loose_ack(sink *s, unsigned shard, const char *id)
{
    const char *argv[] = {"XACK", s->out_keys[shard], s->group, id};
    size_t lens[] = {4, strlen(argv[1]), strlen(argv[2]), strlen(id)};
    dm_redis_command(s->all->ctl, on_loose_ack, NULL, 4, argv, lens);
}

/*---- Records ----------------------------------------------------------------------------*/

static void rec_free(rec *r)
{
    if (r->req)
        dm_hclient_cancel(r->req);
    if (r->timer)
        event_free(r->timer);
    free(r->id);
    free(r->type);
    free(r->digest);
    free(r->event);
    free(r->ce_id);
    free(r);
}

/* The record leaves this instance (done, or no longer ours). */
static void drop(rec *r)
{
    sink *s = r->s;
    if (r->prev)
        r->prev->next = r->next;
    else
        s->held = r->next;
    if (r->next)
        r->next->prev = r->prev;
    s->nheld--;
    s->all->held_total--;
    publish_gauge(s->all);
    rec_free(r);
    maybe_read(s);
}

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

/* The CloudEvent id of @p event, or NULL. */
static char *cloudevent_id(const char *event, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(event, len, 0, &jerr);
    const json_t *id = root ? json_object_get(root, "id") : NULL;
    char *out = json_is_string(id) && json_string_length(id) > 0
                    ? dm_xstrndup(json_string_value(id), json_string_length(id))
                    : NULL;
    json_decref(root);
    return out;
}

/* One stream entry handed over by a read or a claim: deliver it, or acknowledge it at once. */
static void take(sink *s, unsigned shard, const redisReply *entry, bool claimed)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING)
        return; /* Redis 6.2 reports a trimmed entry of XAUTOCLAIM as a bare nil */
    const char *id = entry->element[0]->str;
    const redisReply *fields = entry->element[1];
    if (find_held(s, shard, id))
        return; /* ours already (a claim found it idle during a Redis outage) */
    if (fields->type != REDIS_REPLY_ARRAY) {
        /* Trimmed meanwhile: nothing left to deliver. */
        dm_info("sink entry vanished", "sink=%s id=%s", s->c->name, id);
        loose_ack(s, shard, id);
        return;
    }
    const redisReply *type = field(fields, "type"), *digest = field(fields, "digest"),
                     *event = field(fields, "event");
    if (claimed)
        dm_metrics_inc(DM_M_SINK_CLAIMED);
    if (!wanted_type(s, type ? type->str : "")) {
        dm_metrics_inc(DM_M_SINK_FILTERED);
        loose_ack(s, shard, id);
        return;
    }
    rec *r = dm_xcalloc(1, sizeof *r);
    r->s = s;
    r->shard = shard;
    r->id = dm_xstrdup(id);
    r->type = type ? dm_xstrndup(type->str, type->len) : dm_xstrdup("");
    r->digest = digest ? dm_xstrndup(digest->str, digest->len) : dm_xstrdup("");
    r->event = event ? dm_xstrndup(event->str, event->len) : dm_xstrdup("");
    r->event_len = event ? event->len : 0;
    r->ce_id = event ? cloudevent_id(r->event, r->event_len) : NULL;
    r->timer = evtimer_new(s->all->base, on_rec_timer, r);
    if (!r->timer) {
        rec_free(r); /* stays pending; a later claim brings it back */
        return;
    }
    dm_sign_body(s->c->secret, s->c->secret_len, r->event, r->event_len, r->sig);
    r->next = s->held;
    if (r->next)
        r->next->prev = r;
    s->held = r;
    s->nheld++;
    s->all->held_total++;
    publish_gauge(s->all);
    if (claimed)
        dm_info("sink record claimed", "sink=%s id=%s", s->c->name, id);
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
    sink *s = r->s;
    char eq[DM_HCLIENT_ERRLEN + 16];
    quote(r->error, eq, sizeof eq);
    bool last =
        dm_sink_classify(r->status) == DM_SINK_PERMANENT || r->attempts >= s->c->max_attempts;
    if (last) {
        dm_warn("sink delivery failed",
                "sink=%s id=%s attempt=%d status=%d error=%s "
                "retry_in_ms=none",
                s->c->name, r->id, r->attempts, r->status, eq);
        dead_letter(r);
        return;
    }
    int64_t delay = dm_sink_retry_delay_ms(r->attempts, s->c->backoff_initial_ms,
                                           s->c->backoff_max_ms, retry_after_ms, random_u32());
    dm_warn("sink delivery failed",
            "sink=%s id=%s attempt=%d status=%d error=%s "
            "retry_in_ms=%lld",
            s->c->name, r->id, r->attempts, r->status, eq, (long long)delay);
    dm_metrics_inc(DM_M_SINK_RETRIED);
    r->state = R_WAITING;
    set_timer(r->timer, delay);
}

static void on_response(const dm_hclient_response *res, void *arg)
{
    rec *r = arg;
    sink *s = r->s;
    r->req = NULL;
    r->status = res->status;
    if (dm_sink_classify(res->status) == DM_SINK_DELIVERED) {
        /* A 2xx counts even if its body was cut short or too large: the sink has it. */
        dm_debug("record delivered", "sink=%s id=%s attempt=%d status=%d", s->c->name, r->id,
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
    sink *s = r->s;
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
        .url = s->c->url,
        .headers = h,
        .nheaders = DM_ARRAY_LEN(h),
        .body = r->event,
        .body_len = r->event_len,
        .timeout_ms = s->c->timeout_ms,
        .max_body = DM_SINK_MAX_RESPONSE,
        .ca_file = s->c->ca_file,
    };
    r->req = dm_hclient_request(s->all->http, &o, on_response, r, err, sizeof err);
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
    const char *why = err != DM_OK ? dm_strerror(err) : reply && reply->str ? reply->str : "?";
    r->op_failures++;
    if (r->op_failures == 1 || r->op_failures % OP_WARN_EVERY == 0)
        dm_warn("sink redis command failed",
                "sink=%s id=%s command=%s reason=%s failures=%d "
                "retry_in_ms=%d",
                r->s->c->name, r->id, what, quote(why, q, sizeof q), r->op_failures, OP_RETRY_MS);
    else
        dm_debug("sink redis command failed",
                 "sink=%s id=%s command=%s reason=%s failures=%d "
                 "retry_in_ms=%d",
                 r->s->c->name, r->id, what, quote(why, q, sizeof q), r->op_failures, OP_RETRY_MS);
    set_timer(r->timer, OP_RETRY_MS);
}

static void on_ack(int err, redisReply *reply, void *arg)
{
    rec *r = arg;
    r->busy = false;
    if (r->s->all->stopping)
        return;
    /* NOGROUP: Redis lost the group (and the pending entry with it): nothing to acknowledge. */
    if (err != DM_OK || (is_error_reply(reply, NULL) && !is_error_reply(reply, "NOGROUP"))) {
        op_failed(r, "XACK", err, reply);
        return;
    }
    drop(r);
}

static void ack(rec *r)
{
    sink *s = r->s;
    r->state = R_ACKING;
    const char *argv[] = {"XACK", s->out_keys[r->shard], s->group, r->id};
    size_t lens[] = {4, strlen(argv[1]), strlen(argv[2]), strlen(r->id)};
    int rc = dm_redis_command(s->all->ctl, on_ack, r, 4, argv, lens);
    if (rc == DM_OK)
        r->busy = true;
    else
        op_failed(r, "XACK", rc, NULL);
}

static void on_dead(int err, redisReply *reply, void *arg)
{
    rec *r = arg;
    sink *s = r->s;
    r->busy = false;
    if (s->all->stopping)
        return;
    if (err != DM_OK || !reply || reply->type != REDIS_REPLY_INTEGER) {
        op_failed(r, "sink_dead.lua", err, reply);
        return;
    }
    if (reply->integer == 1) {
        char eq[DM_HCLIENT_ERRLEN + 16];
        dm_metrics_inc(DM_M_SINK_DEAD);
        dm_warn("record dead-lettered", "sink=%s id=%s attempts=%d error=%s stream=%s", s->c->name,
                r->id, r->attempts, quote(r->error, eq, sizeof eq), s->dead_keys[r->shard]);
    } else {
        dm_info("record not dead-lettered: no longer pending", "sink=%s id=%s", s->c->name, r->id);
    }
    drop(r);
}

static void dead_letter(rec *r)
{
    sink *s = r->s;
    char maxlen[24], attempts[16], failed_at[24];
    r->state = R_DEADING;
    snprintf(maxlen, sizeof maxlen, "%lld", s->all->conf->outputs.stream_maxlen);
    snprintf(attempts, sizeof attempts, "%d", r->attempts);
    snprintf(failed_at, sizeof failed_at, "%lld", (long long)dm_now_ms());
    const char *argv[] = {s->out_keys[r->shard],
                          s->dead_keys[r->shard],
                          s->group,
                          r->id,
                          maxlen,
                          r->type,
                          r->digest,
                          r->event,
                          s->c->name,
                          attempts,
                          r->error,
                          failed_at};
    size_t lens[DM_ARRAY_LEN(argv)];
    for (size_t i = 0; i < DM_ARRAY_LEN(argv); i++)
        lens[i] = strlen(argv[i]);
    lens[7] = r->event_len;
    int rc = dm_redis_eval(s->all->ctl, DM_SCRIPT_SINK_DEAD, on_dead, r, 2, (int)DM_ARRAY_LEN(argv),
                           argv, lens);
    if (rc == DM_OK)
        r->busy = true;
    else
        op_failed(r, "sink_dead.lua", rc, NULL);
}

/*---- Reading ----------------------------------------------------------------------------*/

static void read_failed(sink *s, const char *why)
{
    char q[200];
    dm_warn("sink read failed", "sink=%s reason=%s retry_in_ms=%d", s->c->name,
            quote(why, q, sizeof q), s->read_backoff_ms);
    set_timer(s->read_timer, s->read_backoff_ms);
    s->read_backoff_ms =
        s->read_backoff_ms * 2 > READ_BACKOFF_MAX_MS ? READ_BACKOFF_MAX_MS : s->read_backoff_ms * 2;
}

/* The groups are gone (Redis restarted empty, or FLUSHALL): make them again. */
static void lost_groups(sink *s)
{
    if (!s->running)
        return;
    dm_warn("sink consumer group missing: creating it again", "sink=%s group=%s", s->c->name,
            s->group);
    s->running = false;
    create_groups(s);
}

static void on_read(int err, redisReply *reply, void *arg)
{
    sink *s = arg;
    if (s->all->stopping)
        return;
    s->reading = false;
    s->read_reserved = 0;
    if (err != DM_OK) {
        read_failed(s, dm_strerror(err));
        return;
    }
    if (is_error_reply(reply, "NOGROUP")) {
        lost_groups(s);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        read_failed(s, reply->str);
        return;
    }
    s->read_backoff_ms = READ_BACKOFF_MIN_MS;
    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *st = reply->element[i];
            if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
                st->element[0]->type != REDIS_REPLY_STRING ||
                st->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            int shard = shard_of_key(s, st->element[0]->str);
            if (shard < 0)
                continue;
            for (size_t k = 0; k < st->element[1]->elements; k++)
                take(s, (unsigned)shard, st->element[1]->element[k], false);
        }
    }
    maybe_read(s);
}

/* Read when there is room: every stream when each can get an entry, else a rotating subset,
 * so that what a read may return never exceeds the room. Reads and claim rounds take turns
 * (a claim round waits for the blocking read in flight to return, at most DM_SINK_BLOCK_MS),
 * so that together they never hand over more than the room either. */
static void maybe_read(sink *s)
{
    dm_sinks *all = s->all;
    if (all->stopping || !s->running || s->reading || s->claiming)
        return;
    if (s->claim_wanted) {
        start_claim(s); /* ends with maybe_read */
        return;
    }
    if (evtimer_pending(s->read_timer, NULL) || !dm_redis_ready(s->reader))
        return;
    size_t free_slots = room(s);
    if (free_slots == 0)
        return;
    unsigned nread = free_slots < s->nshards ? (unsigned)free_slots : s->nshards;
    size_t count = free_slots / nread;
    char count_s[24], block_s[16];
    snprintf(count_s, sizeof count_s, "%zu", count);
    snprintf(block_s, sizeof block_s, "%d", DM_SINK_BLOCK_MS);
    int argc = 0;
    const char **argv = dm_xcalloc(10 + 2 * (size_t)nread, sizeof *argv);
    size_t *lens = dm_xcalloc(10 + 2 * (size_t)nread, sizeof *lens);
    const char *head[] = {"XREADGROUP", "GROUP", s->group, all->consumer, "COUNT",
                          count_s,      "BLOCK", block_s,  "STREAMS"};
    for (size_t i = 0; i < DM_ARRAY_LEN(head); i++)
        argv[argc++] = head[i];
    for (unsigned i = 0; i < nread; i++)
        argv[argc++] = s->out_keys[(s->rr + i) % s->nshards];
    for (unsigned i = 0; i < nread; i++)
        argv[argc++] = ">";
    s->rr = (s->rr + nread) % s->nshards;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    int rc = dm_redis_command(s->reader, on_read, s, argc, argv, lens);
    free(argv);
    free(lens);
    if (rc == DM_OK) {
        s->reading = true;
        s->read_reserved = count * nread;
    } else if (rc != DM_EUNAVAIL) { /* unavailable: the reader's on_ready brings us back */
        read_failed(s, dm_strerror(rc));
    }
}

static void on_read_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    maybe_read(arg);
}

static void on_reader_ready(bool ready, void *arg)
{
    if (ready)
        maybe_read(arg);
}

/*---- Claims -----------------------------------------------------------------------------*/

static void claim_next(sink *s);

static void on_autoclaim(int err, redisReply *reply, void *arg)
{
    sink *s = arg;
    if (s->all->stopping)
        return;
    s->claim_reserved = 0;
    if (err != DM_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        s->claiming = false;
        if (is_error_reply(reply, "NOGROUP")) {
            lost_groups(s);
            return;
        }
        char q[200];
        const char *why = err != DM_OK                       ? dm_strerror(err)
                          : reply->type == REDIS_REPLY_ERROR ? reply->str
                                                             : "unexpected reply";
        dm_warn("sink claim failed", "sink=%s reason=%s", s->c->name, quote(why, q, sizeof q));
        maybe_read(s);
        return;
    }
    unsigned shard = s->claim_shard;
    snprintf(s->cursors[shard], CURSOR_BUF, "%s", reply->element[0]->str);
    const redisReply *entries = reply->element[1];
    for (size_t i = 0; i < entries->elements; i++)
        take(s, shard, entries->element[i], true);
    /* Redis 7: ids of pending entries that were trimmed (already dropped from the PEL). */
    if (reply->elements >= 3 && reply->element[2]->type == REDIS_REPLY_ARRAY) {
        const redisReply *gone = reply->element[2];
        for (size_t i = 0; i < gone->elements; i++) {
            if (gone->element[i]->type != REDIS_REPLY_STRING)
                continue;
            dm_info("sink entry vanished", "sink=%s id=%s", s->c->name, gone->element[i]->str);
            loose_ack(s, shard, gone->element[i]->str);
        }
    }
    /* A call scans at most 10 x COUNT entries of the group's PEL, and may return none of them
     * (all held by live instances) with a cursor that is not 0-0 yet: go on from the cursor,
     * up to CLAIM_CALLS_MAX calls per shard and round (the next round resumes there). */
    if (strcmp(s->cursors[shard], "0-0") == 0 || ++s->claim_calls >= CLAIM_CALLS_MAX) {
        s->claim_shard++;
        s->claim_calls = 0;
    }
    claim_next(s);
}

/* XAUTOCLAIM the shards one after the other, COUNT = room. */
static void claim_next(sink *s)
{
    dm_sinks *all = s->all;
    size_t free_slots = room(s);
    if (all->stopping || !s->running || s->claim_shard >= s->nshards || free_slots == 0) {
        s->claiming = false;
        maybe_read(s);
        return;
    }
    char idle[24], count[24];
    snprintf(idle, sizeof idle, "%d", s->c->claim_idle_ms);
    snprintf(count, sizeof count, "%zu", free_slots);
    unsigned shard = s->claim_shard;
    const char *argv[] = {"XAUTOCLAIM", s->out_keys[shard], s->group, all->consumer,
                          idle,         s->cursors[shard],  "COUNT",  count};
    size_t lens[DM_ARRAY_LEN(argv)];
    for (size_t i = 0; i < DM_ARRAY_LEN(argv); i++)
        lens[i] = strlen(argv[i]);
    if (dm_redis_command(all->ctl, on_autoclaim, s, (int)DM_ARRAY_LEN(argv), argv, lens) != DM_OK) {
        s->claiming = false; /* the next tick tries again; reads go on meanwhile */
        maybe_read(s);
        return;
    }
    s->claim_reserved = free_slots;
}

static void start_claim(sink *s)
{
    s->claim_wanted = false;
    s->claiming = true;
    s->claim_shard = 0;
    s->claim_calls = 0;
    claim_next(s);
}

static void maybe_prune(sink *s);

static void on_claim_timer(evutil_socket_t fd, short what, void *arg)
{
    sink *s = arg;
    (void)fd;
    (void)what;
    if (!s->running)
        return;
    maybe_prune(s);
    if (s->claiming)
        return;
    s->claim_wanted = true;
    if (!s->reading)
        start_claim(s);
}

/*---- Stale consumers -------------------------------------------------------------------*/

/* A consumer idle this long is taken for a stopped instance's. At least 10 s (claim_idle_ms
 * >= 1000), and 10 min or more from claim_idle_ms = 60 s (the default) on. */
static int64_t prune_idle_ms(const sink *s)
{
    return (int64_t)PRUNE_IDLE_FACTOR * s->c->claim_idle_ms;
}

static int64_t prune_every_ms(const sink *s)
{
    int64_t every = prune_idle_ms(s) / 4;
    if (every > PRUNE_EVERY_MAX_MS)
        every = PRUNE_EVERY_MAX_MS;
    return every > s->c->claim_idle_ms ? every : s->c->claim_idle_ms;
}

/* Stale consumers are removed by outputs/lua/sink_prune.lua (DM_SCRIPT_SINK_PRUNE): the
 * check and the removal must be one atomic step (the script says why). */

static void prune_next(sink *s);

static bool is_int(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER;
}

/* The script answered for prune_shard: log what it removed and kept, go on with the next
 * shard. */
static void on_pruned(int err, redisReply *reply, void *arg)
{
    sink *s = arg;
    if (s->all->stopping)
        return;
    const char *key = s->out_keys[s->prune_shard];
    if (err != DM_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_ARRAY ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        /* NOGROUP, a lost connection, ...: the reads and claims deal with those; the next
         * round tries again. */
        char q[200];
        dm_debug("sink consumer check failed", "sink=%s stream=%s reason=%s", s->c->name, key,
                 quote(err != DM_OK                       ? dm_strerror(err)
                       : reply->type == REDIS_REPLY_ERROR ? reply->str
                                                          : "unexpected reply",
                       q, sizeof q));
        s->pruning = false;
        return;
    }
    char nq[320];
    const redisReply *removed = reply->element[0], *kept = reply->element[1];
    for (size_t i = 0; i + 1 < removed->elements; i += 2) {
        const redisReply *name = removed->element[i], *idle = removed->element[i + 1];
        if (name->type == REDIS_REPLY_STRING && is_int(idle))
            dm_info("sink consumer removed", "sink=%s consumer=%s idle_ms=%lld stream=%s",
                    s->c->name, quote(name->str, nq, sizeof nq), idle->integer, key);
    }
    for (size_t i = 0; i + 2 < kept->elements; i += 3) {
        const redisReply *name = kept->element[i], *idle = kept->element[i + 1],
                         *pending = kept->element[i + 2];
        if (name->type == REDIS_REPLY_STRING && is_int(idle) && is_int(pending))
            dm_debug("sink consumer idle with entries pending: kept",
                     "sink=%s consumer=%s "
                     "idle_ms=%lld pending=%lld stream=%s",
                     s->c->name, quote(name->str, nq, sizeof nq), idle->integer, pending->integer,
                     key);
    }
    s->prune_shard++;
    prune_next(s);
}

/* One shard after the other, one script call each (at most PRUNE_DEL_MAX removals; the next
 * round gets the others). */
static void prune_next(sink *s)
{
    dm_sinks *all = s->all;
    if (all->stopping || !s->running || s->prune_shard >= s->nshards) {
        s->pruning = false;
        return;
    }
    char limit[24], most[16];
    snprintf(limit, sizeof limit, "%lld", (long long)prune_idle_ms(s));
    snprintf(most, sizeof most, "%d", PRUNE_DEL_MAX);
    const char *argv[] = {s->out_keys[s->prune_shard], s->group, all->consumer, limit, most};
    size_t lens[DM_ARRAY_LEN(argv)];
    for (size_t i = 0; i < DM_ARRAY_LEN(argv); i++)
        lens[i] = strlen(argv[i]);
    if (dm_redis_eval(all->ctl, DM_SCRIPT_SINK_PRUNE, on_pruned, s, 1, (int)DM_ARRAY_LEN(argv),
                      argv, lens) != DM_OK)
        s->pruning = false; /* the next round tries again */
}

/* From the claim timer: a round of stale-consumer removal when one is due. It runs on the
 * control connection beside reads and claims (it hands over no record). */
static void maybe_prune(sink *s)
{
    int64_t now = dm_mono_ms();
    if (s->pruning || s->all->stopping || now < s->prune_next_ms)
        return;
    s->prune_next_ms = now + prune_every_ms(s);
    s->pruning = true;
    s->prune_shard = 0;
    prune_next(s);
}

static void refresh_free(refresh_ctx *x)
{
    free(x->id);
    free(x);
}

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

/* The record is no longer pending in our name: another instance took it over (and delivers
 * it), or it was acknowledged or deleted. Leave it without acknowledging it; when its XACK or
 * sink_dead.lua is in flight, the answer ends it. */
static void abandon(rec *r, const char *why, const char *owner)
{
    char oq[320];
    dm_warn("sink record no longer ours: abandoned",
            "sink=%s id=%s state=%s reason=\"%s\" "
            "owner=%s",
            r->s->c->name, r->id, state_name(r->state), why,
            quote(owner ? owner : "", oq, sizeof oq));
    if (r->busy)
        r->lost = true;
    else
        drop(r);
}

/* Second step: XCLAIM … <idle> <id> JUSTID answered. Not returned: the entry changed hands
 * (or was acknowledged) since XPENDING; the next round finds out which. */
static void on_reclaim(int err, redisReply *reply, void *arg)
{
    refresh_ctx *x = arg;
    sink *s = x->s;
    s->refreshing--;
    if (!s->all->stopping && err == DM_OK && is_error_reply(reply, "NOGROUP"))
        lost_groups(s);
    else if (!s->all->stopping && err == DM_OK && reply->type == REDIS_REPLY_ARRAY &&
             reply->elements == 0 && find_held(s, x->shard, x->id))
        dm_debug("sink claim not refreshed", "sink=%s id=%s", s->c->name, x->id);
    refresh_free(x);
}

/* First step: XPENDING <key> <group> <id> <id> 1 answered with the entry's owner and idle
 * time. Ours: XCLAIM it with min-idle-time = that idle time, which resets its idle time only if
 * nobody claimed it in between (a claim would have reset it below that), so a refresh never
 * takes a record back from an instance that took it over. Someone else's, or not pending any
 * more: abandon it. */
static void on_owner(int err, redisReply *reply, void *arg)
{
    refresh_ctx *x = arg;
    sink *s = x->s;
    dm_sinks *all = s->all;
    s->refreshing--;
    rec *r = NULL;
    if (all->stopping || err != DM_OK) {
        refresh_free(x); /* the next round tries again, long before claim_idle_ms */
        return;
    }
    if (is_error_reply(reply, "NOGROUP")) {
        lost_groups(s);
        refresh_free(x);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || !(r = find_held(s, x->shard, x->id))) {
        refresh_free(x);
        return;
    }
    if (reply->elements == 0) {
        abandon(r, "no longer pending", NULL);
        refresh_free(x);
        return;
    }
    const redisReply *e = reply->element[0];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
        e->element[1]->type != REDIS_REPLY_STRING || e->element[2]->type != REDIS_REPLY_INTEGER) {
        refresh_free(x);
        return;
    }
    if (strcmp(e->element[1]->str, all->consumer) != 0) {
        abandon(r, "taken over by another instance", e->element[1]->str);
        refresh_free(x);
        return;
    }
    char idle[24];
    snprintf(idle, sizeof idle, "%lld", e->element[2]->integer);
    const char *argv[] = {"XCLAIM", s->out_keys[x->shard], s->group, all->consumer, idle, x->id,
                          "JUSTID"};
    size_t lens[DM_ARRAY_LEN(argv)];
    for (size_t i = 0; i < DM_ARRAY_LEN(argv); i++)
        lens[i] = strlen(argv[i]);
    if (dm_redis_command(all->ctl, on_reclaim, x, (int)DM_ARRAY_LEN(argv), argv, lens) == DM_OK)
        s->refreshing++;
    else
        refresh_free(x);
}

/* Every claim_idle_ms/3: keep the idle time of every record held here (whatever its state)
 * below claim_idle_ms, so that no other instance takes it over, and find the ones that are no
 * longer ours. A round starts only when the previous one has fully answered. */
static void on_refresh_timer(evutil_socket_t fd, short what, void *arg)
{
    sink *s = arg;
    (void)fd;
    (void)what;
    if (!s->running || s->nheld == 0 || s->all->stopping)
        return;
    if (s->refreshing > 0) {
        dm_debug("sink claim refresh still in flight", "sink=%s commands=%u", s->c->name,
                 s->refreshing);
        return;
    }
    for (rec *r = s->held; r; r = r->next) {
        refresh_ctx *x = dm_xcalloc(1, sizeof *x);
        x->s = s;
        x->shard = r->shard;
        x->id = dm_xstrdup(r->id);
        const char *argv[] = {"XPENDING", s->out_keys[r->shard], s->group, r->id, r->id, "1"};
        size_t lens[DM_ARRAY_LEN(argv)];
        for (size_t i = 0; i < DM_ARRAY_LEN(argv); i++)
            lens[i] = strlen(argv[i]);
        if (dm_redis_command(s->all->ctl, on_owner, x, (int)DM_ARRAY_LEN(argv), argv, lens) ==
            DM_OK)
            s->refreshing++;
        else
            refresh_free(x); /* the next round tries again */
    }
}

/*---- Groups and lifecycle ---------------------------------------------------------------*/

static void on_group_created(int err, redisReply *reply, void *arg)
{
    sink *s = arg;
    if (s->all->stopping)
        return;
    if (err != DM_OK || (is_error_reply(reply, NULL) && !is_error_reply(reply, "BUSYGROUP"))) {
        char q[200];
        const char *why = err != DM_OK ? dm_strerror(err) : reply->str;
        if (!s->create_failed)
            dm_warn("sink cannot create its consumer group", "sink=%s group=%s reason=%s",
                    s->c->name, s->group, quote(why, q, sizeof q));
        s->create_failed = true;
    }
    if (--s->creating > 0)
        return;
    if (s->create_failed) {
        set_timer(s->create_timer, CREATE_RETRY_MS);
        return;
    }
    s->running = true;
    if (!s->started) {
        char oq[ORIGIN_BUF + 16];
        s->started = true;
        dm_info("sink started", "sink=%s origin=%s group=%s consumer=%s shards=%u", s->c->name,
                quote(s->origin, oq, sizeof oq), s->group, s->all->consumer, s->nshards);
    }
    /* Take over what other instances left behind before reading new records. */
    on_claim_timer(-1, 0, s);
    maybe_read(s);
}

/* The first creation starts at the end of the streams ($): a new sink gets the records written
 * from then on. Once the sink has run, a group that is missing was lost by Redis (restart
 * without persistence, failover, FLUSHALL), and the daemon may have written records since:
 * it starts at 0 then, so that they are delivered (what is still in the stream is delivered
 * again: at least once). */
static const char *group_start(const sink *s)
{
    return s->started ? "0" : "$";
}

static void create_groups(sink *s)
{
    dm_sinks *all = s->all;
    if (all->stopping || s->running || s->creating > 0 || !dm_redis_ready(all->ctl))
        return;
    evtimer_del(s->create_timer);
    s->create_failed = false;
    for (unsigned shard = 0; shard < s->nshards; shard++) {
        const char *argv[] = {"XGROUP", "CREATE",       s->out_keys[shard],
                              s->group, group_start(s), "MKSTREAM"};
        size_t lens[DM_ARRAY_LEN(argv)];
        for (size_t i = 0; i < DM_ARRAY_LEN(argv); i++)
            lens[i] = strlen(argv[i]);
        if (dm_redis_command(all->ctl, on_group_created, s, (int)DM_ARRAY_LEN(argv), argv, lens) ==
            DM_OK)
            s->creating++;
        else
            s->create_failed = true;
    }
    if (s->creating == 0)
        set_timer(s->create_timer, CREATE_RETRY_MS);
}

static void on_create_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    create_groups(arg);
}

static void on_group_ensured(int err, redisReply *reply, void *arg)
{
    sink *s = arg;
    if (s->all->stopping || err != DM_OK || is_error_reply(reply, "BUSYGROUP"))
        return;
    if (is_error_reply(reply, NULL)) {
        char q[200];
        dm_warn("sink cannot create its consumer group", "sink=%s group=%s reason=%s", s->c->name,
                s->group, quote(reply->str, q, sizeof q));
    } else {
        dm_warn("sink consumer group missing: created it again", "sink=%s group=%s from=0",
                s->c->name, s->group);
    }
}

/* A reconnection may be to a server that lost the groups (restart without persistence,
 * failover) while the daemon's XADDs recreate the streams: create them again now rather than
 * at the next read (BUSYGROUP is the normal answer), so that trimming sees them and no record
 * written meanwhile is skipped. */
static void ensure_groups(sink *s)
{
    for (unsigned shard = 0; shard < s->nshards; shard++) {
        const char *argv[] = {"XGROUP", "CREATE",       s->out_keys[shard],
                              s->group, group_start(s), "MKSTREAM"};
        size_t lens[DM_ARRAY_LEN(argv)];
        for (size_t i = 0; i < DM_ARRAY_LEN(argv); i++)
            lens[i] = strlen(argv[i]);
        dm_redis_command(s->all->ctl, on_group_ensured, s, (int)DM_ARRAY_LEN(argv), argv, lens);
    }
}

static void on_ctl_ready(bool ready, void *arg)
{
    dm_sinks *all = arg;
    if (!ready || all->stopping)
        return;
    for (size_t i = 0; i < all->n; i++) {
        sink *s = &all->v[i];
        dm_redis_kick(s->reader); /* the server is back: no need to wait out a backoff */
        if (s->running)
            ensure_groups(s);
        else
            create_groups(s);
    }
}

/* "scheme://host:port" of @p url (the config checked it is an http(s) URL). */
static void url_origin(const char *url, char *out, size_t size)
{
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, EVHTTP_URI_NONCONFORMANT);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    if (!scheme || !host) {
        snprintf(out, size, "?");
    } else {
        bool tls = strcasecmp(scheme, "https") == 0;
        int port = evhttp_uri_get_port(u);
        snprintf(out, size, "%s://%s:%d", tls ? "https" : "http", host,
                 port > 0 ? port
                 : tls    ? 443
                          : 80);
    }
    if (u)
        evhttp_uri_free(u);
}

static int sink_init(dm_sinks *all, sink *s, const dm_sink_conf *c, char *err, size_t errlen)
{
    const dm_config *conf = all->conf;
    s->all = all;
    s->c = c;
    snprintf(s->group, sizeof s->group, "digestmap:%s", c->name);
    url_origin(c->url, s->origin, sizeof s->origin);
    s->nshards = (unsigned)conf->redis.shards;
    s->out_keys = dm_xcalloc(s->nshards, sizeof *s->out_keys);
    s->dead_keys = dm_xcalloc(s->nshards, sizeof *s->dead_keys);
    s->cursors = dm_xcalloc(s->nshards, sizeof *s->cursors);
    for (unsigned i = 0; i < s->nshards; i++) {
        dm_join_key(s->out_keys[i], conf->redis.prefix, i, "out", NULL);
        dm_join_key(s->dead_keys[i], conf->redis.prefix, i, "dead", NULL);
        snprintf(s->cursors[i], CURSOR_BUF, "0-0");
    }
    s->read_backoff_ms = READ_BACKOFF_MIN_MS;
    char name[96];
    snprintf(name, sizeof name, "sink-%s", c->name);
    dm_redis_opts ro = dm_redis_conf_opts(conf, name);
    /* A read blocks up to DM_SINK_BLOCK_MS by design: that is no timeout. */
    ro.command_timeout_ms = conf->redis.command_timeout_ms + DM_SINK_BLOCK_MS;
    ro.max_inflight = 4;
    ro.on_ready = on_reader_ready;
    ro.on_ready_arg = s;
    s->read_timer = evtimer_new(all->base, on_read_timer, s);
    s->create_timer = evtimer_new(all->base, on_create_timer, s);
    s->refresh_timer = event_new(all->base, -1, EV_PERSIST, on_refresh_timer, s);
    s->claim_timer = event_new(all->base, -1, EV_PERSIST, on_claim_timer, s);
    if (!s->read_timer || !s->create_timer || !s->refresh_timer || !s->claim_timer) {
        snprintf(err, errlen, "sink %s: cannot create events", c->name);
        return DM_ENOMEM;
    }
    set_timer(s->refresh_timer, c->claim_idle_ms / 3);
    set_timer(s->claim_timer, c->claim_idle_ms / 2);
    if (strncmp(c->url, "https://", 8) == 0 &&
        dm_hclient_add_trust(all->http, c->ca_file, err, errlen) != DM_OK)
        return DM_EIO;
    s->reader = dm_redis_new(all->base, &ro);
    if (!s->reader) {
        snprintf(err, errlen, "sink %s: cannot create a Redis client", c->name);
        return DM_ENOMEM;
    }
    return DM_OK;
}

int dm_sinks_start(struct event_base *base, const dm_config *conf, dm_sinks **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    if (conf->outputs.nwebhooks == 0)
        return DM_OK;
    dm_sinks *all = dm_xcalloc(1, sizeof *all);
    all->base = base;
    all->conf = conf;
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(all->consumer, sizeof all->consumer, "%s:%ld", host, (long)getpid());
    int rc = DM_OK;
    all->http = dm_hclient_new(base, err, errlen);
    if (!all->http) {
        rc = DM_EIO;
        goto fail;
    }
    all->v = dm_xcalloc(conf->outputs.nwebhooks, sizeof *all->v);
    int ctl_inflight = 64;
    for (size_t i = 0; i < conf->outputs.nwebhooks; i++) {
        all->n++;
        rc = sink_init(all, &all->v[i], &conf->outputs.webhooks[i], err, errlen);
        if (rc != DM_OK)
            goto fail;
        /* Per held record one command at most and one refresh step, plus a claim and the
         * group commands per shard, and a stale-consumer check. */
        ctl_inflight += 2 * conf->outputs.webhooks[i].max_inflight + 4 * conf->redis.shards + 1;
    }
    dm_redis_opts co = dm_redis_conf_opts(conf, "sinks");
    co.max_inflight = ctl_inflight;
    co.on_ready = on_ctl_ready;
    co.on_ready_arg = all;
    all->ctl = dm_redis_new(base, &co);
    if (!all->ctl) {
        snprintf(err, errlen, "sinks: cannot create a Redis client");
        rc = DM_ENOMEM;
        goto fail;
    }
    *out = all;
    return DM_OK;

fail:
    dm_sinks_stop(all);
    return rc;
}

void dm_sinks_stop(dm_sinks *all)
{
    if (!all)
        return;
    all->stopping = true;
    /* Redis first: pending callbacks run now, while every record they point to exists. */
    dm_redis_free(all->ctl);
    all->ctl = NULL;
    for (size_t i = 0; i < all->n; i++) {
        dm_redis_free(all->v[i].reader);
        all->v[i].reader = NULL;
    }
    for (size_t i = 0; i < all->n; i++) {
        sink *s = &all->v[i];
        while (s->held) {
            rec *r = s->held;
            s->held = r->next;
            rec_free(r);
        }
        if (s->read_timer)
            event_free(s->read_timer);
        if (s->create_timer)
            event_free(s->create_timer);
        if (s->refresh_timer)
            event_free(s->refresh_timer);
        if (s->claim_timer)
            event_free(s->claim_timer);
        free(s->out_keys);
        free(s->dead_keys);
        free(s->cursors);
    }
    dm_hclient_free(all->http); /* after the records: their requests were cancelled */
    dm_metrics_set(DM_G_SINK_INFLIGHT, 0);
    free(all->v);
    free(all);
}
