/* dm_sink_reader.c - one sink: its group's creation, reads, claims and claim refreshes (see
 * dm_sink_reader.h; the rules are dm_sink.h's).
 *
 * Reads: one blocking XREADGROUP per shard (on Redis Cluster a command names keys of one slot
 * only), each on a connection of its own (a connection serializes blocking commands).
 *
 * Room: the records held plus what the reads or the claim in flight may hand over never exceed
 * max_inflight, so reads and claim rounds take turns (maybe_read says how).
 */
#include "dm_common.h"
#include "dm_sink_reader.h"
#include "dm_log.h"
#include "dm_redis_conf.h"
#include "dm_sink_prune.h"
#include "dm_sink_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <event2/http.h>
#include <hiredis/hiredis.h>

#define READ_BACKOFF_MIN_MS 250
#define READ_BACKOFF_MAX_MS 5000
#define CREATE_RETRY_MS     1000
#define CLAIM_CALLS_MAX     32 /* XAUTOCLAIM calls per shard and claim round */
#define ORIGIN_BUF          300
#define CURSOR_BUF          48

typedef struct dm_sink_reader sink;

/* One shard's reads: its connection and the read in flight on it. */
typedef struct shard_read {
    sink *s;
    unsigned shard;
    dm_redis *redis; /* XREADGROUP … BLOCK on this shard's stream only */
    bool reading;    /* an XREADGROUP is in flight */
    size_t reserved; /* its COUNT: entries it may hand over */
} shard_read;

struct dm_sink_reader {
    dm_sink_group g;
    dm_sink_held held;
    dm_sink_prune prune;
    char origin[ORIGIN_BUF]; /* scheme://host:port of the url, for logs (the path and
                                     query may carry credentials) */
    shard_read *reads;       /* per shard */
    bool started;            /* "sink started" was logged */
    unsigned creating;       /* XGROUP CREATE replies outstanding */
    bool create_failed;
    unsigned nreading; /* XREADGROUPs in flight */
    int read_backoff_ms;
    size_t read_reserved;  /* entries the reads in flight may hand over */
    size_t claim_reserved; /* entries the claim in flight may hand over */
    unsigned rr;           /* first shard of the next partial read */
    bool claiming;         /* an XAUTOCLAIM round is under way (no reads meanwhile) */
    bool claim_wanted;     /* a round is due: it starts when no read is in flight */
    unsigned claim_shard;
    unsigned claim_calls;        /* XAUTOCLAIM calls on claim_shard in this round */
    unsigned refreshing;         /* claim refresh commands in flight */
    char (*cursors)[CURSOR_BUF]; /* XAUTOCLAIM cursor per shard */
    struct event *read_timer, *create_timer, *refresh_timer, *claim_timer;
};

/* The claim refresh of one held record (looked up again by id when the answer comes). */
typedef struct refresh_ctx {
    sink *s;
    unsigned shard;
    char *id;
} refresh_ctx;

static void maybe_read(sink *s);
static void start_claim(sink *s);
static void create_groups(sink *s);

static size_t room(const sink *s)
{
    size_t max = (size_t)s->g.c->max_inflight;
    size_t used = s->held.n + s->read_reserved + s->claim_reserved;
    return used >= max ? 0 : max - used;
}

/*---- Reading ----------------------------------------------------------------------------*/

static void read_failed(sink *s, const char *why)
{
    char q[200];
    dm_warn("sink read failed", "sink=%s reason=%s retry_in_ms=%d", s->g.c->name,
            dm_sink_quote(why, q, sizeof q), s->read_backoff_ms);
    dm_sink_set_timer(s->read_timer, s->read_backoff_ms);
    s->read_backoff_ms =
        s->read_backoff_ms * 2 > READ_BACKOFF_MAX_MS ? READ_BACKOFF_MAX_MS : s->read_backoff_ms * 2;
}

/* The groups are gone (Redis restarted empty, or FLUSHALL): make them again. */
static void lost_groups(sink *s)
{
    if (!s->g.running)
        return;
    dm_warn("sink consumer group missing: creating it again", "sink=%s group=%s", s->g.c->name,
            s->g.name);
    s->g.running = false;
    create_groups(s);
}

static void on_read(int err, redisReply *reply, void *arg)
{
    shard_read *r = arg;
    sink *s = r->s;
    if (s->g.all->stopping)
        return;
    r->reading = false;
    s->nreading--;
    s->read_reserved -= r->reserved;
    r->reserved = 0;
    if (err != DM_OK) {
        read_failed(s, dm_strerror(err));
        return;
    }
    if (dm_sink_error_reply(reply, "NOGROUP")) {
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
                st->element[1]->type != REDIS_REPLY_ARRAY ||
                dm_sink_group_shard(&s->g, st->element[0]->str) != (int)r->shard)
                continue;
            for (size_t k = 0; k < st->element[1]->elements; k++)
                dm_sink_take(&s->held, r->shard, st->element[1]->element[k], false);
        }
    }
    maybe_read(s);
}

/* XREADGROUP … COUNT @p count BLOCK … STREAMS <shard's stream> > on the shard's connection,
 * routed by that stream. False when it could not be sent (no other read is tried now). */
static bool send_read(sink *s, unsigned shard, size_t count)
{
    dm_sink_group *g = &s->g;
    shard_read *r = &s->reads[shard];
    char count_s[24], block_s[16];
    snprintf(count_s, sizeof count_s, "%zu", count);
    snprintf(block_s, sizeof block_s, "%d", DM_SINK_BLOCK_MS);
    const char *argv[] = {"XREADGROUP", "GROUP", g->name,   g->all->consumer,   "COUNT", count_s,
                          "BLOCK",      block_s, "STREAMS", g->out_keys[shard], ">"};
    int rc =
        dm_sink_command(r->redis, g->out_keys[shard], on_read, r, (int)DM_ARRAY_LEN(argv), argv);
    if (rc != DM_OK) {
        if (rc != DM_EUNAVAIL) /* unavailable: the connection's on_ready brings us back */
            read_failed(s, dm_strerror(rc));
        return false;
    }
    r->reading = true;
    r->reserved = count;
    s->nreading++;
    s->read_reserved += count;
    return true;
}

/* Read when there is room: every shard without a read in flight when each can get an entry,
 * else a rotating subset of them, so that what the reads may return never exceeds the room.
 * Reads and claim rounds take turns (a claim round waits for the blocking reads in flight to
 * return, at most DM_SINK_BLOCK_MS), so that together they never hand over more than the room
 * either. */
static void maybe_read(sink *s)
{
    dm_sink_group *g = &s->g;
    if (g->all->stopping || !g->running || s->claiming)
        return;
    if (s->claim_wanted) {
        if (s->nreading == 0)
            start_claim(s); /* ends with maybe_read */
        return;
    }
    if (evtimer_pending(s->read_timer, NULL))
        return;
    size_t free_slots = room(s);
    unsigned idle = 0;
    for (unsigned i = 0; i < g->nshards; i++)
        idle += !s->reads[i].reading && dm_redis_ready(s->reads[i].redis);
    if (free_slots == 0 || idle == 0)
        return;
    unsigned nread = free_slots < idle ? (unsigned)free_slots : idle;
    size_t count = free_slots / nread;
    for (unsigned j = 0, sent = 0; j < g->nshards && sent < nread; j++) {
        unsigned i = (s->rr + j) % g->nshards;
        if (s->reads[i].reading || !dm_redis_ready(s->reads[i].redis))
            continue;
        if (!send_read(s, i, count))
            break;
        sent++;
        s->rr = (i + 1) % g->nshards;
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

/* A held record left: there may be room for a read. */
static void on_record_left(void *arg)
{
    maybe_read(arg);
}

/*---- Claims -----------------------------------------------------------------------------*/

static void claim_next(sink *s);

/* Log a failed XAUTOCLAIM; the round ends, and reads go on. */
static void claim_failed(sink *s, int err, const redisReply *reply)
{
    char q[200];
    const char *why = err != DM_OK                       ? dm_strerror(err)
                      : reply->type == REDIS_REPLY_ERROR ? reply->str
                                                         : "unexpected reply";
    dm_warn("sink claim failed", "sink=%s reason=%s", s->g.c->name,
            dm_sink_quote(why, q, sizeof q));
    maybe_read(s);
}

static void on_autoclaim(int err, redisReply *reply, void *arg)
{
    sink *s = arg;
    if (s->g.all->stopping)
        return;
    s->claim_reserved = 0;
    if (err != DM_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        s->claiming = false;
        if (dm_sink_error_reply(reply, "NOGROUP"))
            lost_groups(s);
        else
            claim_failed(s, err, reply);
        return;
    }
    unsigned shard = s->claim_shard;
    snprintf(s->cursors[shard], CURSOR_BUF, "%s", reply->element[0]->str);
    const redisReply *entries = reply->element[1];
    for (size_t i = 0; i < entries->elements; i++)
        dm_sink_take(&s->held, shard, entries->element[i], true);
    /* Redis 7: ids of pending entries that were trimmed (already dropped from the PEL). */
    if (reply->elements >= 3 && reply->element[2]->type == REDIS_REPLY_ARRAY) {
        const redisReply *gone = reply->element[2];
        for (size_t i = 0; i < gone->elements; i++) {
            if (gone->element[i]->type != REDIS_REPLY_STRING)
                continue;
            dm_info("sink entry vanished", "sink=%s id=%s", s->g.c->name, gone->element[i]->str);
            dm_sink_group_ack_loose(&s->g, shard, gone->element[i]->str);
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
    dm_sink_group *g = &s->g;
    size_t free_slots = room(s);
    if (g->all->stopping || !g->running || s->claim_shard >= g->nshards || free_slots == 0) {
        s->claiming = false;
        maybe_read(s);
        return;
    }
    char idle[24], count[24];
    snprintf(idle, sizeof idle, "%d", g->c->claim_idle_ms);
    snprintf(count, sizeof count, "%zu", free_slots);
    unsigned shard = s->claim_shard;
    const char *argv[] = {"XAUTOCLAIM", g->out_keys[shard], g->name, g->all->consumer,
                          idle,         s->cursors[shard],  "COUNT", count};
    if (dm_sink_command(g->all->ctl, g->out_keys[shard], on_autoclaim, s, (int)DM_ARRAY_LEN(argv),
                        argv) != DM_OK) {
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

static void on_claim_timer(evutil_socket_t fd, short what, void *arg)
{
    sink *s = arg;
    (void)fd;
    (void)what;
    if (!s->g.running)
        return;
    dm_sink_prune_maybe(&s->prune);
    if (s->claiming)
        return;
    s->claim_wanted = true;
    if (s->nreading == 0)
        start_claim(s);
}

/*---- Claim refreshes --------------------------------------------------------------------*/

static void refresh_free(refresh_ctx *x)
{
    free(x->id);
    free(x);
}

/* Second step: XCLAIM … <idle> <id> JUSTID answered. Not returned: the entry changed hands
 * (or was acknowledged) since XPENDING; the next round finds out which. */
static void on_reclaim(int err, redisReply *reply, void *arg)
{
    refresh_ctx *x = arg;
    sink *s = x->s;
    s->refreshing--;
    if (!s->g.all->stopping && err == DM_OK && dm_sink_error_reply(reply, "NOGROUP"))
        lost_groups(s);
    else if (!s->g.all->stopping && err == DM_OK && reply->type == REDIS_REPLY_ARRAY &&
             reply->elements == 0 && dm_sink_find(&s->held, x->shard, x->id))
        dm_debug("sink claim not refreshed", "sink=%s id=%s", s->g.c->name, x->id);
    refresh_free(x);
}

/* XCLAIM the record of @p x with min-idle-time @p idle_ms, its idle time now: that resets
 * its idle time only if nobody claimed it in between (a claim would have reset it below
 * that), so a refresh never takes a record back from an instance that took it over. */
static void reclaim(refresh_ctx *x, long long idle_ms)
{
    sink *s = x->s;
    char idle[24];
    snprintf(idle, sizeof idle, "%lld", idle_ms);
    const char *argv[] = {
        "XCLAIM", s->g.out_keys[x->shard], s->g.name, s->g.all->consumer, idle, x->id, "JUSTID"};
    if (dm_sink_command(s->g.all->ctl, s->g.out_keys[x->shard], on_reclaim, x,
                        (int)DM_ARRAY_LEN(argv), argv) == DM_OK)
        s->refreshing++;
    else
        refresh_free(x);
}

/* First step: XPENDING <key> <group> <id> <id> 1 answered with the entry's owner and idle
 * time. Ours: reclaim it. Someone else's, or not pending any more: abandon it. */
static void on_owner(int err, redisReply *reply, void *arg)
{
    refresh_ctx *x = arg;
    sink *s = x->s;
    s->refreshing--;
    dm_sink_rec *r = NULL;
    if (s->g.all->stopping || err != DM_OK) {
        refresh_free(x); /* the next round tries again, long before claim_idle_ms */
        return;
    }
    if (dm_sink_error_reply(reply, "NOGROUP")) {
        lost_groups(s);
        refresh_free(x);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || !(r = dm_sink_find(&s->held, x->shard, x->id))) {
        refresh_free(x);
        return;
    }
    if (reply->elements == 0) {
        dm_sink_abandon(r, "no longer pending", NULL);
        refresh_free(x);
        return;
    }
    const redisReply *e = reply->element[0];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
        e->element[1]->type != REDIS_REPLY_STRING || e->element[2]->type != REDIS_REPLY_INTEGER) {
        refresh_free(x);
        return;
    }
    if (strcmp(e->element[1]->str, s->g.all->consumer) != 0) {
        dm_sink_abandon(r, "taken over by another instance", e->element[1]->str);
        refresh_free(x);
        return;
    }
    reclaim(x, e->element[2]->integer);
}

/* Ask who holds one record (the first step of its refresh). */
static void refresh_one(unsigned shard, const char *id, void *arg)
{
    sink *s = arg;
    refresh_ctx *x = dm_xcalloc(1, sizeof *x);
    x->s = s;
    x->shard = shard;
    x->id = dm_xstrdup(id);
    const char *argv[] = {"XPENDING", s->g.out_keys[shard], s->g.name, id, id, "1"};
    if (dm_sink_command(s->g.all->ctl, s->g.out_keys[shard], on_owner, x, (int)DM_ARRAY_LEN(argv),
                        argv) == DM_OK)
        s->refreshing++;
    else
        refresh_free(x); /* the next round tries again */
}

/* Every claim_idle_ms/3: keep the idle time of every record held here (whatever its state)
 * below claim_idle_ms, so that no other instance takes it over, and find the ones that are no
 * longer ours. A round starts only when the previous one has fully answered. */
static void on_refresh_timer(evutil_socket_t fd, short what, void *arg)
{
    sink *s = arg;
    (void)fd;
    (void)what;
    if (!s->g.running || s->held.n == 0 || s->g.all->stopping)
        return;
    if (s->refreshing > 0) {
        dm_debug("sink claim refresh still in flight", "sink=%s commands=%u", s->g.c->name,
                 s->refreshing);
        return;
    }
    dm_sink_held_each(&s->held, refresh_one, s);
}

/*---- The group --------------------------------------------------------------------------*/

/* The first creation starts at the end of the streams ($): a new sink gets the records written
 * from then on. Once the sink has run, a group that is missing was lost by Redis (restart
 * without persistence, failover, FLUSHALL), and the daemon may have written records since:
 * it starts at 0 then, so that they are delivered (what is still in the stream is delivered
 * again: at least once). */
static const char *group_start(const sink *s)
{
    return s->started ? "0" : "$";
}

/* XGROUP CREATE on @p shard's stream (MKSTREAM: the stream may not exist yet). */
static int send_create(sink *s, unsigned shard, dm_redis_cb cb)
{
    const char *argv[] = {"XGROUP",  "CREATE",       s->g.out_keys[shard],
                          s->g.name, group_start(s), "MKSTREAM"};
    return dm_sink_command(s->g.all->ctl, s->g.out_keys[shard], cb, s, (int)DM_ARRAY_LEN(argv),
                           argv);
}

static void on_group_created(int err, redisReply *reply, void *arg)
{
    sink *s = arg;
    if (s->g.all->stopping)
        return;
    if (err != DM_OK ||
        (dm_sink_error_reply(reply, NULL) && !dm_sink_error_reply(reply, "BUSYGROUP"))) {
        char q[200];
        const char *why = err != DM_OK ? dm_strerror(err) : reply->str;
        if (!s->create_failed)
            dm_warn("sink cannot create its consumer group", "sink=%s group=%s reason=%s",
                    s->g.c->name, s->g.name, dm_sink_quote(why, q, sizeof q));
        s->create_failed = true;
    }
    if (--s->creating > 0)
        return;
    if (s->create_failed) {
        dm_sink_set_timer(s->create_timer, CREATE_RETRY_MS);
        return;
    }
    s->g.running = true;
    if (!s->started) {
        char oq[ORIGIN_BUF + 16];
        s->started = true;
        dm_info("sink started", "sink=%s origin=%s group=%s consumer=%s shards=%u", s->g.c->name,
                dm_sink_quote(s->origin, oq, sizeof oq), s->g.name, s->g.all->consumer,
                s->g.nshards);
    }
    /* Take over what other instances left behind before reading new records. */
    on_claim_timer(-1, 0, s);
    maybe_read(s);
}

static void create_groups(sink *s)
{
    dm_sink_shared *all = s->g.all;
    if (all->stopping || s->g.running || s->creating > 0 || !dm_redis_ready(all->ctl))
        return;
    evtimer_del(s->create_timer);
    s->create_failed = false;
    for (unsigned shard = 0; shard < s->g.nshards; shard++) {
        if (send_create(s, shard, on_group_created) == DM_OK)
            s->creating++;
        else
            s->create_failed = true;
    }
    if (s->creating == 0)
        dm_sink_set_timer(s->create_timer, CREATE_RETRY_MS);
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
    if (s->g.all->stopping || err != DM_OK || dm_sink_error_reply(reply, "BUSYGROUP"))
        return;
    if (dm_sink_error_reply(reply, NULL)) {
        char q[200];
        dm_warn("sink cannot create its consumer group", "sink=%s group=%s reason=%s", s->g.c->name,
                s->g.name, dm_sink_quote(reply->str, q, sizeof q));
    } else {
        dm_warn("sink consumer group missing: created it again", "sink=%s group=%s from=0",
                s->g.c->name, s->g.name);
    }
}

/* A reconnection may be to a server that lost the groups (restart without persistence,
 * failover) while the daemon's XADDs recreate the streams: create them again now rather than
 * at the next read (BUSYGROUP is the normal answer), so that trimming sees them and no record
 * written meanwhile is skipped. */
static void ensure_groups(sink *s)
{
    for (unsigned shard = 0; shard < s->g.nshards; shard++)
        send_create(s, shard, on_group_ensured);
}

void dm_sink_reader_ctl_ready(dm_sink_reader *s)
{
    /* The server is back: no need to wait out a backoff. */
    for (unsigned i = 0; i < s->g.nshards; i++)
        dm_redis_kick(s->reads[i].redis);
    if (s->g.running)
        ensure_groups(s);
    else
        create_groups(s);
}

/*---- Lifecycle --------------------------------------------------------------------------*/

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

/* Shard @p shard's connection, for XREADGROUP … BLOCK only. */
static dm_redis *new_read_connection(sink *s, unsigned shard)
{
    const dm_config *conf = s->g.all->conf;
    char name[96];
    snprintf(name, sizeof name, "sink-%s-%u", s->g.c->name, shard);
    dm_redis_opts ro = dm_redis_conf_opts(conf, s->g.all->redis_socket, name);
    /* A read blocks up to DM_SINK_BLOCK_MS by design: that is no timeout. */
    ro.command_timeout_ms = conf->redis.command_timeout_ms + DM_SINK_BLOCK_MS;
    ro.max_inflight = 2;
    ro.scripts = NULL; /* XREADGROUP only */
    ro.nscripts = 0;
    ro.on_ready = on_reader_ready;
    ro.on_ready_arg = s;
    ro.only_route = s->g.out_keys[shard]; /* a cluster: that shard's master only */
    return dm_redis_new(s->g.all->base, &ro);
}

/* Everything but the Redis connection; DM_OK, or an error with a reason in @p err (the
 * caller frees @p s either way). */
static int reader_init(sink *s, dm_sink_shared *all, const dm_sink_conf *c, char *err,
                       size_t errlen)
{
    dm_sink_group_init(&s->g, all, c);
    dm_sink_held_init(&s->held, &s->g, on_record_left, s);
    dm_sink_prune_init(&s->prune, &s->g);
    url_origin(c->url, s->origin, sizeof s->origin);
    s->cursors = dm_xcalloc(s->g.nshards, sizeof *s->cursors);
    s->reads = dm_xcalloc(s->g.nshards, sizeof *s->reads);
    for (unsigned i = 0; i < s->g.nshards; i++) {
        snprintf(s->cursors[i], CURSOR_BUF, "0-0");
        s->reads[i].s = s;
        s->reads[i].shard = i;
    }
    s->read_backoff_ms = READ_BACKOFF_MIN_MS;
    s->read_timer = evtimer_new(all->base, on_read_timer, s);
    s->create_timer = evtimer_new(all->base, on_create_timer, s);
    s->refresh_timer = event_new(all->base, -1, EV_PERSIST, on_refresh_timer, s);
    s->claim_timer = event_new(all->base, -1, EV_PERSIST, on_claim_timer, s);
    if (!s->read_timer || !s->create_timer || !s->refresh_timer || !s->claim_timer) {
        snprintf(err, errlen, "sink %s: cannot create events", c->name);
        return DM_ENOMEM;
    }
    dm_sink_set_timer(s->refresh_timer, c->claim_idle_ms / 3);
    dm_sink_set_timer(s->claim_timer, c->claim_idle_ms / 2);
    if (strncmp(c->url, "https://", 8) == 0 &&
        dm_hclient_add_trust(all->http, c->ca_file, err, errlen) != DM_OK)
        return DM_EIO;
    /* One delivery per held record, so max_inflight connections always suffice. */
    s->g.pool = dm_hclient_pool_new(all->http, (unsigned)c->max_inflight, DM_HCLIENT_IDLE_MS);
    if (!s->g.pool) {
        snprintf(err, errlen, "sink %s: cannot create its connection pool", c->name);
        return DM_ENOMEM;
    }
    return DM_OK;
}

int dm_sink_reader_new(dm_sink_shared *all, const dm_sink_conf *c, dm_sink_reader **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    sink *s = dm_xcalloc(1, sizeof *s);
    int rc = reader_init(s, all, c, err, errlen);
    for (unsigned i = 0; rc == DM_OK && i < s->g.nshards; i++) {
        if (!(s->reads[i].redis = new_read_connection(s, i))) {
            snprintf(err, errlen, "sink %s: cannot create a Redis client", c->name);
            rc = DM_ENOMEM;
        }
    }
    if (rc != DM_OK) {
        dm_sink_reader_free(s);
        return rc;
    }
    *out = s;
    return DM_OK;
}

void dm_sink_reader_disconnect(dm_sink_reader *s)
{
    for (unsigned i = 0; s->reads && i < s->g.nshards; i++) {
        dm_redis_free(s->reads[i].redis);
        s->reads[i].redis = NULL;
    }
}

void dm_sink_reader_free(dm_sink_reader *s)
{
    if (!s)
        return;
    dm_sink_reader_disconnect(s);
    dm_sink_held_clear(&s->held);
    if (s->read_timer)
        event_free(s->read_timer);
    if (s->create_timer)
        event_free(s->create_timer);
    if (s->refresh_timer)
        event_free(s->refresh_timer);
    if (s->claim_timer)
        event_free(s->claim_timer);
    free(s->cursors);
    free(s->reads);
    dm_sink_group_dispose(&s->g);
    free(s);
}
