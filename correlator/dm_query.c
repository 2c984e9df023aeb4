#include "dm_common.h"
#include "dm_query.h"
#include "dm_log.h"
#include "dm_keys.h"
#include "dm_scripts.h"

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

/* A growing text, for answers assembled from pieces that are already JSON. */
typedef struct answer_text {
    char *s;
    size_t len, cap;
} answer_text;

static void answer_add(answer_text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->s = dm_xrealloc(t->s, t->cap);
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void answer_adds(answer_text *t, const char *s)
{
    answer_add(t, s, strlen(s));
}

/* A list query.lua answers: the text of a JSON array. */
static bool is_array_text(const redisReply *e)
{
    return e->type == REDIS_REPLY_STRING && e->len >= 2 && e->str[0] == '[' &&
           e->str[e->len - 1] == ']';
}

static bool is_lower_hex(const char *s, size_t n);

bool dm_query_findings_key_valid(const char *key, size_t len)
{
    if (len < 5 || len > DM_FINDINGS_KEY_MAX || key[0] < '0' || key[0] > '4' || key[1] != '\x1f')
        return false;
    size_t seps = 0;
    for (size_t i = 1; i < len; i++)
        seps += key[i] == '\x1f';
    return seps >= 3 && memchr(key, '\0', len) == NULL;
}

/* What is known with no findings stored: every count zero. */
#define EMPTY_SUMMARY \
    "{\"critical\":0,\"high\":0,\"medium\":0,\"low\":0,\"unknown\":0,\"by_scanner\":{}}"

char *dm_query_image_answer(const char *digest, const redisReply *rep, int *status)
{
    /* 12: query.lua's workloads total (0, or more than it answered); 11 from an older one */
    if (rep->type != REDIS_REPLY_ARRAY || (rep->elements != 11 && rep->elements != 12) ||
        (rep->elements == 12 && rep->element[11]->type != REDIS_REPLY_INTEGER))
        return NULL;
    bool found = false;
    static const size_t arrays[] = {0, 1, 2, 3, 7, 10};
    for (size_t i = 0; i < DM_ARRAY_LEN(arrays); i++) {
        if (!is_array_text(rep->element[arrays[i]]))
            return NULL;
        found = found || rep->element[arrays[i]]->len > 2;
    }
    const redisReply *next = rep->element[4], *total = rep->element[5];
    const redisReply *summary = rep->element[6], *fnext = rep->element[8],
                     *ftotal = rep->element[9];
    if (next->type != REDIS_REPLY_STRING ||
        (next->len != 0 && (next->len != DM_EDGE_ID_LEN || !is_lower_hex(next->str, next->len))) ||
        total->type != REDIS_REPLY_INTEGER || summary->type != REDIS_REPLY_STRING ||
        (summary->len != 0 && !(summary->str[0] == '{' && summary->str[summary->len - 1] == '}')) ||
        fnext->type != REDIS_REPLY_STRING ||
        (fnext->len != 0 && !dm_query_findings_key_valid(fnext->str, fnext->len)) ||
        ftotal->type != REDIS_REPLY_INTEGER)
        return NULL;
    /* A page past the last mapping (they expired meanwhile) is still about a known digest; so
     * is one known only by its findings or workloads. */
    found = found || total->integer > 0 || summary->len > 0 || ftotal->integer > 0;
    answer_text t = {0};
    answer_adds(&t, "{\"digest\":\"");
    answer_adds(&t, digest); /* valid, so nothing in it needs escaping */
    answer_adds(&t, "\",\"mappings\":");
    answer_add(&t, rep->element[0]->str, rep->element[0]->len);
    answer_adds(&t, ",\"next_cursor\":");
    if (next->len) {
        char c[DM_IMAGE_CURSOR_LEN + 1]; /* base64url: nothing in it needs escaping */
        dm_query_image_cursor_encode(next->str, c);
        answer_adds(&t, "\"");
        answer_adds(&t, c);
        answer_adds(&t, "\"");
    } else {
        answer_adds(&t, "null");
    }
    /* The other lists in query.lua's order, each after its member name. */
    static const char *const names[] = {
        ",\"pending\":{\"registry\":", ",\"build\":", "},\"deleted\":"};
    for (size_t i = 1; i < 4; i++) {
        answer_adds(&t, names[i - 1]);
        answer_add(&t, rep->element[i]->str, rep->element[i]->len);
    }
    answer_adds(&t, ",\"findings\":{\"summary\":");
    if (summary->len)
        answer_add(&t, summary->str, summary->len);
    else
        answer_adds(&t, EMPTY_SUMMARY);
    answer_adds(&t, ",\"items\":");
    answer_add(&t, rep->element[7]->str, rep->element[7]->len);
    answer_adds(&t, ",\"next_cursor\":");
    if (fnext->len) {
        char *c = dm_cursor_encode(fnext->str, fnext->len); /* base64url */
        answer_adds(&t, "\"");
        answer_adds(&t, c);
        answer_adds(&t, "\"");
        free(c);
    } else {
        answer_adds(&t, "null");
    }
    answer_adds(&t, "},\"workloads\":");
    answer_add(&t, rep->element[10]->str, rep->element[10]->len);
    if (rep->elements == 12 && rep->element[11]->integer > 0) {
        /* a digest run by very many workloads (a sidecar image): the first ones by key */
        char more[80];
        snprintf(more, sizeof more, ",\"workloads_truncated\":true,\"workloads_total\":%lld",
                 (long long)rep->element[11]->integer);
        answer_adds(&t, more);
    }
    /* A 404 is an error answer ({"error": …}, like every other) and still the document's
     * shape, so a client can read either. */
    answer_adds(&t, found ? "}" : ",\"error\":\"nothing is known about this digest\"}");
    *status = found ? 200 : 404;
    return t.s;
}

/* The findings keys "f" and "fs" of a digest (README.md "Redis layout"; named in dm_keys.h by
 * their writer, the findings ingest). */
static size_t digest_key_of(char buf[DM_KEY_BUFLEN], const char *prefix, unsigned shard,
                            const char *kind, const char *digest)
{
    int n = snprintf(buf, DM_KEY_BUFLEN, "%s:{%u}:%s:%s", prefix, shard, kind, digest);
    return n < 0 ? 0 : (size_t)n < DM_KEY_BUFLEN ? (size_t)n : DM_KEY_BUFLEN - 1;
}

static void on_query(int err, redisReply *rep, void *arg)
{
    query_ctx *q = arg;
    int status = 0;
    char *body = NULL;
    if (err == DM_OK) {
        body = dm_query_image_answer(q->digest, rep, &status);
        if (!body) {
            char reply[160];
            dm_error("query script failed", "reply_type=%d reply=%s", rep->type,
                     dm_log_quote(rep->type == REDIS_REPLY_ERROR ? rep->str : "",
                                  rep->type == REDIS_REPLY_ERROR ? rep->len : 0, reply,
                                  sizeof reply));
            err = DM_EREDIS;
        }
    }
    q->cb(err, status, body, q->arg);
    free(q);
}

int dm_query_image(dm_redis *r, const dm_join_conf *conf, const dm_image_query *iq, dm_query_cb cb,
                   void *arg)
{
    /* The KEYS and ARGV of query.lua, in its order. */
    char keys[8][DM_KEY_BUFLEN], limit[16], flimit[16];
    const char *digest = iq->digest;
    size_t lens[12];
    unsigned shard = dm_digest_shard(digest, conf->shards);
    lens[0] = dm_key_pushes(keys[0], conf->prefix, shard, digest);
    lens[1] = dm_key_builds(keys[1], conf->prefix, shard, digest);
    lens[2] = dm_key_mappings(keys[2], conf->prefix, shard, digest);
    lens[3] = dm_key_deletes(keys[3], conf->prefix, shard, digest);
    lens[4] = dm_key_mapping_ids(keys[4], conf->prefix, shard, digest);
    lens[5] = digest_key_of(keys[5], conf->prefix, shard, "f", digest);
    lens[6] = digest_key_of(keys[6], conf->prefix, shard, "fs", digest);
    lens[7] = dm_key_workloads(keys[7], conf->prefix, shard, digest);
    snprintf(limit, sizeof limit, "%u", iq->limit);
    snprintf(flimit, sizeof flimit, "%u", iq->findings_limit);
    lens[8] = strlen(limit);
    lens[9] = strlen(iq->after);
    lens[10] = strlen(flimit);
    lens[11] = strlen(iq->findings_after);
    const char *argv[12] = {keys[0], keys[1], keys[2], keys[3],   keys[4], keys[5],
                            keys[6], keys[7], limit,   iq->after, flimit,  iq->findings_after};
    query_ctx *q = dm_xcalloc(1, sizeof *q);
    q->cb = cb;
    q->arg = arg;
    snprintf(q->digest, sizeof q->digest, "%s", digest);
    int rc = dm_redis_eval(r, DM_SCRIPT_QUERY, on_query, q, 8, 12, argv, lens);
    if (rc != DM_OK)
        free(q);
    return rc;
}

/* Text cursors (dm_query.h): any bytes, as unpadded base64url. */

char *dm_cursor_encode(const char *text, size_t len)
{
    char *out = dm_xmalloc(4 * ((len + 2) / 3) + 1);
    int n = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)text, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    for (int i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[n] = '\0';
    return out;
}

bool dm_cursor_decode(const char *cursor, size_t len, char *out, size_t cap, size_t *outlen)
{
    size_t pad = (4 - len % 4) % 4;
    if (len == 0 || pad == 3 || (len + pad) / 4 * 3 > cap + 2)
        return false;
    char *std = dm_xmalloc(len + pad + 1);
    unsigned char *bin = dm_xmalloc((len + pad) / 4 * 3 + 1);
    bool ok = true;
    for (size_t i = 0; i < len && ok; i++) {
        char c = cursor[i];
        ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '_';
        std[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    memset(std + len, '=', pad);
    int n = ok ? EVP_DecodeBlock(bin, (unsigned char *)std, (int)(len + pad)) : -1;
    n = n < 0 ? -1 : n - (int)pad;
    ok = n > 0 && (size_t)n <= cap && memchr(bin, '\0', (size_t)n) == NULL;
    if (ok) {
        /* Only the canonical text: re-encoding gives the cursor back exactly. */
        char *again = dm_cursor_encode((const char *)bin, (size_t)n);
        ok = strlen(again) == len && memcmp(again, cursor, len) == 0;
        free(again);
    }
    if (ok) {
        memcpy(out, bin, (size_t)n);
        out[n] = '\0';
        *outlen = (size_t)n;
    }
    free(std);
    free(bin);
    return ok;
}

static const char HEX[] = "0123456789abcdef";

/* Cursors are unpadded base64url (RFC 4648 §5) of fixed-size bytes, encoded and decoded by
 * OpenSSL; these two only translate the alphabet and the padding. */
static void b64url_encode(const unsigned char *bin, size_t n, char *out, size_t outlen)
{
    char std[4 * ((DM_INDEX_MEMBER_LEN + 2) / 3) + 1];
    int len = EVP_EncodeBlock((unsigned char *)std, bin, (int)n);
    while (len > 0 && std[len - 1] == '=')
        len--;
    for (int i = 0; i < len && (size_t)i + 1 < outlen; i++)
        out[i] = std[i] == '+' ? '-' : std[i] == '/' ? '_' : std[i];
    out[(size_t)len < outlen ? (size_t)len : outlen - 1] = '\0';
}

/* The bytes of @p len characters of unpadded base64url into @p bin (room for @p len * 3 / 4 + 3
 * bytes); returns their number, or -1 for any character outside the base64url alphabet
 * (EVP_DecodeBlock alone would also skip blanks and take '+' and '/'). */
static int b64url_decode(const char *text, size_t len, unsigned char *bin)
{
    unsigned char std[DM_CURSOR_LEN + 4];
    size_t pad = (4 - len % 4) % 4;
    if (pad == 3 || len + pad >= sizeof std)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return -1;
        std[i] = (unsigned char)(c == '-' ? '+' : c == '_' ? '/' : c);
    }
    memset(std + len, '=', pad);
    std[len + pad] = '\0';
    int n = EVP_DecodeBlock(bin, std, (int)(len + pad));
    return n < 0 ? -1 : n - (int)pad;
}

void dm_query_image_cursor_encode(const char *id, char out[DM_IMAGE_CURSOR_LEN + 1])
{
    unsigned char bin[DM_EDGE_ID_LEN / 2];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)((strchr(HEX, id[2 * i]) - HEX) << 4 |
                                 (strchr(HEX, id[2 * i + 1]) - HEX));
    _Static_assert(DM_IMAGE_CURSOR_LEN == (DM_EDGE_ID_LEN / 2 * 4 + 2) / 3,
                   "an image cursor is unpadded base64 of an edge id's bytes");
    b64url_encode(bin, sizeof bin, out, DM_IMAGE_CURSOR_LEN + 1);
}

bool dm_query_image_cursor_decode(const char *text, size_t len, char id[DM_EDGE_ID_LEN + 1])
{
    unsigned char bin[DM_IMAGE_CURSOR_LEN];
    if (len != DM_IMAGE_CURSOR_LEN || b64url_decode(text, len, bin) != DM_EDGE_ID_LEN / 2)
        return false;
    for (size_t i = 0; i < DM_EDGE_ID_LEN / 2; i++) {
        id[2 * i] = HEX[bin[i] >> 4];
        id[2 * i + 1] = HEX[bin[i] & 15];
    }
    id[DM_EDGE_ID_LEN] = '\0';
    /* Only the canonical text: the last character's two spare bits must be zero. */
    char again[DM_IMAGE_CURSOR_LEN + 1];
    dm_query_image_cursor_encode(id, again);
    return memcmp(again, text, len) == 0;
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

void dm_query_cursor_encode(const char *member, char out[DM_CURSOR_LEN + 1])
{
    /* 126 bytes are 42 whole base64 quanta: no padding to strip. */
    _Static_assert(DM_INDEX_MEMBER_LEN % 3 == 0 && DM_CURSOR_LEN == DM_INDEX_MEMBER_LEN / 3 * 4,
                   "a cursor is unpadded base64 of a member");
    b64url_encode((const unsigned char *)member, DM_INDEX_MEMBER_LEN, out, DM_CURSOR_LEN + 1);
}

bool dm_query_cursor_decode(const char *text, size_t len, char member[DM_INDEX_MEMBER_LEN + 1])
{
    unsigned char bin[DM_INDEX_MEMBER_LEN + 3];
    if (len != DM_CURSOR_LEN || b64url_decode(text, len, bin) != DM_INDEX_MEMBER_LEN)
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

char *dm_query_mappings_answer(const dm_mappings_query *q, const char *const *mappings,
                               const size_t *lens, size_t n, const char *next)
{
    json_t *echo = query_echo(q);
    char *echo_text = json_dumps(echo, JSON_COMPACT);
    json_decref(echo);
    if (!echo_text)
        abort(); /* allocation failure inside jansson: fatal, like dm_xmalloc's */
    answer_text t = {0};
    answer_adds(&t, "{\"query\":");
    answer_adds(&t, echo_text);
    free(echo_text);
    answer_adds(&t, ",\"mappings\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            answer_adds(&t, ",");
        answer_add(&t, mappings[i], lens[i]);
    }
    answer_adds(&t, "],\"next_cursor\":");
    if (next) {
        char c[DM_CURSOR_LEN + 1]; /* base64url: nothing in it needs escaping */
        dm_query_cursor_encode(next, c);
        answer_adds(&t, "\"");
        answer_adds(&t, c);
        answer_adds(&t, "\"}");
    } else {
        answer_adds(&t, "null}");
    }
    return t.s;
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

    /* mappings.lua answers "" for a stored value that is not a JSON object: park.lua wrote it,
     * so only a foreign writer could leave this. */
    const char **texts = dm_xmalloc((take ? take : 1) * sizeof *texts);
    size_t *lens = dm_xmalloc((take ? take : 1) * sizeof *lens), n = 0;
    for (size_t i = 0; i < take; i++) {
        const shard_answer *a = &m->shards[picks[i].shard];
        if (a->lens[picks[i].index] == 0) {
            char member[2 * DM_INDEX_MEMBER_LEN];
            dm_warn("unreadable mapping skipped", "member=%s",
                    dm_log_quote(picks[i].member, strnlen(picks[i].member, DM_INDEX_MEMBER_LEN),
                                 member, sizeof member));
            continue;
        }
        texts[n] = a->data[picks[i].index];
        lens[n++] = a->lens[picks[i].index];
    }
    char *body = dm_query_mappings_answer(&m->q, texts, lens, n, next);
    free(texts);
    free(lens);
    free(picks);
    free(pages);
    if (m->dead > 0) {
        char qname[160];
        dm_debug("stale index entries removed", "index=%s name=%s count=%lld",
                 dm_key_index_kind(m->q.kind),
                 dm_log_quote(m->q.name, strlen(m->q.name), qname, sizeof qname), m->dead);
    }
    m->cb(DM_OK, 200, body, m->arg);
    mappings_free(m);
}

/* A mapping as mappings.lua answers it: a JSON object, or "" for an unreadable one. */
static bool mapping_text(const redisReply *e)
{
    return e->type == REDIS_REPLY_STRING &&
           (e->len == 0 || (e->len >= 2 && e->str[0] == '{' && e->str[e->len - 1] == '}'));
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
        if (mem->type != REDIS_REPLY_STRING || !mapping_text(data) ||
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
        char reply[200];
        if (err != DM_OK)
            dm_error(
                "mappings script failed", "shard=%zu reply_type=%d reply=%s", c->shard, rep->type,
                dm_log_quote(rep->type == REDIS_REPLY_ERROR ? rep->str : "",
                             rep->type == REDIS_REPLY_ERROR ? rep->len : 0, reply, sizeof reply));
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
