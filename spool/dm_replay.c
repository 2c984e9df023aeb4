#include "dm_common.h"
#include "dm_replay.h"
#include "dm_keys.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_time.h"
#include "dm_wait.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parks in flight at once: enough to keep one connection busy, few enough that a backlog of
 * spooled events never crowds out live traffic on the same Redis. */
#define INFLIGHT         16
#define POLL_MS          100
#define BACKOFF_MIN_MS   200
#define BACKOFF_MAX_MS   5000
/* Lines between two checkpoints: the replay pauses there until everything before is parked
 * (and, with redis.wait_replicas, confirmed), then keeps the offset (dm_spool_set_cursor). An
 * interrupted pass, or a crash, parks again at most these. */
#define CHECKPOINT_LINES 256
/* A jti marker set at replay lives at least this long from then (the token's own expiry may
 * be long past): a later use of the token within it is still recognised. */
#define JTI_MIN_TTL_MS   86400000LL

typedef enum {
    R_IDLE = 0, /**< waiting for events in the spool and a ready Redis */
    R_LOADING,  /**< the oldest segment is being read */
    R_PARKING,  /**< its events are being parked */
    R_WAITING,  /**< WAIT for the replicas, per connection written on */
    R_CURSOR,   /**< a checkpoint: the offset reached is being kept */
    R_REMOVING, /**< all parked: the segment is being deleted */
} replay_state;

struct dm_replay {
    struct event_base *base;
    dm_spool *spool;
    dm_spool_client *cl;
    dm_redis *redis;
    dm_join_conf join;
    int wait_replicas, wait_timeout_ms;
    struct event *timer;
    replay_state state;
    bool closing;
    int failed; /**< the first error of this pass (DM_OK: none) */
    int backoff_ms;
    /* the segment being replayed */
    uint64_t seq;
    char *data;
    size_t len, pos;
    int inflight;
    json_t *held_doc; /**< a record with a token, waiting for its jti check */
    dm_spool_record held;
    size_t held_start, held_end; /**< its line in data */
    bool held_busy;              /**< its check is in flight */
    size_t lines;                /**< lines taken since the last checkpoint */
    bool final;                  /**< the checkpoint under way is the segment's end */
    /* Where this segment was written to since the last checkpoint (parks and jti markers):
     * one route per connection, for WAIT. */
    struct touched {
        int conn;
        char route[DM_KEY_BUFLEN];
    } * touched;
    size_t ntouched, cap_touched;
    dm_waiter *waiter;      /**< redis.wait_replicas: WAIT on the replayer's connection */
    int waits, waits_short; /**< WAITs asked for, and how many confirmed too few */
    long long parked, refused, dead;
};

typedef struct park_ctx {
    dm_replay *r;
    size_t offset, end; /**< its line in the segment */
    char source[16];
} park_ctx;

static void pump(dm_replay *r);

static void schedule(dm_replay *r, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(r->timer, &tv);
}

static void drop_held(dm_replay *r)
{
    if (!r->held_doc)
        return;
    free((char *)r->held.event);
    json_decref(r->held_doc);
    r->held_doc = NULL;
    r->held_busy = false;
}

static void reset_segment(dm_replay *r)
{
    free(r->data);
    r->data = NULL;
    r->len = r->pos = 0;
    drop_held(r);
    r->ntouched = 0;
    r->lines = 0;
    r->parked = r->refused = r->dead = 0;
    r->waits = r->waits_short = 0;
    r->failed = DM_OK;
    r->state = R_IDLE;
}

/* Leave the segment in the spool and try it again from its start after a backoff. */
static void abandon(dm_replay *r, const char *why)
{
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (r->backoff_ms > BACKOFF_MAX_MS)
        r->backoff_ms = BACKOFF_MAX_MS;
    dm_warn("spool: replay interrupted; the segment stays and is replayed again",
            "segment=%llu parked=%lld reason=\"%s\" retry_ms=%d", (unsigned long long)r->seq,
            r->parked, why, r->backoff_ms);
    reset_segment(r);
    schedule(r, r->backoff_ms);
}

/* A write went where @p route's commands go: the next WAIT must cover that connection. */
static void touch(dm_replay *r, const char *route)
{
    int conn = dm_redis_route_conn(r->redis, route);
    for (size_t i = 0; i < r->ntouched; i++)
        if (r->touched[i].conn == conn)
            return;
    if (r->ntouched == r->cap_touched) {
        r->cap_touched = r->cap_touched ? r->cap_touched * 2 : 8;
        r->touched = realloc(r->touched, r->cap_touched * sizeof *r->touched);
        if (!r->touched)
            abort();
    }
    r->touched[r->ntouched].conn = conn;
    snprintf(r->touched[r->ntouched].route, sizeof r->touched[r->ntouched].route, "%s", route);
    r->ntouched++;
}

static void on_removed(int err, void *arg)
{
    dm_replay *r = arg;
    if (err != DM_OK) {
        abandon(r, "cannot remove the segment");
        return;
    }
    dm_info("spool: segment replayed", "segment=%llu parked=%lld refused=%lld dead_letter=%lld",
            (unsigned long long)r->seq, r->parked, r->refused, r->dead);
    reset_segment(r);
    r->backoff_ms = 0;
    schedule(r, 0); /* the next one, if any */
}

static void remove_segment(dm_replay *r)
{
    r->state = R_REMOVING;
    dm_spool_remove(r->cl, r->seq, on_removed, r);
}

static void on_cursor(int err, void *arg)
{
    dm_replay *r = arg;
    if (err != DM_OK)
        dm_warn("spool: replay cursor not kept; a restart parks this segment's start again",
                "segment=%llu offset=%zu", (unsigned long long)r->seq, r->pos);
    r->state = R_PARKING;
    r->lines = 0;
    r->ntouched = 0;
    pump(r);
}

/* Everything before pos is parked and confirmed: the segment goes (at its end), or its
 * offset is kept, so that neither an interruption nor a crash parks it again. */
static void checkpoint_reached(dm_replay *r)
{
    if (r->final) {
        remove_segment(r);
        return;
    }
    r->state = R_CURSOR;
    dm_spool_set_cursor(r->cl, r->seq, r->pos, on_cursor, r);
}

static void on_wait(bool confirmed, void *arg)
{
    dm_replay *r = arg;
    if (r->closing)
        return;
    if (!confirmed)
        r->waits_short++;
    if (--r->waits > 0)
        return;
    if (r->waits_short) {
        abandon(r, "fewer replicas than redis.wait_replicas confirmed the replayed events");
        return;
    }
    checkpoint_reached(r);
}

/* Every line before pos is done (parked, refused or dead-lettered): with redis.wait_replicas,
 * make sure the replicas have the writes too (one WAIT per connection written on, the jti
 * markers' included) before the spool lets go of them. */
static void checkpoint(dm_replay *r, bool final)
{
    r->final = final;
    if (r->wait_replicas <= 0 || r->ntouched == 0) {
        checkpoint_reached(r);
        return;
    }
    r->state = R_WAITING;
    r->waits = 1; /* held while asking: none answers inside dm_waiter_wait */
    r->waits_short = 0;
    for (size_t i = 0; i < r->ntouched; i++) {
        if (dm_waiter_wait(r->waiter, r->touched[i].route, on_wait, r) == DM_OK)
            r->waits++;
        else
            r->waits_short++;
    }
    on_wait(true, r);
}

static void on_dead_letter(int err, void *arg)
{
    dm_replay *r = arg;
    r->inflight--;
    if (err != DM_OK) {
        if (r->failed == DM_OK)
            r->failed = DM_EIO;
    } else {
        r->dead++;
        dm_metrics_inc(DM_M_SPOOL_DEAD_LETTER);
    }
    pump(r);
}

/* The line at [@p start, @p end) can never be parked: keep it in the spool's dead-letter file
 * (with why, and where it was), never just delete it. The segment goes only once it is there. */
static void dead_letter(dm_replay *r, size_t start, size_t end, const char *reason)
{
    json_error_t jerr;
    json_t *o = json_object();
    json_object_set_new(o, "at", json_integer(dm_now_ms()));
    json_object_set_new(o, "reason", json_string(reason));
    json_object_set_new(o, "segment", json_integer((json_int_t)r->seq));
    json_object_set_new(o, "offset", json_integer((json_int_t)start));
    json_t *rec = json_loadb(r->data + start, end - start, 0, &jerr);
    if (!rec)
        rec = json_stringn(r->data + start, end - start);
    if (rec) {
        json_object_set_new(o, "record", rec);
    } else { /* not UTF-8: kept as hex */
        char *hex = dm_xmalloc(2 * (end - start) + 1);
        for (size_t i = start; i < end; i++)
            snprintf(hex + 2 * (i - start), 3, "%02x", (unsigned char)r->data[i]);
        json_object_set_new(o, "record_hex", json_string(hex));
        free(hex);
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    size_t n = text ? strlen(text) : 0;
    char *line = dm_xmalloc(n + 1);
    if (text)
        memcpy(line, text, n);
    line[n] = '\n';
    free(text);
    dm_error("spool: a spooled record can never be parked; moved to the dead-letter file",
             "segment=%llu offset=%zu reason=\"%s\"", (unsigned long long)r->seq, start, reason);
    dm_spool_dead_letter(r->cl, line, n + 1, on_dead_letter, r);
    free(line);
    r->inflight++;
}

static void on_parked(int err, const dm_join_result *res, void *arg)
{
    park_ctx *c = arg;
    dm_replay *r = c->r;
    size_t offset = c->offset, end = c->end;
    char source[16];
    memcpy(source, c->source, sizeof source);
    free(c);
    r->inflight--;
    if (r->closing)
        return;
    if (err == DM_OK) {
        r->parked++;
        dm_metrics_inc(DM_M_SPOOL_REPLAYED);
        dm_metrics_parked(source, 1);
        dm_metrics_add(DM_M_EDGES, (uint64_t)res->edges);
        dm_metrics_add(DM_M_DELETES, (uint64_t)res->deleted);
        dm_metrics_add(DM_M_DUPLICATES, (uint64_t)res->duplicate);
        dm_metrics_add(DM_M_SKEW_REPLACED, (uint64_t)res->skewed);
    } else if (dm_join_retryable(err, res)) {
        if (r->failed == DM_OK)
            r->failed = err;
    } else {
        /* The script itself fails on it: it would every time, and hold up the spool. */
        dead_letter(r, offset, end, "the join script refused it");
    }
    pump(r);
}

/* Park @p rec (its doc @p doc) of the line at [@p offset, @p end); takes both. The event is
 * read back from its JSON form (any version's: dm_event_from_json) and parked as a live one
 * is, with its arrival; one that cannot be read is dead-lettered, as park.lua refusing it
 * would be. */
static void park_record(dm_replay *r, dm_spool_record *rec, json_t *doc, size_t offset, size_t end)
{
    dm_event ev;
    int ok = dm_event_from_json(json_object_get(doc, "ev"), &ev);
    free((char *)rec->event);
    json_decref(doc);
    if (ok != DM_OK) {
        dead_letter(r, offset, end, "not an event");
        return;
    }
    park_ctx *c = dm_xcalloc(1, sizeof *c);
    c->r = r;
    c->offset = offset;
    c->end = end;
    snprintf(c->source, sizeof c->source, "%.*s", (int)strnlen(ev.source, sizeof ev.source),
             ev.source);
    char route[DM_KEY_BUFLEN];
    dm_join_route_key(route, &r->join, ev.digest);
    int rc = dm_join_submit_at(r->redis, &r->join, &ev, rec->arrival_ms, on_parked, c);
    dm_event_dispose(&ev);
    if (rc != DM_OK) {
        free(c);
        if (r->failed == DM_OK)
            r->failed = rc;
        return;
    }
    touch(r, route);
    r->inflight++;
}

static void park_held(dm_replay *r)
{
    dm_spool_record rec = r->held;
    json_t *doc = r->held_doc;
    r->held_doc = NULL;
    r->held_busy = false;
    park_record(r, &rec, doc, r->held_start, r->held_end);
}

static void refuse_held(dm_replay *r)
{
    char key[200];
    r->refused++;
    dm_metrics_inc(DM_M_SPOOL_REPLAY_REFUSED);
    dm_warn("spool: spooled event refused at replay",
            "reason=\"token replayed (jti seen)\" segment=%llu jti_key=%s",
            (unsigned long long)r->seq,
            dm_log_quote(r->held.jti_key, strlen(r->held.jti_key), key, sizeof key));
    drop_held(r);
}

static void on_jti_get(int err, redisReply *rep, void *arg)
{
    dm_replay *r = arg;
    if (r->closing)
        return;
    if (err != DM_OK || rep->type == REDIS_REPLY_ERROR) {
        drop_held(r);
        r->failed = err != DM_OK ? err : DM_EREDIS;
    } else if (rep->type == REDIS_REPLY_NIL ||
               (rep->type == REDIS_REPLY_STRING && rep->len == strlen(r->held.request_id) &&
                memcmp(rep->str, r->held.request_id, rep->len) == 0)) {
        /* Its own marker (ingest set it, or an earlier pass of this replay did), or one that
         * expired meanwhile with the token: the request is this one. */
        park_held(r);
    } else {
        refuse_held(r);
    }
    pump(r);
}

static void on_jti_set(int err, redisReply *rep, void *arg)
{
    dm_replay *r = arg;
    if (r->closing)
        return;
    if (err != DM_OK || rep->type == REDIS_REPLY_ERROR) {
        drop_held(r);
        r->failed = err != DM_OK ? err : DM_EREDIS;
    } else if (rep->type == REDIS_REPLY_NIL) {
        /* Set before: by this request (live, or an interrupted replay) or by another one. */
        const char *argv[] = {"GET", r->held.jti_key};
        size_t lens[] = {3, strlen(r->held.jti_key)};
        int rc = dm_redis_command(r->redis, r->held.jti_key, on_jti_get, r, 2, argv, lens);
        if (rc == DM_OK)
            return;
        drop_held(r);
        r->failed = rc;
    } else {
        touch(r, r->held.jti_key); /* the marker is a write the WAIT must cover too */
        park_held(r);
    }
    pump(r);
}

/* The held record's token: set its replay marker to this request's id unless one is there.
 * The marker lives until the token's expiry, and at least JTI_MIN_TTL_MS from now: a token
 * already expired at replay would otherwise get a marker that is gone at once (SET PXAT in
 * the past leaves no key), and a second spooled use of it would park as well. */
static void start_jti(dm_replay *r)
{
    char px[24];
    long long ttl = (long long)(r->held.jti_pxat - dm_now_ms());
    snprintf(px, sizeof px, "%lld", ttl > JTI_MIN_TTL_MS ? ttl : JTI_MIN_TTL_MS);
    const char *argv[] = {"SET", r->held.jti_key, r->held.request_id, "NX", "PX", px};
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    r->held_busy = true;
    int rc = dm_redis_command(r->redis, r->held.jti_key, on_jti_set, r, 6, argv, lens);
    if (rc != DM_OK) {
        drop_held(r);
        r->failed = rc;
    }
}

/* The next line of the segment: parked, held for its token check, or dropped. */
static void next_record(dm_replay *r)
{
    size_t start = r->pos;
    char *nl = memchr(r->data + start, '\n', r->len - start);
    size_t end = nl ? (size_t)(nl - r->data) : r->len;
    r->pos = nl ? end + 1 : r->len;
    if (end == start)
        return;
    r->lines++;
    dm_spool_record rec;
    json_t *doc;
    if (dm_spool_decode(r->data + start, end - start, &rec, &doc) != DM_OK) {
        dead_letter(r, start, end, "not a spool record");
        return;
    }
    if (rec.jti_key && rec.jti_pxat > 0) {
        r->held = rec;
        r->held_doc = doc;
        r->held_start = start;
        r->held_end = end;
        return;
    }
    park_record(r, &rec, doc, start, end);
}

static void pump(dm_replay *r)
{
    while (r->state == R_PARKING && !r->closing) {
        if (r->failed != DM_OK) {
            if (r->inflight == 0 && !r->held_busy)
                abandon(r, dm_strerror(r->failed));
            return;
        }
        if (r->held_doc) {
            /* In order: its park goes after those before it are answered. */
            if (!r->held_busy && r->inflight == 0)
                start_jti(r);
            if (r->failed == DM_OK)
                return;
            continue;
        }
        if (r->inflight >= INFLIGHT)
            return;
        if (r->pos >= r->len || r->lines >= CHECKPOINT_LINES) {
            if (r->inflight == 0)
                checkpoint(r, r->pos >= r->len);
            return;
        }
        next_record(r);
    }
}

static void on_loaded(int err, uint64_t seq, char *data, size_t len, size_t start, void *arg)
{
    dm_replay *r = arg;
    if (err != DM_OK) {
        free(data);
        r->seq = 0;
        abandon(r, "cannot read the segment");
        return;
    }
    if (seq == 0) {
        r->state = R_IDLE;
        schedule(r, POLL_MS);
        return;
    }
    r->seq = seq;
    r->data = data;
    r->len = len;
    r->pos = start;
    r->lines = 0;
    r->ntouched = 0;
    r->state = R_PARKING;
    dm_info("spool: replaying a segment", "segment=%llu bytes=%zu from=%zu",
            (unsigned long long)seq, len, start);
    pump(r);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_replay *r = arg;
    if (r->state != R_IDLE || r->closing)
        return;
    dm_spool_stats st;
    dm_spool_get_stats(r->spool, &st);
    if (st.events == 0 || !dm_redis_ready(r->redis)) {
        schedule(r, POLL_MS);
        return;
    }
    r->state = R_LOADING;
    dm_spool_load_oldest(r->cl, on_loaded, r);
}

static void on_ready(bool ready, void *arg)
{
    dm_replay *r = arg;
    if (ready && r->state == R_IDLE && r->backoff_ms == 0)
        schedule(r, 0);
}

dm_replay *dm_replay_new(const dm_replay_conf *c)
{
    dm_replay *r = dm_xcalloc(1, sizeof *r);
    r->base = c->base;
    r->spool = c->spool;
    r->join = *c->join;
    r->wait_replicas = c->wait_replicas;
    r->wait_timeout_ms = c->wait_timeout_ms;
    r->timer = evtimer_new(c->base, on_tick, r);
    r->cl = dm_spool_client_new(c->spool, c->base);
    dm_redis_opts ro = *c->redis;
    ro.name = "spool-replay";
    ro.max_inflight = INFLIGHT + (int)c->join->shards + 4;
    ro.on_ready = on_ready;
    ro.on_ready_arg = r;
    if (r->timer && r->cl)
        r->redis = dm_redis_new(c->base, &ro);
    if (r->redis && r->wait_replicas > 0)
        r->waiter = dm_waiter_new(r->redis, r->wait_replicas, r->wait_timeout_ms);
    if (!r->redis || (r->wait_replicas > 0 && !r->waiter)) {
        dm_replay_free(r);
        return NULL;
    }
    schedule(r, 0);
    return r;
}

void dm_replay_free(dm_replay *r)
{
    if (!r)
        return;
    r->closing = true;
    dm_spool_client_free(r->cl); /* a read segment or a removal not yet seen: dropped */
    dm_redis_free(r->redis);     /* every command in flight completes now, and sees closing */
    dm_waiter_free(r->waiter);   /* after its Redis: its WAITs are answered */
    free(r->data);
    drop_held(r);
    if (r->timer)
        event_free(r->timer);
    free(r->touched);
    free(r);
}
