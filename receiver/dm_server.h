/* dm_server.h - the HTTP side: N worker threads, each with its own event_base, evhttp and
 * Redis connection, accepting on SO_REUSEPORT sockets that share one port (the kernel spreads
 * the connections; no thread hands requests to another).
 *
 * This module is the process: the sockets, the threads, start and stop, and what the workers
 * share. One worker (its loop, Redis connections, admission and drain) is dm_worker.h. Threads
 * share nothing mutable but the metrics' atomics and the worker siblings (the count of ready
 * workers, the events that kick them); dm_app is read-only. The server hands every worker the
 * route table (dm_routes.h) as its request callback.
 */
#ifndef DM_RECEIVER_DM_SERVER_H
#define DM_RECEIVER_DM_SERVER_H

#include "dm_config.h"
#include "dm_tls.h"
#include "dm_trust.h"

struct dm_spool;

typedef struct dm_server dm_server;

/**
 * Bind the listening sockets (one per worker, SO_REUSEPORT) and start the worker threads.
 * The bound port is logged (useful with port 0) and returned through @p port_out.
 * @p conf, @p trust, @p redis_socket (the embedded redis-server's socket, or NULL) and @p tls
 * (the listener's TLS, dm_tls.h, or NULL for plain HTTP) and @p spool (spool/dm_spool.h, or
 * NULL: Redis's refusals are answered 503) are borrowed until dm_server_stop.
 * Returns DM_OK, or an error with a reason in @p err.
 */
int dm_server_start(const dm_config *conf, const dm_trust *trust, const char *redis_socket,
                    dm_tls *tls, struct dm_spool *spool, dm_server **out, int *port_out, char *err,
                    size_t errlen);

/** Stop accepting, let in-flight requests finish (bounded wait), join threads, free. */
void dm_server_stop(dm_server *s);

#endif
