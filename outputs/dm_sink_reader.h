/* dm_sink_reader.h - one webhook sink at work: it creates its consumer group on every shard's
 * output stream (again when Redis lost it), reads new records shard by shard, each shard on a
 * Redis connection of its own (XREADGROUP … BLOCK: a blocked read would hold up every command
 * queued behind it, and on Redis Cluster one command names keys of one slot only), takes over
 * (XAUTOCLAIM) what other instances left idle, keeps the claims of the records it holds fresh
 * (XPENDING, XCLAIM), and has stale consumers pruned (dm_sink_prune.h). dm_sink.h gives the
 * rules: "Reading", "Bounds", "Several instances".
 *
 * Connections: shards × sinks blocking readers per instance (16 shards and 4 sinks: 64, each
 * an idle client of the server between records; on a Cluster each goes to the master of its
 * shard's slot). Two designs with fewer were weighed and rejected:
 *   - one connection per shard shared by all sinks: blocking reads of different groups queue
 *     behind each other on it, so a sink waits up to (sinks - 1) × DM_SINK_BLOCK_MS for its
 *     turn, and so does a claim round, which must wait for the sink's read in flight;
 *   - one blocking XREAD per shard and instance that wakes the sinks, which then read with a
 *     non-blocking XREADGROUP (shards connections, whatever the number of sinks): tried, and
 *     it breaks the sharing between instances. Redis hands a new entry to the consumer that
 *     has been blocked the longest, which alternates the instances of a group; woken reads race
 *     instead, and the instance whose watcher blocked first wins nearly every entry, so one
 *     instance delivers everything while the others idle (test_sink_instances.sh and
 *     test_sink_consumers.sh catch it).
 * Within a sink the room is split across the shards (see maybe_read), so the connections add
 * no records in flight.
 *
 * Ownership: dm_sinks (dm_sink.c) creates one reader per configured sink and frees it. A
 * reader owns its group (dm_sink_group.h), the records it holds (dm_sink_record.h), its prune
 * state, its Redis connection and its timers; it borrows the shared part and the sink's
 * configuration.
 */
#ifndef DM_OUTPUTS_DM_SINK_READER_H
#define DM_OUTPUTS_DM_SINK_READER_H

#include "dm_sink_group.h"

/** XREADGROUP BLOCK time of the sinks' reads (ms). */
#define DM_SINK_BLOCK_MS 2000

typedef struct dm_sink_reader dm_sink_reader;

/**
 * Make the reader of sink @p c: its group's names, its timers (claim refreshes every
 * claim_idle_ms/3, claim rounds every claim_idle_ms/2) and its Redis connections; an https
 * sink's trust (ca_file) is loaded into all->http now. Nothing is sent before
 * dm_sink_reader_ctl_ready. Returns DM_OK and *out, or an error with a reason in @p err.
 */
int dm_sink_reader_new(dm_sink_shared *all, const dm_sink_conf *c, dm_sink_reader **out, char *err,
                       size_t errlen);

/** The control connection is (again) ready: create the group, or make sure it still exists. */
void dm_sink_reader_ctl_ready(dm_sink_reader *s);

/** Free the reader's Redis connections: their callbacks run now, and do nothing once
 *  all->stopping is set. The first step of stopping, before dm_sink_reader_free. */
void dm_sink_reader_disconnect(dm_sink_reader *s);

/** Free the reader and the records it holds (they stay pending and are redelivered). */
void dm_sink_reader_free(dm_sink_reader *s);

#endif
