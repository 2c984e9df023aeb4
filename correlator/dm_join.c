#include "dm_common.h"
#include "dm_join.h"
#include "dm_event_park.h"
#include "dm_log.h"
#include "dm_keys.h"
#include "dm_metrics.h"
#include "dm_scripts.h"
#include "dm_time.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct submit_ctx {
    dm_join_cb cb;
    void *arg;
    bool skewed; /* the event time was replaced by the arrival (decided here, not in park.lua) */
} submit_ctx;

/* park.lua's reply, one integer (its header): bit 0 unused, 1 duplicate, 2 deleted, 3-4
 * routed, 5-25 evicted, from 26 edges. */
#define PARK_EVICTED_SHIFT 5
#define PARK_EVICTED_BITS  21
#define PARK_EDGES_SHIFT   26

dm_join_result dm_join_park_result(long long v)
{
    unsigned long long u = v < 0 ? 0 : (unsigned long long)v;
    return (dm_join_result){
        .edges = (int)(u >> PARK_EDGES_SHIFT),
        .duplicate = (int)(u >> 1 & 1),
        .deleted = (int)(u >> 2 & 1),
        .evicted = (int)(u >> PARK_EVICTED_SHIFT & ((1ULL << PARK_EVICTED_BITS) - 1)),
        .routed = (int)(u >> 3 & 3),
    };
}

/* "OOM command not allowed when used memory > 'maxmemory'.": Redis 7 refuses a script that
 * declares writes before it runs; Redis < 7 fails its first write that needs memory, inside
 * the script ("... @user_script:…: -OOM command not allowed …"). */
static bool is_oom(const redisReply *rep)
{
    return (rep->len >= 4 && memcmp(rep->str, "OOM ", 4) == 0) ||
           (rep->str && strstr(rep->str, "-OOM command not allowed") != NULL);
}

/* The error codes of a Redis that cannot take a write for now: over its maxmemory, a replica
 * (READONLY: a failover in progress), a failed RDB save (MISCONF), busy with a slow script,
 * loading its data, an ACL the operator is fixing (NOPERM, NOAUTH, WRONGPASS), a cluster in
 * trouble, no replica for min-replicas-to-write. */
static const char *const temporary_codes[] = {
    "OOM",        "READONLY",   "MISCONF",   "BUSY",        "LOADING",
    "NOPERM",     "NOAUTH",     "WRONGPASS", "CLUSTERDOWN", "TRYAGAIN",
    "MASTERDOWN", "NOREPLICAS", "MOVED",     "ASK",         "NOSCRIPT",
};

/* Whether @p code (at the start of @p s, followed by a space or the end) begins @p s. */
static bool code_at(const char *s, size_t len, const char *code)
{
    size_t n = strlen(code);
    return len >= n && memcmp(s, code, n) == 0 && (len == n || s[n] == ' ');
}

/* Whether an error reply is park.lua's own failure (a Lua runtime error, or a command inside
 * the script refused for a reason that would hold every time, such as WRONGTYPE): Redis 7
 * answers "ERR user_script:N: …" or "<CODE> … script: …, on @user_script:N.", Redis < 7
 * "ERR Error running script (call to f_…): @user_script:N: …". Anything else, and a temporary
 * code met inside the script ("… -READONLY …" on Redis < 7), is Redis refusing the event for
 * now: it is kept and tried again. */
static bool is_script_error(const redisReply *rep)
{
    const char *s = rep->str ? rep->str : "";
    size_t len = rep->str ? rep->len : 0;
    bool in_script = strstr(s, "user_script") != NULL || strstr(s, "Error running script") ||
                     strstr(s, "Error compiling script");
    if (!in_script)
        return false;
    for (size_t i = 0; i < DM_ARRAY_LEN(temporary_codes); i++) {
        if (code_at(s, len, temporary_codes[i]))
            return false;
        char embedded[32];
        snprintf(embedded, sizeof embedded, "-%s ", temporary_codes[i]);
        if (strstr(s, embedded))
            return false;
    }
    return true;
}

/* At most one "over maxmemory" and one "refused for now" line per second and process (workers
 * share them): a Redis that refuses writes refuses every event. */
static _Atomic int64_t oom_logged_ms, refused_logged_ms;

static bool log_due(_Atomic int64_t *last_ms)
{
    int64_t now = dm_mono_ms(), last = atomic_load(last_ms);
    return now - last >= 1000 && atomic_compare_exchange_strong(last_ms, &last, now);
}

static void on_park(int err, redisReply *rep, void *arg)
{
    submit_ctx *s = arg;
    dm_join_cb cb = s->cb;
    void *cb_arg = s->arg;
    bool skewed = s->skewed;
    free(s);
    if (err != DM_OK) {
        cb(err, NULL, cb_arg);
        return;
    }
    char reply[200];
    if (rep->type == REDIS_REPLY_ERROR && is_oom(rep)) {
        /* Refused before the script ran (its shebang declares writes): the events are spooled
         * (or 503 with the spool full); the request's own log line says so. */
        dm_metrics_inc(DM_M_REDIS_OOM);
        if (log_due(&oom_logged_ms))
            dm_warn("redis over maxmemory: events refused", "reply=%s",
                    dm_log_quote(rep->str, rep->len, reply, sizeof reply));
        dm_join_result oom = {.oom = 1, .refused = 1};
        cb(DM_EREDIS, &oom, cb_arg);
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR && !is_script_error(rep)) {
        if (log_due(&refused_logged_ms))
            dm_warn("redis refused events for now; they are kept and tried again", "reply=%s",
                    dm_log_quote(rep->str, rep->len, reply, sizeof reply));
        dm_join_result refused = {.refused = 1};
        cb(DM_EREDIS, &refused, cb_arg);
        return;
    }
    if (rep->type != REDIS_REPLY_INTEGER) {
        dm_error("join script failed", "reply=%s",
                 dm_log_quote(rep->type == REDIS_REPLY_ERROR ? rep->str : "",
                              rep->type == REDIS_REPLY_ERROR ? rep->len : 0, reply, sizeof reply));
        cb(DM_EREDIS, NULL, cb_arg);
        return;
    }
    dm_join_result res = dm_join_park_result(rep->integer);
    res.skewed = skewed;
    if (res.routed > 0)
        dm_metrics_add(DM_M_FINDINGS_ROUTED, (uint64_t)res.routed);
    if (res.evicted > 0)
        dm_metrics_add(DM_M_ITEMS_EVICTED, (uint64_t)res.evicted);
    cb(DM_OK, &res, cb_arg);
}

bool dm_join_retryable(int err, const dm_join_result *res)
{
    return err == DM_EUNAVAIL || err == DM_ETIMEOUT || (err == DM_EREDIS && res && res->refused);
}

char *dm_join_route_key(char *buf, const dm_join_conf *conf, const char *digest)
{
    dm_key_out(buf, conf->prefix, dm_digest_shard(digest, conf->shards));
    return buf;
}

int dm_join_submit(dm_redis *r, const dm_join_conf *conf, const dm_event *ev, dm_join_cb cb,
                   void *arg)
{
    return dm_join_submit_at(r, conf, ev, 0, cb, arg);
}

void dm_join_conf_init(dm_join_conf *j, const dm_config *c)
{
    *j = (dm_join_conf){
        .prefix = c->redis.prefix,
        .shards = (unsigned)c->redis.shards,
        .window_ms = c->correlation.window_seconds * 1000,
        .grace_ms = c->correlation.grace_seconds * 1000,
        .max_skew_ms = c->correlation.max_clock_skew_seconds * 1000,
        .mapping_ttl_ms = c->correlation.mapping_ttl_seconds * 1000,
        .stream_maxlen = c->outputs.stream_maxlen,
        .report_untagged = c->correlation.report_untagged,
        .max_builds = c->limits.max_builds_per_digest,
        .max_locations = c->limits.max_locations_per_digest,
        .max_tags = c->limits.max_tags_per_location,
        .min_severity = c->routing.min_severity,
        .findings_ttl_ms = c->correlation.findings_ttl_seconds * 1000,
        .max_findings = c->limits.max_findings_per_digest,
    };
}

/* Parked hashes outlive their items' expiry (retention after arrival) so the sweeper can still
 * read an expired item and report it; the sweeper deletes each field it reports. The slack
 * only matters while no sweeper runs at all. */
static int64_t parked_hash_ttl_ms(int64_t retention_ms)
{
    return 2 * retention_ms + 3600000;
}

int dm_join_submit_at(dm_redis *r, const dm_join_conf *conf, const dm_event *ev, int64_t arrival_ms,
                      dm_join_cb cb, void *arg)
{
    /* The KEYS of park.lua, in its order. */
    char keys[5][DM_KEY_BUFLEN];
    char nums[3][24];
    const char *argv[5 + 6];
    size_t lens[5 + 6];
    const char *prefix = conf->prefix;
    char digest[DM_DIGEST_BUFLEN];
    memcpy(digest, ev->digest, DM_DIGEST_LEN);
    digest[DM_DIGEST_LEN] = '\0';
    unsigned shard = dm_digest_shard(digest, conf->shards);
    lens[0] = dm_key_pushes(keys[0], prefix, shard, digest);
    lens[1] = dm_key_builds(keys[1], prefix, shard, digest);
    lens[2] = dm_key_deletes(keys[2], prefix, shard, digest);
    lens[3] = dm_key_due(keys[3], prefix, shard);
    lens[4] = dm_key_stats(keys[4], prefix, shard);
    int n = (int)DM_ARRAY_LEN(keys);
    for (int i = 0; i < n; i++)
        argv[i] = keys[i];
    dm_park_args pa;
    dm_event_park_args(ev, conf->max_tags > 0 ? (size_t)conf->max_tags : 0, &pa);
    argv[n] = pa.kind;
    lens[n++] = 1;
    argv[n] = pa.field;
    lens[n++] = pa.field_len;
    argv[n] = pa.members;
    lens[n++] = pa.members_len;
    /* The arrival and now are this process's clock, not Redis's TIME (a call and two tonumber
     * in every park.lua call); an arrival in the future (a clock stepped back since it was
     * spooled) is now. The event time (none given: the arrival; further than max skew from
     * it: replaced by it) and the expiry (arrival + retention) are decided here too, and
     * passed as the text park.lua stores: no tonumber, no number formatting, no arithmetic in
     * the common call. Now is passed only when it is not the arrival (a replayed event): every
     * argument costs every call about a thousand instructions in Redis. */
    int64_t now = dm_now_ms();
    int64_t arrival = arrival_ms > 0 && arrival_ms < now ? arrival_ms : now;
    int64_t t = ev->event_time_ms > 0 ? ev->event_time_ms : arrival;
    bool skewed = t - arrival > conf->max_skew_ms || arrival - t > conf->max_skew_ms;
    if (skewed)
        t = arrival;
    long long vals[3] = {t, arrival + conf->window_ms + conf->grace_ms, now};
    size_t nvals = arrival == now ? 2 : 3;
    for (size_t i = 0; i < nvals; i++) {
        argv[n] = nums[i];
        lens[n++] = (size_t)(dm_put_uint(nums[i], (unsigned long long)vals[i]) - nums[i]);
    }
    submit_ctx *s = dm_xmalloc(sizeof *s);
    s->cb = cb;
    s->arg = arg;
    s->skewed = skewed;
    int rc = dm_redis_eval(r, DM_SCRIPT_PARK, on_park, s, (int)DM_ARRAY_LEN(keys), n, argv, lens);
    dm_park_args_dispose(&pa);
    if (rc != DM_OK)
        free(s);
    return rc;
}

/* park.lua's constants line (its header lists them), for @p j; malloc'd. */
static char *park_constants(const dm_join_conf *j)
{
    int64_t retention = j->window_ms + j->grace_ms;
    char findings[80] = "nil, nil, nil";
    if (j->findings_ttl_ms > 0)
        snprintf(findings, sizeof findings, "%d, %lld, %d", j->min_severity,
                 (long long)j->findings_ttl_ms, j->max_findings);
    char line[512];
    snprintf(line, sizeof line,
             "local RETENTION_MS, PARKED_TTL, WINDOW_MS, MAPPING_TTL, MAPPING_TTL_MS, "
             "MAX_BUILDS, MAX_LOCATIONS, MAX_TAGS, MIN_RANK, FINDINGS_TTL_MS, MAX_FINDINGS = "
             "%lld, '%lld', %lld, '%lld', %lld, %d, %d, %d, %s\n",
             (long long)retention, (long long)parked_hash_ttl_ms(retention),
             (long long)j->window_ms, (long long)j->mapping_ttl_ms, (long long)j->mapping_ttl_ms,
             j->max_builds, j->max_locations, j->max_tags, findings);
    return dm_xstrdup(line);
}

/* One list of sources per distinct constants line. */
typedef struct script_set {
    char *constants;
    const char *sources[DM_SCRIPT_COUNT];
    struct script_set *next;
} script_set;

const char *const *dm_join_scripts(const dm_join_conf *j)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static script_set *sets; /* kept for the process's life: connections borrow them */
    char *constants = park_constants(j);
    pthread_mutex_lock(&lock);
    script_set *set = sets;
    while (set && strcmp(set->constants, constants) != 0)
        set = set->next;
    if (set) {
        free(constants);
    } else {
        set = dm_xcalloc(1, sizeof *set);
        set->constants = constants;
        const char *const *base = dm_scripts();
        for (unsigned i = 0; i < DM_SCRIPT_COUNT; i++)
            set->sources[i] = base[i];
        /* After the shebang (Redis reads the flags from the first line only), before the
         * preludes and the script. */
        const char *park = base[DM_SCRIPT_PARK];
        const char *nl = strncmp(park, "#!", 2) == 0 ? strchr(park, '\n') : NULL;
        size_t head = nl ? (size_t)(nl + 1 - park) : 0;
        size_t clen = strlen(constants), rest = strlen(park + head);
        char *src = dm_xmalloc(head + clen + rest + 1);
        memcpy(src, park, head);
        memcpy(src + head, constants, clen);
        memcpy(src + head + clen, park + head, rest + 1);
        set->sources[DM_SCRIPT_PARK] = src;
        set->next = sets;
        sets = set;
    }
    pthread_mutex_unlock(&lock);
    return set->sources;
}
