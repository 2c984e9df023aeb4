/* dm_sink.h - webhook sinks (outputs.webhooks): deliver output records by HTTP POST.
 *
 * Reading. Each sink reads every shard's output stream <prefix>:{s}:out through its consumer
 * group "digestmap:<name>" (created at start with XGROUP CREATE … $ MKSTREAM: a new sink gets
 * the records written from then on, and the group's position survives restarts). A group that
 * goes missing once the sink has run (Redis restarted without persistence, a failover, FLUSHALL:
 * noticed at the control connection's reconnection, where XGROUP CREATE is sent again, or at
 * a NOGROUP answer) is created again at 0, not $: the records the daemon wrote before that are
 * delivered, and whatever else is still in the stream is delivered again (at least once). The
 * consumer is "<hostname>:<pid>"; several instances sharing the group share the records, each
 * record going to one of them. Every command names one shard's keys only (one hash slot: Redis
 * Cluster refuses more, docs/cluster-readers.md). Reads are one XREADGROUP … BLOCK per shard,
 * each on a Redis connection of its own (a blocked read would hold up every command queued
 * behind it); acknowledgements, claims and dead-lettering go through one other connection
 * shared by the sinks. None is a worker's. Connections per instance: shards × sinks for the
 * reads, plus one (dm_sink_reader.h says why not fewer).
 *
 * Bounds. A sink holds at most max_inflight records per instance (being delivered, waiting
 * for a retry, or being acknowledged / dead-lettered); it reads only while it has room.
 *
 * Delivery. POST url with the entry's `event` field as the body, byte for byte, and the
 * headers Content-Type: application/cloudevents+json, X-Digestmap-Signature:
 * sha256=<lowercase hex HMAC-SHA256(secret, body)> (dm_sign.h), Idempotency-Key:
 * <CloudEvent id>, X-Digestmap-Attempt: <n> (1-based) and User-Agent: digestmap; each attempt
 * has timeout_ms from its start to the response's last byte. Connections are kept alive in a
 * pool per sink (at most max_inflight, dm_hclient.h); an attempt whose kept-alive connection
 * turns out closed before any answer byte is sent once more on a new one, within its
 * timeout_ms, as the same attempt (msg="sink delivery resent on a new connection", info;
 * docs/sink-connections.md). Records whose type is not in `types` (when set) are acknowledged
 * without delivery.
 *   - 2xx: XACK.
 *   - transport error, timeout, 408, 425, 429, 5xx: retried after dm_sink_retry_delay_ms
 *     (dm_sink_record.h).
 *   - any other status (1xx, 3xx, other 4xx), and an entry that is not a record (no `event`
 *     field, or one without a CloudEvent id): dead-lettered at once.
 *   - max_attempts failed attempts: dead-lettered.
 * Dead-lettering (sink_dead.lua, atomic, idempotent): XADD <prefix>:{s}:dead with the entry's
 * type, digest and event plus sink, stream_id, attempts, error and failed_at (ms), then XACK;
 * the trimmer keeps that stream at stream_maxlen entries, counted and logged (dm_trim.h). If Redis cannot be reached, acknowledgements and
 * dead-letterings are retried every second (the record stays held, pending and refreshed
 * meanwhile; msg="sink redis command failed" is a warning at the 1st, 10th, 20th, … try).
 *
 * Several instances. Every claim_idle_ms/3, each held record (in every state: being delivered,
 * waiting, being acknowledged or dead-lettered) is refreshed, so its idle time never reaches
 * claim_idle_ms: XPENDING <key> <group> <id> <id> 1 tells its owner and idle time; when it is
 * still this consumer, XCLAIM … <that idle time> <id> JUSTID resets the idle time (the
 * min-idle-time makes it a no-op if anyone claimed the entry in between, so a refresh never
 * takes a record back from an instance that took it over); when it is another consumer, or no
 * longer pending, the record is abandoned without acknowledgement (msg="sink record no longer
 * ours: abandoned", warn; a delivery in flight is cancelled) — the other instance delivers it.
 * Every claim_idle_ms/2 (and at start) each instance takes over records idle longer than
 * claim_idle_ms (XAUTOCLAIM from a cursor per shard, COUNT = room; while the cursor is not
 * 0-0 it calls again, up to 32 calls per shard and round, the next round resuming there), i.e.
 * those of a crashed or stuck instance, and delivers them like new ones (a claim round waits
 * for the blocking reads in flight to return, so reads and claims together stay within the
 * bound: a takeover comes at most claim_idle_ms + claim_idle_ms/2 + DM_SINK_BLOCK_MS (2 s,
 * dm_sink_reader.h) after the holder's last sign of life, when the PEL scanned before the
 * record — 10 × COUNT entries a call — fits in one round). Attempt counts live in memory: a
 * record taken over starts counting again, and an instance that was cut off for longer than
 * claim_idle_ms (e.g. a Redis outage) may deliver a record once more before its next refresh
 * shows it was taken over, so two instances may deliver it: delivery is at least once, and
 * receivers deduplicate with Idempotency-Key. Entries trimmed meanwhile are acknowledged when a
 * claim reports them.
 *
 * Consumers. Every consumer an instance ever read as stays in the group when the instance
 * stops (SIGTERM, crash, reschedule), so each sink removes the ones left behind: at its claim
 * rounds, at most once every P = max(claim_idle_ms, min(60 s, L / 4)) where L = 10 ×
 * claim_idle_ms (L = 10 min and P = 60 s at the default 60 s; L = 10 s and P = 2.5 s at the
 * smallest, 1 s), one script per shard runs XINFO CONSUMERS and XGROUP DELCONSUMER for each
 * consumer other than this one (at most 16 a shard and round) idle for more than L with
 * nothing pending (msg="sink consumer removed" sink=… consumer=… idle_ms=… stream=…, info).
 * A stopped instance's consumer is gone within about L + P + claim_idle_ms/2 of its last read
 * that returned an entry (Redis 7.0 refreshes a consumer's idle time only at its reads that
 * return entries and at its claims; 7.2 at every read).
 * One with entries pending is kept (msg="sink consumer idle with entries pending: kept",
 * debug) until a claim has taken them over; it goes at a later round. Removing a live
 * instance's consumer (idle through a quiet period) costs nothing: it has nothing pending, and
 * its next read that returns an entry creates it again. The script makes the check and the
 * removal atomic, so no entry is handed to a consumer between the two.
 *
 * Redis errors: reads back off (up to 5 s) and retry; records are never dropped: what is not
 * acknowledged stays pending in Redis and is delivered again.
 *
 * Logs: msg="sink started" (info; the url appears only as origin=scheme://host:port, since its
 * path and query may carry credentials), msg="sink delivery failed" per failed attempt (warn),
 * msg="record dead-lettered" (warn), msg="record delivered" (debug), msg="sink consumer
 * removed" (info).
 * Metrics: DM_M_SINK_* and the gauge DM_G_SINK_INFLIGHT (records held, all sinks).
 *
 * Modules: this one starts and stops the sinks; dm_sink_group.h lists the others (reader,
 * records, pruning) and what they share.
 */
#ifndef DM_OUTPUTS_DM_SINK_H
#define DM_OUTPUTS_DM_SINK_H

#include "dm_config.h"

struct event_base;
typedef struct dm_sinks dm_sinks;

/**
 * Start delivering for every configured sink on @p base (the main thread's). @p conf is
 * borrowed and must outlive the sinks, and so is @p redis_socket (the embedded redis-server's
 * socket, or NULL: see dm_redis_conf_opts). Returns DM_OK and *out (NULL when no sink is
 * configured), or an error with a reason in @p err (a ca_file that cannot be loaded, no
 * resolver).
 */
int dm_sinks_start(struct event_base *base, const dm_config *conf, const char *redis_socket,
                   dm_sinks **out, char *err, size_t errlen);

/** Stop: deliveries in flight are abandoned (they stay pending and are redelivered). */
void dm_sinks_stop(dm_sinks *s);

#endif
