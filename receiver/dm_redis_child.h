/* dm_redis_child.h - the private redis-server that digestmapd starts when no redis.url is set.
 *
 * It listens only on a unix socket in data_dir (no TCP port), keeps an AOF there
 * (appendfsync everysec), dies with its parent (PR_SET_PDEATHSIG) and is stopped with SIGTERM
 * on exit, which makes Redis flush the AOF.
 */
#ifndef DM_RECEIVER_DM_REDIS_CHILD_H
#define DM_RECEIVER_DM_REDIS_CHILD_H

#include "dm_common.h"

typedef struct dm_redis_child dm_redis_child;

/**
 * Start @p bin with its files and its socket ("redis.sock") in @p data_dir (created 0700 if
 * missing), and wait (blocking: this runs before the event loops) until it accepts
 * connections. Returns DM_OK and *out, or an error with a reason in @p err.
 */
int dm_redis_child_start(const char *bin, const char *data_dir, dm_redis_child **out, char *err,
                         size_t errlen);

/** Absolute path of the child's unix socket (borrowed, valid until stop). */
const char *dm_redis_child_socket(const dm_redis_child *c);

/** SIGTERM, wait up to 10 s (then SIGKILL), free. NULL is fine. */
void dm_redis_child_stop(dm_redis_child *c);

#endif
