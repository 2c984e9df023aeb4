/* dm_trim.c - trimming the output streams without losing what a protected group still needs
 * (see dm_trim.h; the script is outputs/lua/trim.lua). */
#include "dm_common.h"
#include "dm_trim.h"
#include "dm_log.h"
#include "dm_time.h"
#include "dm_keys.h"
#include "dm_scripts.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WARN_EVERY_MS 60000

typedef struct group_warn {
    char name[132];
    unsigned shard;
    int64_t last_ms;
} group_warn;

struct dm_trimmer {
    struct event_base *base;
    dm_redis *redis;
    const dm_join_conf *conf;
    int interval_ms;
    const char **argv; /**< KEYS[1] placeholder, maxlen, max remove, groups… */
    size_t *lens;
    int argc;
    char key[DM_KEY_BUFLEN], maxlen_s[24], max_remove_s[24];
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

/* Lagging groups are worth one line a minute, not one a tick. */
static void warn_lag(dm_trimmer *t, const char *group, size_t glen, long long backlog)
{
    int64_t now = dm_now_ms();
    group_warn *gw = NULL;
    for (size_t i = 0; i < t->nwarned && !gw; i++) {
        if (t->warned[i].shard == t->shard && strlen(t->warned[i].name) == glen &&
            memcmp(t->warned[i].name, group, glen) == 0)
            gw = &t->warned[i];
    }
    if (!gw) {
        t->warned = dm_xrealloc(t->warned, (t->nwarned + 1) * sizeof *t->warned);
        gw = &t->warned[t->nwarned++];
        snprintf(gw->name, sizeof gw->name, "%.*s", (int)glen, group);
        gw->shard = t->shard;
        gw->last_ms = 0;
    }
    if (gw->last_ms && now - gw->last_ms < WARN_EVERY_MS)
        return;
    gw->last_ms = now;
    dm_warn("consumer group lagging", "group=%s shard=%u backlog=%lld stream_maxlen=%lld%s",
            gw->name, t->shard, backlog, t->conf->stream_maxlen,
            backlog > t->conf->stream_maxlen ? " effect=\"stream kept past stream_maxlen\"" : "");
}

static void on_trim(int err, redisReply *rep, void *arg)
{
    dm_trimmer *t = arg;
    t->busy = false;
    if (t->freed) {
        dm_trimmer_free(t);
        return;
    }
    if (err != DM_OK || rep->type != REDIS_REPLY_ARRAY || rep->elements < 4 ||
        (rep->elements - 4) % 2 != 0 || rep->element[3]->type != REDIS_REPLY_STRING) {
        int64_t now = dm_now_ms();
        if (err == DM_OK && rep->type == REDIS_REPLY_ERROR &&
            now - t->last_error_ms >= WARN_EVERY_MS) {
            t->last_error_ms = now; /* one line a minute: the next tick would say the same */
            dm_error("stream trim failed", "shard=%u reply=\"%.*s\"", t->shard, (int)rep->len,
                     rep->str);
        }
        t->st.complete = false;
    } else {
        t->st.trimmed += rep->element[1]->integer;
        if (rep->element[2]->integer)
            t->more = true;
        const redisReply *holder = rep->element[3];
        long long len = rep->element[0]->integer;
        for (size_t i = 4; i + 1 < rep->elements; i += 2) {
            const redisReply *name = rep->element[i], *bl = rep->element[i + 1];
            if (name->type != REDIS_REPLY_STRING || bl->type != REDIS_REPLY_INTEGER)
                continue;
            if (bl->integer > t->st.max_backlog)
                t->st.max_backlog = bl->integer;
            /* In doubles: stream_maxlen may be as large as LLONG_MAX. */
            bool lagging =
                (double)bl->integer * 100 >= (double)t->conf->stream_maxlen * DM_TRIM_WARN_PERCENT;
            /* Without a lag figure (Redis 6.2, or a group created at an arbitrary id), a group
             * that held trimming back is the lagging one, with at least the excess unread. */
            bool held = holder->len == name->len && memcmp(holder->str, name->str, name->len) == 0;
            if (lagging || (bl->integer < 0 && held))
                warn_lag(t, name->str, name->len, bl->integer >= 0 ? bl->integer : len);
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
    if (dm_redis_eval(t->redis, DM_SCRIPT_TRIM, on_trim, t, 1, t->argc, t->argv, t->lens) ==
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
                           int interval_ms, const char *const *groups, size_t ngroups,
                           dm_trim_cb cb, void *arg)
{
    dm_trimmer *t = dm_xcalloc(1, sizeof *t);
    t->base = base;
    t->redis = redis;
    t->conf = conf;
    t->interval_ms = interval_ms;
    t->cb = cb;
    t->arg = arg;
    snprintf(t->maxlen_s, sizeof t->maxlen_s, "%lld", conf->stream_maxlen);
    snprintf(t->max_remove_s, sizeof t->max_remove_s, "%d", DM_TRIM_MAX_REMOVE);
    t->argc = 3 + (int)ngroups;
    t->argv = dm_xcalloc((size_t)t->argc, sizeof *t->argv);
    t->lens = dm_xcalloc((size_t)t->argc, sizeof *t->lens);
    t->argv[0] = t->key;
    t->argv[1] = t->maxlen_s;
    t->lens[1] = strlen(t->maxlen_s);
    t->argv[2] = t->max_remove_s;
    t->lens[2] = strlen(t->max_remove_s);
    for (size_t i = 0; i < ngroups; i++) {
        t->argv[3 + i] = groups[i];
        t->lens[3 + i] = strlen(groups[i]);
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
