/* probe.c - dm_redis against a real Redis Cluster (test_redis_cluster_router.sh starts it).
 *
 * usage: probe SEED_HOST SEED_PORT PIDDIR
 * One router for the whole run, never recreated:
 *  1. seeded by a host name (resolved with evdns), it reads the topology and becomes ready;
 *     SET/GET/EVALSHA of keys in many slots succeed (each on the master of its slot);
 *  2. a slot migrated by hand (SETSLOT MIGRATING/IMPORTING): a missing key is answered after
 *     ASK; once its key is MIGRATEd and the slot given to the other node (SETSLOT NODE), the
 *     router's next command is MOVED and followed; SCRIPT FLUSH on a master: NOSCRIPT retried;
 *  3. kill -9 of a master (pid from PIDDIR/n<port>.sock.pid): commands for its slots fail
 *     with DM_EUNAVAIL/DM_ETIMEOUT only, until its replica is promoted; then they succeed.
 * Prints "ok - ..." per check; exits 0 when all passed. Admin commands go through sync
 * hiredis. Every wait is on state, bounded by 60 s that only a failure reaches. */
#include "dm_common.h"
#include "dm_metrics.h"
#include "dm_redis.h"
#include "dm_slot.h"
#include "dm_topology.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    char path[300];
    snprintf(path, sizeof path, "%s/n%d.sock.pid", piddir, victim);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    check(pid > 0 && kill(pid, SIGKILL) == 0, "kill -9 of the master at %d (pid %d)", victim, pid);
    double t0 = now_s(), end = t0 + WAIT_S;
    int refused = 0, other = 0, tries = 0;
    bool back = false;
    while (!back && now_s() < end) {
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
    check(wait_ready(), "the router is ready again, without being recreated");
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
    if (argc != 4) {
        fprintf(stderr, "usage: probe SEED_HOST SEED_PORT PIDDIR\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int seed = atoi(argv[2]);
    base = event_base_new();
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
