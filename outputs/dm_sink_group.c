/* dm_sink_group.c - a sink's group and streams, and the helpers its parts share (see
 * dm_sink_group.h). */
#include "dm_common.h"
#include "dm_sink_group.h"
#include "dm_log.h"
#include "dm_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

/* Commands longer than this get their lengths on the heap. */
#define STACK_ARGS 16

void dm_sink_group_init(dm_sink_group *g, dm_sink_shared *all, const dm_sink_conf *c)
{
    const dm_config *conf = all->conf;
    g->all = all;
    g->c = c;
    snprintf(g->name, sizeof g->name, "digestmap:%s", c->name);
    g->nshards = (unsigned)conf->redis.shards;
    g->out_keys = dm_xcalloc(g->nshards, sizeof *g->out_keys);
    g->dead_keys = dm_xcalloc(g->nshards, sizeof *g->dead_keys);
    for (unsigned i = 0; i < g->nshards; i++) {
        dm_key_out(g->out_keys[i], conf->redis.prefix, i);
        dm_key_dead(g->dead_keys[i], conf->redis.prefix, i);
    }
}

void dm_sink_group_dispose(dm_sink_group *g)
{
    free(g->out_keys);
    free(g->dead_keys);
    g->out_keys = g->dead_keys = NULL;
}

int dm_sink_group_shard(const dm_sink_group *g, const char *key)
{
    for (unsigned i = 0; i < g->nshards; i++)
        if (strcmp(g->out_keys[i], key) == 0)
            return (int)i;
    return -1;
}

int dm_sink_group_ack(const dm_sink_group *g, unsigned shard, const char *id, dm_redis_cb cb,
                      void *arg)
{
    const char *argv[] = {"XACK", g->out_keys[shard], g->name, id};
    return dm_sink_command(g->all->ctl, g->out_keys[shard], cb, arg, (int)DM_ARRAY_LEN(argv), argv);
}

static void on_loose_ack(int err, redisReply *reply, void *arg)
{
    (void)arg;
    if (err != DM_OK || dm_sink_error_reply(reply, NULL))
        dm_debug("sink acknowledgement failed", "reason=\"%s\"",
                 err != DM_OK ? dm_strerror(err) : "error reply");
}

void dm_sink_group_ack_loose(const dm_sink_group *g, unsigned shard, const char *id)
{
    dm_sink_group_ack(g, shard, id, on_loose_ack, NULL);
}

int dm_sink_command(dm_redis *r, const char *route, dm_redis_cb cb, void *arg, int argc,
                    const char **argv)
{
    size_t stack[STACK_ARGS] = {0};
    size_t *lens = argc <= STACK_ARGS ? stack : dm_xcalloc((size_t)argc, sizeof *lens);
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    int rc = dm_redis_command(r, route, cb, arg, argc, argv, lens);
    if (lens != stack)
        free(lens);
    return rc;
}

bool dm_sink_error_reply(const redisReply *rep, const char *prefix)
{
    return rep && rep->type == REDIS_REPLY_ERROR && rep->str &&
           (!prefix || strncmp(rep->str, prefix, strlen(prefix)) == 0);
}

void dm_sink_set_timer(struct event *ev, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(ev, &tv);
}

const char *dm_sink_quote(const char *s, char *buf, size_t size)
{
    return dm_log_quote(s, strlen(s), buf, size);
}
