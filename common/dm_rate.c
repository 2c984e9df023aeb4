/* dm_rate.c - token buckets and a bounded, least-recently-used table of them (dm_rate.h).
 *
 * The table is a hash of chains over a fixed array of nodes, with the nodes also on a list in
 * order of use: a lookup is O(1) on average and forgetting the least recently used bucket is
 * O(1), so a flood of new names costs the same per request as a known one.
 */
#include "dm_common.h"
#include "dm_rate.h"

#include <stdlib.h>
#include <string.h>

int64_t dm_bucket_wait_ms(dm_bucket *b, double per_second, double burst, int64_t now_ms)
{
    if (!b->started) {
        b->started = true;
        b->tokens = burst;
        b->last_ms = now_ms;
    }
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * per_second / 1000.0;
        if (b->tokens > burst)
            b->tokens = burst;
        b->last_ms = now_ms;
    }
    if (b->tokens >= 1.0 - 1e-9) /* the same noise: a token due now is there */
        return 0;
    if (!(per_second > 0))
        return INT64_MAX / 2; /* never refills: a configuration the loader refuses */
    double ms = (1.0 - b->tokens) * 1000.0 / per_second;
    int64_t w = (int64_t)ms;
    /* Rounded up (waiting less would find no token yet), but not for the rounding noise of
     * the sums above: 0.998 tokens at 2 a second is 1 ms, not 1.0000000000000009. */
    if (ms - (double)w > 1e-6)
        w++;
    return w < 1 ? 1 : w;
}

void dm_bucket_take(dm_bucket *b)
{
    b->tokens -= 1.0;
}

bool dm_bucket_try(dm_bucket *b, double per_second, double burst, int64_t now_ms, int64_t *wait_ms)
{
    int64_t w = dm_bucket_wait_ms(b, per_second, burst, now_ms);
    if (wait_ms)
        *wait_ms = w;
    if (w > 0)
        return false;
    dm_bucket_take(b);
    return true;
}

int64_t dm_rate_retry_after_s(int64_t wait_ms)
{
    int64_t s = wait_ms / 1000 + (wait_ms % 1000 != 0);
    return s < 1 ? 1 : s;
}

/*---- the table ----------------------------------------------------------------------------*/

typedef struct node {
    char *key; /* NULL: free */
    size_t len;
    uint64_t hash;
    dm_bucket bucket;
    struct node *chain;         /* next in the hash chain */
    struct node *newer, *older; /* the use list */
} node;

struct dm_rate_table {
    node *nodes;
    size_t max, n;
    node **heads; /* nheads chains */
    size_t nheads;
    node *newest, *oldest;
};

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

dm_rate_table *dm_rate_table_new(size_t max)
{
    dm_rate_table *t = dm_xcalloc(1, sizeof *t);
    t->max = max ? max : 1;
    t->nodes = dm_xcalloc(t->max, sizeof *t->nodes);
    t->nheads = 16;
    while (t->nheads < 2 * t->max)
        t->nheads *= 2;
    t->heads = dm_xcalloc(t->nheads, sizeof *t->heads);
    return t;
}

void dm_rate_table_free(dm_rate_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->max; i++)
        free(t->nodes[i].key);
    free(t->nodes);
    free(t->heads);
    free(t);
}

size_t dm_rate_table_count(const dm_rate_table *t)
{
    return t->n;
}

static void unlink_use(dm_rate_table *t, node *x)
{
    if (x->newer)
        x->newer->older = x->older;
    else
        t->newest = x->older;
    if (x->older)
        x->older->newer = x->newer;
    else
        t->oldest = x->newer;
    x->newer = x->older = NULL;
}

static void push_newest(dm_rate_table *t, node *x)
{
    x->older = t->newest;
    x->newer = NULL;
    if (t->newest)
        t->newest->newer = x;
    t->newest = x;
    if (!t->oldest)
        t->oldest = x;
}

static void unlink_chain(dm_rate_table *t, node *x)
{
    node **p = &t->heads[x->hash & (t->nheads - 1)];
    while (*p != x)
        p = &(*p)->chain;
    *p = x->chain;
    x->chain = NULL;
}

dm_bucket *dm_rate_table_get(dm_rate_table *t, const char *key, size_t len, bool *evicted)
{
    if (evicted)
        *evicted = false;
    uint64_t h = hash_bytes(key, len);
    for (node *x = t->heads[h & (t->nheads - 1)]; x; x = x->chain) {
        if (x->hash == h && x->len == len && memcmp(x->key, key, len) == 0) {
            unlink_use(t, x);
            push_newest(t, x);
            return &x->bucket;
        }
    }
    node *x;
    if (t->n < t->max) {
        x = &t->nodes[t->n++];
    } else {
        x = t->oldest;
        unlink_use(t, x);
        unlink_chain(t, x);
        free(x->key);
        if (evicted)
            *evicted = true;
    }
    x->key = dm_xmalloc(len ? len : 1);
    memcpy(x->key, key, len);
    x->len = len;
    x->hash = h;
    memset(&x->bucket, 0, sizeof x->bucket);
    x->chain = t->heads[h & (t->nheads - 1)];
    t->heads[h & (t->nheads - 1)] = x;
    push_newest(t, x);
    return &x->bucket;
}
