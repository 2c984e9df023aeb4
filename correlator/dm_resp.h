/* dm_resp.h - bounds on what hiredis's reply reader builds from a server's bytes.
 *
 * hiredis 0.14 allocates an array reply's element table as soon as it reads the header, from
 * the count the server declares: "*1720368543\r\n" alone asks for 13 GB (found by fuzz.cluster).
 * A Redis node is trusted, but a broken one, a wrong port or a hostile middlebox must cost the
 * connection (a protocol error: torn down and reconnected), never the daemon's memory.
 * dm_resp_bound swaps the reader's object functions for hiredis's own with an array size check
 * in front; everything else the reader does is unchanged.
 */
#ifndef DM_CORRELATOR_DM_RESP_H
#define DM_CORRELATOR_DM_RESP_H

#include <stddef.h>

struct redisReader;

/** The most elements an array reply may declare (8 MiB of element table): far above any reply
 *  digestmap asks for (the largest, HGETALL of a bounded hash or a cluster's inventory part,
 *  are a few hundred thousand). Nested arrays are each bounded, and hiredis nests at most 7. */
#define DM_RESP_MAX_ELEMENTS ((size_t)1 << 20)

/** Bound @p r (a reader made by hiredis, e.g. a context's `reader`): an array reply declaring
 *  more than DM_RESP_MAX_ELEMENTS elements makes the reader fail ("Out of memory", hiredis's
 *  error for a refused object) instead of allocating. Thread-safe; @p r may be NULL. */
void dm_resp_bound(struct redisReader *r);

#endif
