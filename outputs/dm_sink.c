/* dm_sink.c - the webhook sinks of the daemon: start and stop (see dm_sink.h for the rules).
 *
 * Shape: one dm_sinks on the main thread's base holds what the sinks share (dm_sink_shared:
 * one control Redis connection for XGROUP, XACK, XCLAIM, XAUTOCLAIM and the scripts, one HTTP
 * client) and one reader per sink (dm_sink_reader.h), with a Redis connection of its own per
 * shard for XREADGROUP … BLOCK and the records it holds (dm_sink_record.h).
 *
 * Stop: the Redis clients are freed first: their callbacks run (with DM_EUNAVAIL) while every
 * record still exists, and do nothing because `stopping` is set; only then are the records
 * freed.
 */
#include "dm_common.h"
#include "dm_sink.h"
#include "dm_metrics.h"
#include "dm_redis_conf.h"
#include "dm_sink_reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct dm_sinks {
    dm_sink_shared shared;
    dm_sink_reader **v;
    size_t n;
};

static void on_ctl_ready(bool ready, void *arg)
{
    dm_sinks *all = arg;
    if (!ready || all->shared.stopping)
        return;
    for (size_t i = 0; i < all->n; i++)
        dm_sink_reader_ctl_ready(all->v[i]);
}

/* "<hostname>:<pid>": the consumer name of this instance in every sink's group. */
static void consumer_name(char *out, size_t size)
{
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(out, size, "%s:%ld", host, (long)getpid());
}

int dm_sinks_start(struct event_base *base, const dm_config *conf, const char *redis_socket,
                   dm_sinks **out, char *err, size_t errlen)
{
    *out = NULL;
    if (conf->outputs.nwebhooks == 0)
        return DM_OK;
    dm_sinks *all = dm_xcalloc(1, sizeof *all);
    dm_sink_shared *sh = &all->shared;
    sh->base = base;
    sh->redis_socket = redis_socket;
    sh->conf = conf;
    consumer_name(sh->consumer, sizeof sh->consumer);
    int rc = DM_OK;
    sh->http = dm_hclient_new(base, err, errlen);
    if (!sh->http) {
        rc = DM_EIO;
        goto fail;
    }
    all->v = dm_xcalloc(conf->outputs.nwebhooks, sizeof *all->v);
    int ctl_inflight = 64;
    for (size_t i = 0; i < conf->outputs.nwebhooks; i++) {
        rc = dm_sink_reader_new(sh, &conf->outputs.webhooks[i], &all->v[i], err, errlen);
        if (rc != DM_OK)
            goto fail;
        all->n++;
        /* Per held record one command at most and one refresh step, plus a claim and the
         * group commands per shard, and a stale-consumer check. */
        ctl_inflight += 2 * conf->outputs.webhooks[i].max_inflight + 4 * conf->redis.shards + 1;
    }
    dm_redis_opts co = dm_redis_conf_opts(conf, sh->redis_socket, "sinks");
    co.max_inflight = ctl_inflight;
    co.on_ready = on_ctl_ready;
    co.on_ready_arg = all;
    sh->ctl = dm_redis_new(base, &co);
    if (!sh->ctl) {
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
    all->shared.stopping = true;
    /* Redis first: pending callbacks run now, while every record they point to exists. */
    dm_redis_free(all->shared.ctl);
    all->shared.ctl = NULL;
    for (size_t i = 0; i < all->n; i++)
        dm_sink_reader_disconnect(all->v[i]);
    for (size_t i = 0; i < all->n; i++)
        dm_sink_reader_free(all->v[i]);
    dm_hclient_free(all->shared.http); /* after the records: their requests were cancelled */
    dm_metrics_set(DM_G_SINK_INFLIGHT, 0);
    free(all->v);
    free(all);
}
