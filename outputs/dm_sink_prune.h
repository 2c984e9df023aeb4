/* dm_sink_prune.h - removing the consumers that stopped instances leave in a sink's group
 * (dm_sink.h, "Consumers"): at most once every max(claim_idle_ms, min(60 s, L / 4)), where
 * L = 10 x claim_idle_ms, one call per shard of outputs/lua/sink_prune.lua removes the
 * consumers other than this one idle for more than L with nothing pending (at most 16 a shard
 * and round). The check and the removal must be one atomic step: the script says why.
 *
 * Ownership: each sink's reader (dm_sink_reader.c) holds its dm_sink_prune and calls
 * dm_sink_prune_maybe from its claim timer; the prune borrows the reader's group. A round runs
 * on the control connection beside reads and claims (it hands over no record), one shard after
 * the other.
 */
#ifndef DM_OUTPUTS_DM_SINK_PRUNE_H
#define DM_OUTPUTS_DM_SINK_PRUNE_H

#include "dm_sink_group.h"

typedef struct dm_sink_prune {
    dm_sink_group *g; /**< borrowed */
    bool pruning;     /**< a round is under way */
    unsigned shard;   /**< the shard whose check is in flight */
    int64_t next_ms;  /**< dm_mono_ms() from which the next round may start */
} dm_sink_prune;

/** Ready to prune group @p g; the first round may start at once. */
void dm_sink_prune_init(dm_sink_prune *p, dm_sink_group *g);

/** Start a round when one is due and none is under way. */
void dm_sink_prune_maybe(dm_sink_prune *p);

#endif
