/* dm_sse.h - GET /v1/events/stream: output records as Server-Sent Events (DESIGN §6.3, §6.4).
 *
 * Answer: 200, Content-Type: text/event-stream, Cache-Control: no-cache, X-Accel-Buffering: no,
 * Connection: close, chunked. The stream starts with a block without data that carries the
 * start position:
 *
 *     retry: 2000
 *     id: <start position, as below>
 *
 * (a client sets its last event id from it without dispatching an event, so one that
 * reconnects before its first record - server restart, Redis lost, proxy timeout - resumes
 * there instead of at the new end). Then one SSE event per output record, in stream order:
 *
 *     id: <id>
 *     event: <the entry's "type" field>
 *     data: <the entry's "event" field: the CloudEvents JSON document, one line>
 *
 * and a comment line ": keepalive" whenever nothing was written for DM_SSE_KEEPALIVE_MS (or
 * half of limits.idle_timeout_seconds if that is shorter), so proxies keep the connection open.
 * When the position moved past entries that were skipped (no "event" field) since the last
 * id sent, the keepalive block also carries "id: <position>".
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
 *
 * Answers before the stream starts: 401/403 from api.auth, 400 for a bad parameter, 403 when
 * api.max_stream_clients is 0 (event streams disabled), 503 with Retry-After when that many
 * streams are already open in the process, when Redis cannot be reached, or while the worker
 * shuts down. HEAD gets the 200 headers without a stream.
 *
 * Each stream has its own Redis connection per shard (XREAD BLOCK never waits on the worker's
 * request connection, and a connection serializes blocking commands): every shard's
 * connection loops on "XREAD COUNT DM_SSE_BATCH BLOCK <ms> STREAMS <that shard's key> <id>",
 * so no command names keys of two hash slots (Redis Cluster answers CROSSSLOT to that).
 * A stream thus holds redis.shards connections; api.max_stream_clients x redis.shards is the
 * Redis connection budget of the event streams of one process. (The Redis client itself
 * talks to one server: on a Cluster every shard's key must be reachable through it.)
 *
 * Back-pressure: a client that reads slower than records arrive is paused (no XREAD) while
 * more than DM_SSE_SOFT_BUFFER bytes wait for it. Its stream ends when it stays paused for
 * twice limits.idle_timeout_seconds, when a reply would put more than DM_SSE_HARD_BUFFER
 * bytes in wait (one XREAD brings at most DM_SSE_BATCH records per shard), or when the
 * connection's write timeout (limits.idle_timeout_seconds without progress) fires. A slow
 * client's connection is then freed at once with the bytes still waiting for it, so the
 * memory of dropped clients does not outlive their slot: at most about DM_SSE_SOFT_BUFFER plus
 * one batch per shard (capped by DM_SSE_HARD_BUFFER) per open stream. A lost Redis
 * connection ends the stream: the client reconnects with its Last-Event-ID. Streams log when
 * they are paused and resumed (debug) and when they close ("event stream closed" with peer,
 * records and reason).
 *
 * All functions run on the worker's thread; the hub owns every stream state of its worker.
 */
#ifndef DM_OUTPUTS_DM_SSE_H
#define DM_OUTPUTS_DM_SSE_H

#include "dm_server.h"

struct evhttp_request;
struct evbuffer;
typedef struct dm_sse_hub dm_sse_hub;

#define DM_SSE_KEEPALIVE_MS 15000         /**< silence before a keepalive; the XREAD BLOCK time */
#define DM_SSE_BATCH        100           /**< XREAD COUNT (per shard) */
#define DM_SSE_SOFT_BUFFER  (1024 * 1024) /**< unsent bytes above which XREAD waits */
#define DM_SSE_HARD_BUFFER  (8 * 1024 * 1024) /**< unsent bytes (with a batch) that end the stream */
#define DM_SSE_RETRY_MS     2000              /**< the "retry:" sent to clients */

/** The event streams of worker @p w (created before its thread starts). */
dm_sse_hub *dm_sse_hub_new(dm_worker *w);
/** Draining: end every open stream and refuse new ones with 503 (on the worker's thread).
 *  NULL is fine. */
void dm_sse_hub_close(dm_sse_hub *h);
/** Free (after the worker's loop ended, before evhttp_free). NULL is fine. */
void dm_sse_hub_free(dm_sse_hub *h);

/** GET (or HEAD) /v1/events/stream. */
void dm_sse_handle(dm_worker *w, struct evhttp_request *req);

/*---------------------------------------------------------------- pure helpers (tested) ---*/

/** A Redis stream entry id. */
typedef struct dm_sse_id {
    uint64_t ms, seq;
} dm_sse_id;

/** Longest text of one id: two 20-digit numbers and a dash. */
#define DM_SSE_ID_MAX 41

/**
 * Parse @p n bytes of @p s as exactly @p nshards comma-separated ids "<ms>-<seq>" (decimal,
 * no sign, no spaces, each number at most UINT64_MAX) into @p out (@p nshards entries).
 * Returns DM_OK, or DM_EINVAL with a reason for the client in @p err.
 */
int dm_sse_parse_ids(const char *s, size_t n, size_t nshards, dm_sse_id *out, char *err,
                     size_t errlen);

/** Write "<ms>-<seq>[,…]" for @p n ids into @p buf (at least n * (DM_SSE_ID_MAX + 1) bytes).
 *  Returns the length written (without the NUL). */
size_t dm_sse_format_ids(const dm_sse_id *ids, size_t n, char *buf, size_t size);

/**
 * Append one SSE event to @p out: "id: <id>\n", "event: <type>\n" (left out when @p type is
 * empty or holds a line break), then one "data: " line per line of @p data (split at CRLF, CR
 * or LF as the SSE grammar does, so a multi-line document arrives whole), then a blank line.
 */
void dm_sse_format_event(struct evbuffer *out, const char *id, const char *type, size_t tlen,
                         const char *data, size_t dlen);

#endif
