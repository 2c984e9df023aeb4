/* dm_redis_child.h - the private redis-server that digestmapd starts when no redis.url is set.
 *
 * It listens only on a unix socket in data_dir (no TCP port), keeps an AOF there
 * (appendfsync everysec), dies with its parent (PR_SET_PDEATHSIG) and is stopped with SIGTERM
 * on exit, which makes Redis flush the AOF. It has a maxmemory with the noeviction policy: when
 * full it refuses writes (every ingest answers 503 with Retry-After) rather than dropping
 * parked events or growing until the machine runs out.
 */
#ifndef DM_RECEIVER_DM_REDIS_CHILD_H
#define DM_RECEIVER_DM_REDIS_CHILD_H

#include "dm_common.h"

typedef struct dm_redis_child dm_redis_child;

/**
 * Start @p bin with its files and its socket ("redis.sock") in @p data_dir (created 0700 if
 * missing) and @p maxmemory bytes (0: a quarter of the machine's physical memory,
 * dm_redis_child_default_maxmemory), and wait (blocking: this runs before the event loops)
 * until it accepts connections. Returns DM_OK and *out, or an error with a reason in @p err.
 */
int dm_redis_child_start(const char *bin, const char *data_dir, long long maxmemory,
                         dm_redis_child **out, char *err, size_t errlen);

/** A quarter of the physical memory (sysconf; 64 MiB if the system does not say). */
long long dm_redis_child_default_maxmemory(void);

/** Absolute path of the child's unix socket (borrowed, valid until stop). */
const char *dm_redis_child_socket(const dm_redis_child *c);

/** SIGTERM, wait up to 10 s (then SIGKILL), free. NULL is fine. */
void dm_redis_child_stop(dm_redis_child *c);

#endif
