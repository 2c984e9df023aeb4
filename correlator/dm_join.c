#include "dm_common.h"
#include "dm_join.h"
#include "dm_log.h"
#include "dm_keys.h"
#include "dm_scripts.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct submit_ctx {
    dm_join_cb cb;
    void *arg;
} submit_ctx;

static long long int_at(const redisReply *rep, size_t i)
{
    return i < rep->elements && rep->element[i]->type == REDIS_REPLY_INTEGER
               ? rep->element[i]->integer
               : 0;
}

static void on_park(int err, redisReply *rep, void *arg)
{
    submit_ctx *s = arg;
    dm_join_cb cb = s->cb;
    void *cb_arg = s->arg;
    free(s);
    if (err != DM_OK) {
        cb(err, NULL, cb_arg);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 4) {
        dm_error("join script failed", "reply=\"%.*s\"",
                 rep->type == REDIS_REPLY_ERROR ? (int)rep->len : 0,
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "");
        cb(DM_EREDIS, NULL, cb_arg);
        return;
    }
    dm_join_result res = {(int)int_at(rep, 0), (int)int_at(rep, 1), (int)int_at(rep, 2),
                          (int)int_at(rep, 3)};
    cb(DM_OK, &res, cb_arg);
}

int dm_join_submit(dm_redis *r, const dm_join_conf *conf, const dm_event *ev, dm_join_cb cb,
                   void *arg)
{
    /* The KEYS of park.lua, in its order. */
    char keys[7][DM_KEY_BUFLEN];
    char nums[4][24];
    const char *argv[12];
    size_t lens[12];
    const char *prefix = conf->prefix, *digest = ev->digest;
    unsigned shard = dm_digest_shard(digest, conf->shards);
    lens[0] = dm_key_pushes(keys[0], prefix, shard, digest);
    lens[1] = dm_key_builds(keys[1], prefix, shard, digest);
    lens[2] = dm_key_mappings(keys[2], prefix, shard, digest);
    lens[3] = dm_key_deletes(keys[3], prefix, shard, digest);
    lens[4] = dm_key_due(keys[4], prefix, shard);
    lens[5] = dm_key_out(keys[5], prefix, shard);
    lens[6] = dm_key_stats(keys[6], prefix, shard);
    int n = (int)DM_ARRAY_LEN(keys);
    for (int i = 0; i < n; i++)
        argv[i] = keys[i];
    char *json = dm_event_to_json(ev);
    argv[n] = json;
    lens[n++] = strlen(json);
    long long vals[4] = {conf->window_ms, conf->grace_ms, conf->max_skew_ms, conf->mapping_ttl_ms};
    for (size_t i = 0; i < 4; i++) {
        snprintf(nums[i], sizeof nums[i], "%lld", vals[i]);
        argv[n] = nums[i];
        lens[n++] = strlen(nums[i]);
    }
    submit_ctx *s = dm_xmalloc(sizeof *s);
    s->cb = cb;
    s->arg = arg;
    int rc = dm_redis_eval(r, DM_SCRIPT_PARK, on_park, s, (int)DM_ARRAY_LEN(keys), n, argv, lens);
    free(json);
    if (rc != DM_OK)
        free(s);
    return rc;
}
