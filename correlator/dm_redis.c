#include "dm_common.h"
#include "dm_redis.h"
#include "dm_log.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
/* The only file that includes the adapter: its functions are static. */
#include <hiredis/adapters/libevent.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef enum {
    ST_IDLE = 0,   /**< no connection; a reconnect timer is pending */
    ST_CONNECTING, /**< TCP/unix connect, AUTH, SELECT and SCRIPT LOAD under way */
    ST_READY,      /**< commands are accepted */
    ST_BROKEN,     /**< the connection failed; waiting for hiredis to report and free it */
    ST_CLOSED,     /**< dm_redis_free was called */
} conn_state;

struct dm_redis {
    struct event_base *base;
    redisAsyncContext *ac; /**< NULL when not connected; ac->data points back here */
    conn_state state;
    char *host, *unix_path, *username, *password, *name;
    int port, db, connect_timeout_ms, command_timeout_ms, max_inflight;
    /* What is loaded of each script: the source, or (Redis < 7, which has no script flags and
     * fails on the shebang line: SCRIPT LOAD answers an error) the source after that line. */
    const char **srcs;
    char (*shas)[41];
    size_t nscripts, scripts_loaded;
    size_t inflight;
    int backoff_ms;
    unsigned seed;   /**< for backoff jitter (rand() is not thread-safe) */
    bool timing_out; /**< set while a command deadline tears the connection down */
    struct event *reconnect_timer, *connect_timer, *teardown_ev;
    void (*on_ready)(bool ready, void *arg);
    void *on_ready_arg;
    bool reported_ready; /**< last readiness passed to on_ready */
    const char *teardown_why;
    /* dm_redis_free may be called from inside one of the client's own callbacks (a reply
     * completes the last request of a draining worker, which frees the client), while hiredis
     * still holds commands whose privdata points here and while our own code (teardown, the
     * reply dispatch) still has to run on return. Like hiredis's REDIS_IN_CALLBACK, the memory
     * then stays until the outermost entry point returns and every command has completed. */
    int busy;          /**< our entry points (hiredis callbacks, timers) running right now */
    bool free_pending; /**< dm_redis_free ran: destroy once !busy && !inflight */
};

/* One command in flight: owns its deadline timer and, for EVALSHA, a copy of its arguments so
 * that a NOSCRIPT answer can be retried as EVAL. */
typedef struct cmd {
    dm_redis *r;
    dm_redis_cb cb;
    void *arg;
    struct event *timer;
    long script; /**< -1 unless EVALSHA */
    int argc;
    char **argv;
    size_t *lens;
    bool retried;
} cmd;

static void connect_now(dm_redis *r);
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);
static void destroy(dm_redis *r);
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* Every entry point from the event loop or hiredis brackets its work with enter/leave; the
 * memory is released by the leave that finds the client freed, idle and empty. Nothing may
 * touch @p r after leave. */
static void enter(dm_redis *r)
{
    r->busy++;
}

static void leave(dm_redis *r)
{
    if (--r->busy == 0 && r->free_pending && r->inflight == 0)
        destroy(r);
}

/*---------------------------------------------------------------- connection state ---*/

static void report(dm_redis *r, bool ready)
{
    if (r->reported_ready == ready)
        return;
    r->reported_ready = ready;
    if (r->on_ready)
        r->on_ready(ready, r->on_ready_arg);
}

static void schedule_reconnect(dm_redis *r)
{
    if (r->state == ST_CLOSED)
        return;
    report(r, false);
    r->state = ST_IDLE;
    int jitter = rand_r(&r->seed) % (r->backoff_ms / 4 + 1);
    struct timeval tv = {(r->backoff_ms + jitter) / 1000, ((r->backoff_ms + jitter) % 1000) * 1000};
    evtimer_add(r->reconnect_timer, &tv);
    r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

/* Free the context now. Never called from inside a hiredis callback (0.14 does not guard its
 * connect/disconnect callbacks), only from our own timers and dm_redis_free. */
static void teardown(dm_redis *r, const char *why)
{
    evtimer_del(r->connect_timer);
    redisAsyncContext *ac = r->ac;
    if (ac) {
        dm_warn("redis connection closed", "conn=%s reason=\"%s\"", r->name, why);
        r->ac = NULL;
        ac->data = NULL;
        if (r->state != ST_CLOSED)
            r->state = ST_BROKEN;
        redisAsyncFree(ac); /* runs every pending callback with a NULL reply */
    }
    schedule_reconnect(r);
}

static void on_teardown_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_redis *r = arg;
    enter(r);
    teardown(r, r->teardown_why ? r->teardown_why : "error");
    leave(r);
}

/* Ask for a teardown from inside a hiredis callback: it runs on the next loop iteration. */
static void defer_teardown(dm_redis *r, const char *why)
{
    r->teardown_why = why;
    if (r->state != ST_CLOSED)
        r->state = ST_BROKEN;
    event_active(r->teardown_ev, EV_TIMEOUT, 0);
}

static void on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_redis *r = arg;
    enter(r);
    connect_now(r);
    leave(r);
}

static void on_connect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_redis *r = arg;
    enter(r);
    if (r->state == ST_CONNECTING)
        teardown(r, "connect timeout");
    leave(r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    dm_redis *r = ac->data;
    if (!r)
        return;
    if (status != REDIS_OK) {
        enter(r);
        /* hiredis frees the context right after this callback returns. */
        dm_warn("redis connect failed", "conn=%s reason=\"%s\"", r->name, ac->errstr);
        ((redisAsyncContext *)ac)->data = NULL;
        r->ac = NULL;
        evtimer_del(r->connect_timer);
        schedule_reconnect(r);
        leave(r);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    dm_redis *r = ac->data;
    if (!r)
        return;
    enter(r);
    dm_warn("redis disconnected", "conn=%s reason=\"%s\"", r->name,
            status == REDIS_OK ? "closed" : ac->errstr);
    ((redisAsyncContext *)ac)->data = NULL;
    r->ac = NULL;
    evtimer_del(r->connect_timer);
    schedule_reconnect(r);
    leave(r);
}

/* Replies to the connection set-up commands (AUTH, SELECT, SCRIPT LOAD). */
static void setup_reply(dm_redis *r, redisReply *rep, void *privdata)
{
    const char *nl;
    if (rep->type == REDIS_REPLY_ERROR && privdata != NULL) {
        size_t i = (size_t)((char(*)[41])privdata - r->shas);
        if (strncmp(r->srcs[i], "#!", 2) == 0 && (nl = strchr(r->srcs[i], '\n')) != NULL) {
            /* A Redis before 7.0 compiles the flags line as Lua. Without it the script runs
             * as scripts always did there: over maxmemory, its first write that needs memory
             * fails (park.lua makes that its first write). */
            char reply[160];
            dm_warn("redis refused a script's flags line; loading it without",
                    "conn=%s reply=%s note=\"Redis < 7.0 has no script flags\"", r->name,
                    dm_log_quote(rep->str, rep->len, reply, sizeof reply));
            r->srcs[i] = nl + 1;
            redisAsyncCommand(r->ac, on_setup_reply, r->shas[i], "SCRIPT LOAD %s", r->srcs[i]);
            return;
        }
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        char reply[200];
        dm_error("redis setup failed", "conn=%s reply=%s", r->name,
                 dm_log_quote(rep->str, rep->len, reply, sizeof reply));
        defer_teardown(r, "setup command failed");
        return;
    }
    if (privdata == NULL)
        return; /* AUTH or SELECT */
    size_t i = (size_t)((char(*)[41])privdata - r->shas);
    if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        defer_teardown(r, "unexpected SCRIPT LOAD reply");
        return;
    }
    memcpy(r->shas[i], rep->str, 40);
    r->shas[i][40] = '\0';
    if (++r->scripts_loaded == r->nscripts && r->state == ST_CONNECTING) {
        evtimer_del(r->connect_timer);
        r->state = ST_READY;
        r->backoff_ms = BACKOFF_MIN_MS;
        dm_info("redis ready", "conn=%s", r->name);
        report(r, true);
    }
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    dm_redis *r = ac->data;
    if (!r || r->ac != ac || !reply)
        return; /* the connection is already gone; its owner is reconnecting */
    enter(r);
    setup_reply(r, reply, privdata);
    leave(r);
}

static void connect_now(dm_redis *r)
{
    if (r->state == ST_CLOSED)
        return;
    redisAsyncContext *ac =
        r->unix_path ? redisAsyncConnectUnix(r->unix_path) : redisAsyncConnect(r->host, r->port);
    if (!ac) {
        dm_error("redis connect failed", "conn=%s reason=\"out of memory\"", r->name);
        schedule_reconnect(r);
        return;
    }
    if (ac->err) {
        dm_warn("redis connect failed", "conn=%s reason=\"%s\"", r->name, ac->errstr);
        redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    ac->data = r;
    r->ac = ac;
    r->state = ST_CONNECTING;
    r->scripts_loaded = 0;
    redisLibeventAttach(ac, r->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    struct timeval tv = {r->connect_timeout_ms / 1000, (r->connect_timeout_ms % 1000) * 1000};
    evtimer_add(r->connect_timer, &tv);

    /* Pipelined behind the connect: hiredis sends them once the socket is up. */
    if (r->password && r->username)
        redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s %s", r->username, r->password);
    else if (r->password)
        redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", r->password);
    if (r->db)
        redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", r->db);
    for (size_t i = 0; i < r->nscripts; i++)
        redisAsyncCommand(ac, on_setup_reply, r->shas[i], "SCRIPT LOAD %s", r->srcs[i]);
    if (r->nscripts == 0) {
        /* Nothing to load: ready as soon as a PING comes back. */
        redisAsyncCommand(ac, on_setup_reply, NULL, "PING");
        r->state = ST_READY;
        report(r, true);
    }
}

/*---------------------------------------------------------------- commands ---*/

static void cmd_free(cmd *c)
{
    if (c->timer)
        event_free(c->timer);
    if (c->argv) {
        for (int i = 0; i < c->argc; i++)
            free(c->argv[i]);
        free(c->argv);
        free(c->lens);
    }
    free(c);
}

static void cmd_finish(cmd *c, int err, redisReply *reply)
{
    dm_redis *r = c->r;
    r->inflight--;
    dm_redis_cb cb = c->cb;
    void *arg = c->arg;
    cmd_free(c);
    cb(err, reply, arg);
}

static void on_cmd_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    cmd *c = arg;
    dm_redis *r = c->r;
    enter(r);
    r->timing_out = true;
    teardown(r, "command timeout"); /* finishes c and everything queued behind it */
    r->timing_out = false;
    leave(r);
}

static int send_cmd(dm_redis *r, cmd *c, int argc, const char **argv, const size_t *lens)
{
    if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, lens) != REDIS_OK)
        return DM_EUNAVAIL;
    return DM_OK;
}

static void handle_reply(dm_redis *r, cmd *c, redisReply *rep)
{
    if (!rep) {
        /* The connection is going away; refuse new commands until it is rebuilt. */
        if (r->state == ST_READY || r->state == ST_CONNECTING) {
            r->state = ST_BROKEN;
            report(r, false);
        }
        cmd_finish(c, r->timing_out ? DM_ETIMEOUT : DM_EUNAVAIL, NULL);
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR && c->script >= 0 && !c->retried &&
        strncmp(rep->str, "NOSCRIPT", 8) == 0 && r->ac) {
        /* Redis lost its script cache (restart, SCRIPT FLUSH): EVAL loads it again. */
        c->retried = true;
        free(c->argv[0]);
        free(c->argv[1]);
        c->argv[0] = dm_xstrdup("EVAL");
        c->lens[0] = 4;
        c->argv[1] = dm_xstrdup(r->srcs[c->script]);
        c->lens[1] = strlen(c->argv[1]);
        if (send_cmd(r, c, c->argc, (const char **)c->argv, c->lens) == DM_OK)
            return;
        cmd_finish(c, DM_EUNAVAIL, NULL);
        return;
    }
    cmd_finish(c, DM_OK, rep);
}

/* Every command's completion: c->r stays valid through it even if the callback frees the
 * client (hiredis then fails the commands queued behind, each through here). */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    cmd *c = privdata;
    dm_redis *r = c->r;
    enter(r);
    handle_reply(r, c, reply);
    leave(r);
}

static int check_can_send(const dm_redis *r)
{
    if (!r || r->state != ST_READY || !r->ac)
        return DM_EUNAVAIL;
    if (r->inflight >= (size_t)r->max_inflight)
        return DM_EBUSY;
    return DM_OK;
}

static cmd *cmd_new(dm_redis *r, dm_redis_cb cb, void *arg)
{
    cmd *c = dm_xcalloc(1, sizeof *c);
    c->r = r;
    c->cb = cb;
    c->arg = arg;
    c->script = -1;
    c->timer = evtimer_new(r->base, on_cmd_timeout, c);
    if (!c->timer) {
        free(c);
        return NULL;
    }
    struct timeval tv = {r->command_timeout_ms / 1000, (r->command_timeout_ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
    return c;
}

int dm_redis_command(dm_redis *r, const char *route, dm_redis_cb cb, void *arg, int argc,
                     const char **argv, const size_t *lens)
{
    (void)route; /* one server: every key is served here */
    int rc = check_can_send(r);
    if (rc != DM_OK)
        return rc;
    cmd *c = cmd_new(r, cb, arg);
    if (!c)
        return DM_ENOMEM;
    if (send_cmd(r, c, argc, argv, lens) != DM_OK) {
        cmd_free(c);
        return DM_EUNAVAIL;
    }
    r->inflight++;
    return DM_OK;
}

int dm_redis_eval(dm_redis *r, size_t script, dm_redis_cb cb, void *arg, int nkeys, int argc,
                  const char **argv, const size_t *lens)
{
    int rc = check_can_send(r);
    if (rc != DM_OK)
        return rc;
    if (script >= r->nscripts || nkeys < 0 || nkeys > argc)
        return DM_EINVAL;
    cmd *c = cmd_new(r, cb, arg);
    if (!c)
        return DM_ENOMEM;
    char nk[16];
    int nklen = snprintf(nk, sizeof nk, "%d", nkeys);
    c->script = (long)script;
    c->argc = argc + 3;
    c->argv = dm_xcalloc((size_t)c->argc, sizeof *c->argv);
    c->lens = dm_xcalloc((size_t)c->argc, sizeof *c->lens);
    c->argv[0] = dm_xstrdup("EVALSHA");
    c->lens[0] = 7;
    c->argv[1] = dm_xstrndup(r->shas[script], 40);
    c->lens[1] = 40;
    c->argv[2] = dm_xstrndup(nk, (size_t)nklen);
    c->lens[2] = (size_t)nklen;
    for (int i = 0; i < argc; i++) {
        c->argv[i + 3] = dm_xstrndup(argv[i], lens[i]);
        c->lens[i + 3] = lens[i];
    }
    if (send_cmd(r, c, c->argc, (const char **)c->argv, c->lens) != DM_OK) {
        cmd_free(c);
        return DM_EUNAVAIL;
    }
    r->inflight++;
    return DM_OK;
}

/*---------------------------------------------------------------- lifecycle ---*/

dm_redis *dm_redis_new(struct event_base *base, const dm_redis_opts *opts)
{
    dm_redis *r = dm_xcalloc(1, sizeof *r);
    r->base = base;
    r->host = opts->host ? dm_xstrdup(opts->host) : NULL;
    r->unix_path = opts->unix_path ? dm_xstrdup(opts->unix_path) : NULL;
    r->username = opts->username ? dm_xstrdup(opts->username) : NULL;
    r->password = opts->password ? dm_xstrdup(opts->password) : NULL;
    r->name = dm_xstrdup(opts->name ? opts->name : "redis");
    r->port = opts->port;
    r->db = opts->db;
    r->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 2000;
    r->command_timeout_ms = opts->command_timeout_ms > 0 ? opts->command_timeout_ms : 2000;
    r->max_inflight = opts->max_inflight > 0 ? opts->max_inflight : 1000;
    r->nscripts = opts->nscripts;
    r->shas = dm_xcalloc(opts->nscripts ? opts->nscripts : 1, sizeof *r->shas);
    r->srcs = dm_xcalloc(opts->nscripts ? opts->nscripts : 1, sizeof *r->srcs);
    for (size_t i = 0; i < opts->nscripts; i++)
        r->srcs[i] = opts->scripts[i];
    r->backoff_ms = BACKOFF_MIN_MS;
    r->on_ready = opts->on_ready;
    r->on_ready_arg = opts->on_ready_arg;
    r->seed = (unsigned)(uintptr_t)r ^ (unsigned)time(NULL);
    r->reconnect_timer = evtimer_new(base, on_reconnect_timer, r);
    r->connect_timer = evtimer_new(base, on_connect_timer, r);
    r->teardown_ev = event_new(base, -1, 0, on_teardown_ev, r);
    if (!r->reconnect_timer || !r->connect_timer || !r->teardown_ev) {
        dm_redis_free(r);
        return NULL;
    }
    connect_now(r);
    return r;
}

static void destroy(dm_redis *r)
{
    if (r->reconnect_timer)
        event_free(r->reconnect_timer);
    if (r->connect_timer)
        event_free(r->connect_timer);
    if (r->teardown_ev)
        event_free(r->teardown_ev);
    if (r->password)
        memset(r->password, 0, strlen(r->password));
    free(r->host);
    free(r->unix_path);
    free(r->password);
    free(r->username);
    free(r->name);
    free(r->shas);
    free(r->srcs);
    free(r);
}

void dm_redis_free(dm_redis *r)
{
    if (!r || r->free_pending)
        return;
    r->free_pending = true;
    r->state = ST_CLOSED;
    enter(r);
    if (r->reconnect_timer)
        evtimer_del(r->reconnect_timer);
    if (r->connect_timer)
        evtimer_del(r->connect_timer);
    if (r->teardown_ev)
        event_del(r->teardown_ev);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        ac->data = NULL;
        /* Fails every pending command through on_reply, now or (inside one of this
         * context's callbacks) as soon as that callback returns. */
        redisAsyncFree(ac);
    }
    leave(r);
}

void dm_redis_kick(dm_redis *r)
{
    if (r && r->state == ST_IDLE && evtimer_pending(r->reconnect_timer, NULL)) {
        enter(r);
        evtimer_del(r->reconnect_timer);
        connect_now(r);
        leave(r);
    }
}

bool dm_redis_ready(const dm_redis *r)
{
    return r && r->state == ST_READY;
}

size_t dm_redis_inflight(const dm_redis *r)
{
    return r ? r->inflight : 0;
}

size_t dm_redis_room(const dm_redis *r)
{
    if (!r || r->state != ST_READY || r->inflight >= (size_t)r->max_inflight)
        return 0;
    return (size_t)r->max_inflight - r->inflight;
}
