/* dm_head.c - see dm_head.h. */
#include "dm_common.h"
#include "dm_head.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
    LAST_NONE = 0,
    LAST_NAME = 1,
    LAST_VALUE = 2
};

void dm_head_init(dm_head *h, size_t max)
{
    memset(h, 0, sizeof *h);
    h->max = max;
}

void dm_head_reset(dm_head *h)
{
    h->len = h->n = 0;
    h->last = LAST_NONE;
    h->url_sealed = false;
}

void dm_head_free(dm_head *h)
{
    free(h->buf);
    free(h->v);
    h->buf = NULL;
    h->v = NULL;
    h->len = h->cap = h->n = h->vcap = 0;
}

static bool append(dm_head *h, const char *at, size_t n)
{
    if (h->len + n + 1 > h->max)
        return false;
    if (h->len + n + 1 > h->cap) {
        size_t cap = h->cap ? h->cap : 512;
        while (cap < h->len + n + 1)
            cap *= 2;
        if (cap > h->max)
            cap = h->max;
        h->buf = dm_xrealloc(h->buf, cap);
        h->cap = cap;
    }
    memcpy(h->buf + h->len, at, n);
    h->len += n;
    return true;
}

/* NUL-terminate the string being collected. */
static bool add_nul(dm_head *h)
{
    if (!append(h, "", 0))
        return false;
    h->buf[h->len++] = '\0';
    return true;
}

/* The target ends where the first header (or the head) begins. */
static bool seal_url(dm_head *h)
{
    if (h->url_sealed)
        return true;
    h->url_sealed = true;
    return add_nul(h);
}

bool dm_head_url(dm_head *h, const char *at, size_t n)
{
    return append(h, at, n);
}

bool dm_head_name(dm_head *h, const char *at, size_t n)
{
    if (!seal_url(h) || (h->last == LAST_VALUE && !add_nul(h)))
        return false;
    if (h->last != LAST_NAME) {
        if (h->n == h->vcap) {
            h->vcap = h->vcap ? h->vcap * 2 : 16;
            h->v = dm_xrealloc(h->v, h->vcap * sizeof *h->v);
        }
        h->v[h->n++] = (dm_head_field){h->len, 0};
        h->last = LAST_NAME;
    }
    return append(h, at, n);
}

bool dm_head_value(dm_head *h, const char *at, size_t n)
{
    if (h->last == LAST_NAME) {
        if (!add_nul(h))
            return false;
        h->v[h->n - 1].value = h->len;
        h->last = LAST_VALUE;
    }
    return append(h, at, n);
}

bool dm_head_seal(dm_head *h)
{
    if (!seal_url(h))
        return false;
    if (h->last == LAST_VALUE && !add_nul(h))
        return false;
    if (h->last == LAST_NAME) { /* a name without a value (http-parser refuses it first) */
        if (!add_nul(h))
            return false;
        h->v[h->n - 1].value = h->len - 1;
    }
    h->last = LAST_NONE;
    return true;
}

const char *dm_head_find(const dm_head *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->buf + h->v[i].name, name) == 0)
            return h->buf + h->v[i].value;
    return NULL;
}

size_t dm_head_count(const dm_head *h, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++)
        n += strcasecmp(h->buf + h->v[i].name, name) == 0;
    return n;
}

const char *dm_head_lookup(void *ctx, const char *name)
{
    return dm_head_find(ctx, name);
}

static bool hop_by_hop(const char *name)
{
    return strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0 ||
           strcasecmp(name, "Connection") == 0 || strcasecmp(name, "Proxy-Connection") == 0 ||
           strcasecmp(name, "Keep-Alive") == 0;
}

static void add_str(struct evbuffer *to, const char *s)
{
    evbuffer_add(to, s, strlen(s));
}

void dm_head_emit(const dm_head *h, struct evbuffer *to, const char *method, const char *path,
                  const char *query, unsigned major, unsigned minor, const char *framing)
{
    char version[16] = " HTTP/x.y\r\n";
    version[6] = (char)('0' + major % 10);
    version[8] = (char)('0' + minor % 10);
    add_str(to, method);
    evbuffer_add(to, " ", 1);
    add_str(to, path);
    if (query) {
        evbuffer_add(to, "?", 1);
        add_str(to, query);
    }
    evbuffer_add(to, version, 11);
    for (size_t i = 0; i < h->n; i++) {
        const char *name = dm_head_name_at(h, i);
        if (hop_by_hop(name))
            continue;
        add_str(to, name);
        evbuffer_add(to, ": ", 2);
        /* A folded value arrives with its line breaks: each becomes a space. */
        for (const char *v = dm_head_value_at(h, i); *v;) {
            size_t run = strcspn(v, "\r\n");
            evbuffer_add(to, v, run);
            v += run;
            if (*v) {
                evbuffer_add(to, " ", 1);
                v++;
            }
        }
        evbuffer_add(to, "\r\n", 2);
    }
    add_str(to, framing);
    evbuffer_add(to, "\r\n", 2);
}

bool dm_head_plain_path(const char *target)
{
    return target[0] == '/' && target[1] != '/' && !strpbrk(target, "?#");
}
