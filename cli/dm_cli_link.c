/* dm_cli_link.c - a client connection that follows one shard's slot (see dm_cli_link.h). */
#define _GNU_SOURCE 1 /* ppoll: wait for sockets with SIGINT/SIGTERM let through */
#include "dm_common.h"
#include "dm_cli_link.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAUSE_MIN_MS  50
#define PAUSE_MAX_MS  1000
#define REDIRECTS_MAX 16 /* MOVED/ASK in a row before a command gives up */

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait @p ms, or less when a signal comes. False when the command should stop. */
static bool pause_ms(const dm_cli_link *k, int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    if (!*k->stop)
        ppoll(NULL, 0, &ts, k->wait_mask);
    return !*k->stop;
}

void dm_cli_nodes_init(dm_cli_nodes *nodes, const dm_cli *c)
{
    memset(nodes, 0, sizeof *nodes);
    if (c->redis_cluster && c->redis_host && strlen(c->redis_host) < DM_SLOT_HOST_MAX) {
        snprintf(nodes->v[0].host, sizeof nodes->v[0].host, "%s", c->redis_host);
        nodes->v[0].port = c->redis_port;
        nodes->n = 1;
    }
}

/* Remember node @p host:@p port (for reconnecting when the one serving a slot is gone). */
static void nodes_add(dm_cli_nodes *nodes, const char *host, int port)
{
    for (size_t i = 0; i < nodes->n; i++)
        if (nodes->v[i].port == port && strcmp(nodes->v[i].host, host) == 0)
            return;
    if (nodes->n == DM_CLI_NODES_MAX)
        return;
    snprintf(nodes->v[nodes->n].host, sizeof nodes->v[nodes->n].host, "%s", host);
    nodes->v[nodes->n++].port = port;
}

static bool cluster(const dm_cli_link *k)
{
    return k->c->redis_cluster && k->nodes->n > 0;
}

void dm_cli_link_init(dm_cli_link *k, const dm_cli *c, dm_cli_nodes *nodes, int read_timeout_ms,
                      const volatile sig_atomic_t *stop, const sigset_t *wait_mask)
{
    memset(k, 0, sizeof *k);
    k->c = c;
    k->nodes = nodes;
    k->read_timeout_ms = read_timeout_ms;
    k->stop = stop;
    k->wait_mask = wait_mask;
    snprintf(k->where, sizeof k->where, "%s", c->redis_where);
}

void dm_cli_link_reset(dm_cli_link *k)
{
    if (k->r)
        redisFree(k->r);
    k->r = NULL;
}

void dm_cli_link_close(dm_cli_link *k)
{
    dm_cli_link_reset(k);
}

/* Connect to node @p n. */
static bool connect_node(dm_cli_link *k, const dm_cli_node *n, char *err, size_t errlen)
{
    dm_cli_link_reset(k);
    k->r = dm_cli_redis_connect_node(k->c, n->host, n->port, k->read_timeout_ms, err, errlen);
    if (k->r)
        snprintf(k->where, sizeof k->where, strchr(n->host, ':') ? "[%s]:%d" : "%s:%d", n->host,
                 n->port);
    return k->r != NULL;
}

/* Cluster: the seed, else any node seen so far, trying again until DM_CLI_LINK_RECOVER_MS
 * have passed (a failover). */
static int connect_any(dm_cli_link *k, char *err, size_t errlen)
{
    long long deadline = mono_ms() + DM_CLI_LINK_RECOVER_MS;
    int pause = PAUSE_MIN_MS;
    for (;;) {
        for (size_t i = 0; i < k->nodes->n; i++)
            if (connect_node(k, &k->nodes->v[i], err, errlen))
                return DM_OK;
        if (mono_ms() >= deadline || !pause_ms(k, pause))
            return DM_EUNAVAIL;
        pause = pause * 2 > PAUSE_MAX_MS ? PAUSE_MAX_MS : pause * 2;
    }
}

int dm_cli_link_open(dm_cli_link *k, char *err, size_t errlen)
{
    if (k->r)
        return DM_OK;
    if (cluster(k))
        return connect_any(k, err, errlen);
    k->r = dm_cli_redis_connect(k->c, k->read_timeout_ms, err, errlen);
    return k->r ? DM_OK : DM_EUNAVAIL;
}

/* The connection was lost: on a Cluster, make it again (true); else fill @p err (false). */
static bool recover(dm_cli_link *k, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "redis at %s: %s: %s", k->where, what,
             k->r && k->r->errstr[0] ? k->r->errstr : "connection lost");
    if (!cluster(k) || *k->stop)
        return false;
    dm_cli_link_reset(k);
    k->reconnects++;
    return connect_any(k, err, errlen) == DM_OK;
}

int dm_cli_link_recover(dm_cli_link *k, const char *why, char *err, size_t errlen)
{
    if (k->r && !k->r->err) { /* the socket is fine: the server does not answer */
        k->r->err = REDIS_ERR_IO;
        snprintf(k->r->errstr, sizeof k->r->errstr, "%s", why);
    }
    return recover(k, "reply", err, errlen) ? DM_OK : DM_EUNAVAIL;
}

static bool error_is(const redisReply *rep, const char *prefix)
{
    return rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, prefix, strlen(prefix)) == 0;
}

/* ASKING, then the command, on a connection to the node the ASK named (a slot migrating). */
static redisReply *ask(dm_cli_link *k, const dm_redirect *to, int argc, const char **argv,
                       char *err, size_t errlen)
{
    dm_cli_link tmp = *k;
    tmp.r = NULL;
    dm_cli_node n = {.port = to->port};
    snprintf(n.host, sizeof n.host, "%s", to->host);
    if (!connect_node(&tmp, &n, err, errlen))
        return NULL;
    const char *asking[] = {"ASKING"};
    redisReply *rep = redisCommandArgv(tmp.r, 1, asking, NULL);
    if (rep) {
        freeReplyObject(rep);
        rep = redisCommandArgv(tmp.r, argc, argv, NULL);
    }
    if (!rep)
        snprintf(err, errlen, "redis at %s: %s: %s", tmp.where, argv[0], tmp.r->errstr);
    dm_cli_link_reset(&tmp);
    return rep;
}

/* A redirect or a pause for error reply @p rep (freed), on a Cluster: true when the command
 * may be sent again (on the node now connected); false with @p err filled. */
static bool follow(dm_cli_link *k, redisReply *rep, int *pause, char *err, size_t errlen)
{
    dm_redirect to;
    bool moved = dm_redirect_parse(rep->str, rep->len, &to) && !to.ask;
    bool wait = error_is(rep, "TRYAGAIN") || error_is(rep, "CLUSTERDOWN");
    snprintf(err, errlen, "redis at %s: %.200s", k->where, rep->str);
    freeReplyObject(rep);
    if (!k->trouble_ms)
        k->trouble_ms = mono_ms();
    else if (mono_ms() - k->trouble_ms > DM_CLI_LINK_RECOVER_MS)
        return false; /* err names the last redirect or pause */
    if (moved) {
        nodes_add(k->nodes, to.host, to.port);
        dm_cli_node n = {.port = to.port};
        snprintf(n.host, sizeof n.host, "%s", to.host);
        if (connect_node(k, &n, err, errlen))
            return true;
        /* The node named is gone (a master that died, before the cluster noticed): ask the
         * seed again once it had time to notice. */
        return pause_ms(k, *pause) && connect_any(k, err, errlen) == DM_OK;
    }
    if (wait) {
        bool go = pause_ms(k, *pause);
        *pause = *pause * 2 > PAUSE_MAX_MS ? PAUSE_MAX_MS : *pause * 2;
        return go;
    }
    return false;
}

static bool redirect_or_wait(const redisReply *rep)
{
    dm_redirect to;
    return rep->type == REDIS_REPLY_ERROR &&
           (dm_redirect_parse(rep->str, rep->len, &to) || error_is(rep, "TRYAGAIN") ||
            error_is(rep, "CLUSTERDOWN"));
}

redisReply *dm_cli_link_command(dm_cli_link *k, int argc, const char **argv, char *err,
                                size_t errlen)
{
    int pause = PAUSE_MIN_MS;
    long long deadline = mono_ms() + DM_CLI_LINK_RECOVER_MS;
    for (int hops = 0; hops < REDIRECTS_MAX || mono_ms() < deadline; hops++) {
        if (dm_cli_link_open(k, err, errlen) != DM_OK)
            return NULL;
        redisReply *rep = redisCommandArgv(k->r, argc, argv, NULL);
        if (!rep) {
            if (!recover(k, argv[0], err, errlen))
                return NULL;
            continue;
        }
        if (!cluster(k) || !redirect_or_wait(rep)) {
            k->trouble_ms = 0;
            return rep;
        }
        dm_redirect to;
        if (dm_redirect_parse(rep->str, rep->len, &to) && to.ask) {
            nodes_add(k->nodes, to.host, to.port);
            freeReplyObject(rep);
            if ((rep = ask(k, &to, argc, argv, err, errlen)) && !redirect_or_wait(rep))
                return rep;
            if (rep)
                freeReplyObject(rep);
            continue;
        }
        if (!follow(k, rep, &pause, err, errlen))
            return NULL;
    }
    return NULL; /* err says which redirect or pause was the last */
}

int dm_cli_link_send(dm_cli_link *k, int argc, const char **argv, char *err, size_t errlen)
{
    if (dm_cli_link_open(k, err, errlen) != DM_OK)
        return DM_EUNAVAIL;
    int done = 0;
    if (redisAppendCommandArgv(k->r, argc, argv, NULL) == REDIS_OK) {
        while (!done && redisBufferWrite(k->r, &done) == REDIS_OK) {
        }
    }
    if (done)
        return DM_OK;
    if (!recover(k, argv[0], err, errlen))
        return DM_EUNAVAIL;
    return dm_cli_link_send(k, argc, argv, err, errlen); /* on the connection made again */
}

int dm_cli_link_fd(const dm_cli_link *k)
{
    return k->r ? k->r->fd : -1;
}

int dm_cli_link_recv(dm_cli_link *k, redisReply **out, char *err, size_t errlen)
{
    *out = NULL;
    void *rep = NULL;
    if (!k->r || redisGetReply(k->r, &rep) != REDIS_OK || !rep) {
        if (!k->r || !recover(k, "reply", err, errlen))
            return DM_EUNAVAIL;
        return DM_CLI_LINK_AGAIN;
    }
    redisReply *r = rep;
    if (!cluster(k) || !redirect_or_wait(r)) {
        k->trouble_ms = 0;
        *out = r;
        return DM_OK;
    }
    int pause = 4 * PAUSE_MIN_MS; /* a blocking read comes back at once: no busy loop */
    dm_redirect to;
    if (dm_redirect_parse(r->str, r->len, &to) && to.ask) {
        /* A blocking read of a migrating slot: wait for the migration to end there. */
        freeReplyObject(r);
        return pause_ms(k, PAUSE_MAX_MS) ? DM_CLI_LINK_AGAIN : DM_EUNAVAIL;
    }
    return follow(k, r, &pause, err, errlen) ? DM_CLI_LINK_AGAIN : DM_EUNAVAIL;
}
