/* dm_sse.h - GET /v1/events/stream: output records as Server-Sent Events (README.md
 * "Server-Sent Events"; the records are those of "Output records").
 *
 * Answer: 200, Content-Type: text/event-stream, Cache-Control: no-cache, X-Accel-Buffering: no,
 * Connection: close, chunked. The stream starts with a block without data that carries the
 * start position:
 *
 *     retry: 2000
 *     id: <start position, dm_sse_text.h>
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
 * Ids and the start position (Last-Event-ID, ?last_event_id=, ?from=start): dm_sse_text.h.
 *
 * Answers before the stream starts (the caller has checked api.auth): 400 for a bad parameter,
 * 403 when api.max_stream_clients is 0 (event streams disabled), 503 with Retry-After while
 * the hub is closed (its worker shuts down), when that many streams are already open in the
 * process, when the worker refuses admission, or when Redis cannot be reached. HEAD gets the
 * 200 headers without a stream.
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
 * A hub holds the streams of one worker thread (one event_base) and owns every stream state;
 * all functions but dm_sse_hub_new run on that thread.
 */
#ifndef DM_OUTPUTS_DM_SSE_H
#define DM_OUTPUTS_DM_SSE_H

#include "dm_config.h"
#include "dm_join.h"
#include "dm_sse_text.h"

struct evhttp_request;
struct event_base;
typedef struct dm_sse_hub dm_sse_hub;

#define DM_SSE_KEEPALIVE_MS 15000         /**< silence before a keepalive; the XREAD BLOCK time */
#define DM_SSE_BATCH        100           /**< XREAD COUNT (per shard) */
#define DM_SSE_SOFT_BUFFER  (1024 * 1024) /**< unsent bytes above which XREAD waits */
#define DM_SSE_HARD_BUFFER  (8 * 1024 * 1024) /**< unsent bytes (with a batch) that end the stream */
#define DM_SSE_RETRY_MS     2000              /**< the "retry:" sent to clients */

/** What the streams of one worker need from it; every pointer is borrowed for the hub's life. */
typedef struct dm_sse_hub_conf {
    struct event_base *base;  /**< the worker's loop: timers and Redis connections run on it */
    const dm_config *conf;    /**< limits, redis (dm_redis_conf.h), api.max_stream_clients */
    const char *redis_socket; /**< the embedded redis-server's socket, or NULL */
    const dm_join_conf *join; /**< the output streams' key prefix and shards */
    /** Admit a stream as a request in flight until its 200 is sent, so a draining worker
     *  waits for streams still starting (false: the in-flight cap is reached → 503). */
    bool (*admit)(void *arg);
    /** A stream that @c admit let in has been answered (200 sent, or refused). */
    void (*done)(void *arg);
    void *arg;
} dm_sse_hub_conf;

/** The event streams of one worker (created before its thread starts). */
dm_sse_hub *dm_sse_hub_new(const dm_sse_hub_conf *hc);
/** Draining: end every open stream and refuse new ones with 503 (on the worker's thread).
 *  NULL is fine. */
void dm_sse_hub_close(dm_sse_hub *h);
/** Free (after the worker's loop ended, before evhttp_free). NULL is fine. */
void dm_sse_hub_free(dm_sse_hub *h);

/**
 * Answer GET (or HEAD) /v1/events/stream on @p h's worker: a stream, or a refusal. @p route
 * numbers the route in the metrics (dm_http.h) and @p route_name (static) names it in log
 * lines.
 */
void dm_sse_serve(dm_sse_hub *h, struct evhttp_request *req, size_t route, const char *route_name);

#endif
