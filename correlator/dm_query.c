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

static const char *media_type(const char *code)
{
    /* park.lua stores the common media types as codes (lua/lib.lua MEDIA). */
    static const char *const map[][2] = {
        {"oi", "application/vnd.oci.image.index.v1+json"},
        {"om", "application/vnd.oci.image.manifest.v1+json"},
        {"dl", "application/vnd.docker.distribution.manifest.list.v2+json"},
        {"dm", "application/vnd.docker.distribution.manifest.v2+json"},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(map); i++)
        if (strcmp(code, map[i][0]) == 0)
            return map[i][1];
    return code;
}

static json_t *tags_of(json_t *item)
{
    json_t *g = json_object_get(item, "g");
    return json_is_array(g) ? json_incref(g) : json_array(); /* cjson writes [] as {} */
}

/* Parked push (stored form, lua/lib.lua) at location "<registry>/<repository>". */
static json_t *pending_push(const char *loc, size_t loclen, json_t *p)
{
    const char *slash = memchr(loc, '/', loclen);
    size_t rlen = slash ? (size_t)(slash - loc) : loclen;
    json_t *o = json_object();
    json_object_set_new(o, "registry", json_stringn(loc, rlen));
    json_object_set_new(o, "repository",
                        json_stringn(slash ? slash + 1 : "", slash ? loclen - rlen - 1 : 0));
    json_object_set_new(o, "tags", tags_of(p));
    json_object_set(o, "source", json_object_get(p, "s"));
    json_object_set(o, "event_id", json_object_get(p, "e"));
    if (json_is_string(json_object_get(p, "m")))
        json_object_set_new(o, "media_type",
                            json_string(media_type(json_string_value(json_object_get(p, "m")))));
    json_object_set_new(o, "pushed_at", iso(json_object_get(p, "t")));
    json_object_set_new(o, "matched", json_boolean(json_object_get(p, "k") != NULL));
    json_object_set_new(o, "expires_at", iso(json_object_get(p, "x")));
    return o;
}

static json_t *pending_build(json_t *b)
{
    json_t *o = json_object();
    json_t *id = json_object_get(b, "b");
    if (json_is_object(id)) {
        id = json_deep_copy(id);
        json_object_del(id, "built_at");
        json_object_set_new(o, "build", id);
    }
    bool manifest = json_is_string(json_object_get(b, "r"));
    json_object_set_new(o, "relation", json_string(manifest ? "platform-manifest" : "image"));
    if (json_is_string(json_object_get(b, "i")))
        json_object_set(o, "index", json_object_get(b, "i"));
    if (json_is_string(json_object_get(b, "n")))
        json_object_set(o, "name", json_object_get(b, "n"));
    json_object_set_new(o, "tags", tags_of(b));
    json_object_set_new(o, "built_at", iso(json_object_get(b, "t")));
    json_object_set_new(o, "matched", json_boolean(json_object_get(b, "k") != NULL));
    json_object_set_new(o, "expires_at", iso(json_object_get(b, "x")));
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
        bool parked = k == 1 || k == 2; /* HGETALL: field, value pairs */
        for (size_t i = parked ? 1 : 0; i < vals->elements; i += parked ? 2 : 1) {
            json_t *v = parse(vals->element[i]);
            if (!v)
                continue;
            if (parked) {
                /* Expired: no longer joinable, so not pending (the sweeper reports it). */
                if (json_number_value(json_object_get(v, "x")) < now) {
                    json_decref(v);
                    continue;
                }
                const redisReply *f = vals->element[i - 1];
                json_t *shaped = k == 1 ? pending_push(f->str, f->len, v) : pending_build(v);
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
