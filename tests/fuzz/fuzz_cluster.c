/* fuzz_cluster.c - libFuzzer target for what a Redis Cluster node sends the router: redirect
 * errors (dm_redirect_parse) and CLUSTER SLOTS replies (dm_topology_parse, fed as RESP through
 * hiredis' reader, as the connection does). Any bytes give a result or a refusal, never a
 * crash or a leak, and what is accepted is well-formed:
 *   - a redirect has a slot < 16384, a port 1..65535 and a non-empty NUL-free host;
 *   - a topology's ranges lie in 0..16383, never overlap, name existing masters whose hosts
 *     dm_topology_host_ok accepts, and add up to its slot count.
 * The raw bytes are tried as a redirect text too (the reader hands over an error's text). */
#include "dm_common.h"
#include "dm_resp.h"
#include "dm_slot.h"
#include "dm_topology.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_redirect(const char *text, size_t len)
{
    dm_redirect rd;
    if (!dm_redirect_parse(text, len, &rd))
        return;
    size_t hlen = strnlen(rd.host, sizeof rd.host);
    if (rd.slot >= DM_SLOTS || rd.port < 1 || rd.port > 65535 || hlen == 0 ||
        hlen >= sizeof rd.host)
        abort();
}

static void check_topology(const redisReply *rep)
{
    dm_topology t;
    char err[128];
    if (dm_topology_parse(rep, "seed.example", &t, err, sizeof err) != 0) {
        if (t.masters || t.ranges || !memchr(err, '\0', sizeof err))
            abort();
        return;
    }
    static unsigned char seen[DM_SLOTS];
    memset(seen, 0, sizeof seen);
    size_t slots = 0;
    for (size_t i = 0; i < t.nranges; i++) {
        const dm_topo_range *g = &t.ranges[i];
        if (g->first > g->last || g->last >= DM_SLOTS || g->master >= t.nmasters)
            abort();
        for (unsigned s = g->first; s <= g->last; s++) {
            if (seen[s]++)
                abort();
            slots++;
        }
    }
    for (size_t m = 0; m < t.nmasters; m++)
        if (!dm_topology_host_ok(t.masters[m].host, strlen(t.masters[m].host)) ||
            t.masters[m].port < 1 || t.masters[m].port > 65535)
            abort();
    if (slots != t.slots)
        abort();
    dm_topology_clear(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_redirect((const char *)data, size);
    redisReader *rd = redisReaderCreate();
    if (!rd)
        return 0;
    dm_resp_bound(rd); /* as every connection's reader is (dm_rconn.c) */
    redisReaderFeed(rd, (const char *)data, size);
    /* Every reply the bytes hold, until the reader wants more or refuses the protocol. */
    for (int i = 0; i < 64; i++) {
        void *rep = NULL;
        if (redisReaderGetReply(rd, &rep) != REDIS_OK || !rep)
            break;
        const redisReply *r = rep;
        if (r->type == REDIS_REPLY_ERROR)
            check_redirect(r->str, r->len);
        check_topology(r);
        freeReplyObject(rep);
    }
    redisReaderFree(rd);
    return 0;
}
