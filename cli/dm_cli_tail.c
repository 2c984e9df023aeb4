/* dm_cli_tail.c - "digestmap tail": print the output records of every shard's stream, as
 * JSON lines, with or without a consumer group.
 *
 * Delivery rule with a group: a record is acknowledged (XACK) only after its line was written
 * and flushed, so a consumer that dies at any point gets the record again when it restarts
 * under the same name (it first re-reads its pending entries, id 0), or, under any name, once
 * the record was pending for --claim-idle-ms (XAUTOCLAIM, at start and whenever a read finds
 * nothing new). Records can therefore be printed twice, never lost; the CloudEvent id lets
 * the reader deduplicate. A failed XACK ends tail with status 1: the connection is gone, and
 * the rest of the batch stays pending.
 *
 * --count N with a group must not take more than N new records from the group: entries
 * delivered but not printed would stay pending on this consumer. XREADGROUP's COUNT applies
 * per stream, so when fewer than one record per stream is wanted, the streams are read one at
 * a time without blocking, and the wait for new records is an XREAD (which delivers nothing)
 * from the group's last-delivered ids.
 *
 * The Redis connection is synchronous. A signal sets a flag; if it arrives while a read blocks
 * on the server, the handler shuts the socket down (shutdown(2) is async-signal-safe), so tail
 * exits at once instead of after the block time.
 */
#include "dm_common.h"
#include "dm_cli_tail.h"
#include "dm_cli_conf.h"
#include "dm_keys.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
    "shards). Records are ordered within a shard's stream, not across streams.\n"
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
static volatile sig_atomic_t blocking_fd = -1;

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno; /* the interrupted code may be about to read it */
    stop_requested = 1;
    int fd = blocking_fd;
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    errno = saved;
}

typedef struct tail {
    dm_cli *c;
    redisContext *r;
    char (*keys)[DM_KEY_BUFLEN];
    char (*ids)[ID_LEN]; /* per stream: last id read (plain XREAD / pending phase) */
    unsigned n;
    const char *group;
    char consumer[300];
    bool from_start;
    long long count; /* 0: no limit */
    long long printed;
    int block_ms;
    int claim_idle_ms; /* XAUTOCLAIM entries pending this long on other consumers */
    unsigned next;     /* first stream of the next one-at-a-time round */
} tail;

static bool done(const tail *t)
{
    return stop_requested || (t->count && t->printed >= t->count);
}

/* Run a command; NULL with the failure reported (exit code in *rc) unless a signal ended it. */
static redisReply *command(tail *t, int argc, const char **argv, bool blocking, int *rc)
{
    if (blocking) {
        blocking_fd = t->r->fd;
        /* A signal that came before the line above found no socket to shut down. */
        if (stop_requested) {
            blocking_fd = -1;
            *rc = DM_CLI_OK;
            return NULL;
        }
    }
    redisReply *rep = redisCommandArgv(t->r, argc, argv, NULL);
    blocking_fd = -1;
    if (!rep) {
        *rc = stop_requested ? DM_CLI_OK
                             : dm_cli_fail("tail: redis at %s: %s: %s", t->c->redis_where, argv[0],
                                           t->r->errstr);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        *rc = dm_cli_fail("tail: redis at %s: %s %s refused: %s", t->c->redis_where, argv[0],
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
 * XACK one entry (printed or unprintable) of stream @p key. A failure ends the batch: the
 * connection is gone (a signal that came just after a blocking read's reply shut the socket
 * down, or Redis went away), so every following XACK would fail too, and the entry and the
 * rest of the batch stay pending on this consumer. That is a failure even after a signal.
 */
static int ack(tail *t, const char *key, const char *id)
{
    const char *argv[] = {"XACK", key, t->group, id};
    int rc = DM_CLI_OK;
    redisReply *rep = command(t, 4, argv, false, &rc);
    if (rep) {
        freeReplyObject(rep);
        return DM_CLI_OK;
    }
    if (rc != DM_CLI_OK) /* reported by command() */
        return rc;
    return dm_cli_fail("tail: redis at %s: cannot acknowledge %s entry %s (%s): it stays "
                       "pending and will be delivered again",
                       t->c->redis_where, key, id, t->r->err ? t->r->errstr : "interrupted");
}

static int stream_index(const tail *t, const char *key)
{
    for (unsigned i = 0; i < t->n; i++)
        if (strcmp(t->keys[i], key) == 0)
            return (int)i;
    return -1;
}

/* Print one entry [id, fields] of stream @p key (index @p si), acknowledge it with a group,
 * and remember its id. */
static int handle_entry(tail *t, const char *key, int si, const redisReply *entry)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING)
        return dm_cli_fail("tail: redis at %s: malformed entry in %s", t->c->redis_where, key);
    bool printed;
    int rc = print_entry(t, key, entry, &printed);
    if (rc != DM_CLI_OK)
        return rc;
    const char *id = entry->element[0]->str;
    if (t->group && (rc = ack(t, key, id)) != DM_CLI_OK)
        return rc;
    snprintf(t->ids[si], ID_LEN, "%s", id);
    return DM_CLI_OK;
}

/*
 * Handle an XREAD / XREADGROUP reply: [[key, [[id, [field, value…]] …]] …] (or nil on a
 * timeout). Prints each entry, acknowledges it with a group, and remembers the last id per
 * stream. *got counts the entries seen. Stops at --count; a signal lets the batch finish
 * (its records are already ours).
 */
static int handle_reply(tail *t, const redisReply *rep, long long *got)
{
    if (rep->type == REDIS_REPLY_NIL)
        return DM_CLI_OK;
    if (rep->type != REDIS_REPLY_ARRAY)
        return dm_cli_fail("tail: redis at %s: unexpected reply type %d", t->c->redis_where,
                           rep->type);
    for (size_t s = 0; s < rep->elements; s++) {
        const redisReply *st = rep->element[s];
        if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
            st->element[0]->type != REDIS_REPLY_STRING || st->element[1]->type != REDIS_REPLY_ARRAY)
            return dm_cli_fail("tail: redis at %s: malformed stream reply", t->c->redis_where);
        const char *key = st->element[0]->str;
        int si = stream_index(t, key);
        if (si < 0)
            return dm_cli_fail("tail: redis answered for unknown stream %s", key);
        const redisReply *entries = st->element[1];
        for (size_t e = 0; e < entries->elements; e++) {
            if (t->count && t->printed >= t->count)
                return DM_CLI_OK;
            (*got)++;
            int rc = handle_entry(t, key, si, entries->element[e]);
            if (rc != DM_CLI_OK)
                return rc;
        }
    }
    return DM_CLI_OK;
}

/* Run XREAD/XREADGROUP @p argv and handle its reply. */
static int read_and_handle(tail *t, int argc, const char **argv, bool blocking, long long *got)
{
    int rc = DM_CLI_OK;
    redisReply *rep = command(t, argc, argv, blocking, &rc);
    if (!rep)
        return rc;
    rc = handle_reply(t, rep, got);
    freeReplyObject(rep);
    return rc;
}

static long long batch_size(const tail *t, unsigned streams)
{
    if (!t->count)
        return MAX_BATCH;
    long long per = (t->count - t->printed) / streams;
    return per > MAX_BATCH ? MAX_BATCH : per < 1 ? 1 : per;
}

/*
 * Fill @p argv (room for @p nhead + 4 + 2 x streams) with "<head…> BLOCK <block> STREAMS
 * <key>… <id>…": @p ids holds each stream's id, or is NULL for ">" on every stream (the
 * group's new entries). Returns the argument count.
 */
static int blocking_read_args(const tail *t, const char **argv, const char *const *head,
                              size_t nhead, const char *block, char (*ids)[ID_LEN])
{
    size_t k = 0;
    for (size_t i = 0; i < nhead; i++)
        argv[k++] = head[i];
    argv[k++] = "BLOCK";
    argv[k++] = block;
    argv[k++] = "STREAMS";
    for (unsigned i = 0; i < t->n; i++)
        argv[k++] = t->keys[i];
    for (unsigned i = 0; i < t->n; i++)
        argv[k++] = ids ? ids[i] : ">";
    return (int)k;
}

/*------------------------------------------------------------------- without a group ---*/

static int run_plain(tail *t)
{
    int rc = DM_CLI_OK;
    for (unsigned i = 0; i < t->n; i++) {
        snprintf(t->ids[i], ID_LEN, "0-0");
        if (t->from_start)
            continue;
        /* Start after each stream's current last entry: "$" would only be right for the
         * first read, and entries added to other streams in between would be missed. */
        const char *argv[] = {"XREVRANGE", t->keys[i], "+", "-", "COUNT", "1"};
        redisReply *rep = command(t, 6, argv, false, &rc);
        if (!rep)
            return rc;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
            rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements >= 1 &&
            rep->element[0]->element[0]->type == REDIS_REPLY_STRING)
            snprintf(t->ids[i], ID_LEN, "%s", rep->element[0]->element[0]->str);
        freeReplyObject(rep);
    }
    size_t argc = 6 + 2 * (size_t)t->n;
    const char **argv = dm_xcalloc(argc, sizeof *argv);
    char count[32], block[32];
    snprintf(block, sizeof block, "%d", t->block_ms);
    while (!done(t) && rc == DM_CLI_OK) {
        /* Surplus entries beyond --count are simply not printed: nothing is acknowledged. */
        snprintf(count, sizeof count, "%lld",
                 t->count ? (t->count - t->printed < MAX_BATCH ? t->count - t->printed : MAX_BATCH)
                          : MAX_BATCH);
        const char *head[] = {"XREAD", "COUNT", count};
        int nargs = blocking_read_args(t, argv, head, DM_ARRAY_LEN(head), block, t->ids);
        long long got = 0;
        rc = read_and_handle(t, nargs, argv, true, &got);
    }
    free(argv);
    return rc;
}

/*---------------------------------------------------------------------- with a group ---*/

static int create_groups(tail *t)
{
    int rc = DM_CLI_OK;
    for (unsigned i = 0; i < t->n; i++) {
        const char *argv[] = {"XGROUP",  "CREATE", t->keys[i], t->group, t->from_start ? "0" : "$",
                              "MKSTREAM"};
        redisReply *rep = redisCommandArgv(t->r, 6, argv, NULL);
        if (!rep)
            return stop_requested ? DM_CLI_OK
                                  : dm_cli_fail("tail: redis at %s: XGROUP CREATE: %s",
                                                t->c->redis_where, t->r->errstr);
        /* BUSYGROUP: the group exists already; it keeps its position. */
        if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "BUSYGROUP", 9) != 0)
            rc = dm_cli_fail("tail: redis at %s: cannot create group %s on %s: %s",
                             t->c->redis_where, t->group, t->keys[i], rep->str);
        freeReplyObject(rep);
        if (rc != DM_CLI_OK)
            return rc;
    }
    return rc;
}

/* Re-read what this consumer received but never acknowledged (a previous run's). */
static int run_pending(tail *t)
{
    int rc = DM_CLI_OK;
    char count[32];
    for (unsigned i = 0; i < t->n && !done(t); i++) {
        snprintf(t->ids[i], ID_LEN, "0");
        for (;;) {
            long long got = 0;
            snprintf(count, sizeof count, "%lld", batch_size(t, 1));
            const char *argv[] = {"XREADGROUP", "GROUP",   t->group,   t->consumer, "COUNT",
                                  count,        "STREAMS", t->keys[i], t->ids[i]};
            if ((rc = read_and_handle(t, 9, argv, false, &got)) != DM_CLI_OK)
                return rc;
            if (got == 0 || done(t))
                break;
        }
    }
    return rc;
}

/* The group's last-delivered id on stream @p i into @p out ("0-0" if unknown). */
static int last_delivered(tail *t, unsigned i, char out[ID_LEN])
{
    int rc = DM_CLI_OK;
    snprintf(out, ID_LEN, "0-0");
    const char *argv[] = {"XINFO", "GROUPS", t->keys[i]};
    redisReply *rep = command(t, 3, argv, false, &rc);
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
 * Take over what other consumers of the group received but did not acknowledge for
 * --claim-idle-ms (a consumer that died: the default name <hostname>:<pid> is never reused),
 * print it and acknowledge it. XAUTOCLAIM's COUNT keeps within --count. Entries trimmed from
 * the stream while pending come back as ids only (Redis 7: the reply's third element, already
 * dropped from the pending list; Redis 6.2: nil fields): nothing to print, acknowledged.
 */
static int run_claim(tail *t)
{
    int rc = DM_CLI_OK;
    char count[32], idle[32], start[ID_LEN];
    snprintf(idle, sizeof idle, "%d", t->claim_idle_ms);
    for (unsigned i = 0; i < t->n && !done(t); i++) {
        snprintf(start, sizeof start, "0-0");
        do {
            snprintf(count, sizeof count, "%lld", batch_size(t, 1));
            const char *argv[] = {"XAUTOCLAIM", t->keys[i], t->group, t->consumer,
                                  idle,         start,      "COUNT",  count};
            redisReply *rep = command(t, 8, argv, false, &rc);
            if (!rep)
                return rc;
            if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
                rep->element[0]->type != REDIS_REPLY_STRING ||
                rep->element[1]->type != REDIS_REPLY_ARRAY) {
                freeReplyObject(rep);
                return dm_cli_fail("tail: redis at %s: malformed XAUTOCLAIM reply",
                                   t->c->redis_where);
            }
            const redisReply *entries = rep->element[1];
            for (size_t e = 0; e < entries->elements && rc == DM_CLI_OK; e++)
                if (entries->element[e]->type != REDIS_REPLY_NIL)
                    rc = handle_entry(t, t->keys[i], (int)i, entries->element[e]);
            const redisReply *gone = rep->elements > 2 ? rep->element[2] : NULL;
            for (size_t e = 0;
                 gone && gone->type == REDIS_REPLY_ARRAY && e < gone->elements && rc == DM_CLI_OK;
                 e++) {
                const redisReply *id = gone->element[e];
                if (id->type != REDIS_REPLY_STRING)
                    continue;
                fprintf(stderr,
                        "digestmap: tail: %s entry %s no longer exists (trimmed); "
                        "skipped\n",
                        t->keys[i], id->str);
                rc = ack(t, t->keys[i], id->str);
            }
            snprintf(start, sizeof start, "%s", rep->element[0]->str);
            freeReplyObject(rep);
        } while (rc == DM_CLI_OK && !done(t) && strcmp(start, "0-0") != 0);
        if (rc != DM_CLI_OK)
            return rc;
    }
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
    if (t->r->err) {
        /* A signal shut the socket down during a blocking read. */
        char err[768];
        redisFree(t->r);
        t->r = dm_cli_redis_connect(t->c, t->c->command_timeout_ms, err, sizeof err);
        if (!t->r) {
            fprintf(stderr, "digestmap: tail: consumer %s left in group %s: %s\n", t->consumer,
                    t->group, err);
            return;
        }
    }
    for (unsigned i = 0; i < t->n; i++) {
        const char *pargv[] = {"XPENDING", t->keys[i], t->group, "-", "+", "1", t->consumer};
        redisReply *rep = redisCommandArgv(t->r, 7, pargv, NULL);
        bool idle = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 0;
        bool failed = !rep || rep->type == REDIS_REPLY_ERROR;
        if (rep)
            freeReplyObject(rep);
        if (idle) {
            /* Nothing is read in between: no entry can become pending on it now. */
            const char *dargv[] = {"XGROUP", "DELCONSUMER", t->keys[i], t->group, t->consumer};
            rep = redisCommandArgv(t->r, 5, dargv, NULL);
            failed = !rep || rep->type == REDIS_REPLY_ERROR;
            if (rep)
                freeReplyObject(rep);
        }
        if (failed) {
            fprintf(stderr,
                    "digestmap: tail: redis at %s: cannot remove consumer %s from "
                    "group %s on %s: %s\n",
                    t->c->redis_where, t->consumer, t->group, t->keys[i],
                    t->r->err ? t->r->errstr : "refused");
            return;
        }
    }
}

/* Fewer records wanted than there are streams: take them one stream at a time. */
static int run_new_exact(tail *t, const char **argv)
{
    int rc = DM_CLI_OK;
    long long got = 0;
    char count[32], block[32];
    for (unsigned j = 0; j < t->n && !done(t); j++) {
        unsigned i = (t->next + j) % t->n;
        snprintf(count, sizeof count, "%lld", t->count - t->printed);
        const char *a[] = {"XREADGROUP", "GROUP",   t->group,   t->consumer, "COUNT",
                           count,        "STREAMS", t->keys[i], ">"};
        if ((rc = read_and_handle(t, 9, a, false, &got)) != DM_CLI_OK)
            return rc;
    }
    t->next = (t->next + 1) % t->n;
    if (got > 0 || done(t))
        return DM_CLI_OK;
    /* Nothing new: wait (XREAD delivers nothing) until a stream grows past what the group
     * delivered. */
    char(*last)[ID_LEN] = dm_xcalloc(t->n, sizeof *last);
    for (unsigned i = 0; i < t->n && rc == DM_CLI_OK; i++)
        rc = last_delivered(t, i, last[i]);
    if (rc == DM_CLI_OK && !done(t)) {
        snprintf(block, sizeof block, "%d", t->block_ms);
        const char *head[] = {"XREAD", "COUNT", "1"};
        int nargs = blocking_read_args(t, argv, head, DM_ARRAY_LEN(head), block, last);
        redisReply *rep = command(t, nargs, argv, true, &rc);
        if (rep)
            freeReplyObject(rep);
    }
    free(last);
    return rc;
}

static int run_group(tail *t)
{
    int rc;
    if ((rc = create_groups(t)) != DM_CLI_OK || (rc = run_pending(t)) != DM_CLI_OK ||
        (rc = run_claim(t)) != DM_CLI_OK)
        return rc;
    size_t argc = 10 + 2 * (size_t)t->n;
    const char **argv = dm_xcalloc(argc, sizeof *argv);
    char count[32], block[32];
    snprintf(block, sizeof block, "%d", t->block_ms);
    while (!done(t) && rc == DM_CLI_OK) {
        if (t->count && t->count - t->printed < (long long)t->n) {
            rc = run_new_exact(t, argv);
            continue;
        }
        snprintf(count, sizeof count, "%lld", batch_size(t, t->n));
        const char *head[] = {"XREADGROUP", "GROUP", t->group, t->consumer, "COUNT", count};
        int nargs = blocking_read_args(t, argv, head, DM_ARRAY_LEN(head), block, NULL);
        long long got = 0;
        rc = read_and_handle(t, nargs, argv, true, &got);
        /* Idle: meanwhile another consumer may have died with entries pending. */
        if (rc == DM_CLI_OK && got == 0 && !done(t))
            rc = run_claim(t);
    }
    free(argv);
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

/* SA_RESTART: stdout writes resume after a signal; a blocked Redis read is ended by the
 * handler's shutdown() instead. */
static void catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Connect, then read the streams, plainly or through the group, until done. */
static int run(tail *t, dm_cli *c)
{
    char err[768];
    /* The socket must outwait the server-side BLOCK. */
    t->c = c;
    t->r = dm_cli_redis_connect(c, t->block_ms + c->command_timeout_ms, err, sizeof err);
    if (!t->r)
        return dm_cli_fail("%s", err);
    t->n = c->shards;
    t->keys = dm_xcalloc(t->n, sizeof *t->keys);
    t->ids = dm_xcalloc(t->n, sizeof *t->ids);
    for (unsigned i = 0; i < t->n; i++)
        dm_key_out(t->keys[i], c->prefix, i);
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
    catch_signals();
    rc = run(&t, &c);
    if (t.r)
        redisFree(t.r);
    free(t.keys);
    free(t.ids);
    dm_cli_dispose(&c);
    return rc;
}
