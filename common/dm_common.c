#include "dm_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *dm_strerror(int code)
{
    switch (code) {
    case DM_OK:
        return "ok";
    case DM_EINVAL:
        return "invalid input";
    case DM_ENOMEM:
        return "out of memory";
    case DM_EIO:
        return "i/o error";
    case DM_EUNAVAIL:
        return "redis unavailable";
    case DM_EBUSY:
        return "too many requests in flight";
    case DM_ETIMEOUT:
        return "timeout";
    case DM_EREDIS:
        return "redis error";
    default:
        return "unknown error";
    }
}

static void oom(size_t n)
{
    /* Nothing sensible can follow an allocation failure in a daemon sized for its limits. */
    fprintf(stderr, "level=fatal msg=\"out of memory\" bytes=%zu\n", n);
    abort();
}

void *dm_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *dm_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *dm_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *dm_xstrdup(const char *s)
{
    return dm_xstrndup(s, strlen(s));
}

char *dm_put_uint(char *p, unsigned long long v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

char *dm_xstrndup(const char *s, size_t len)
{
    char *p = dm_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}
