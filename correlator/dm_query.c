#include "dm_common.h"
#include "dm_query.h"
#include "dm_log.h"
#include "dm_time.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
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
    /* The record's key order (lua/lib.lua BUILD_KEYS), not the stored one: cjson writes a Lua
     * table in hash order. built_at is reported beside the identity. */
    static const char *const keys[] = {
        "provider", "repository",  "repository_url", "workflow",       "workflow_ref",
        "run_id",   "run_attempt", "run_url",        "commit",         "ref",
        "actor",    "verified",    "issuer",         "verified_fields"};
    json_t *o = json_object();
    json_t *id = json_object_get(b, "b");
    if (json_is_object(id)) {
        json_t *copy = json_object();
        for (size_t i = 0; i < DM_ARRAY_LEN(keys); i++) {
            json_t *v = json_object_get(id, keys[i]);
            if (v && !(json_is_object(v) && json_object_size(v) == 0)) /* cjson: [] as {} */
                json_object_set(copy, keys[i], v);
        }
        json_object_set_new(o, "build", copy);
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
    bool found = json_array_size(mappings) || json_array_size(pushes) || json_array_size(builds) ||
                 json_array_size(deleted);
    json_t *ans =
        json_pack("{s:s, s:o, s:{s:o, s:o}, s:o}", "digest", q->digest, "mappings", mappings,
                  "pending", "registry", pushes, "build", builds, "deleted", deleted);
    /* A 404 is an error answer (DESIGN §6.3: {"error": …}) and still the document's shape,
     * so a client can read either. */
    if (!found)
        json_object_set_new(ans, "error", json_string("nothing is known about this digest"));
    char *body = json_dumps(ans, JSON_COMPACT);
    json_decref(ans);
    q->cb(DM_OK, found ? 200 : 404, body, q->arg);
    free(q);
}

int dm_query_image(dm_redis *r, const dm_join_conf *conf, const char *digest, dm_query_cb cb,
                   void *arg)
{
    /* The KEYS of query.lua, in its order. */
    char keys[4][DM_KEY_BUFLEN];
    size_t lens[4];
    unsigned shard = dm_digest_shard(digest, conf->shards);
    lens[0] = dm_key_pushes(keys[0], conf->prefix, shard, digest);
    lens[1] = dm_key_builds(keys[1], conf->prefix, shard, digest);
    lens[2] = dm_key_mappings(keys[2], conf->prefix, shard, digest);
    lens[3] = dm_key_deletes(keys[3], conf->prefix, shard, digest);
    const char *argv[4] = {keys[0], keys[1], keys[2], keys[3]};
    query_ctx *q = dm_xcalloc(1, sizeof *q);
    q->cb = cb;
    q->arg = arg;
    snprintf(q->digest, sizeof q->digest, "%s", digest);
    int rc = dm_redis_eval(r, DM_SCRIPT_QUERY, on_query, q, 4, 4, argv, lens);
    if (rc != DM_OK)
        free(q);
    return rc;
}

/*---------------------------------------------------------------- GET /v1/mappings ---*/

/* Index member layout (lua/park.lua index_edge): fixed widths, so members compare with
 * memcmp exactly as Redis orders them (BYLEX is memcmp order). */
#define INV_DIGITS 13
#define INV_BASE   INT64_C(9999999999999)
#define ID_HEX     40

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* "<13 digits>|sha256:<64 hex>|<40 hex>", exactly. */
static bool member_valid(const char *m, size_t len)
{
    if (len != DM_INDEX_MEMBER_LEN)
        return false;
    for (size_t i = 0; i < INV_DIGITS; i++)
        if (m[i] < '0' || m[i] > '9')
            return false;
    const char *d = m + INV_DIGITS + 1;
    return m[INV_DIGITS] == '|' && dm_digest_valid(d, DM_DIGEST_LEN) && d[DM_DIGEST_LEN] == '|' &&
           is_lower_hex(d + DM_DIGEST_LEN + 1, ID_HEX);
}

/* The confirmation time a (valid) member stands for. */
static int64_t member_time(const char *m)
{
    int64_t inv = 0;
    for (size_t i = 0; i < INV_DIGITS; i++)
        inv = inv * 10 + (m[i] - '0');
    return INV_BASE - inv;
}

void dm_query_cursor_encode(const char *member, char out[DM_CURSOR_LEN + 1])
{
    /* 126 bytes are 42 whole base64 quanta: no padding to strip. */
    _Static_assert(DM_INDEX_MEMBER_LEN % 3 == 0 && DM_CURSOR_LEN == DM_INDEX_MEMBER_LEN / 3 * 4,
                   "a cursor is unpadded base64 of a member");
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)member, DM_INDEX_MEMBER_LEN);
    for (size_t i = 0; i < DM_CURSOR_LEN; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[DM_CURSOR_LEN] = '\0';
}

bool dm_query_cursor_decode(const char *text, size_t len, char member[DM_INDEX_MEMBER_LEN + 1])
{
    if (len != DM_CURSOR_LEN)
        return false;
    unsigned char std[DM_CURSOR_LEN + 1];
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        /* The base64url alphabet only (EVP_DecodeBlock would also skip blanks and take '+'). */
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
        std[i] = (unsigned char)(c == '-' ? '+' : c == '_' ? '/' : c);
    }
    std[len] = '\0';
    unsigned char bin[DM_INDEX_MEMBER_LEN + 3];
    if (EVP_DecodeBlock(bin, std, (int)len) != DM_INDEX_MEMBER_LEN)
        return false;
    if (!member_valid((const char *)bin, DM_INDEX_MEMBER_LEN))
        return false;
    memcpy(member, bin, DM_INDEX_MEMBER_LEN);
    member[DM_INDEX_MEMBER_LEN] = '\0';
    return true;
}

static int cmp_picks(const void *a, const void *b)
{
    return memcmp(((const dm_query_pick *)a)->member, ((const dm_query_pick *)b)->member,
                  DM_INDEX_MEMBER_LEN);
}

size_t dm_query_merge(const dm_query_shard_page *pages, size_t npages, unsigned limit,
                      dm_query_pick *out, const char **next)
{
    /* Everything up to the smallest open frontier has been seen in every shard; past it, an
     * unfinished shard may hold members it did not return. */
    const char *frontier = NULL;
    size_t total = 0;
    for (size_t p = 0; p < npages; p++) {
        total += pages[p].n;
        if (!pages[p].exhausted &&
            (!frontier || memcmp(pages[p].frontier, frontier, DM_INDEX_MEMBER_LEN) < 0))
            frontier = pages[p].frontier;
    }
    dm_query_pick *all = dm_xmalloc((total ? total : 1) * sizeof *all);
    size_t usable = 0;
    for (size_t p = 0; p < npages; p++) {
        for (size_t i = 0; i < pages[p].n; i++) {
            const char *mem = pages[p].members + i * DM_INDEX_MEMBER_LEN;
            if (!frontier || memcmp(mem, frontier, DM_INDEX_MEMBER_LEN) <= 0)
                all[usable++] = (dm_query_pick){.member = mem, .shard = p, .index = i};
        }
    }
    if (usable) /* qsort wants a valid pointer even for 0 items */
        qsort(all, usable, sizeof *all, cmp_picks);
    size_t take = usable < limit ? usable : limit;
    memcpy(out, all, take * sizeof *out);
    if (usable > take)
        *next = all[take - 1].member;
    else
        *next = frontier; /* NULL: every shard is exhausted, the walk is complete */
    free(all);
    return take;
}

unsigned dm_query_shard_limit(unsigned limit, unsigned shards)
{
    if (shards <= 1)
        return limit;
    unsigned share = 2 * ((limit + shards - 1) / shards);
    unsigned per = share > 8 ? share : 8;
    return per < limit ? per : limit;
}

/* What one shard answered (lua/mappings.lua). */
typedef struct shard_answer {
    bool exhausted;
    char frontier[DM_INDEX_MEMBER_LEN + 1];
    char *members; /* n × DM_INDEX_MEMBER_LEN bytes, ascending */
    char **data;   /* n mapping JSON texts, owned */
    size_t *lens;
    size_t n;
} shard_answer;

/* One GET /v1/mappings answer being assembled from one script call per shard. */
typedef struct mappings_ctx {
    dm_query_cb cb;
    void *arg;
    dm_mappings_query q;
    unsigned per;     /* live mappings asked of each shard */
    unsigned pending; /* shard calls not answered yet */
    int err;          /* first failure, DM_OK if none */
    shard_answer *shards;
    size_t nshards;
    long long dead;
} mappings_ctx;

static void mappings_free(mappings_ctx *m)
{
    for (size_t s = 0; s < m->nshards; s++) {
        shard_answer *a = &m->shards[s];
        for (size_t i = 0; i < a->n; i++)
            free(a->data[i]);
        free(a->data);
        free(a->lens);
        free(a->members);
    }
    free(m->shards);
    free(m);
}

static json_t *query_echo(const dm_mappings_query *q)
{
    json_t *o = json_object();
    if (q->kind == DM_INDEX_REPOSITORY) {
        json_object_set_new(o, "repository", json_string(q->name));
    } else if (q->kind == DM_INDEX_RUN) {
        json_object_set_new(o, "run", json_string(q->name));
    } else {
        const char *slash = strchr(q->name, '/');
        size_t rlen = slash ? (size_t)(slash - q->name) : strlen(q->name);
        json_object_set_new(o, "registry", json_stringn(q->name, rlen));
        json_object_set_new(o, "image_repository", json_string(slash ? slash + 1 : ""));
    }
    json_object_set_new(o, "limit", json_integer(q->limit));
    return o;
}

static void mappings_finish(mappings_ctx *m)
{
    if (m->err != DM_OK) {
        m->cb(m->err, 0, NULL, m->arg);
        mappings_free(m);
        return;
    }
    dm_query_shard_page *pages = dm_xcalloc(m->nshards, sizeof *pages);
    for (size_t s = 0; s < m->nshards; s++)
        pages[s] = (dm_query_shard_page){.exhausted = m->shards[s].exhausted,
                                         .frontier = m->shards[s].frontier,
                                         .members = m->shards[s].members,
                                         .n = m->shards[s].n};
    dm_query_pick *picks = dm_xmalloc(m->q.limit * sizeof *picks);
    const char *next = NULL;
    size_t take = dm_query_merge(pages, m->nshards, m->q.limit, picks, &next);

    json_t *list = json_array();
    for (size_t i = 0; i < take; i++) {
        const shard_answer *a = &m->shards[picks[i].shard];
        char member[DM_INDEX_MEMBER_LEN + 1];
        memcpy(member, picks[i].member, DM_INDEX_MEMBER_LEN);
        member[DM_INDEX_MEMBER_LEN] = '\0';
        json_t *v = json_loadb(a->data[picks[i].index], a->lens[picks[i].index], 0, NULL);
        if (!json_is_object(v)) {
            /* park.lua wrote it: only a foreign writer could leave this. */
            dm_warn("unreadable mapping skipped", "member=%s", member);
            json_decref(v);
            continue;
        }
        char t[DM_TIME_BUFLEN];
        dm_time_format(member_time(member), t);
        json_object_set_new(v, "confirmed_at", json_string(t));
        json_array_append_new(list, v);
    }
    json_t *cursor = json_null();
    if (next) {
        char c[DM_CURSOR_LEN + 1];
        dm_query_cursor_encode(next, c);
        cursor = json_string(c);
    }
    free(picks);
    free(pages);
    if (m->dead > 0) {
        char qname[160];
        dm_debug("stale index entries removed", "index=%s name=%s count=%lld",
                 dm_key_index_kind(m->q.kind),
                 dm_log_quote(m->q.name, strlen(m->q.name), qname, sizeof qname), m->dead);
    }
    json_t *ans = json_pack("{s:o, s:o, s:o}", "query", query_echo(&m->q), "mappings", list,
                            "next_cursor", cursor);
    char *body = json_dumps(ans, JSON_COMPACT);
    json_decref(ans);
    m->cb(DM_OK, 200, body, m->arg);
    mappings_free(m);
}

/* Shard @p a's page: {exhausted, frontier, dead, member, mapping, …} (lua/mappings.lua), at
 * most m->per pairs, members ascending and after the cursor (dm_query_merge relies on it). */
static int take_page(mappings_ctx *m, shard_answer *a, const redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 || rep->elements % 2 == 0 ||
        (rep->elements - 3) / 2 > m->per || rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_STRING || rep->element[2]->type != REDIS_REPLY_INTEGER)
        return DM_EREDIS;
    const redisReply *f = rep->element[1];
    a->exhausted = rep->element[0]->integer != 0;
    if (!a->exhausted) {
        /* Past the cursor, or the next page would start where this one did. */
        if (!member_valid(f->str, f->len) ||
            (m->q.after[0] && memcmp(f->str, m->q.after, DM_INDEX_MEMBER_LEN) <= 0))
            return DM_EREDIS;
        memcpy(a->frontier, f->str, DM_INDEX_MEMBER_LEN);
        a->frontier[DM_INDEX_MEMBER_LEN] = '\0';
    }
    m->dead += rep->element[2]->integer;
    size_t n = (rep->elements - 3) / 2;
    a->members = dm_xmalloc(n ? n * DM_INDEX_MEMBER_LEN : 1);
    a->data = dm_xcalloc(n ? n : 1, sizeof *a->data);
    a->lens = dm_xcalloc(n ? n : 1, sizeof *a->lens);
    const char *prev = m->q.after[0] ? m->q.after : NULL;
    for (size_t i = 0; i < n; i++) {
        const redisReply *mem = rep->element[3 + 2 * i], *data = rep->element[4 + 2 * i];
        if (mem->type != REDIS_REPLY_STRING || data->type != REDIS_REPLY_STRING ||
            !member_valid(mem->str, mem->len) ||
            (prev && memcmp(prev, mem->str, DM_INDEX_MEMBER_LEN) >= 0))
            return DM_EREDIS;
        char *slot = a->members + i * DM_INDEX_MEMBER_LEN;
        memcpy(slot, mem->str, DM_INDEX_MEMBER_LEN);
        prev = slot;
        a->data[i] = dm_xstrndup(data->str, data->len);
        a->lens[i] = data->len;
        a->n = i + 1;
    }
    return DM_OK;
}

/* The callback's argument: the request and which shard the call went to. */
typedef struct page_call {
    mappings_ctx *m;
    size_t shard;
} page_call;

static void on_page(int err, redisReply *rep, void *arg)
{
    page_call *c = arg;
    mappings_ctx *m = c->m;
    if (err == DM_OK && m->err == DM_OK) {
        err = take_page(m, &m->shards[c->shard], rep);
        if (err != DM_OK)
            dm_error("mappings script failed", "shard=%zu reply_type=%d reply=\"%.*s\"", c->shard,
                     rep->type, rep->type == REDIS_REPLY_ERROR ? (int)rep->len : 0,
                     rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    }
    free(c);
    if (err != DM_OK && m->err == DM_OK)
        m->err = err;
    if (--m->pending == 0)
        mappings_finish(m);
}

int dm_query_mappings(dm_redis *r, const dm_join_conf *conf, const dm_mappings_query *q,
                      dm_query_cb cb, void *arg)
{
    if (!dm_redis_ready(r))
        return DM_EUNAVAIL;
    /* All shards or none: a partly queued fan-out would answer 503 after doing the work. */
    if (dm_redis_room(r) < conf->shards)
        return DM_EBUSY;
    mappings_ctx *m = dm_xcalloc(1, sizeof *m);
    m->cb = cb;
    m->arg = arg;
    m->q = *q;
    m->err = DM_OK;
    m->per = dm_query_shard_limit(q->limit, conf->shards);
    m->nshards = conf->shards;
    m->shards = dm_xcalloc(conf->shards, sizeof *m->shards);
    m->pending = conf->shards;
    char limit[16], ttl[24];
    snprintf(limit, sizeof limit, "%u", m->per);
    snprintf(ttl, sizeof ttl, "%lld", (long long)conf->mapping_ttl_ms);
    for (unsigned s = 0; s < conf->shards; s++) {
        char base[DM_KEY_BUFLEN];
        size_t blen = dm_key_shard_base(base, conf->prefix, s), klen;
        char *key = dm_key_index(conf->prefix, s, q->kind, q->name, &klen);
        const char *argv[] = {key, q->after, limit, base, ttl};
        size_t lens[] = {klen, strlen(q->after), strlen(limit), blen, strlen(ttl)};
        page_call *c = dm_xmalloc(sizeof *c);
        *c = (page_call){.m = m, .shard = s};
        int rc = dm_redis_eval(r, DM_SCRIPT_MAPPINGS, on_page, c, 1, 5, argv, lens);
        free(key);
        if (rc != DM_OK) {
            free(c);
            /* Not expected after the room check; the calls already queued still answer. */
            m->pending -= conf->shards - s;
            if (m->pending == 0) {
                mappings_free(m);
                return rc;
            }
            m->err = rc;
            break;
        }
    }
    return DM_OK;
}
