/* probe.c - dm_redis against a real Redis Cluster (test_redis_cluster_router.sh starts it).
 *
 * usage: probe SEED_HOST SEED_PORT PIDDIR EMPTY_PORT
 *        probe partial A B C PIDDIR    (three empty cluster nodes, no slots yet)
 *        probe takeover M R PIDDIR     (two empty cluster nodes)
 * First (EMPTY_PORT: a cluster node not in the cluster yet): it joins as a master serving no
 * slot, and a slot is set IMPORTING there; a BLPOP sent there after ASK is still answered after
 * a topology read that names the node nowhere (the read must not close a node with commands in
 * flight). Then one router for the whole run, never recreated:
 *  1. seeded by a host name (resolved with evdns), it reads the topology and becomes ready;
 *     SET/GET/EVALSHA of keys in many slots succeed (each on the master of its slot);
 *  2. a slot migrated by hand (SETSLOT MIGRATING/IMPORTING): a missing key is answered after
 *     ASK; once its key is MIGRATEd and the slot given to the other node (SETSLOT NODE), the
 *     router's next command is MOVED and followed; SCRIPT FLUSH on a master: NOSCRIPT retried;
 *  3. kill -9 of a master (pid from PIDDIR/n<port>.sock.pid): commands for its slots fail
 *     with DM_EUNAVAIL/DM_ETIMEOUT only, until its replica is promoted; then they succeed.
 *     Meanwhile the other masters' slots stay ready (dm_redis_ready_for, dm_redis_room_for)
 *     and take commands. A client of one shard (opts.only_route) holds one connection in all
 *     (CLIENT LIST on every node), before and after the failover.
 * partial: the router starts while only A serves slots; B and C get theirs after: a command for
 *     B's slots succeeds once the map has them. Then C is killed and its port held by a
 *     listener here: the router tries C again after each topology read, not at its own backoff
 *     (up to 5 s); C restarted, the router is ready again.
 * takeover: a single shard, M (the seed) with replica R; M is killed and R takes over: the
 *     router, which knows no other master, finds R through the replicas of its last map.
 * Prints "ok - ..." per check; exits 0 when all passed. Admin commands go through sync
 * hiredis. Every wait is on state, bounded by 60 s that only a failure reaches. */
#include "dm_common.h"
#include "dm_metrics.h"
#include "dm_redis.h"
#include "dm_slot.h"
#include "dm_topology.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_S 60

static int failures, checks;
static struct event_base *base;
static dm_redis *r;

static void check(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char msg[300];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    checks++;
    if (ok) {
        printf("ok - %s\n", msg);
    } else {
        printf("FAIL: %s\n", msg);
        failures++;
    }
    fflush(stdout);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run the loop for about @p ms. */
static void spin(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

/*---- sync admin ------------------------------------------------------------------------*/

static redisReply *admin(int port, const char *fmt, ...)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return rep;
}

static bool admin_ok(int port, const char *fmt, const char *a, const char *b)
{
    redisReply *rep = admin(port, fmt, a, b);
    bool ok = rep && rep->type != REDIS_REPLY_ERROR;
    if (rep && rep->type == REDIS_REPLY_ERROR)
        printf("# %d: %s\n", port, rep->str);
    if (rep)
        freeReplyObject(rep);
    return ok;
}

static bool node_id(int port, char id[64])
{
    redisReply *rep = admin(port, "CLUSTER MYID");
    bool ok = rep && rep->type == REDIS_REPLY_STRING && rep->len < 64;
    if (ok)
        snprintf(id, 64, "%s", rep->str);
    if (rep)
        freeReplyObject(rep);
    return ok;
}

/* The port of the master serving @p slot, asked of the node at @p port; 0 if unknown. */
static int master_of(int port, unsigned slot)
{
    redisReply *rep = admin(port, "CLUSTER SLOTS");
    dm_topology t;
    char err[128];
    int found = 0;
    if (rep && dm_topology_parse(rep, "127.0.0.1", &t, err, sizeof err) == 0) {
        for (size_t i = 0; i < t.nranges; i++)
            if (slot >= t.ranges[i].first && slot <= t.ranges[i].last)
                found = t.masters[t.ranges[i].master].port;
        dm_topology_clear(&t);
    }
    if (rep)
        freeReplyObject(rep);
    return found;
}

/* A key of the form PREFIX<n> whose slot the master at @p want serves (or not, @p negate). */
static void key_for(const char *prefix, int seed_port, int want, bool negate, char *out,
                    size_t size)
{
    for (int n = 0; n < 100000; n++) {
        snprintf(out, size, "%s%d", prefix, n);
        int m = master_of(seed_port, dm_slot_of(out, strlen(out)));
        if ((m == want) != negate)
            return;
    }
    snprintf(out, size, "%s", prefix);
}

/*---- async commands through the router -------------------------------------------------*/

typedef struct result {
    bool done;
    int err;
    int type;
    char str[128];
    long long integer;
} result;

static void on_result(int err, redisReply *rep, void *arg)
{
    result *res = arg;
    res->done = true;
    res->err = err;
    if (rep) {
        res->type = rep->type;
        res->integer = rep->integer;
        if (rep->str)
            snprintf(res->str, sizeof res->str, "%.*s", (int)rep->len, rep->str);
    }
}

/* One command, waited for; returns the dm_redis_command code (the result when DM_OK). */
static int run(result *res, const char *route, int argc, const char **argv)
{
    size_t lens[8];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    memset(res, 0, sizeof *res);
    int rc = dm_redis_command(r, route, on_result, res, argc, argv, lens);
    if (rc != DM_OK)
        return rc;
    double end = now_s() + WAIT_S;
    while (!res->done && now_s() < end)
        spin(5);
    return res->done ? DM_OK : DM_ETIMEOUT;
}

static int run_eval(result *res, const char *key)
{
    const char *argv[] = {key};
    size_t lens[] = {strlen(key)};
    memset(res, 0, sizeof *res);
    int rc = dm_redis_eval(r, 0, on_result, res, 1, 1, argv, lens);
    if (rc != DM_OK)
        return rc;
    double end = now_s() + WAIT_S;
    while (!res->done && now_s() < end)
        spin(5);
    return res->done ? DM_OK : DM_ETIMEOUT;
}

static bool set_get(const char *key, const char *val)
{
    result res;
    const char *set[] = {"SET", key, val};
    if (run(&res, key, 3, set) != DM_OK || res.err != DM_OK || res.type != REDIS_REPLY_STATUS) {
        printf("# SET %s: rc/err %d type %d %s\n", key, res.err, res.type, res.str);
        return false;
    }
    const char *get[] = {"GET", key};
    if (run(&res, key, 2, get) != DM_OK || res.err != DM_OK || strcmp(res.str, val) != 0) {
        printf("# GET %s: err %d type %d %s\n", key, res.err, res.type, res.str);
        return false;
    }
    return true;
}

static uint64_t metric(const char *name)
{
    struct evbuffer *b = evbuffer_new();
    dm_metrics_render(b);
    size_t n = evbuffer_get_length(b);
    char *text = dm_xmalloc(n + 1);
    evbuffer_remove(b, text, n);
    text[n] = '\0';
    evbuffer_free(b);
    uint64_t v = 0;
    size_t nl = strlen(name);
    for (char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, name, nl) == 0 && line[nl] == ' ')
            v = strtoull(line + nl + 1, NULL, 10);
    free(text);
    return v;
}

static bool wait_ready(void)
{
    double end = now_s() + WAIT_S;
    while (!dm_redis_ready(r) && now_s() < end)
        spin(10);
    return dm_redis_ready(r);
}

/*---- more clients, counted connections -------------------------------------------------*/

static dm_redis *client_new(const char *host, int port, const char *only, int timeout_ms,
                            const char *name)
{
    static const char *const scripts[] = {"return redis.call('GET', KEYS[1])"};
    dm_redis_opts o = {.host = host,
                       .port = port,
                       .cluster = true,
                       .only_route = only,
                       .connect_timeout_ms = 1000,
                       .command_timeout_ms = timeout_ms,
                       .max_inflight = 100,
                       .scripts = only ? NULL : scripts,
                       .nscripts = only ? 0 : 1,
                       .name = name};
    return dm_redis_new(base, &o);
}

static bool wait_ready_of(dm_redis *c, int secs)
{
    double end = now_s() + secs;
    while (!dm_redis_ready(c) && now_s() < end)
        spin(10);
    return dm_redis_ready(c);
}

/* A SET through @p c, waited for: true when it was stored. */
static bool set_with(dm_redis *c, const char *key, const char *val)
{
    dm_redis *keep = r;
    r = c;
    result res;
    const char *set[] = {"SET", key, val};
    bool ok = run(&res, key, 3, set) == DM_OK && res.err == DM_OK && res.type == REDIS_REPLY_STATUS;
    r = keep;
    return ok;
}

/* Client connections on the node at @p port: CLIENT LIST less the asking one and the links of
 * replicas (flags=S). 0 when the node does not answer. */
static int clients_on(int port)
{
    redisReply *rep = admin(port, "CLIENT LIST");
    int n = 0;
    if (rep && rep->type == REDIS_REPLY_STRING)
        for (char *line = rep->str; line && *line;
             line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
            char *end = strchr(line, '\n');
            size_t len = end ? (size_t)(end - line) : strlen(line);
            char one[1024];
            snprintf(one, sizeof one, "%.*s", (int)(len < sizeof one ? len : sizeof one - 1), line);
            if (len && !strstr(one, "cmd=client|list") && !strstr(one, " flags=S"))
                n++;
        }
    if (rep)
        freeReplyObject(rep);
    return n;
}

static int clients_all(int first, int count)
{
    int n = 0;
    for (int p = first; p < first + count; p++)
        n += clients_on(p);
    return n;
}

/* Wait until the client connections on the cluster number @p want; the last count. */
static int wait_clients(int first, int count, int want)
{
    double end = now_s() + 20;
    int n = clients_all(first, count);
    while (n != want && now_s() < end) {
        spin(50);
        n = clients_all(first, count);
    }
    return n;
}

static int pid_of(const char *piddir, int port)
{
    char path[300];
    snprintf(path, sizeof path, "%s/n%d.sock.pid", piddir, port);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return pid;
}

static bool cluster_ok(int port)
{
    redisReply *rep = admin(port, "CLUSTER INFO");
    bool ok = rep && rep->str && strstr(rep->str, "cluster_state:ok") &&
              strstr(rep->str, "cluster_slots_assigned:16384");
    if (rep)
        freeReplyObject(rep);
    return ok;
}

/*---- an ASK target that serves no slot keeps its commands --------------------------------*/

/* Node @p empty joins as a master without slots; slot S of "{held}q" is set IMPORTING there.
 * A client with long deadlines sends BLPOP {held}q: ASK from S's owner, so it blocks on the
 * empty node. A MOVED of another (empty) slot makes the client read the topology, which names
 * the empty node nowhere; the BLPOP must still get the element pushed afterwards. */
static void step_ask_kept(int seed, int empty)
{
    char eport[16];
    snprintf(eport, sizeof eport, "%d", empty);
    check(admin_ok(seed, "CLUSTER MEET 127.0.0.1 %s", eport, ""), "node %d meets the cluster",
          empty);
    double end = now_s() + WAIT_S;
    while (!(cluster_ok(empty) && master_of(empty, 0) && master_of(seed, 0)) && now_s() < end)
        spin(50);
    const char *key = "{held}q";
    unsigned slot = dm_slot_of(key, strlen(key));
    int owner = master_of(seed, slot);
    char owner_id[64], empty_id[64], sb[16];
    snprintf(sb, sizeof sb, "%u", slot);
    bool ids = owner && node_id(owner, owner_id) && node_id(empty, empty_id);
    bool mig = ids && admin_ok(empty, "CLUSTER SETSLOT %s IMPORTING %s", sb, owner_id) &&
               admin_ok(owner, "CLUSTER SETSLOT %s MIGRATING %s", sb, empty_id);
    check(mig, "slot %u migrating from %d to the empty master %d", slot, owner, empty);

    dm_redis *c = client_new("127.0.0.1", seed, NULL, 30000, "held");
    check(wait_ready_of(c, WAIT_S), "a client with 30 s deadlines is ready");
    result blpop;
    memset(&blpop, 0, sizeof blpop);
    const char *bargv[] = {"BLPOP", key, "25"};
    size_t blens[] = {5, strlen(key), 2};
    check(dm_redis_command(c, key, on_result, &blpop, 3, bargv, blens) == DM_OK, "BLPOP sent");
    bool blocked = false;
    end = now_s() + WAIT_S;
    while (!blocked && !blpop.done && now_s() < end) {
        spin(20);
        redisReply *rep = admin(empty, "CLIENT LIST");
        blocked = rep && rep->str && strstr(rep->str, "cmd=blpop");
        if (rep)
            freeReplyObject(rep);
    }
    check(blocked, "after ASK the BLPOP blocks on the importing node %d", empty);

    /* An empty slot of another master given to a third one: MOVED, then a topology read. */
    char tkey[32] = "", tb[16], to_id[64];
    int from = 0, to = 0;
    for (int n = 0; n < 100000 && !to; n++) {
        snprintf(tkey, sizeof tkey, "moved%d", n);
        unsigned ts = dm_slot_of(tkey, strlen(tkey));
        from = master_of(seed, ts);
        if (!from || from == owner)
            continue;
        snprintf(tb, sizeof tb, "%u", ts);
        redisReply *rep = admin(from, "CLUSTER COUNTKEYSINSLOT %s", tb);
        bool emptyslot = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0;
        if (rep)
            freeReplyObject(rep);
        if (emptyslot)
            to = owner; /* S's owner: a master other than the slot's */
    }
    bool given = to && node_id(to, to_id);
    for (int p = seed; given && p < seed + 6; p++) {
        redisReply *rep = admin(p, "CLUSTER SETSLOT %s NODE %s", tb, to_id);
        if (rep)
            freeReplyObject(rep);
    }
    redisReply *rep = admin(empty, "CLUSTER SETSLOT %s NODE %s", tb, to_id);
    if (rep)
        freeReplyObject(rep);
    check(given, "slot of %s moved from %d to %d", tkey, from, to);
    uint64_t reads = metric("digestmap_redis_topology_refreshes_total");
    dm_redis *keep = r;
    r = c;
    result res;
    const char *get[] = {"GET", tkey};
    check(run(&res, tkey, 2, get) == DM_OK && res.err == DM_OK, "GET %s after MOVED", tkey);
    r = keep;
    end = now_s() + WAIT_S;
    while (metric("digestmap_redis_topology_refreshes_total") == reads && now_s() < end)
        spin(10);
    check(metric("digestmap_redis_topology_refreshes_total") > reads,
          "the MOVED made the client read the topology");
    check(!blpop.done, "the BLPOP on the node that serves no slot survived the read (err %d)",
          blpop.err);

    /* Push the element there (ASKING): the BLPOP gets it. */
    redisContext *ac = redisConnect("127.0.0.1", empty);
    redisReply *a = ac && !ac->err ? redisCommand(ac, "ASKING") : NULL;
    redisReply *b = a ? redisCommand(ac, "RPUSH %s x", key) : NULL;
    check(b && b->type == REDIS_REPLY_INTEGER, "RPUSH on the importing node");
    if (a)
        freeReplyObject(a);
    if (b)
        freeReplyObject(b);
    if (ac)
        redisFree(ac);
    end = now_s() + WAIT_S;
    while (!blpop.done && now_s() < end)
        spin(10);
    check(blpop.done && blpop.err == DM_OK && blpop.type == REDIS_REPLY_ARRAY,
          "the BLPOP is answered with the element (err %d type %d)", blpop.err, blpop.type);
    dm_redis_free(c);
    spin(20);
    /* The slot back to normal on both. */
    rep = admin(empty, "CLUSTER SETSLOT %s STABLE", sb);
    if (rep)
        freeReplyObject(rep);
    rep = admin(owner, "CLUSTER SETSLOT %s STABLE", sb);
    if (rep)
        freeReplyObject(rep);
}

/*---- a cluster being built; a master back after a restart --------------------------------*/

static int accepts;

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    int c = accept(fd, NULL, NULL);
    if (c >= 0) {
        accepts++;
        close(c); /* a node that is not there yet: the router's attempt fails */
    }
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0) {
        close(fd);
        return -1;
    }
    evutil_make_socket_nonblocking(fd);
    return fd;
}

static void key_in(unsigned lo, unsigned hi, char *out, size_t size)
{
    for (int n = 0;; n++) {
        snprintf(out, size, "key%d", n);
        unsigned s = dm_slot_of(out, strlen(out));
        if (s >= lo && s <= hi)
            return;
    }
}

/* SET @p key through the router until it is stored (or @p secs pass). */
static bool set_until(const char *key, int secs)
{
    double end = now_s() + secs;
    while (now_s() < end) {
        if (set_with(r, key, "v"))
            return true;
        spin(50);
    }
    return false;
}

static int mode_partial(int a, int b, int c, const char *piddir)
{
    char pb[16], pc[16];
    snprintf(pb, sizeof pb, "%d", b);
    snprintf(pc, sizeof pc, "%d", c);
    check(admin_ok(a, "CLUSTER ADDSLOTSRANGE %s %s", "0", "5460") &&
              admin_ok(a, "CLUSTER MEET 127.0.0.1 %s", pb, "") &&
              admin_ok(a, "CLUSTER MEET 127.0.0.1 %s", pc, ""),
          "node %d serves slots 0-5460 and meets %d and %d", a, b, c);
    r = client_new("127.0.0.1", a, NULL, 1000, "partial");
    check(wait_ready_of(r, WAIT_S), "the router is ready with a third of the slots served");
    char kb[32], kc[32];
    key_in(5461, 10922, kb, sizeof kb);
    key_in(10923, 16383, kc, sizeof kc);
    result res;
    const char *set[] = {"SET", kb, "v"};
    check(run(&res, kb, 3, set) == DM_EUNAVAIL, "a key of an unserved slot is refused at once");
    check(admin_ok(b, "CLUSTER ADDSLOTSRANGE %s %s", "5461", "10922") &&
              admin_ok(c, "CLUSTER ADDSLOTSRANGE %s %s", "10923", "16383"),
          "%d and %d get the other slots", b, c);
    double t0 = now_s();
    bool stored = set_until(kb, 30) && set_until(kc, 30);
    check(stored, "keys of the slots assigned later are stored (after %.1f s)", now_s() - t0);
    double end = now_s() + WAIT_S;
    while (!(cluster_ok(a) && cluster_ok(b) && cluster_ok(c)) && now_s() < end)
        spin(50);
    check(wait_ready_of(r, WAIT_S), "the router is ready over the whole map");

    /* C dies; its port answers connections that close at once (a node not up yet). */
    int pid = pid_of(piddir, c);
    check(pid > 0 && kill(pid, SIGKILL) == 0, "kill -9 of the master at %d", c);
    int lfd = -1;
    end = now_s() + WAIT_S;
    while ((lfd = listen_on(c)) < 0 && now_s() < end)
        spin(50);
    check(lfd >= 0, "port %d held by the probe", c);
    struct event *lev = event_new(base, lfd, EV_READ | EV_PERSIST, on_accept, NULL);
    event_add(lev, NULL);
    /* Past the router's first quick attempts (100 ms doubling), count the attempts against the
     * topology reads (one a second while C is away). */
    uint64_t r0 = metric("digestmap_redis_topology_refreshes_total");
    end = now_s() + WAIT_S;
    while (metric("digestmap_redis_topology_refreshes_total") < r0 + 5 && now_s() < end)
        spin(10);
    int a0 = accepts;
    uint64_t r1 = metric("digestmap_redis_topology_refreshes_total");
    while (metric("digestmap_redis_topology_refreshes_total") < r1 + 8 && now_s() < end)
        spin(10);
    int tries = accepts - a0;
    check(tries >= 6, "C tried again after each topology read: %d attempts in 8 reads", tries);
    event_free(lev);
    close(lfd);

    /* C comes back on its port (the shell's restart script): the router is ready again. */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "%s/restart.sh %d", piddir, c);
    check(system(cmd) == 0, "node %d started again", c);
    t0 = now_s();
    bool again = wait_ready_of(r, WAIT_S) && set_until(kc, WAIT_S);
    check(again, "the router uses it again %.1f s after it was started", now_s() - t0);
    dm_redis_free(r);
    r = NULL;
    return 0;
}

/*---- a single shard's takeover -----------------------------------------------------------*/

static int mode_takeover(int m, int rp, const char *piddir)
{
    char pr[16], mid[64];
    snprintf(pr, sizeof pr, "%d", rp);
    check(admin_ok(m, "CLUSTER ADDSLOTSRANGE %s %s", "0", "16383") &&
              admin_ok(m, "CLUSTER MEET 127.0.0.1 %s", pr, "") && node_id(m, mid),
          "one master %d serving every slot meets %d", m, rp);
    double end = now_s() + WAIT_S;
    bool replica = false;
    while (!replica && now_s() < end) {
        spin(100);
        replica = admin_ok(rp, "CLUSTER REPLICATE %s", mid, "");
    }
    /* The router learns the replica from CLUSTER SLOTS: wait until the master lists it. */
    bool listed = false;
    while (replica && !listed && now_s() < end) {
        redisReply *rep = admin(m, "CLUSTER SLOTS");
        dm_topology t;
        char err[128];
        if (rep && dm_topology_parse(rep, "127.0.0.1", &t, err, sizeof err) == 0) {
            listed = t.nreplicas == 1 && t.replicas[0].node.port == rp;
            dm_topology_clear(&t);
        }
        if (rep)
            freeReplyObject(rep);
        if (!listed)
            spin(100);
    }
    check(replica && listed, "%d replicates %d (listed in CLUSTER SLOTS)", rp, m);
    r = client_new("127.0.0.1", m, NULL, 1000, "takeover");
    char key[32];
    key_in(0, 16383, key, sizeof key);
    check(wait_ready_of(r, WAIT_S) && set_with(r, key, "before"), "the router is ready, SET ok");
    int pid = pid_of(piddir, m);
    check(pid > 0 && kill(pid, SIGKILL) == 0, "kill -9 of the master (the seed) at %d", m);
    end = now_s() + WAIT_S;
    while (dm_redis_ready(r) && now_s() < end)
        spin(10);
    check(admin_ok(rp, "CLUSTER FAILOVER TAKEOVER", NULL, NULL), "%d takes over", rp);
    double t0 = now_s();
    bool followed = set_until(key, 30);
    check(followed, "the router follows the replica that took over (%.1f s)", now_s() - t0);
    dm_redis_free(r);
    r = NULL;
    return 0;
}

/*---- the scenario ----------------------------------------------------------------------*/

static void step_routing(void)
{
    check(wait_ready(), "seeded by a host name, the router reads the topology and is ready");
    int okn = 0;
    unsigned seen[3] = {0};
    for (int i = 0; i < 300; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "k%d", i);
        snprintf(val, sizeof val, "v%d", i);
        okn += set_get(key, val);
        seen[dm_slot_of(key, strlen(key)) * 3 / DM_SLOTS]++;
    }
    check(okn == 300, "SET+GET of 300 keys across the slot space (%d ok; thirds %u/%u/%u)", okn,
          seen[0], seen[1], seen[2]);
    int evn = 0;
    for (int i = 0; i < 30; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%d", i);
        char val[32];
        snprintf(val, sizeof val, "v%d", i);
        result res;
        evn += run_eval(&res, key) == DM_OK && res.err == DM_OK && strcmp(res.str, val) == 0;
    }
    check(evn == 30, "EVALSHA routed by its first key on every master (%d/30)", evn);
    check(metric("digestmap_redis_topology_refreshes_total") >= 1, "topology read counted");
}

static void step_migrate(int seed)
{
    char src_id[64], dst_id[64];
    /* Two keys of one slot: one written before the migration, one never. */
    const char *tagged = "{moving}", *tagged_missing = "{moving}-new";
    unsigned slot = dm_slot_of(tagged, strlen(tagged));
    int src = master_of(seed, slot), dst = 0;
    for (unsigned s = 0; s < DM_SLOTS && !dst; s += 100) {
        int m = master_of(seed, s);
        if (m && m != src)
            dst = m;
    }
    check(src && dst && node_id(src, src_id) && node_id(dst, dst_id),
          "slot %u: from the master on %d to the one on %d", slot, src, dst);
    check(set_get(tagged, "before"), "key of slot %u written before the migration", slot);

    char slotbuf[16];
    snprintf(slotbuf, sizeof slotbuf, "%u", slot);
    bool mig = admin_ok(dst, "CLUSTER SETSLOT %s IMPORTING %s", slotbuf, src_id) &&
               admin_ok(src, "CLUSTER SETSLOT %s MIGRATING %s", slotbuf, dst_id);
    check(mig, "slot %u set MIGRATING on %d and IMPORTING on %d", slot, src, dst);
    uint64_t ask0 = metric("digestmap_redis_redirects_total{kind=\"ask\"}");
    result res;
    const char *set[] = {"SET", tagged_missing, "new"};
    check(run(&res, tagged_missing, 3, set) == DM_OK && res.err == DM_OK &&
              res.type == REDIS_REPLY_STATUS,
          "a new key of a migrating slot is written on the importing node after ASK");
    check(metric("digestmap_redis_redirects_total{kind=\"ask\"}") > ask0, "ASK counted");
    redisReply *rep = admin(dst, "CLUSTER COUNTKEYSINSLOT %s", slotbuf, "");
    check(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1,
          "the importing node holds that key");
    if (rep)
        freeReplyObject(rep);

    /* Keys of the slot split between the two nodes: the source answers TRYAGAIN, retried
     * with backoff until the command's deadline, then DM_EUNAVAIL. */
    uint64_t try0 = metric("digestmap_redis_redirects_total{kind=\"tryagain\"}");
    const char *mget[] = {"MGET", tagged, tagged_missing};
    double t0 = now_s();
    int mrc = run(&res, tagged, 3, mget);
    check(mrc == DM_OK && res.err == DM_EUNAVAIL,
          "MGET of keys split by the migration: TRYAGAIN until the deadline, then DM_EUNAVAIL "
          "(err %d after %.1f s)",
          res.err, now_s() - t0);
    check(
        metric("digestmap_redis_redirects_total{kind=\"tryagain\"}") > try0 + 1,
        "TRYAGAIN retried and counted (%llu)",
        (unsigned long long)(metric("digestmap_redis_redirects_total{kind=\"tryagain\"}") - try0));

    /* Move the old key over, then give the slot to the destination everywhere. */
    char port[16];
    snprintf(port, sizeof port, "%d", dst);
    rep = admin(src, "MIGRATE 127.0.0.1 %s %s 0 5000", port, tagged);
    check(rep && rep->type == REDIS_REPLY_STATUS, "MIGRATE of the old key");
    if (rep)
        freeReplyObject(rep);
    bool given = admin_ok(dst, "CLUSTER SETSLOT %s NODE %s", slotbuf, dst_id) &&
                 admin_ok(src, "CLUSTER SETSLOT %s NODE %s", slotbuf, dst_id);
    for (int p = seed; p < seed + 6; p++) { /* the third master; replicas refuse, harmlessly */
        rep = admin(p, "CLUSTER SETSLOT %s NODE %s", slotbuf, dst_id);
        if (rep)
            freeReplyObject(rep);
    }
    check(given, "slot %u given to %d", slot, dst);
    uint64_t moved0 = metric("digestmap_redis_redirects_total{kind=\"moved\"}");
    const char *get[] = {"GET", tagged};
    check(run(&res, tagged, 2, get) == DM_OK && res.err == DM_OK && strcmp(res.str, "before") == 0,
          "the old key is read from its new node (got %s)", res.str);
    check(metric("digestmap_redis_redirects_total{kind=\"moved\"}") > moved0,
          "MOVED followed and counted");
    /* The refresh the MOVED asked for: the next command goes straight to the new node. */
    double end = now_s() + WAIT_S;
    uint64_t moved1 = metric("digestmap_redis_redirects_total{kind=\"moved\"}");
    bool direct = false;
    while (!direct && now_s() < end) {
        spin(20);
        run(&res, tagged, 2, get);
        direct =
            res.err == DM_OK && metric("digestmap_redis_redirects_total{kind=\"moved\"}") == moved1;
        moved1 = metric("digestmap_redis_redirects_total{kind=\"moved\"}");
    }
    check(direct, "after the refresh the slot's commands go straight to its new master");

    /* A master that lost its scripts: EVALSHA gets NOSCRIPT there and is retried as EVAL. */
    rep = admin(dst, "SCRIPT FLUSH");
    if (rep)
        freeReplyObject(rep);
    check(run_eval(&res, tagged) == DM_OK && res.err == DM_OK && strcmp(res.str, "before") == 0,
          "EVALSHA after SCRIPT FLUSH on that master: retried as EVAL (got %s)", res.str);
}

static void step_failover(int seed, const char *piddir)
{
    /* The victim: the master of slot 0's range, whatever the migration left. */
    int victim = master_of(seed, 100);
    char key[64];
    key_for("fo", seed, victim, false, key, sizeof key);
    check(victim && set_get(key, "x"), "key %s on the master at %d before the failover", key,
          victim);
    char okey[64];
    key_for("ot", seed, victim, true, okey, sizeof okey);
    /* Clients of one shard (opts.only_route) against a full one, in CLIENT LIST counts. */
    int n0 = clients_all(seed, 7);
    dm_redis *full = client_new("127.0.0.1", seed, NULL, 1000, "full");
    check(wait_ready_of(full, WAIT_S), "a second full client is ready");
    int n1 = wait_clients(seed, 7, n0 + 3);
    check(n1 == n0 + 3, "a full client holds a connection per master (%d -> %d)", n0, n1);
    dm_redis_free(full);
    n1 = wait_clients(seed, 7, n0);
    dm_redis *one = client_new("localhost", seed, key, 1000, "one");
    check(wait_ready_of(one, WAIT_S) && set_with(one, key, "one"),
          "a client of one shard (only_route %s) is ready and writes", key);
    int n2 = wait_clients(seed, 7, n1 + 1);
    check(n2 == n1 + 1, "it holds one connection in all (%d -> %d)", n1, n2);
    int pid = pid_of(piddir, victim);
    check(pid > 0 && kill(pid, SIGKILL) == 0, "kill -9 of the master at %d (pid %d)", victim, pid);
    double t0 = now_s(), end = t0 + WAIT_S;
    int refused = 0, other = 0, tries = 0;
    bool back = false, split = false, other_ok = false;
    while (!back && now_s() < end) {
        /* The other masters' slots stay ready while the victim's are not. */
        if (!split && dm_redis_ready_for(r, okey) && !dm_redis_ready_for(r, key) &&
            dm_redis_room_for(r, okey) > 0 && dm_redis_room_for(r, key) == 0 &&
            dm_redis_room(r) == 0 && !dm_redis_ready(r)) {
            split = true;
            other_ok = set_with(r, okey, "during");
        }
        result res;
        const char *set[] = {"SET", key, "y"};
        int rc = run(&res, key, 3, set);
        tries++;
        if (rc == DM_OK && res.err == DM_OK && res.type == REDIS_REPLY_STATUS) {
            back = true;
        } else if (rc == DM_EUNAVAIL ||
                   (rc == DM_OK && (res.err == DM_EUNAVAIL || res.err == DM_ETIMEOUT))) {
            refused++;
            spin(50);
        } else {
            other++;
            printf("# during the failover: rc %d err %d type %d %s\n", rc, res.err, res.type,
                   res.str);
            spin(50);
        }
    }
    double took = now_s() - t0;
    check(back, "commands for its slots succeed again after %.1f s (%d tries, %d refused)", took,
          tries, refused);
    check(other == 0, "in between only DM_EUNAVAIL/DM_ETIMEOUT, never an error reply (%d)", other);
    check(split, "meanwhile the other masters' slots were ready (dm_redis_ready_for, room_for) "
                 "while the client as a whole was not");
    check(other_ok, "and a key of another master (%s) was written then", okey);
    check(wait_ready(), "the router is ready again, without being recreated");
    check(wait_ready_of(one, WAIT_S) && set_with(one, key, "one-after"),
          "the client of one shard follows the failover to the new master");
    int n3 = clients_all(seed, 7);
    dm_redis_free(one);
    int n4 = wait_clients(seed, 7, n3 - 1);
    check(n4 == n3 - 1, "it still held one connection in all (%d -> %d when freed)", n3, n4);
    int okn = 0;
    for (int i = 0; i < 100; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "after%d", i);
        snprintf(v, sizeof v, "w%d", i);
        okn += set_get(k, v);
    }
    check(okn == 100, "SET+GET of 100 keys across the slots after the failover (%d ok)", okn);
    printf("# failover: %.1f s from kill -9 to the first accepted write; %d refused; "
           "CLUSTERDOWN retried %llu times\n",
           took, refused,
           (unsigned long long)metric("digestmap_redis_redirects_total{kind=\"clusterdown\"}"));
}

static void on_ready(bool ready, void *arg)
{
    (void)arg;
    printf("# on_ready %s\n", ready ? "true" : "false");
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    int rc = -1;
    if (argc == 6 && strcmp(argv[1], "partial") == 0)
        rc = mode_partial(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), argv[5]);
    else if (argc == 5 && strcmp(argv[1], "takeover") == 0)
        rc = mode_takeover(atoi(argv[2]), atoi(argv[3]), argv[4]);
    if (rc >= 0 || argc != 5) {
        if (rc < 0)
            fprintf(stderr, "usage: probe SEED_HOST SEED_PORT PIDDIR EMPTY_PORT | partial A B C "
                            "PIDDIR | takeover M R PIDDIR\n");
        event_base_free(base);
        printf("%d passed, %d failed\n", checks - failures, failures);
        return rc < 0 ? 2 : failures ? 1 : 0;
    }
    int seed = atoi(argv[2]);
    step_ask_kept(seed, atoi(argv[4]));
    static const char *const scripts[] = {"return redis.call('GET', KEYS[1])"};
    dm_redis_opts o = {.host = argv[1],
                       .port = seed,
                       .cluster = true,
                       .connect_timeout_ms = 1000,
                       .command_timeout_ms = 1000,
                       .max_inflight = 100,
                       .scripts = scripts,
                       .nscripts = 1,
                       .name = "probe",
                       .on_ready = on_ready};
    r = dm_redis_new(base, &o);
    check(r != NULL, "router created");
    step_routing();
    step_migrate(seed);
    step_failover(seed, argv[3]);
    dm_redis_free(r);
    event_base_free(base);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
