#include "dm_common.h"
#include "dm_sweep.h"
#include "dm_log.h"
#include "dm_keys.h"
#include "dm_scripts.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A claimed item stays invisible to other sweepers this long; if we die holding it, another
 * instance reports it after the lease. */
#define LEASE_MS             30000
/* Reports in flight at once: a large backlog is fed to Redis in small steps, so it neither
 * hits the command deadline nor monopolizes the server. */
#define MAX_REPORTS_INFLIGHT 32

typedef struct claimed {
    unsigned shard;
    long long lease;
    char member[66]; /**< side + 64 hex digits */
} claimed;

struct dm_sweeper {
    struct event_base *base;
    dm_redis *redis;
    const dm_join_conf *conf;
    int interval_ms, batch;
    dm_sweep_cb cb;
    void *arg;
    struct event *timer;
    int pending;    /**< commands of the current tick not yet answered */
    claimed *queue; /**< claimed items waiting to be reported */
    size_t qlen, qhead, qcap;
    int reports_inflight;
    bool backlog; /**< some shard had a full batch: tick again at once */
    bool closed;  /**< dm_sweeper_free ran while commands were in flight: the last frees */
    dm_sweep_stats st;
};

typedef struct claim_ctx {
    dm_sweeper *s;
    unsigned shard;
} claim_ctx;

static void schedule(dm_sweeper *s, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

static void destroy(dm_sweeper *s)
{
    event_free(s->timer);
    free(s->queue);
    free(s);
}

/* The callback last: it may free the sweeper. */
static void tick_done(dm_sweeper *s)
{
    schedule(s, s->backlog ? 0 : s->interval_ms);
    if (s->cb)
        s->cb(&s->st, s->arg);
}

/* Every completion ends here, last: nothing may touch @p s after it. */
static void command_done(dm_sweeper *s)
{
    if (--s->pending > 0)
        return;
    if (s->closed)
        destroy(s);
    else
        tick_done(s);
}

static long long int_at(const redisReply *r, size_t i)
{
    if (i >= r->elements)
        return 0;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING)
        return strtoll(e->str, NULL, 10);
    return 0;
}

static void pump(dm_sweeper *s);

static void on_report(int err, redisReply *rep, void *arg)
{
    dm_sweeper *s = arg;
    if (err != DM_OK || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        char reply[200];
        if (err == DM_OK && rep->type == REDIS_REPLY_ERROR)
            dm_error("sweep report failed", "reply=%s",
                     dm_log_quote(rep->str, rep->len, reply, sizeof reply));
        s->st.complete = false;
    } else {
        s->st.unmatched_registry += (int)int_at(rep, 0);
        s->st.unmatched_build += (int)int_at(rep, 1);
    }
    s->reports_inflight--;
    if (!s->closed)
        pump(s);
    command_done(s);
}

static bool send_report(dm_sweeper *s, const claimed *c)
{
    char digest[DM_DIGEST_BUFLEN];
    memcpy(digest, "sha256:", 7);
    memcpy(digest + 7, c->member + 1, 64);
    digest[DM_DIGEST_LEN] = '\0';
    /* The KEYS of sweep_report.lua, in its order. */
    char keys[6][DM_KEY_BUFLEN], lease_s[24], window_s[24], ttl_s[24];
    const char *prefix = s->conf->prefix;
    dm_key_pushes(keys[0], prefix, c->shard, digest);
    dm_key_builds(keys[1], prefix, c->shard, digest);
    dm_key_due(keys[2], prefix, c->shard);
    dm_key_out(keys[3], prefix, c->shard);
    dm_key_stats(keys[4], prefix, c->shard);
    dm_key_reported(keys[5], prefix, c->shard, digest);
    snprintf(ttl_s, sizeof ttl_s, "%lld", (long long)s->conf->mapping_ttl_ms);
    snprintf(lease_s, sizeof lease_s, "%lld", c->lease);
    snprintf(window_s, sizeof window_s, "%lld", (long long)s->conf->window_ms);
    const char *argv[11] = {
        keys[0], keys[1],   keys[2], keys[3],  keys[4],
        keys[5], c->member, lease_s, window_s, s->conf->report_untagged ? "1" : "0",
        ttl_s};
    size_t lens[11];
    for (int i = 0; i < 11; i++)
        lens[i] = strlen(argv[i]);
    return dm_redis_eval(s->redis, DM_SCRIPT_SWEEP_REPORT, on_report, s, 6, 11, argv, lens) ==
           DM_OK;
}

/* Send queued reports while fewer than MAX_REPORTS_INFLIGHT are out. */
static void pump(dm_sweeper *s)
{
    while (s->qhead < s->qlen && s->reports_inflight < MAX_REPORTS_INFLIGHT) {
        const claimed *c = &s->queue[s->qhead++];
        if (send_report(s, c)) {
            s->reports_inflight++;
            s->pending++;
        } else {
            /* Redis is not usable: the lease runs out and the item is claimed again. */
            s->st.complete = false;
            s->qhead = s->qlen;
        }
    }
}

static void enqueue(dm_sweeper *s, unsigned shard, const redisReply *member, long long lease)
{
    if (member->type != REDIS_REPLY_STRING || member->len != 65) {
        s->st.complete = false;
        return;
    }
    if (s->qlen == s->qcap) {
        s->qcap = s->qcap ? s->qcap * 2 : 64;
        s->queue = dm_xrealloc(s->queue, s->qcap * sizeof *s->queue);
    }
    claimed *c = &s->queue[s->qlen++];
    c->shard = shard;
    c->lease = lease;
    memcpy(c->member, member->str, 65);
    c->member[65] = '\0';
}

static void on_claim(int err, redisReply *rep, void *arg)
{
    claim_ctx *c = arg;
    dm_sweeper *s = c->s;
    unsigned shard = c->shard;
    free(c);
    if (s->closed) {
        command_done(s); /* the lease runs out; another sweep reports the items */
        return;
    }
    if (err != DM_OK || rep->type != REDIS_REPLY_ARRAY || rep->elements < 4) {
        char reply[200];
        if (err == DM_OK && rep->type == REDIS_REPLY_ERROR)
            dm_error("sweep claim failed", "shard=%u reply=%s", shard,
                     dm_log_quote(rep->str, rep->len, reply, sizeof reply));
        s->st.complete = false;
        command_done(s);
        return;
    }
    long long now = int_at(rep, 0), oldest = int_at(rep, 1);
    if (oldest > 0 && now - oldest > s->st.lag_ms)
        s->st.lag_ms = now - oldest;
    s->st.parked_registry += int_at(rep, 2);
    s->st.parked_build += int_at(rep, 3);
    size_t nclaimed = (rep->elements - 4) / 2;
    if ((int)nclaimed >= s->batch)
        s->backlog = true;
    for (size_t i = 4; i + 1 < rep->elements; i += 2)
        enqueue(s, shard, rep->element[i], int_at(rep, i + 1));
    pump(s);
    command_done(s);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_sweeper *s = arg;
    memset(&s->st, 0, sizeof s->st);
    s->st.complete = true;
    s->backlog = false;
    s->qlen = s->qhead = 0;
    s->pending = 1; /* held by this function until every claim is queued */
    char batch[24], lease[24];
    snprintf(batch, sizeof batch, "%d", s->batch);
    snprintf(lease, sizeof lease, "%d", LEASE_MS);
    for (unsigned shard = 0; shard < s->conf->shards; shard++) {
        char due[DM_KEY_BUFLEN], stats[DM_KEY_BUFLEN];
        dm_key_due(due, s->conf->prefix, shard);
        dm_key_stats(stats, s->conf->prefix, shard);
        const char *argv[4] = {due, stats, batch, lease};
        size_t lens[4] = {strlen(due), strlen(stats), strlen(batch), strlen(lease)};
        claim_ctx *c = dm_xmalloc(sizeof *c);
        c->s = s;
        c->shard = shard;
        if (dm_redis_eval(s->redis, DM_SCRIPT_SWEEP_CLAIM, on_claim, c, 2, 4, argv, lens) ==
            DM_OK) {
            s->pending++;
        } else {
            free(c);
            s->st.complete = false;
            break; /* Redis is not usable: try again next tick */
        }
    }
    command_done(s);
}

dm_sweeper *dm_sweeper_new(struct event_base *base, dm_redis *redis, const dm_join_conf *conf,
                           int interval_ms, int batch, dm_sweep_cb cb, void *arg)
{
    dm_sweeper *s = dm_xcalloc(1, sizeof *s);
    s->base = base;
    s->redis = redis;
    s->conf = conf;
    s->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    s->batch = batch > 0 ? batch : 256;
    s->cb = cb;
    s->arg = arg;
    s->timer = evtimer_new(base, on_tick, s);
    if (!s->timer) {
        free(s);
        return NULL;
    }
    schedule(s, s->interval_ms);
    return s;
}

void dm_sweeper_free(dm_sweeper *s)
{
    if (!s || s->closed)
        return;
    if (s->pending > 0) {
        /* Commands in flight will complete (dm_redis guarantees it) and find it here. */
        s->closed = true;
        evtimer_del(s->timer);
        s->qhead = s->qlen; /* nothing more is sent */
        return;
    }
    destroy(s);
}
