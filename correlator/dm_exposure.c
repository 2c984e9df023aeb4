/* dm_exposure.c - see dm_exposure.h. */
#include "dm_common.h"
#include "dm_exposure.h"
#include "dm_keys.h"
#include "dm_log.h"
#include "dm_scripts.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*---------------------------------------------------------------- keys and merge ---*/

bool dm_exposure_key_valid(const char *key, size_t len)
{
    static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                  "0123456789._:-";
    if (len == 0 || len > DM_WORKLOAD_KEY_MAX)
        return false;
    size_t slashes = 0, part = 0;
    for (size_t i = 0; i < len; i++) {
        if (key[i] == '/') {
            if (part == 0)
                return false;
            slashes++;
            part = 0;
        } else if (key[i] == '\0' || !strchr(allowed, key[i])) {
            return false;
        } else {
            part++;
        }
    }
    return slashes == 3 && part > 0;
}

int dm_exposure_key_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), n = la < lb ? la : lb;
    int c = memcmp(a, b, n);
    if (c != 0 || la == lb)
        return c;
    /* One is a prefix of the other: "<key>|" puts '|' where the longer one goes on. */
    return la < lb ? (int)(unsigned char)'|' - (int)(unsigned char)b[n]
                   : (int)(unsigned char)a[n] - (int)(unsigned char)'|';
}

static int cmp_keys(const void *x, const void *y)
{
    return dm_exposure_key_cmp(*(const char *const *)x, *(const char *const *)y);
}

size_t dm_exposure_merge(const dm_exposure_page *pages, size_t npages, unsigned limit,
                         dm_exposure_pick *out, const char **next)
{
    size_t total = 0;
    const char *boundary = NULL;
    for (size_t s = 0; s < npages; s++) {
        total += pages[s].n;
        if (!pages[s].exhausted &&
            (!boundary || dm_exposure_key_cmp(pages[s].frontier, boundary) < 0))
            boundary = pages[s].frontier;
    }
    const char **all = dm_xmalloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (size_t s = 0; s < npages; s++)
        for (size_t i = 0; i < pages[s].n; i++)
            all[k++] = pages[s].keys[i];
    qsort(all, total, sizeof *all, cmp_keys);
    size_t taken = 0, i = 0;
    while (i < total && taken < limit) {
        if (boundary && dm_exposure_key_cmp(all[i], boundary) > 0)
            break;
        out[taken++].key = all[i];
        while (i < total && strcmp(all[i], out[taken - 1].key) == 0)
            i++;
    }
    if (taken == limit && limit > 0)
        *next = (i < total || boundary) ? out[taken - 1].key : NULL;
    else
        *next = boundary; /* NULL: every shard is exhausted, the walk is complete */
    free(all);
    return taken;
}

/*---------------------------------------------------------------- the query ---*/

typedef struct shard_page {
    bool exhausted;
    char frontier[DM_WORKLOAD_KEY_MAX + 1];
    size_t n;
    char **keys, **workloads, **images; /* n each, owned */
} shard_page;

typedef struct exposure_ctx {
    dm_query_cb cb;
    void *arg;
    dm_exposure_query q;
    unsigned per, pending;
    int err;
    shard_page *shards;
    size_t nshards;
    long long dead;
} exposure_ctx;

typedef struct exposure_call {
    exposure_ctx *x;
    size_t shard;
} exposure_call;

static void ctx_free(exposure_ctx *x)
{
    for (size_t s = 0; s < x->nshards; s++) {
        shard_page *p = &x->shards[s];
        for (size_t i = 0; i < p->n; i++) {
            free(p->keys[i]);
            free(p->workloads[i]);
            free(p->images[i]);
        }
        free(p->keys);
        free(p->workloads);
        free(p->images);
    }
    free(x->shards);
    free(x);
}

static bool is_text(const redisReply *e, char open, char close)
{
    return e->type == REDIS_REPLY_STRING && e->len >= 2 && e->str[0] == open &&
           e->str[e->len - 1] == close;
}

/* {exhausted, frontier, dead, key, workload, images, …} (lua/exposure.lua). */
static int take_page(exposure_ctx *x, shard_page *p, const redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 || (rep->elements - 3) % 3 != 0 ||
        (rep->elements - 3) / 3 > x->per || rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_STRING || rep->element[2]->type != REDIS_REPLY_INTEGER)
        return DM_EREDIS;
    const redisReply *f = rep->element[1];
    p->exhausted = rep->element[0]->integer != 0;
    if (!p->exhausted) {
        if (!dm_exposure_key_valid(f->str, f->len) ||
            (x->q.after[0] && dm_exposure_key_cmp(f->str, x->q.after) <= 0))
            return DM_EREDIS;
        memcpy(p->frontier, f->str, f->len);
        p->frontier[f->len] = '\0';
    }
    x->dead += rep->element[2]->integer;
    size_t n = (rep->elements - 3) / 3;
    p->keys = dm_xcalloc(n ? n : 1, sizeof *p->keys);
    p->workloads = dm_xcalloc(n ? n : 1, sizeof *p->workloads);
    p->images = dm_xcalloc(n ? n : 1, sizeof *p->images);
    for (size_t i = 0; i < n; i++) {
        const redisReply *k = rep->element[3 + 3 * i], *w = rep->element[4 + 3 * i],
                         *im = rep->element[5 + 3 * i];
        if (k->type != REDIS_REPLY_STRING || !dm_exposure_key_valid(k->str, k->len) ||
            !is_text(w, '{', '}') || !is_text(im, '[', ']'))
            return DM_EREDIS;
        p->keys[i] = dm_xstrndup(k->str, k->len);
        p->workloads[i] = dm_xstrndup(w->str, w->len);
        p->images[i] = dm_xstrndup(im->str, im->len);
        p->n = i + 1;
    }
    return DM_OK;
}

static int cmp_image(const void *x, const void *y)
{
    const char *a = json_string_value(json_object_get(*(json_t *const *)x, "digest"));
    const char *b = json_string_value(json_object_get(*(json_t *const *)y, "digest"));
    return strcmp(a ? a : "", b ? b : "");
}

/* The workload @p key from every shard's entry: its stored JSON with "images" replaced by the
 * passing images of all shards, sorted by digest. NULL when no entry reads as JSON. */
static json_t *merged_workload(exposure_ctx *x, const char *key, size_t *cursor)
{
    json_t *wl = NULL, *images = json_array();
    for (size_t s = 0; s < x->nshards; s++) {
        shard_page *p = &x->shards[s];
        while (cursor[s] < p->n && dm_exposure_key_cmp(p->keys[cursor[s]], key) < 0)
            cursor[s]++;
        if (cursor[s] >= p->n || strcmp(p->keys[cursor[s]], key) != 0)
            continue;
        size_t i = cursor[s]++;
        if (!wl)
            wl = json_loads(p->workloads[i], 0, NULL);
        json_t *list = json_loads(p->images[i], 0, NULL);
        json_array_extend(images, list);
        json_decref(list);
    }
    if (!json_is_object(wl)) {
        json_decref(wl);
        json_decref(images);
        return NULL;
    }
    size_t n = json_array_size(images);
    json_t **v = dm_xcalloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(images, i));
    qsort(v, n, sizeof *v, cmp_image);
    json_array_clear(images);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(images, v[i]);
    free(v);
    json_object_set_new(wl, "images", images);
    return wl;
}

static void finish(exposure_ctx *x)
{
    if (x->err != DM_OK) {
        x->cb(x->err, 0, NULL, x->arg);
        ctx_free(x);
        return;
    }
    dm_exposure_page *pages = dm_xcalloc(x->nshards, sizeof *pages);
    for (size_t s = 0; s < x->nshards; s++)
        pages[s] = (dm_exposure_page){.exhausted = x->shards[s].exhausted,
                                      .frontier = x->shards[s].frontier,
                                      .n = x->shards[s].n,
                                      .keys = (const char *const *)x->shards[s].keys};
    dm_exposure_pick *picks = dm_xmalloc(x->q.limit * sizeof *picks);
    const char *next = NULL;
    size_t take = dm_exposure_merge(pages, x->nshards, x->q.limit, picks, &next);
    size_t *cursor = dm_xcalloc(x->nshards, sizeof *cursor);
    json_t *workloads = json_array();
    for (size_t i = 0; i < take; i++) {
        json_t *wl = merged_workload(x, picks[i].key, cursor);
        if (wl)
            json_array_append_new(workloads, wl);
        else
            dm_warn("unreadable workload skipped", "key=\"%s\"", picks[i].key); /* key valid */
    }
    json_t *doc =
        json_pack("{s:{s:s,s:s,s:i},s:o}", "query", "exposure", x->q.exposure, "min_severity",
                  x->q.min_severity, "limit", (json_int_t)x->q.limit, "workloads", workloads);
    char *c = next ? dm_cursor_encode(next, strlen(next)) : NULL;
    json_object_set_new(doc, "next_cursor", c ? json_string(c) : json_null());
    free(c);
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!body)
        abort(); /* allocation failure inside jansson: fatal, like dm_xmalloc's */
    if (x->dead > 0)
        dm_debug("stale exposure entries removed", "exposure=%s count=%lld", x->q.exposure,
                 x->dead);
    free(cursor);
    free(picks);
    free(pages);
    x->cb(DM_OK, 200, body, x->arg);
    ctx_free(x);
}

static void on_page(int err, redisReply *rep, void *arg)
{
    exposure_call *c = arg;
    exposure_ctx *x = c->x;
    if (err == DM_OK && x->err == DM_OK) {
        err = take_page(x, &x->shards[c->shard], rep);
        if (err != DM_OK) {
            char reply[200];
            dm_error(
                "exposure script failed", "shard=%zu reply_type=%d reply=%s", c->shard, rep->type,
                dm_log_quote(rep->type == REDIS_REPLY_ERROR ? rep->str : "",
                             rep->type == REDIS_REPLY_ERROR ? rep->len : 0, reply, sizeof reply));
        }
    }
    free(c);
    if (err != DM_OK && x->err == DM_OK)
        x->err = err;
    if (--x->pending == 0)
        finish(x);
}

int dm_query_exposure(dm_redis *r, const dm_join_conf *conf, const dm_exposure_query *q,
                      dm_query_cb cb, void *arg)
{
    if (!dm_redis_ready(r))
        return DM_EUNAVAIL;
    if (dm_redis_room(r) < conf->shards)
        return DM_EBUSY;
    exposure_ctx *x = dm_xcalloc(1, sizeof *x);
    x->cb = cb;
    x->arg = arg;
    x->q = *q;
    x->err = DM_OK;
    x->per = dm_query_shard_limit(q->limit, conf->shards);
    x->nshards = conf->shards;
    x->shards = dm_xcalloc(conf->shards, sizeof *x->shards);
    x->pending = conf->shards;
    char per[16], rank[8], budget[16], maxm[8];
    snprintf(per, sizeof per, "%u", x->per);
    snprintf(rank, sizeof rank, "%d", q->min_rank);
    /* Entries examined per call: workloads whose images do not pass cost a read each. */
    snprintf(budget, sizeof budget, "%u", x->per * 8 > 256 ? x->per * 8 : 256);
    snprintf(maxm, sizeof maxm, "%d", DM_EXPOSURE_MAX_MAPPINGS);
    for (unsigned s = 0; s < conf->shards; s++) {
        char key[DM_KEY_BUFLEN], base[DM_KEY_BUFLEN];
        size_t klen = dm_key_exposure(key, conf->prefix, s, q->exposure);
        size_t blen = dm_key_shard_base(base, conf->prefix, s);
        const char *argv[] = {key, base, q->after, per, rank, q->exposure, budget, maxm};
        size_t lens[] = {klen,           blen,         strlen(q->after),
                         strlen(per),    strlen(rank), strlen(q->exposure),
                         strlen(budget), strlen(maxm)};
        exposure_call *c = dm_xmalloc(sizeof *c);
        *c = (exposure_call){.x = x, .shard = s};
        int rc = dm_redis_eval(r, DM_SCRIPT_EXPOSURE, on_page, c, 1, 8, argv, lens);
        if (rc != DM_OK) {
            free(c);
            /* Not expected after the room check; the calls already queued still answer. */
            x->pending -= conf->shards - s;
            if (x->pending == 0) {
                ctx_free(x);
                return rc;
            }
            x->err = rc;
            break;
        }
    }
    return DM_OK;
}
