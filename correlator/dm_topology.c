/* dm_topology.c - see dm_topology.h. */
#include "dm_common.h"
#include "dm_topology.h"

#include <hiredis/hiredis.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool dm_topology_host_ok(const char *host, size_t len)
{
    /* A DNS name or an IP literal: nothing a log line or a connect call must beware of. */
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = host[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == ':' || ch == '_'))
            return false;
    }
    return true;
}

static int fail(dm_topology *out, char *err, size_t errlen, size_t entry, const char *why)
{
    dm_topology_clear(out);
    snprintf(err, errlen, "entry %zu: %s", entry, why);
    return -1;
}

/* The master's index in out->masters, added when new. */
static size_t master_index(dm_topology *out, const char *host, size_t hlen, int port)
{
    for (size_t i = 0; i < out->nmasters; i++)
        if (out->masters[i].port == port && strlen(out->masters[i].host) == hlen &&
            memcmp(out->masters[i].host, host, hlen) == 0)
            return i;
    out->masters = dm_xrealloc(out->masters, (out->nmasters + 1) * sizeof *out->masters);
    dm_topo_node *n = &out->masters[out->nmasters];
    memcpy(n->host, host, hlen);
    n->host[hlen] = '\0';
    n->port = port;
    return out->nmasters++;
}

/* The replica @p n of master @p mi (NULL or "" host: the node asked), unless unusable or known. */
static void add_replica(dm_topology *out, const redisReply *n, const char *asked_host, size_t mi)
{
    if (!n || n->type != REDIS_REPLY_ARRAY || n->elements < 2 || !n->element[0] || !n->element[1] ||
        n->element[1]->type != REDIS_REPLY_INTEGER || n->element[1]->integer < 1 ||
        n->element[1]->integer > 65535)
        return;
    const redisReply *h = n->element[0];
    const char *host = h->type == REDIS_REPLY_STRING ? h->str : "";
    size_t hlen = h->type == REDIS_REPLY_STRING ? h->len : 0;
    if (h->type != REDIS_REPLY_STRING && h->type != REDIS_REPLY_NIL)
        return;
    if (hlen == 0 && asked_host) {
        host = asked_host;
        hlen = strlen(asked_host);
    }
    if (!dm_topology_host_ok(host, hlen) || hlen >= DM_SLOT_HOST_MAX)
        return;
    int port = (int)n->element[1]->integer;
    for (size_t i = 0; i < out->nreplicas; i++)
        if (out->replicas[i].master == mi && out->replicas[i].node.port == port &&
            strlen(out->replicas[i].node.host) == hlen &&
            memcmp(out->replicas[i].node.host, host, hlen) == 0)
            return;
    out->replicas = dm_xrealloc(out->replicas, (out->nreplicas + 1) * sizeof *out->replicas);
    dm_topo_replica *x = &out->replicas[out->nreplicas++];
    memcpy(x->node.host, host, hlen);
    x->node.host[hlen] = '\0';
    x->node.port = port;
    x->master = mi;
}

int dm_topology_parse(const struct redisReply *rep, const char *asked_host, dm_topology *out,
                      char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "not an array");
        return -1;
    }
    /* Which slots are taken already: a slot served twice is a reply we cannot trust. */
    unsigned char *seen = dm_xcalloc(DM_SLOTS / 8, 1);
    int rc = 0;
    for (size_t e = 0; e < rep->elements && rc == 0; e++) {
        const redisReply *ent = rep->element[e];
        if (!ent || ent->type != REDIS_REPLY_ARRAY || ent->elements < 3) {
            rc = fail(out, err, errlen, e, "not [first, last, master, ...]");
            break;
        }
        const redisReply *f = ent->element[0], *l = ent->element[1], *m = ent->element[2];
        if (!f || !l || f->type != REDIS_REPLY_INTEGER || l->type != REDIS_REPLY_INTEGER ||
            f->integer < 0 || l->integer >= DM_SLOTS || f->integer > l->integer) {
            rc = fail(out, err, errlen, e, "slot range out of 0..16383");
            break;
        }
        if (!m || m->type != REDIS_REPLY_ARRAY || m->elements < 2 || !m->element[0] ||
            !m->element[1] ||
            (m->element[0]->type != REDIS_REPLY_STRING && m->element[0]->type != REDIS_REPLY_NIL) ||
            m->element[1]->type != REDIS_REPLY_INTEGER) {
            rc = fail(out, err, errlen, e, "master not [host, port, ...]");
            break;
        }
        bool nil = m->element[0]->type == REDIS_REPLY_NIL;
        const char *host = nil ? "" : m->element[0]->str;
        size_t hlen = nil ? 0 : m->element[0]->len;
        long long port = m->element[1]->integer;
        if (hlen == 1 && host[0] == '?')
            continue; /* no hostname announced: these slots have no usable master now */
        /* NULL (cluster-preferred-endpoint-type unknown-endpoint, e.g. behind a load balancer)
         * or "": the node asked, on the port given. */
        if (hlen == 0 && asked_host) {
            host = asked_host;
            hlen = strlen(asked_host);
        }
        if (!dm_topology_host_ok(host, hlen)) {
            rc = fail(out, err, errlen, e, "bad master host");
            break;
        }
        if (port < 1 || port > 65535) {
            rc = fail(out, err, errlen, e, "master port out of 1..65535");
            break;
        }
        for (long long s = f->integer; s <= l->integer; s++) {
            if (seen[s / 8] & (1u << (s % 8))) {
                rc = fail(out, err, errlen, e, "slot served twice");
                break;
            }
            seen[s / 8] |= (unsigned char)(1u << (s % 8));
        }
        if (rc)
            break;
        size_t mi = master_index(out, host, hlen, (int)port);
        out->ranges = dm_xrealloc(out->ranges, (out->nranges + 1) * sizeof *out->ranges);
        out->ranges[out->nranges++] = (dm_topo_range){
            .first = (unsigned)f->integer, .last = (unsigned)l->integer, .master = mi};
        out->slots += (size_t)(l->integer - f->integer + 1);
        for (size_t k = 3; k < ent->elements; k++)
            add_replica(out, ent->element[k], asked_host, mi);
    }
    free(seen);
    return rc;
}

void dm_topology_clear(dm_topology *t)
{
    free(t->masters);
    free(t->ranges);
    free(t->replicas);
    memset(t, 0, sizeof *t);
}
