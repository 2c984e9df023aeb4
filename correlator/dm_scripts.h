/* dm_scripts.h - the Lua scripts every Redis connection loads, by number.
 *
 * The sources are embedded by the build (correlator/CMakeLists.txt DM_LUA_SCRIPTS, which also
 * prepends the shared lua/clock.lua and lua/lib.lua); this enum names each of them, and
 * dm_redis_eval takes these numbers. Adding a script means one line in each of the two lists
 * (unit.join checks that they agree).
 */
#ifndef DM_CORRELATOR_DM_SCRIPTS_H
#define DM_CORRELATOR_DM_SCRIPTS_H

enum {
    DM_SCRIPT_PARK = 0,     /**< park.lua: park one event, join it, emit edges and deletes */
    DM_SCRIPT_QUERY,        /**< query.lua: everything about one digest (GET /v1/images) */
    DM_SCRIPT_SWEEP_CLAIM,  /**< sweep_claim.lua: lease the expired items of one shard */
    DM_SCRIPT_SWEEP_REPORT, /**< sweep_report.lua: report one claimed item unmatched */
    DM_SCRIPT_MAPPINGS,     /**< mappings.lua: one page of an index (GET /v1/mappings) */
    DM_SCRIPT_TRIM,         /**< trim.lua: trim an output stream, sparing protected groups */
    DM_SCRIPT_SINK_DEAD,    /**< sink_dead.lua: dead-letter a record and acknowledge it */
    DM_SCRIPT_SINK_PRUNE,   /**< sink_prune.lua: remove a sink group's stale consumers */
    DM_SCRIPT_WORKLOADS,    /**< workloads.lua: one shard's part of a cluster snapshot */
    DM_SCRIPT_EXPOSURE,     /**< exposure.lua: one page of an exposure index (GET /v1/exposure) */
    DM_SCRIPT_FINDINGS,     /**< findings.lua: store one report's findings of a digest, route */
    DM_SCRIPT_COUNT
};

/** The sources, indexed by DM_SCRIPT_* (static storage): pass to dm_redis_opts.scripts with
 * nscripts DM_SCRIPT_COUNT. */
const char *const *dm_scripts(void);

/** The file name of script @p script without ".lua" (e.g. "park"), or NULL out of range. */
const char *dm_script_name(unsigned script);

/** The names of the scripts the build embedded, in its list's order (static storage); @p n
 * gets their number. For checking that the build's list and this enum agree. */
const char *const *dm_scripts_embedded(unsigned *n);

#endif
