#include "dm_common.h"
#include "dm_query.h"
#include "dm_log.h"
#include "dm_time.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct query_ctx {
    dm_query_cb cb;
    void *arg;
    char digest[DM_DIGEST_BUFLEN];
} query_ctx;

static json_t *parse(const redisReply *s)
{
    if (s->type != REDIS_REPLY_STRING)
        return NULL;
    return json_loadb(s->str, s->len, 0, NULL);
}

static json_t *iso(json_t *ms)
{
    char buf[DM_TIME_BUFLEN];
    dm_time_format((int64_t)json_number_value(ms), buf);
    return json_string(buf);
}

/* Parked push (park.lua's internal form) → the answer's shape. */
static json_t *pending_push(json_t *p)
{
    json_t *o = json_object();
    static const char *const copy[] = {"registry", "repository", "tags", "source", "event_id",
                                       "media_type"};
    for (size_t i = 0; i < DM_ARRAY_LEN(copy); i++) {
        json_t *v = json_object_get(p, copy[i]);
        if (v && !json_is_null(v))
            json_object_set(o, copy[i], v);
    }
    if (!json_is_array(json_object_get(o, "tags")))
        json_object_set_new(o, "tags", json_array()); /* cjson writes an empty list as {} */
    json_object_set_new(o, "pushed_at", iso(json_object_get(p, "tmin")));
    json_object_set_new(o, "expires_at", iso(json_object_get(p, "exp")));
    return o;
}

static json_t *pending_build(json_t *b)
{
    json_t *o = json_object();
    static const char *const copy[] = {"relation", "index", "name", "tags", "build"};
    for (size_t i = 0; i < DM_ARRAY_LEN(copy); i++) {
        json_t *v = json_object_get(b, copy[i]);
        if (v && !json_is_null(v))
            json_object_set(o, copy[i], v);
    }
    if (!json_is_array(json_object_get(o, "tags")))
        json_object_set_new(o, "tags", json_array());
    json_object_set_new(o, "built_at", iso(json_object_get(b, "t")));
    json_object_set_new(o, "expires_at", iso(json_object_get(b, "exp")));
    return o;
}

static void on_query(int err, redisReply *rep, void *arg)
{
    query_ctx *q = arg;
    if (err != DM_OK) {
        q->cb(err, 0, NULL, q->arg);
        free(q);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 5 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        dm_error("query script failed", "reply_type=%d", rep->type);
        q->cb(DM_EREDIS, 0, NULL, q->arg);
        free(q);
        return;
    }
    double now = (double)rep->element[0]->integer;
    json_t *mappings = json_array(), *pushes = json_array(), *builds = json_array(),
           *deleted = json_array();
    json_t *lists[4] = {mappings, pushes, builds, deleted};
    for (size_t k = 0; k < 4; k++) {
        const redisReply *vals = rep->element[k + 1];
        if (vals->type != REDIS_REPLY_ARRAY)
            continue;
        for (size_t i = 0; i < vals->elements; i++) {
            json_t *v = parse(vals->element[i]);
            if (!v)
                continue;
            if (k == 1 || k == 2) {
                /* Parked but expired: no longer joinable, so not pending. */
                if (json_number_value(json_object_get(v, "exp")) < now) {
                    json_decref(v);
                    continue;
                }
                json_t *shaped = k == 1 ? pending_push(v) : pending_build(v);
                json_decref(v);
                v = shaped;
            }
            json_array_append_new(lists[k], v);
        }
    }
    bool found = json_array_size(mappings) || json_array_size(pushes) ||
                 json_array_size(builds) || json_array_size(deleted);
    json_t *ans = json_pack("{s:s, s:o, s:{s:o, s:o}, s:o}", "digest", q->digest, "mappings",
                            mappings, "pending", "registry", pushes, "build", builds, "deleted",
                            deleted);
    char *body = json_dumps(ans, JSON_COMPACT);
    json_decref(ans);
    q->cb(DM_OK, found ? 200 : 404, body, q->arg);
    free(q);
}

int dm_query_image(dm_redis *r, const dm_join_conf *conf, const char *digest, dm_query_cb cb,
                   void *arg)
{
    static const char *const kinds[] = {"r", "b", "m", "d"};
    char keys[4][DM_KEY_BUFLEN];
    const char *argv[4];
    size_t lens[4];
    unsigned shard = dm_digest_shard(digest, conf->shards);
    for (size_t i = 0; i < 4; i++) {
        dm_join_key(keys[i], conf->prefix, shard, kinds[i], digest);
        argv[i] = keys[i];
        lens[i] = strlen(keys[i]);
    }
    query_ctx *q = dm_xcalloc(1, sizeof *q);
    q->cb = cb;
    q->arg = arg;
    snprintf(q->digest, sizeof q->digest, "%s", digest);
    int rc = dm_redis_eval(r, DM_SCRIPT_QUERY, on_query, q, 4, 4, argv, lens);
    if (rc != DM_OK)
        free(q);
    return rc;
}
