/* dm_sink_prune.c - removing the consumers of stopped instances (see dm_sink_prune.h). */
#include "dm_common.h"
#include "dm_sink_prune.h"
#include "dm_log.h"
#include "dm_time.h"
#include "dm_scripts.h"

#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

/* Consumers left behind by stopped instances: removed when idle longer than
 * PRUNE_IDLE_FACTOR x claim_idle_ms with nothing pending, checked every
 * max(claim_idle_ms, min(PRUNE_EVERY_MAX_MS, that idle time / 4)). */
#define PRUNE_IDLE_FACTOR  10
#define PRUNE_EVERY_MAX_MS 60000
#define PRUNE_DEL_MAX      16 /* consumers removed per shard and round at most */

/* A consumer idle this long is taken for a stopped instance's. At least 10 s (claim_idle_ms
 * >= 1000), and 10 min or more from claim_idle_ms = 60 s (the default) on. */
static int64_t prune_idle_ms(const dm_sink_prune *p)
{
    return (int64_t)PRUNE_IDLE_FACTOR * p->g->c->claim_idle_ms;
}

static int64_t prune_every_ms(const dm_sink_prune *p)
{
    int64_t every = prune_idle_ms(p) / 4;
    if (every > PRUNE_EVERY_MAX_MS)
        every = PRUNE_EVERY_MAX_MS;
    return every > p->g->c->claim_idle_ms ? every : p->g->c->claim_idle_ms;
}

static void prune_next(dm_sink_prune *p);

static bool is_int(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER;
}

/* Log what the script removed and kept on stream @p key. */
static void log_pruned(const dm_sink_prune *p, const char *key, const redisReply *removed,
                       const redisReply *kept)
{
    char nq[320];
    for (size_t i = 0; i + 1 < removed->elements; i += 2) {
        const redisReply *name = removed->element[i], *idle = removed->element[i + 1];
        if (name->type == REDIS_REPLY_STRING && is_int(idle))
            dm_info("sink consumer removed", "sink=%s consumer=%s idle_ms=%lld stream=%s",
                    p->g->c->name, dm_sink_quote(name->str, nq, sizeof nq), idle->integer, key);
    }
    for (size_t i = 0; i + 2 < kept->elements; i += 3) {
        const redisReply *name = kept->element[i], *idle = kept->element[i + 1],
                         *pending = kept->element[i + 2];
        if (name->type == REDIS_REPLY_STRING && is_int(idle) && is_int(pending))
            dm_debug("sink consumer idle with entries pending: kept",
                     "sink=%s consumer=%s "
                     "idle_ms=%lld pending=%lld stream=%s",
                     p->g->c->name, dm_sink_quote(name->str, nq, sizeof nq), idle->integer,
                     pending->integer, key);
    }
}

/* The script answered for p->shard: log what it removed and kept, go on with the next
 * shard. */
static void on_pruned(int err, redisReply *reply, void *arg)
{
    dm_sink_prune *p = arg;
    if (p->g->all->stopping)
        return;
    const char *key = p->g->out_keys[p->shard];
    if (err != DM_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_ARRAY ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        /* NOGROUP, a lost connection, ...: the reads and claims deal with those; the next
         * round tries again. */
        char q[200];
        dm_debug("sink consumer check failed", "sink=%s stream=%s reason=%s", p->g->c->name, key,
                 dm_sink_quote(err != DM_OK                       ? dm_strerror(err)
                               : reply->type == REDIS_REPLY_ERROR ? reply->str
                                                                  : "unexpected reply",
                               q, sizeof q));
        p->pruning = false;
        return;
    }
    log_pruned(p, key, reply->element[0], reply->element[1]);
    p->shard++;
    prune_next(p);
}

/* One shard after the other, one script call each (at most PRUNE_DEL_MAX removals; the next
 * round gets the others). */
static void prune_next(dm_sink_prune *p)
{
    dm_sink_group *g = p->g;
    if (g->all->stopping || !g->running || p->shard >= g->nshards) {
        p->pruning = false;
        return;
    }
    char limit[24], most[16];
    snprintf(limit, sizeof limit, "%lld", (long long)prune_idle_ms(p));
    snprintf(most, sizeof most, "%d", PRUNE_DEL_MAX);
    const char *argv[] = {g->out_keys[p->shard], g->name, g->all->consumer, limit, most};
    size_t lens[DM_ARRAY_LEN(argv)];
    for (size_t i = 0; i < DM_ARRAY_LEN(argv); i++)
        lens[i] = strlen(argv[i]);
    if (dm_redis_eval(g->all->ctl, DM_SCRIPT_SINK_PRUNE, on_pruned, p, 1, (int)DM_ARRAY_LEN(argv),
                      argv, lens) != DM_OK)
        p->pruning = false; /* the next round tries again */
}

void dm_sink_prune_init(dm_sink_prune *p, dm_sink_group *g)
{
    p->g = g;
    p->pruning = false;
    p->shard = 0;
    p->next_ms = 0;
}

void dm_sink_prune_maybe(dm_sink_prune *p)
{
    int64_t now = dm_mono_ms();
    if (p->pruning || p->g->all->stopping || now < p->next_ms)
        return;
    p->next_ms = now + prune_every_ms(p);
    p->pruning = true;
    p->shard = 0;
    prune_next(p);
}
