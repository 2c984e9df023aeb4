/* dm_sse_text.h - the text of an event stream (dm_sse.h), as pure functions: stream entry
 * ids, the start position a client asks for, and one event's SSE framing.
 *
 * Ids. With one shard (the default) the id is the entry id of <prefix>:{0}:out, e.g.
 * "1732800000000-0". With N shards it is the list, in shard order and separated by commas, of
 * the last entry id delivered (or the start position) of every shard's stream:
 * "<id0>,<id1>,…,<idN-1>", so a resume is exact for every shard. N times 41 bytes must fit in
 * limits.max_header_bytes for a client to send it back.
 *
 * Start position, first match wins:
 *   - the Last-Event-ID header (what EventSource sends when it reconnects, with the URL it used
 *     the first time: it therefore beats the query parameters);
 *   - ?last_event_id=<id> (for clients that cannot set headers);
 *   - ?from=start: every record still in the streams;
 *   - otherwise only records added after the connection (the streams' last ids are read when
 *     the client connects; XREAD then always uses explicit ids, so nothing added between two
 *     reads is lost).
 * A resume is exclusive: records after the id. A malformed id (not <ms>-<seq> in decimal, or
 * not exactly N of them) is a 400. If trimming (outputs.stream_maxlen) already removed records
 * after the id, the stream continues with the oldest record that remains: those records are
 * lost for this client. An empty Last-Event-ID counts as absent (SSE clients send it empty
 * after an "id:" line that reset the id). An id ahead of a shard's newest entry (another
 * deployment's id, a Redis whose clock went back) is not clamped: that shard sends nothing
 * until its entries pass the id, and the entries added before that are never sent to this
 * client (XREAD semantics); the stream looks idle (keepalives only).
 */
#ifndef DM_OUTPUTS_DM_SSE_TEXT_H
#define DM_OUTPUTS_DM_SSE_TEXT_H

#include "dm_common.h"

struct evbuffer;

/** A Redis stream entry id. */
typedef struct dm_sse_id {
    uint64_t ms, seq;
} dm_sse_id;

/** Longest text of one id: two 20-digit numbers and a dash. */
#define DM_SSE_ID_MAX 41

/** Parse @p n bytes of @p s as one "<ms>-<seq>" (decimal, no sign, no spaces, each number at
 *  most UINT64_MAX) into @p out. Returns DM_OK or DM_EINVAL. */
int dm_sse_parse_id(const char *s, size_t n, dm_sse_id *out);

/**
 * Parse @p n bytes of @p s as exactly @p nshards comma-separated ids "<ms>-<seq>" (as
 * dm_sse_parse_id) into @p out (@p nshards entries).
 * Returns DM_OK, or DM_EINVAL with a reason for the client in @p err.
 */
int dm_sse_parse_ids(const char *s, size_t n, size_t nshards, dm_sse_id *out, char *err,
                     size_t errlen);

/** Write "<ms>-<seq>[,…]" for @p n ids into @p buf (at least n * (DM_SSE_ID_MAX + 1) bytes).
 *  Returns the length written (without the NUL). */
size_t dm_sse_format_ids(const dm_sse_id *ids, size_t n, char *buf, size_t size);

/** Where a stream starts. */
typedef enum {
    DM_SSE_FROM_NEW = 0, /**< after the streams' last entries when the client connects */
    DM_SSE_FROM_START,   /**< every record still in the streams */
    DM_SSE_FROM_ID,      /**< after the ids the client gave */
} dm_sse_from;

typedef struct dm_sse_start {
    dm_sse_from from;
    char text[72]; /**< for log lines: the quoted id, "start" or "new" */
} dm_sse_start;

/**
 * The start position asked for by the query string @p query (NULL: none; parameters
 * last_event_id and from) and the Last-Event-ID header @p header (NULL: absent). For
 * DM_SSE_FROM_ID the @p nshards ids go to @p pos. Returns DM_OK, or DM_EINVAL with the reason
 * for a 400 answer in @p err.
 */
int dm_sse_parse_start(const char *query, const char *header, size_t nshards, dm_sse_start *out,
                       dm_sse_id *pos, char *err, size_t errlen);

/**
 * Append one SSE event to @p out: "id: <id>\n", "event: <type>\n" (left out when @p type is
 * empty or holds a line break), then one "data: " line per line of @p data (split at CRLF, CR
 * or LF as the SSE grammar does, so a multi-line document arrives whole), then a blank line.
 */
void dm_sse_format_event(struct evbuffer *out, const char *id, const char *type, size_t tlen,
                         const char *data, size_t dlen);

#endif
