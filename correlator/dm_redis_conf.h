/* dm_redis_conf.h - the options of a Redis connection to the configured server.
 *
 * One place turns the configuration's redis section into dm_redis_opts, so the request
 * workers, the sinks and the event streams connect alike (address, credentials, database,
 * timeouts, and every Lua script: dm_join_scripts, park.lua made for the configuration).
 */
#ifndef DM_CORRELATOR_DM_REDIS_CONF_H
#define DM_CORRELATOR_DM_REDIS_CONF_H

#include "dm_config.h"
#include "dm_redis.h"

/**
 * Options for a connection named @p name (borrowed, like every string taken from @p c, which
 * must outlive the connection). @p socket is the unix socket of the redis-server digestmapd
 * started itself (redis.url absent), which replaces the configured address, or NULL. The
 * caller sets max_inflight and what else differs (on_ready, a longer command timeout for
 * blocking reads).
 */
dm_redis_opts dm_redis_conf_opts(const dm_config *c, const char *socket, const char *name);

#endif
