/* dm_cli_tail.c - "digestmap tail": print the output records of every shard's stream, as
 * JSON lines, with or without a consumer group.
 *
 * Shard by shard: every command names one shard's stream (on Redis Cluster a command may name
 * keys of one slot only), and each shard has a connection of its own (dm_cli_link.h: on a
 * Cluster it follows its shard's slot to the master that serves it, through MOVED, and gets
 * a lost connection back through the seed). Blocking reads are sent on every shard's
 * connection at once and answered as they come (ppoll), so a quiet shard holds up no other.
 *
 * Delivery rule with a group: a record is acknowledged (XACK) only after its line was written
 * and flushed, so a consumer that dies at any point gets the record again when it restarts
 * under the same name (it first re-reads its pending entries, id 0, as it does after a lost
 * connection), or, under any name, once the record was pending for --claim-idle-ms
 * (XAUTOCLAIM, at start and whenever a shard's read finds nothing new). Records can therefore
 * be printed twice, never lost; the CloudEvent id lets the reader deduplicate. A failed XACK
 * ends tail with status 1: the connection is gone, and the rest of the batch stays pending.
 *
 * --count N with a group must not take more than N new records from the group: entries
 * delivered but not printed would stay pending on this consumer. The blocking reads in flight
 * together ask for at most what is left (COUNT split across the shards); when fewer records
 * are left than shards are free, the shards are read one at a time without blocking, and the
 * wait for new records is an XREAD per shard (which delivers nothing) from the group's
 * last-delivered id.
 *
 * Signals: SIGINT and SIGTERM are blocked except while waiting for a blocking read (ppoll with
 * them let through) or pausing for a Cluster failover, so a signal ends tail at once at the
 * next wait, never in the middle of printing and acknowledging a batch.
 */
#define _GNU_SOURCE 1 /* ppoll: wait for sockets with SIGINT/SIGTERM let through */
#include "dm_common.h"
#include "dm_cli_tail.h"
#include "dm_cli_conf.h"
#include "dm_cli_link.h"
#include "dm_keys.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_BLOCK_MS 5000
#define MAX_BATCH        100
#define ID_LEN           48 /* "<ms>-<seq>": two 64-bit numbers */

#define DEFAULT_CLAIM_IDLE_MS 60000

static const char usage[] =
    "usage: digestmap [GLOBAL OPTIONS] tail [--group G [--consumer C] [--claim-idle-ms MS]]\n"
    "                 [--from-start] [--count N] [--block-ms MS]\n"
    "\n"
    "Prints the \"event\" field of each output record (a CloudEvents 1.0 JSON document) as\n"
    "one line on stdout, reading the streams <prefix>:{0}:out … <prefix>:{N-1}:out (N =\n"
    "shards), each on a connection of its own (with redis.cluster in the configuration: to\n"
    "the master of its slot). Records are ordered within a shard's stream, not across\n"
    "streams.\n"
    "\n"
    "  --group G      read through consumer group G, created on each stream if missing (at\n"
    "                 the stream's end, or at its start with --from-start), and acknowledge\n"
    "                 (XACK) each record once it was written to stdout. The consumer first\n"
    "                 re-reads the records it had received but not acknowledged, then takes\n"
    "                 over (XAUTOCLAIM) the records other consumers of the group left\n"
    "                 unacknowledged for --claim-idle-ms, at start and whenever a read finds\n"
    "                 nothing new: a consumer that died loses nothing. On a clean exit a\n"
    "                 consumer with nothing pending is removed from the group.\n"
    "  --consumer C   consumer name in the group (default <hostname>:<pid>); a consumer\n"
    "                 restarted under the same name re-reads its pending records at once\n"
    "  --claim-idle-ms MS  take over another consumer's record once it was pending that\n"
    "                 long, 1..86400000 (default 60000: longer than any print and\n"
    "                 acknowledgement, so a live consumer's records are not taken)\n"
    "  --from-start   without --group: print the streams' whole content first;\n"
    "                 with --group: create missing groups at the start of the streams\n"
    "  --count N      exit 0 after N records (N >= 1)\n"
    "  --block-ms MS  longest wait of one read on the server, 1..3600000 (default 5000)\n"
    "\n"
    "Without --group nothing is acknowledged: records added while tail is not running are not\n"
    "printed later. SIGINT/SIGTERM end tail with status 0; a record is acknowledged only after\n"
    "it was printed, so an interrupted consumer gets it again at its next start. A failed\n"
    "acknowledgement ends tail with status 1 (the record stays pending).\n";

enum {
    OPT_GROUP = DM_OPT_FIRST_COMMAND_OPTION,
    OPT_CONSUMER,
    OPT_FROM_START,
    OPT_COUNT,
    OPT_BLOCK_MS,
    OPT_CLAIM_IDLE_MS
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

typedef enum {
    SH_IDLE, /* nothing sent: the connection is free for commands */
    SH_READ, /* a blocking XREAD (plain) or XREADGROUP (group) sent */
    SH_WAIT, /* group, fewer records wanted than shards: a blocking XREAD that delivers nothing,
                from the group's last-delivered id, sent as a wake-up */
} shard_state;

/* One shard's stream and the connection that reads it. */
typedef struct shard {
    dm_cli_link k;
    char key[DM_KEY_BUFLEN];
    char id[ID_LEN]; /* the last id read (plain XREAD / pending phase) */
    shard_state st;
    long long reserved; /* COUNT of the XREADGROUP sent */
    long long due_ms;   /* when the reply of the command sent is overdue */
    unsigned seen;      /* k.reconnects when the pending entries were last read */
} shard;

typedef struct tail {
    dm_cli *c;
    shard *sh;
    unsigned n;
    dm_cli_nodes nodes;
    sigset_t wait_mask; /* the signal mask while waiting: SIGINT and SIGTERM let through */
    const char *group;
    char consumer[300];
    bool from_start;
    long long count; /* 0: no limit */
    long long printed;
    long long reserved; /* sum of the shards' reserved */
    int block_ms;
    int claim_idle_ms; /* XAUTOCLAIM entries pending this long on other consumers */
    unsigned next;     /* first stream of the next one-at-a-time round */
} tail;

static bool done(const tail *t)
{
    return stop_requested || (t->count && t->printed >= t->count);
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run a command on shard @p h's connection; NULL with the failure reported (exit code in
 * *rc) unless a signal ended it. */
static redisReply *command(tail *t, shard *h, int argc, const char **argv, int *rc)
{
    (void)t;
    char err[768];
    redisReply *rep = dm_cli_link_command(&h->k, argc, argv, err, sizeof err);
    if (!rep) {
        *rc = stop_requested ? DM_CLI_OK : dm_cli_fail("tail: %s", err);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        *rc = dm_cli_fail("tail: redis at %s: %s %s refused: %s", h->k.where, argv[0],
                          argc > 1 ? argv[1] : "", rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

/* Write one record's "event" as a line. Returns DM_CLI_OK, or the exit code. */
static int print_entry(tail *t, const char *key, const redisReply *entry, bool *printed)
{
    *printed = false;
    const redisReply *id = entry->element[0], *fields = entry->element[1];
    if (fields->type != REDIS_REPLY_ARRAY) {
        /* A pending entry that was trimmed away before it was delivered: nothing to print. */
        fprintf(stderr, "digestmap: tail: %s entry %s no longer exists (trimmed); skipped\n", key,
                id->str);
        return DM_CLI_OK;
    }
    const redisReply *ev = NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *name = fields->element[i];
        if (name->type == REDIS_REPLY_STRING && strcmp(name->str, "event") == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            ev = fields->element[i + 1];
    }
    if (!ev) {
        fprintf(stderr, "digestmap: tail: %s entry %s has no \"event\" field; skipped\n", key,
                id->str);
        return DM_CLI_OK;
    }
    fwrite(ev->str, 1, ev->len, stdout);
    fputc('\n', stdout);
    if (fflush(stdout) != 0 || ferror(stdout))
        return dm_cli_fail("tail: cannot write to stdout: %s", strerror(errno));
    *printed = true;
    t->printed++;
    return DM_CLI_OK;
}

/*
 * XACK one entry (printed or unprintable) of shard @p h. A failure ends the batch: the
 * connection is gone (and on a Cluster could not be made again), so the entry and the rest of
 * the batch stay pending on this consumer. That is a failure even after a signal.
 */
static int ack(tail *t, shard *h, const char *id)
{
    const char *argv[] = {"XACK", h->key, t->group, id};
    char err[768];
    redisReply *rep = dm_cli_link_command(&h->k, 4, argv, err, sizeof err);
    if (rep && rep->type != REDIS_REPLY_ERROR) {
        freeReplyObject(rep);
        return DM_CLI_OK;
    }
    if (rep) {
        snprintf(err, sizeof err, "%s", rep->str);
        freeReplyObject(rep);
    }
    return dm_cli_fail("tail: redis at %s: cannot acknowledge %s entry %s (%s): it stays "
                       "pending and will be delivered again",
                       h->k.where, h->key, id, err);
}

/* Print one entry [id, fields] of shard @p h, acknowledge it with a group, and remember its
 * id. */
static int handle_entry(tail *t, shard *h, const redisReply *entry)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING)
        return dm_cli_fail("tail: redis at %s: malformed entry in %s", h->k.where, h->key);
    bool printed;
    int rc = print_entry(t, h->key, entry, &printed);
    if (rc != DM_CLI_OK)
        return rc;
    const char *id = entry->element[0]->str;
    if (t->group && (rc = ack(t, h, id)) != DM_CLI_OK)
        return rc;
    snprintf(h->id, ID_LEN, "%s", id);
    return DM_CLI_OK;
}

/*
 * Handle an XREAD / XREADGROUP reply of shard @p h: [[key, [[id, [field, value…]] …]]] (or nil
 * on a timeout). Prints each entry, acknowledges it with a group, and remembers the last id.
 * *got counts the entries seen. Stops at --count; a signal lets the batch finish (its records
 * are already ours).
 */
static int handle_reply(tail *t, shard *h, const redisReply *rep, long long *got)
{
    if (rep->type == REDIS_REPLY_NIL)
        return DM_CLI_OK;
    if (rep->type != REDIS_REPLY_ARRAY)
        return dm_cli_fail("tail: redis at %s: unexpected reply type %d", h->k.where, rep->type);
    for (size_t s = 0; s < rep->elements; s++) {
        const redisReply *st = rep->element[s];
        if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
            st->element[0]->type != REDIS_REPLY_STRING || st->element[1]->type != REDIS_REPLY_ARRAY)
            return dm_cli_fail("tail: redis at %s: malformed stream reply", h->k.where);
        if (strcmp(st->element[0]->str, h->key) != 0)
            return dm_cli_fail("tail: redis answered for unknown stream %s", st->element[0]->str);
        const redisReply *entries = st->element[1];
        for (size_t e = 0; e < entries->elements; e++) {
            if (t->count && t->printed >= t->count)
                return DM_CLI_OK;
            (*got)++;
            int rc = handle_entry(t, h, entries->element[e]);
            if (rc != DM_CLI_OK)
                return rc;
        }
    }
    return DM_CLI_OK;
}

/* Run a non-blocking XREAD/XREADGROUP @p argv on shard @p h and handle its reply. */
static int read_and_handle(tail *t, shard *h, int argc, const char **argv, long long *got)
{
    int rc = DM_CLI_OK;
    redisReply *rep = command(t, h, argc, argv, &rc);
    if (!rep)
        return rc;
    rc = handle_reply(t, h, rep, got);
    freeReplyObject(rep);
    return rc;
}

/* Send blocking read @p argv on shard @p h: its reply comes through wait_replies. */
static int send_blocking(tail *t, shard *h, shard_state st, int argc, const char **argv)
{
    char err[768];
    if (dm_cli_link_send(&h->k, argc, argv, err, sizeof err) != DM_OK)
        return stop_requested ? DM_CLI_OK : dm_cli_fail("tail: %s", err);
    h->st = st;
    /* The server answers a blocking read after block_ms at the latest. */
    h->due_ms = mono_ms() + t->block_ms + t->c->command_timeout_ms;
    return DM_CLI_OK;
}

/* The shard's command sent is answered, or abandoned: its connection is free again. */
static void set_idle(tail *t, shard *h)
{
    t->reserved -= h->reserved;
    h->reserved = 0;
    h->st = SH_IDLE;
}

typedef int (*reply_fn)(tail *t, shard *h, shard_state st, redisReply *rep);

/*
 * Wait until a shard's blocking read is answered (or a signal comes: SIGINT and SIGTERM are
 * let through only here), then hand each answer to @p fn. A read redirected or whose
 * connection was made again (a Cluster) leaves its shard idle, to be sent again; so does an
 * overdue reply on a Cluster (on one server it is a failure, like a socket timeout).
 */
static int wait_replies(tail *t, reply_fn fn)
{
    struct pollfd *fds = dm_xcalloc(t->n, sizeof *fds);
    unsigned *which = dm_xcalloc(t->n, sizeof *which);
    nfds_t nfds = 0;
    long long now = mono_ms(), first_due = -1;
    for (unsigned i = 0; i < t->n; i++) {
        if (t->sh[i].st == SH_IDLE)
            continue;
        fds[nfds] = (struct pollfd){.fd = dm_cli_link_fd(&t->sh[i].k), .events = POLLIN};
        which[nfds++] = i;
        if (first_due < 0 || t->sh[i].due_ms < first_due)
            first_due = t->sh[i].due_ms;
    }
    long long wait = first_due < 0 ? 0 : first_due > now ? first_due - now : 0;
    struct timespec ts = {.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000};
    int ready = stop_requested ? -1 : ppoll(fds, nfds, &ts, &t->wait_mask);
    int rc = DM_CLI_OK;
    char err[768];
    now = mono_ms();
    for (nfds_t j = 0; ready >= 0 && j < nfds && rc == DM_CLI_OK && !stop_requested; j++) {
        shard *h = &t->sh[which[j]];
        shard_state st = h->st;
        if (!fds[j].revents) {
            if (now < h->due_ms)
                continue;
            set_idle(t, h);
            if (dm_cli_link_recover(&h->k, "no reply in time", err, sizeof err) != DM_OK)
                rc = dm_cli_fail("tail: %s", err);
            continue;
        }
        redisReply *rep = NULL;
        int got = dm_cli_link_recv(&h->k, &rep, err, sizeof err);
        if (got != DM_OK) {
            set_idle(t, h);
            if (got != DM_CLI_LINK_AGAIN && !stop_requested)
                rc = dm_cli_fail("tail: %s", err);
            continue;
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            set_idle(t, h);
            rc = dm_cli_fail("tail: redis at %s: %s refused: %s", h->k.where,
                             st == SH_WAIT || !t->group ? "XREAD" : "XREADGROUP", rep->str);
        } else {
            rc = fn(t, h, st, rep);
        }
        freeReplyObject(rep);
    }
    free(fds);
    free(which);
    return rc;
}

/*------------------------------------------------------------------- without a group ---*/

static int on_plain_reply(tail *t, shard *h, shard_state st, redisReply *rep)
{
    (void)st;
    set_idle(t, h);
    long long got = 0;
    return handle_reply(t, h, rep, &got);
}

static int run_plain(tail *t)
{
    int rc = DM_CLI_OK;
    for (unsigned i = 0; i < t->n; i++) {
        shard *h = &t->sh[i];
        snprintf(h->id, ID_LEN, "0-0");
        if (t->from_start)
            continue;
        /* Start after each stream's current last entry: "$" would only be right for the
         * first read, and entries added in between would be missed. */
        const char *argv[] = {"XREVRANGE", h->key, "+", "-", "COUNT", "1"};
        redisReply *rep = command(t, h, 6, argv, &rc);
        if (!rep)
            return rc;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
            rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements >= 1 &&
            rep->element[0]->element[0]->type == REDIS_REPLY_STRING)
            snprintf(h->id, ID_LEN, "%s", rep->element[0]->element[0]->str);
        freeReplyObject(rep);
    }
    char count[32], block[32];
    snprintf(block, sizeof block, "%d", t->block_ms);
    while (!done(t) && rc == DM_CLI_OK) {
        /* Surplus entries beyond --count are simply not printed: nothing is acknowledged. */
        long long left = t->count ? t->count - t->printed : MAX_BATCH;
        snprintf(count, sizeof count, "%lld", left < MAX_BATCH ? left : MAX_BATCH);
        for (unsigned i = 0; i < t->n && rc == DM_CLI_OK; i++) {
            shard *h = &t->sh[i];
            const char *argv[] = {"XREAD", "COUNT",   count,  "BLOCK",
                                  block,   "STREAMS", h->key, h->id};
            if (h->st == SH_IDLE)
                rc = send_blocking(t, h, SH_READ, 8, argv);
        }
        if (rc == DM_CLI_OK && !done(t))
            rc = wait_replies(t, on_plain_reply);
    }
    return rc;
}

/*---------------------------------------------------------------------- with a group ---*/

/* Records that may still be handed over without going past --count. */
static long long room(const tail *t)
{
    return t->count ? t->count - t->printed - t->reserved : LLONG_MAX;
}

static int create_group(tail *t, shard *h)
{
    int rc = DM_CLI_OK;
    const char *argv[] = {"XGROUP",  "CREATE", h->key, t->group, t->from_start ? "0" : "$",
                          "MKSTREAM"};
    char err[768];
    redisReply *rep = dm_cli_link_command(&h->k, 6, argv, err, sizeof err);
    if (!rep)
        return stop_requested ? DM_CLI_OK : dm_cli_fail("tail: %s", err);
    /* BUSYGROUP: the group exists already; it keeps its position. */
    if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "BUSYGROUP", 9) != 0)
        rc = dm_cli_fail("tail: redis at %s: cannot create group %s on %s: %s", h->k.where,
                         t->group, h->key, rep->str);
    freeReplyObject(rep);
    return rc;
}

/* Re-read what this consumer received on shard @p h but never acknowledged (a previous run's,
 * or a read whose connection was lost). */
static int read_pending(tail *t, shard *h)
{
    int rc = DM_CLI_OK;
    char count[32];
    h->seen = h->k.reconnects;
    snprintf(h->id, ID_LEN, "0");
    while (!done(t)) {
        long long got = 0, left = room(t);
        snprintf(count, sizeof count, "%lld", left < MAX_BATCH ? left : MAX_BATCH);
        if (left <= 0)
            break;
        const char *argv[] = {"XREADGROUP", "GROUP",   t->group, t->consumer, "COUNT",
                              count,        "STREAMS", h->key,   h->id};
        if ((rc = read_and_handle(t, h, 9, argv, &got)) != DM_CLI_OK || got == 0)
            break;
    }
    return rc;
}

/* The group's last-delivered id on shard @p h into @p out ("0-0" if unknown). */
static int last_delivered(tail *t, shard *h, char out[ID_LEN])
{
    int rc = DM_CLI_OK;
    snprintf(out, ID_LEN, "0-0");
    const char *argv[] = {"XINFO", "GROUPS", h->key};
    redisReply *rep = command(t, h, 3, argv, &rc);
    if (!rep)
        return rc;
    for (size_t g = 0; rep->type == REDIS_REPLY_ARRAY && g < rep->elements; g++) {
        const redisReply *info = rep->element[g];
        const char *name = NULL, *last = NULL;
        for (size_t k = 0; info->type == REDIS_REPLY_ARRAY && k + 1 < info->elements; k += 2) {
            const redisReply *f = info->element[k], *v = info->element[k + 1];
            if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(f->str, "name") == 0)
                name = v->str;
            else if (strcmp(f->str, "last-delivered-id") == 0)
                last = v->str;
        }
        if (name && last && strcmp(name, t->group) == 0)
            snprintf(out, ID_LEN, "%s", last);
    }
    freeReplyObject(rep);
    return DM_CLI_OK;
}

/*
 * Take over what other consumers of the group received on shard @p h but did not acknowledge
 * for --claim-idle-ms (a consumer that died: the default name <hostname>:<pid> is never
 * reused), print it and acknowledge it. XAUTOCLAIM's COUNT keeps within --count and what the
 * reads in flight may hand over. Entries trimmed from the stream while pending come back as
 * ids only (Redis 7: the reply's third element, already dropped from the pending list; Redis
 * 6.2: nil fields): nothing to print, acknowledged.
 */
static int claim(tail *t, shard *h)
{
    int rc = DM_CLI_OK;
    char count[32], idle[32], start[ID_LEN];
    snprintf(idle, sizeof idle, "%d", t->claim_idle_ms);
    snprintf(start, sizeof start, "0-0");
    do {
        long long left = room(t);
        if (left <= 0)
            break;
        snprintf(count, sizeof count, "%lld", left < MAX_BATCH ? left : MAX_BATCH);
        const char *argv[] = {"XAUTOCLAIM", h->key, t->group, t->consumer,
                              idle,         start,  "COUNT",  count};
        redisReply *rep = command(t, h, 8, argv, &rc);
        if (!rep)
            return rc;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            return dm_cli_fail("tail: redis at %s: malformed XAUTOCLAIM reply", h->k.where);
        }
        const redisReply *entries = rep->element[1];
        for (size_t e = 0; e < entries->elements && rc == DM_CLI_OK; e++)
            if (entries->element[e]->type != REDIS_REPLY_NIL)
                rc = handle_entry(t, h, entries->element[e]);
        const redisReply *gone = rep->elements > 2 ? rep->element[2] : NULL;
        for (size_t e = 0;
             gone && gone->type == REDIS_REPLY_ARRAY && e < gone->elements && rc == DM_CLI_OK;
             e++) {
            const redisReply *id = gone->element[e];
            if (id->type != REDIS_REPLY_STRING)
                continue;
            fprintf(stderr, "digestmap: tail: %s entry %s no longer exists (trimmed); skipped\n",
                    h->key, id->str);
            rc = ack(t, h, id->str);
        }
        snprintf(start, sizeof start, "%s", rep->element[0]->str);
        freeReplyObject(rep);
    } while (rc == DM_CLI_OK && !done(t) && strcmp(start, "0-0") != 0);
    return rc;
}

/*
 * On a clean exit, remove this consumer from the group when nothing is pending on it, so
 * runs under the default name (<hostname>:<pid>) do not pile up in XINFO CONSUMERS. With
 * entries pending it stays: a restart under the same name, or XAUTOCLAIM, gets them.
 * Best effort: a failure is reported, the exit status stays.
 */
static void forget_consumer(tail *t)
{
    for (unsigned i = 0; i < t->n; i++) {
        shard *h = &t->sh[i];
        char err[768] = "refused";
        if (h->st != SH_IDLE) { /* a blocked read: the connection is not free */
            dm_cli_link_reset(&h->k);
            set_idle(t, h);
        }
        const char *pargv[] = {"XPENDING", h->key, t->group, "-", "+", "1", t->consumer};
        redisReply *rep = dm_cli_link_command(&h->k, 7, pargv, err, sizeof err);
        bool idle = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 0;
        bool failed = !rep || rep->type == REDIS_REPLY_ERROR;
        if (rep)
            freeReplyObject(rep);
        if (idle) {
            /* Nothing is read in between: no entry can become pending on it now. */
            const char *dargv[] = {"XGROUP", "DELCONSUMER", h->key, t->group, t->consumer};
            rep = dm_cli_link_command(&h->k, 5, dargv, err, sizeof err);
            failed = !rep || rep->type == REDIS_REPLY_ERROR;
            if (rep)
                freeReplyObject(rep);
        }
        if (failed) {
            fprintf(stderr, "digestmap: tail: cannot remove consumer %s from group %s on %s: %s\n",
                    t->consumer, t->group, h->key, err);
            return;
        }
    }
}

/* A blocking read's answer: print and acknowledge what it handed over; nothing (the block
 * time passed): meanwhile another consumer may have died with entries pending. A wake-up
 * (SH_WAIT) only frees the shard for a read. */
static int on_group_reply(tail *t, shard *h, shard_state st, redisReply *rep)
{
    set_idle(t, h);
    if (st == SH_WAIT)
        return DM_CLI_OK;
    long long got = 0;
    int rc = handle_reply(t, h, rep, &got);
    if (rc == DM_CLI_OK && got == 0 && !done(t))
        rc = claim(t, h);
    return rc;
}

/*
 * Fewer records wanted than there are idle shards, and no read in flight: take them one shard
 * at a time without blocking; a shard with nothing new (nor anything to take over) gets a
 * wake-up instead, an XREAD (which delivers nothing) from the group's last-delivered id.
 */
static int read_exact(tail *t)
{
    int rc = DM_CLI_OK;
    char count[32], block[32], last[ID_LEN];
    snprintf(block, sizeof block, "%d", t->block_ms);
    for (unsigned j = 0; j < t->n && rc == DM_CLI_OK && !done(t); j++) {
        shard *h = &t->sh[(t->next + j) % t->n];
        if (h->st != SH_IDLE)
            continue;
        long long got = 0, before = t->printed;
        snprintf(count, sizeof count, "%lld", t->count - t->printed);
        const char *a[] = {"XREADGROUP", "GROUP",   t->group, t->consumer, "COUNT",
                           count,        "STREAMS", h->key,   ">"};
        if ((rc = read_and_handle(t, h, 9, a, &got)) != DM_CLI_OK || got > 0 || done(t))
            continue;
        if ((rc = claim(t, h)) != DM_CLI_OK || t->printed > before || done(t))
            continue;
        if ((rc = last_delivered(t, h, last)) != DM_CLI_OK)
            break;
        const char *w[] = {"XREAD", "COUNT", "1", "BLOCK", block, "STREAMS", h->key, last};
        rc = send_blocking(t, h, SH_WAIT, 8, w);
    }
    t->next = (t->next + 1) % t->n;
    return rc;
}

/* Send what the idle shards should read now. */
static int group_step(tail *t)
{
    int rc = DM_CLI_OK;
    unsigned idle = 0, reading = 0;
    for (unsigned i = 0; i < t->n && rc == DM_CLI_OK; i++) {
        shard *h = &t->sh[i];
        /* A connection made again: what a lost read handed over is pending on us. */
        if (h->st == SH_IDLE && h->seen != h->k.reconnects)
            rc = read_pending(t, h);
        idle += h->st == SH_IDLE;
        reading += h->st == SH_READ;
    }
    if (rc != DM_CLI_OK || idle == 0 || done(t))
        return rc;
    long long left = room(t);
    if (left < (long long)idle)
        return reading ? DM_CLI_OK : read_exact(t);
    char count[32], block[32];
    snprintf(count, sizeof count, "%lld", left / idle < MAX_BATCH ? left / idle : MAX_BATCH);
    snprintf(block, sizeof block, "%d", t->block_ms);
    for (unsigned i = 0; i < t->n && rc == DM_CLI_OK; i++) {
        shard *h = &t->sh[i];
        if (h->st != SH_IDLE)
            continue;
        const char *argv[] = {"XREADGROUP", "GROUP", t->group,  t->consumer, "COUNT", count,
                              "BLOCK",      block,   "STREAMS", h->key,      ">"};
        if ((rc = send_blocking(t, h, SH_READ, 11, argv)) == DM_CLI_OK) {
            h->reserved = atoll(count);
            t->reserved += h->reserved;
        }
    }
    return rc;
}

static int run_group(tail *t)
{
    int rc = DM_CLI_OK;
    for (unsigned i = 0; i < t->n && rc == DM_CLI_OK; i++)
        rc = create_group(t, &t->sh[i]);
    for (unsigned i = 0; i < t->n && rc == DM_CLI_OK && !done(t); i++)
        rc = read_pending(t, &t->sh[i]);
    for (unsigned i = 0; i < t->n && rc == DM_CLI_OK && !done(t); i++)
        rc = claim(t, &t->sh[i]);
    while (rc == DM_CLI_OK && !done(t)) {
        if ((rc = group_step(t)) != DM_CLI_OK || done(t))
            break;
        bool sent = false;
        for (unsigned i = 0; i < t->n; i++)
            sent |= t->sh[i].st != SH_IDLE;
        if (sent)
            rc = wait_replies(t, on_group_reply);
    }
    return rc;
}

/*------------------------------------------------------------------------- command ---*/

/* Parse tail's options into @p t (and @p consumer, the --consumer name or NULL). Returns
 * DM_CLI_OK, -1 after --help, or the exit code of a usage error. */
static int parse_tail_args(dm_cli_flags *f, int argc, char **argv, tail *t, const char **consumer)
{
    static const struct option opts[] = {
        DM_CLI_GLOBAL_OPTIONS,
        {"group", required_argument, NULL, OPT_GROUP},
        {"consumer", required_argument, NULL, OPT_CONSUMER},
        {"from-start", no_argument, NULL, OPT_FROM_START},
        {"count", required_argument, NULL, OPT_COUNT},
        {"block-ms", required_argument, NULL, OPT_BLOCK_MS},
        {"claim-idle-ms", required_argument, NULL, OPT_CLAIM_IDLE_MS},
        {NULL, 0, NULL, 0},
    };
    bool claim_given = false;
    long long v;
    int ret;
    optind = 0;
    opterr = 0;
    while ((ret = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (ret == 'h' || ret == DM_OPT_HELP) {
            fputs(usage, stdout);
            return -1;
        }
        if (dm_cli_global_option(f, ret, optarg))
            continue;
        switch (ret) {
        case OPT_GROUP:
            if (!*optarg)
                return dm_cli_usage_error("tail", "--group: the name must not be empty");
            t->group = optarg;
            break;
        case OPT_CONSUMER:
            if (!*optarg || strlen(optarg) >= sizeof t->consumer)
                return dm_cli_usage_error("tail", "--consumer: the name must be 1..%zu bytes",
                                          sizeof t->consumer - 1);
            *consumer = optarg;
            break;
        case OPT_FROM_START:
            t->from_start = true;
            break;
        case OPT_COUNT:
            if (!dm_cli_parse_int(optarg, 1, (long long)1 << 53, &v))
                return dm_cli_usage_error("tail",
                                          "--count: must be a positive integer, not "
                                          "\"%s\"",
                                          optarg);
            t->count = v;
            break;
        case OPT_BLOCK_MS:
            if (!dm_cli_parse_int(optarg, 1, 3600000, &v))
                return dm_cli_usage_error("tail",
                                          "--block-ms: must be an integer 1..3600000, "
                                          "not \"%s\"",
                                          optarg);
            t->block_ms = (int)v;
            break;
        case OPT_CLAIM_IDLE_MS:
            if (!dm_cli_parse_int(optarg, 1, 86400000, &v))
                return dm_cli_usage_error("tail",
                                          "--claim-idle-ms: must be an integer "
                                          "1..86400000, not \"%s\"",
                                          optarg);
            t->claim_idle_ms = (int)v;
            claim_given = true;
            break;
        default:
            return dm_cli_bad_option("tail", ret, argv);
        }
    }
    if (optind < argc)
        return dm_cli_usage_error("tail", "unexpected argument \"%s\"", argv[optind]);
    if (*consumer && !t->group)
        return dm_cli_usage_error("tail", "--consumer needs --group");
    if (claim_given && !t->group)
        return dm_cli_usage_error("tail", "--claim-idle-ms needs --group");
    return DM_CLI_OK;
}

/* The consumer name: @p given, else "<hostname>:<pid>". */
static void set_consumer(tail *t, const char *given)
{
    if (given) {
        snprintf(t->consumer, sizeof t->consumer, "%s", given);
        return;
    }
    char host[256] = "";
    if (gethostname(host, sizeof host) != 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(t->consumer, sizeof t->consumer, "%s:%ld", host, (long)getpid());
}

/* SIGINT and SIGTERM set a flag and are blocked except in the waits, whose mask @p wait_mask
 * lets them through; @p saved gets the mask to restore. SA_RESTART: a stdout write resumes. */
static void catch_signals(sigset_t *wait_mask, sigset_t *saved)
{
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, saved);
    *wait_mask = *saved;
    sigdelset(wait_mask, SIGINT);
    sigdelset(wait_mask, SIGTERM);
}

/* Connect every shard, then read the streams, plainly or through the group, until done. */
static int run(tail *t, dm_cli *c)
{
    char err[768];
    t->c = c;
    t->n = c->shards;
    t->sh = dm_xcalloc(t->n, sizeof *t->sh);
    dm_cli_nodes_init(&t->nodes, c);
    for (unsigned i = 0; i < t->n; i++) {
        shard *h = &t->sh[i];
        /* The socket must outwait the server-side BLOCK. */
        dm_cli_link_init(&h->k, c, &t->nodes, t->block_ms + c->command_timeout_ms, &stop_requested,
                         &t->wait_mask);
        dm_key_out(h->key, c->prefix, i);
        if (dm_cli_link_open(&h->k, err, sizeof err) != DM_OK)
            return stop_requested ? DM_CLI_OK : dm_cli_fail("%s", err);
    }
    int rc = t->group ? run_group(t) : run_plain(t);
    if (t->group && rc == DM_CLI_OK)
        forget_consumer(t);
    return rc;
}

int dm_cli_cmd_tail(dm_cli_flags *f, int argc, char **argv)
{
    tail t = {.block_ms = DEFAULT_BLOCK_MS, .claim_idle_ms = DEFAULT_CLAIM_IDLE_MS};
    const char *consumer = NULL;
    int rc = parse_tail_args(f, argc, argv, &t, &consumer);
    if (rc != DM_CLI_OK)
        return rc < 0 ? DM_CLI_OK : rc;
    dm_cli c;
    if ((rc = dm_cli_resolve_for("tail", f, &c)) != DM_CLI_OK)
        return rc;
    if (t.group)
        set_consumer(&t, consumer);
    sigset_t saved;
    catch_signals(&t.wait_mask, &saved);
    rc = run(&t, &c);
    for (unsigned i = 0; t.sh && i < t.n; i++)
        dm_cli_link_close(&t.sh[i].k);
    free(t.sh);
    dm_cli_dispose(&c);
    sigprocmask(SIG_SETMASK, &saved, NULL);
    return rc;
}
