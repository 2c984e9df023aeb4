/* dm_trim.c - trimming the output streams without losing what a protected group still needs
 * (see dm_trim.h; the script is outputs/lua/trim.lua). */
#include "dm_common.h"
#include "dm_trim.h"
#include "dm_log.h"
#include "dm_time.h"
#include "dm_keys.h"
#include "dm_scripts.h"
#include "dm_metrics.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WARN_EVERY_MS 60000

/* What was last logged about one group of one shard ("" names the dead-letter stream). */
typedef struct group_warn {
    char name[132];
    unsigned shard;
    int64_t last_ms;    /**< "consumer group lagging" */
    int64_t drop_ms;    /**< "… records trimmed" / "dead-letter stream capped" */
    long long unlogged; /**< entries dropped since that line */
} group_warn;

struct dm_trimmer {
    struct event_base *base;
    dm_redis *redis;
    const dm_join_conf *conf;
    int interval_ms;
    long long max_group_lag;
    const char **argv; /**< KEYS out, dead; maxlen, max remove, max_group_lag, groups… */
    size_t *lens;
    int argc;
    char key[DM_KEY_BUFLEN], dead_key[DM_KEY_BUFLEN], maxlen_s[24], max_remove_s[24], lag_s[24];
    dm_trim_cb cb;
    void *arg;
    struct event *timer;
    unsigned shard;        /**< shard of the call in flight */
    bool busy;             /**< a call is in flight: its callback owns the next step */
    bool more;             /**< some shard had more to remove: tick again at once */
    bool freed;            /**< dm_trimmer_free ran while busy: the callback frees */
    int64_t last_error_ms; /**< when "stream trim failed" was last logged */
    group_warn *warned;
    size_t nwarned;
    dm_trim_stats st;
};

static void schedule(dm_trimmer *t, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(t->timer, &tv);
}

static void send_shard(dm_trimmer *t);

/* The warning state of @p group (@p glen bytes; "" for the dead-letter stream) in this shard. */
static group_warn *warn_state(dm_trimmer *t, const char *group, size_t glen)
{
    for (size_t i = 0; i < t->nwarned; i++) {
        if (t->warned[i].shard == t->shard && strlen(t->warned[i].name) == glen &&
            memcmp(t->warned[i].name, group, glen) == 0)
            return &t->warned[i];
    }
    t->warned = dm_xrealloc(t->warned, (t->nwarned + 1) * sizeof *t->warned);
    group_warn *gw = &t->warned[t->nwarned++];
    *gw = (group_warn){.shard = t->shard};
    snprintf(gw->name, sizeof gw->name, "%.*s", (int)glen, group);
    return gw;
}

/* One line a minute at most: the next tick would say the same. */
static bool due(int64_t *last_ms, int64_t now)
{
    if (*last_ms && now - *last_ms < WARN_EVERY_MS)
        return false;
    *last_ms = now;
    return true;
}

/* Lagging groups are worth one line a minute, not one a tick. */
static void warn_lag(dm_trimmer *t, const char *group, size_t glen, long long backlog)
{
    group_warn *gw = warn_state(t, group, glen);
    if (!due(&gw->last_ms, dm_now_ms()))
        return;
    const char *effect = "";
    if (backlog > t->max_group_lag)
        effect = " effect=\"oldest unacknowledged records trimmed (max_group_lag)\"";
    else if (backlog > t->conf->stream_maxlen)
        effect = " effect=\"stream kept past stream_maxlen\"";
    dm_warn("consumer group lagging", "group=%s shard=%u backlog=%lld stream_maxlen=%lld%s",
            gw->name, t->shard, backlog, t->conf->stream_maxlen, effect);
}

/* @p dropped entries were trimmed that @p group (past max_group_lag) had not acknowledged:
 * counted at once, logged once a minute with what was dropped since the last line. */
static void note_dropped(dm_trimmer *t, const char *group, size_t glen, long long backlog,
                         long long dropped)
{
    dm_metrics_add(DM_M_GROUP_LAG_DROPPED, (uint64_t)dropped);
    group_warn *gw = warn_state(t, group, glen);
    gw->unlogged += dropped;
    if (!due(&gw->drop_ms, dm_now_ms()))
        return;
    dm_warn("consumer group too far behind: records trimmed",
            "group=%s shard=%u backlog=%lld max_group_lag=%lld dropped=%lld stream=%s", gw->name,
            t->shard, backlog, t->max_group_lag, gw->unlogged, t->key);
    gw->unlogged = 0;
}

/* The dead-letter stream lost its @p dropped oldest entries to the cap. */
static void note_dead_dropped(dm_trimmer *t, long long dropped)
{
    dm_metrics_add(DM_M_SINK_DEAD_DROPPED, (uint64_t)dropped);
    group_warn *gw = warn_state(t, "", 0);
    gw->unlogged += dropped;
    if (!due(&gw->drop_ms, dm_now_ms()))
        return;
    dm_warn("dead-letter stream capped: oldest entries dropped",
            "stream=%s dropped=%lld stream_maxlen=%lld", t->dead_key, gw->unlogged,
            t->conf->stream_maxlen);
    gw->unlogged = 0;
}

/* trim.lua's answer: {length, removed, more, holder, dead removed, (group, backlog, dropped)…}. */
static bool well_formed(const redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 5 || (rep->elements - 5) % 3 != 0 ||
        rep->element[3]->type != REDIS_REPLY_STRING)
        return false;
    for (size_t i = 0; i < rep->elements; i++) {
        int want =
            i == 3 || (i >= 5 && (i - 5) % 3 == 0) ? REDIS_REPLY_STRING : REDIS_REPLY_INTEGER;
        if (rep->element[i]->type != want)
            return false;
    }
    return true;
}

static void on_trim(int err, redisReply *rep, void *arg)
{
    dm_trimmer *t = arg;
    t->busy = false;
    if (t->freed) {
        dm_trimmer_free(t);
        return;
    }
    if (err != DM_OK || !well_formed(rep)) {
        char reply[200];
        if (err == DM_OK && rep->type == REDIS_REPLY_ERROR && due(&t->last_error_ms, dm_now_ms()))
            dm_error("stream trim failed", "shard=%u reply=%s", t->shard,
                     dm_log_quote(rep->str, rep->len, reply, sizeof reply));
        t->st.complete = false;
    } else {
        t->st.trimmed += rep->element[1]->integer;
        if (rep->element[2]->integer)
            t->more = true;
        if (rep->element[4]->integer > 0)
            note_dead_dropped(t, rep->element[4]->integer);
        const redisReply *holder = rep->element[3];
        long long len = rep->element[0]->integer;
        for (size_t i = 5; i + 2 < rep->elements; i += 3) {
            const redisReply *name = rep->element[i];
            long long backlog = rep->element[i + 1]->integer,
                      dropped = rep->element[i + 2]->integer;
            if (backlog > t->st.max_backlog)
                t->st.max_backlog = backlog;
            /* In doubles: stream_maxlen may be as large as LLONG_MAX. */
            bool lagging =
                (double)backlog * 100 >= (double)t->conf->stream_maxlen * DM_TRIM_WARN_PERCENT;
            /* Without a lag figure (Redis 6.2, or a group created at an arbitrary id), a group
             * that held trimming back is the lagging one, with at least the excess unread. */
            bool held = holder->len == name->len && memcmp(holder->str, name->str, name->len) == 0;
            if (lagging || (backlog < 0 && held))
                warn_lag(t, name->str, name->len, backlog >= 0 ? backlog : len);
            if (dropped > 0)
                note_dropped(t, name->str, name->len, backlog >= 0 ? backlog : len, dropped);
        }
    }
    if (++t->shard < t->conf->shards) {
        send_shard(t);
        return;
    }
    if (t->st.trimmed > 0)
        dm_debug("streams trimmed", "entries=%lld", t->st.trimmed);
    if (t->cb)
        t->cb(&t->st, t->arg);
    schedule(t, t->more ? 0 : t->interval_ms);
}

static void send_shard(dm_trimmer *t)
{
    dm_key_out(t->key, t->conf->prefix, t->shard);
    t->lens[0] = strlen(t->key);
    dm_key_dead(t->dead_key, t->conf->prefix, t->shard);
    t->lens[1] = strlen(t->dead_key);
    if (dm_redis_eval(t->redis, DM_SCRIPT_TRIM, on_trim, t, 2, t->argc, t->argv, t->lens) ==
        DM_OK) {
        t->busy = true;
        return;
    }
    /* Redis not ready: try the whole round again later. */
    t->st.complete = false;
    if (t->cb)
        t->cb(&t->st, t->arg);
    schedule(t, t->interval_ms);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_trimmer *t = arg;
    t->shard = 0;
    t->more = false;
    t->st = (dm_trim_stats){.max_backlog = -1, .complete = true};
    send_shard(t);
}

dm_trimmer *dm_trimmer_new(struct event_base *base, dm_redis *redis, const dm_join_conf *conf,
                           int interval_ms, long long max_group_lag, const char *const *groups,
                           size_t ngroups, dm_trim_cb cb, void *arg)
{
    dm_trimmer *t = dm_xcalloc(1, sizeof *t);
    t->base = base;
    t->redis = redis;
    t->conf = conf;
    t->interval_ms = interval_ms;
    t->max_group_lag = max_group_lag;
    t->cb = cb;
    t->arg = arg;
    snprintf(t->maxlen_s, sizeof t->maxlen_s, "%lld", conf->stream_maxlen);
    snprintf(t->max_remove_s, sizeof t->max_remove_s, "%d", DM_TRIM_MAX_REMOVE);
    snprintf(t->lag_s, sizeof t->lag_s, "%lld", max_group_lag);
    t->argc = 5 + (int)ngroups;
    t->argv = dm_xcalloc((size_t)t->argc, sizeof *t->argv);
    t->lens = dm_xcalloc((size_t)t->argc, sizeof *t->lens);
    t->argv[0] = t->key;
    t->argv[1] = t->dead_key;
    t->argv[2] = t->maxlen_s;
    t->lens[2] = strlen(t->maxlen_s);
    t->argv[3] = t->max_remove_s;
    t->lens[3] = strlen(t->max_remove_s);
    t->argv[4] = t->lag_s;
    t->lens[4] = strlen(t->lag_s);
    for (size_t i = 0; i < ngroups; i++) {
        t->argv[5 + i] = groups[i];
        t->lens[5 + i] = strlen(groups[i]);
    }
    t->timer = evtimer_new(base, on_tick, t);
    if (!t->timer)
        abort();
    schedule(t, interval_ms);
    return t;
}

void dm_trimmer_free(dm_trimmer *t)
{
    if (!t)
        return;
    if (t->timer) {
        event_free(t->timer);
        t->timer = NULL;
    }
    if (t->busy) { /* the callback will run (dm_redis guarantees it) and free */
        t->freed = true;
        return;
    }
    free(t->argv);
    free(t->lens);
    free(t->warned);
    free(t);
}
