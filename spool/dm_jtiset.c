#include "dm_common.h"
#include "dm_jtiset.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096

typedef struct entry {
    char *key, *rid;
    struct entry *next;
} entry;

struct dm_jtiset {
    pthread_mutex_t mu;
    size_t n, max;
    entry *buckets[BUCKETS];
};

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)(h % BUCKETS);
}

dm_jtiset *dm_jtiset_new(size_t max)
{
    dm_jtiset *s = dm_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->max = max;
    return s;
}

static void clear_locked(dm_jtiset *s)
{
    for (size_t i = 0; i < BUCKETS; i++) {
        for (entry *e = s->buckets[i], *nx; e; e = nx) {
            nx = e->next;
            free(e->key);
            free(e->rid);
            free(e);
        }
        s->buckets[i] = NULL;
    }
    s->n = 0;
}

void dm_jtiset_free(dm_jtiset *s)
{
    if (!s)
        return;
    clear_locked(s);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int dm_jtiset_claim(dm_jtiset *s, const char *key, const char *rid)
{
    size_t b = hash(key);
    int rc = DM_OK;
    pthread_mutex_lock(&s->mu);
    entry *e = s->buckets[b];
    while (e && strcmp(e->key, key) != 0)
        e = e->next;
    if (e) {
        rc = strcmp(e->rid, rid) == 0 ? DM_OK : DM_EBUSY;
    } else if (s->n < s->max) {
        e = dm_xcalloc(1, sizeof *e);
        e->key = dm_xstrdup(key);
        e->rid = dm_xstrdup(rid);
        e->next = s->buckets[b];
        s->buckets[b] = e;
        s->n++;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void dm_jtiset_clear(dm_jtiset *s)
{
    pthread_mutex_lock(&s->mu);
    clear_locked(s);
    pthread_mutex_unlock(&s->mu);
}

size_t dm_jtiset_size(dm_jtiset *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}
