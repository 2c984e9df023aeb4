/* dm_jtiset.h - the OIDC tokens (their jti replay markers) of requests spooled before Redis
 * could check them (docs/spool.md, "Tokens").
 *
 * While Redis is down, ingest cannot set a token's replay marker (SET NX), so without this a
 * single captured token could be replayed again and again into the spool until it is full
 * (the replay would refuse all but one, but only later). The spool keeps this set for the
 * process: a request being spooled claims its marker's key with its own id; a second request
 * with the same token (another id) is refused 401 at once. The set is emptied when the spool is
 * (the replay has set the markers in Redis by then), and holds at most a fixed number of keys
 * (past it, tokens are not tracked: the replay still refuses their second use). One process's:
 * instances behind a load balancer each have their own, and the replay covers the rest.
 * Thread-safe (the workers share it).
 */
#ifndef DM_SPOOL_DM_JTISET_H
#define DM_SPOOL_DM_JTISET_H

#include "dm_common.h"

typedef struct dm_jtiset dm_jtiset;

/** A set of at most @p max keys. */
dm_jtiset *dm_jtiset_new(size_t max);

void dm_jtiset_free(dm_jtiset *s);

/** Claim @p key for request @p rid: DM_OK when it was free (now @p rid's), already @p rid's,
 *  or the set is full; DM_EBUSY when another request holds it. */
int dm_jtiset_claim(dm_jtiset *s, const char *key, const char *rid);

/** Forget every key. */
void dm_jtiset_clear(dm_jtiset *s);

/** Keys held. */
size_t dm_jtiset_size(dm_jtiset *s);

#endif
