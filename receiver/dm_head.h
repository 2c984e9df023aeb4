/* dm_head.h - one request head as the connection layer (dm_conn.h) collects it from
 * http-parser's callbacks: the request target, then each header's name and value, all
 * NUL-terminated in one buffer of at most a given size, with a case-insensitive lookup.
 *
 * The buffer and the table are kept from one request to the next (reset, not freed), so a
 * keep-alive connection collects its heads without allocating. The owner of the struct owns
 * what it holds (dm_head_free). Not thread-safe; no I/O.
 */
#ifndef DM_RECEIVER_DM_HEAD_H
#define DM_RECEIVER_DM_HEAD_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

typedef struct dm_head_field {
    size_t name, value; /**< offsets of NUL-terminated strings in buf */
} dm_head_field;

typedef struct dm_head {
    char *buf; /**< the target, then the headers' names and values */
    size_t len, cap;
    size_t max; /**< buf never grows past this (the head's limit and some slack) */
    dm_head_field *v;
    size_t n, vcap;
    int last;        /**< the last callback: 0 none, 1 a name, 2 a value */
    bool url_sealed; /**< the target is complete in buf */
} dm_head;

/** Start empty; the buffer will hold at most @p max bytes. */
void dm_head_init(dm_head *h, size_t max);

/** Forget the current head (keeps the memory). */
void dm_head_reset(dm_head *h);

/** Release the memory (@p h may be reused after dm_head_init). */
void dm_head_free(dm_head *h);

/* The collection, one call per http-parser callback. Each returns false when the head would
 * pass its size: the caller refuses the request (431). */
bool dm_head_url(dm_head *h, const char *at, size_t n);
bool dm_head_name(dm_head *h, const char *at, size_t n);
bool dm_head_value(dm_head *h, const char *at, size_t n);
/** The head is complete (on_headers_complete): terminate what is being collected. */
bool dm_head_seal(dm_head *h);

/** The request target as it arrived (NUL-terminated; valid once the first header or the end
 *  of the head was seen). */
static inline const char *dm_head_target(const dm_head *h)
{
    return h->buf;
}

/**
 * Whether @p target is a plain path: it starts with one '/' (not "//") and has no '?' and no
 * '#'. evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT) then always succeeds with
 * the whole target as its path and no query (libevent 2.1: no scheme before a '/', no authority
 * without "//", and a nonconforming path is everything up to '?' or '#'), so the connection
 * layer uses the target as it is and parses only other targets (three allocations per request
 * fewer; tests/unit/test_head.c compares both).
 */
bool dm_head_plain_path(const char *target);

/** The value of the first header called @p name (case-insensitive), or NULL. */
const char *dm_head_find(const dm_head *h, const char *name);

/** How many headers are called @p name. */
size_t dm_head_count(const dm_head *h, const char *name);

/** Header @p i's name and value (i < h->n). */
static inline const char *dm_head_name_at(const dm_head *h, size_t i)
{
    return h->buf + h->v[i].name;
}
static inline const char *dm_head_value_at(const dm_head *h, size_t i)
{
    return h->buf + h->v[i].value;
}

/**
 * Append to @p to the request line "@p method @p path[?@p query] HTTP/@p major.@p minor" and
 * every header of @p h but the hop-by-hop ones (Content-Length, Transfer-Encoding, Connection,
 * Proxy-Connection, Keep-Alive), a folded value on one line, then @p framing (complete header
 * lines, or "") and the empty line: the canonical head the connection layer hands evhttp.
 */
void dm_head_emit(const dm_head *h, struct evbuffer *to, const char *method, const char *path,
                  const char *query, unsigned major, unsigned minor, const char *framing);

/** dm_header_fn (dm_auth.h) over a dm_head (@p ctx). */
const char *dm_head_lookup(void *ctx, const char *name);

#endif
