/* dm_listen.h - the gate of one worker's listener: it pauses while the worker holds its share
 * of limits.max_connections (new connections wait in the listen backlog until one closes) and,
 * when accept fails (out of file descriptors: EMFILE, ENFILE, …), for DM_LISTEN_RETRY_MS before
 * it tries again: never a busy loop, and one log line per DM_LISTEN_LOG_EVERY_S however often
 * it pauses. Runs on the worker's thread. The connection layer (dm_conn.h) drives it.
 */
#ifndef DM_RECEIVER_DM_LISTEN_H
#define DM_RECEIVER_DM_LISTEN_H

#include "dm_common.h"

struct event_base;
struct evconnlistener;

#define DM_LISTEN_RETRY_MS    250
#define DM_LISTEN_LOG_EVERY_S 10

typedef struct dm_listen dm_listen;

/** A gate for worker @p worker (in log lines); no listener yet. */
dm_listen *dm_listen_new(struct event_base *base, int worker);

/** Gate @p lev (borrowed until dm_listen_detach or dm_listen_free). */
void dm_listen_attach(dm_listen *g, struct evconnlistener *lev);

/** The listener is going away: stop touching it. */
void dm_listen_detach(dm_listen *g);

/** The worker holds @p n connections, its limit is @p max: pause at it, resume below it. */
void dm_listen_count(dm_listen *g, int n, int max);

void dm_listen_free(dm_listen *g);

#endif
