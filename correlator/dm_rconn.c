/* dm_rconn.c - see dm_rconn.h. */
#include "dm_common.h"
#include "dm_rconn.h"
#include "dm_resp.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_time.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef enum {
    ST_IDLE = 0,   /**< no connection; a reconnect timer is pending */
    ST_RESOLVING,  /**< the host name is being resolved */
    ST_CONNECTING, /**< TCP/unix connect, AUTH, SELECT and SCRIPT LOAD under way */
    ST_READY,      /**< commands are accepted */
    ST_BROKEN,     /**< the connection failed; waiting for hiredis to report and free it */
    ST_CLOSED,     /**< dm_rconn_free was called */
} conn_state;

struct dm_rconn_dns {
    /** NULL once the owner let go with lookups in flight: freed then (see release). */
    struct evdns_base *evdns;
    int refs;      /**< the owner's, and one per lookup in flight */
    int cancelled; /**< lookups cancelled whose report has not come yet */
};

/* One lookup in flight. It outlives its connection when that gives up on it: libevent reports
 * later, and that report must find the ticket (c NULL) and the resolver record. */
typedef struct lookup {
    dm_rconn *c; /**< NULL once the connection gave up on it */
    dm_rconn_dns *dns;
    struct evdns_getaddrinfo_request *req;
    bool cancelled; /**< evdns_getaddrinfo_cancel ran: its report reads the evdns_base */
} lookup;

struct dm_rconn {
    struct event_base *base;
    redisAsyncContext *ac; /**< NULL when not connected; ac->data points back here */
    conn_state state;
    char *host, *unix_path, *username, *password, *name;
    char addr[INET6_ADDRSTRLEN]; /**< what the host name resolved to last */
    int port, db, connect_timeout_ms;
    dm_rconn_dns *dns;
    lookup *lookup;
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
    /* The commands queued in one loop turn leave together at its end (see flush). */
    struct event *flush_ev;
    bool flush_pending;
    void (*on_state)(dm_rconn *c, bool ready, void *arg);
    void *arg;
    bool reported_ready;       /**< last readiness passed to on_state */
    bool clock_known;          /**< this connection's TIME was answered: clock_offset_ms holds */
    long long clock_offset_ms; /**< our clock minus Redis's, measured at connect */
    const char *teardown_why;
    /* dm_rconn_free may be called from inside one of the connection's own callbacks (a reply
     * completes the last request of a draining worker, which frees the client), while hiredis
     * still holds commands whose privdata points here and while our own code (teardown, the
     * reply dispatch) still has to run on return. Like hiredis's REDIS_IN_CALLBACK, the memory
     * then stays until the outermost entry point returns and every command has completed. */
    int busy;          /**< our entry points (hiredis callbacks, timers) running right now */
    bool free_pending; /**< dm_rconn_free ran: destroy once !busy && !inflight */
};

/*---------------------------------------------------------------- the event adapter ---*/

/* hiredis's libevent adapter (hiredis/adapters/libevent.h), with a persistent read event:
 * hiredis asks for reads again after every read and every write, and adding back a one-shot
 * event that has just fired costs an epoll_ctl each time (libevent's change list cannot tell
 * that nothing changed). Adding what is already added, or removing what is not, does nothing
 * here. */
typedef struct rc_events {
    redisAsyncContext *ac;
    struct event *rev, *wev; /**< rev persists; wev fires once per write hiredis asks for */
    bool reading, writing;
} rc_events;

static void rc_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    rc_events *e = arg;
    redisAsyncHandleRead(e->ac);
}

static void rc_on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    rc_events *e = arg;
    e->writing = false; /* fired: no longer added */
    redisAsyncHandleWrite(e->ac);
}

static void rc_add_read(void *p)
{
    rc_events *e = p;
    if (!e->reading) {
        e->reading = true;
        event_add(e->rev, NULL);
    }
}

static void rc_del_read(void *p)
{
    rc_events *e = p;
    if (e->reading) {
        e->reading = false;
        event_del(e->rev);
    }
}

static void rc_add_write(void *p)
{
    rc_events *e = p;
    if (!e->writing) {
        e->writing = true;
        event_add(e->wev, NULL);
    }
}

static void rc_del_write(void *p)
{
    rc_events *e = p;
    if (e->writing) {
        e->writing = false;
        event_del(e->wev);
    }
}

static void rc_cleanup(void *p)
{
    rc_events *e = p;
    event_free(e->rev);
    event_free(e->wev);
    free(e);
}

static int rc_attach(redisAsyncContext *ac, struct event_base *base)
{
    if (ac->ev.data)
        return REDIS_ERR;
    rc_events *e = dm_xcalloc(1, sizeof *e);
    e->ac = ac;
    e->rev = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, rc_on_read, e);
    e->wev = event_new(base, ac->c.fd, EV_WRITE, rc_on_write, e);
    if (!e->rev || !e->wev)
        abort(); /* out of memory: as dm_xmalloc */
    ac->ev.addRead = rc_add_read;
    ac->ev.delRead = rc_del_read;
    ac->ev.addWrite = rc_add_write;
    ac->ev.delWrite = rc_del_write;
    ac->ev.cleanup = rc_cleanup;
    ac->ev.data = e;
    rc_add_read(e);
    rc_add_write(e); /* writable: the connect completed */
    return REDIS_OK;
}

static void connect_now(dm_rconn *c);
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);
static void destroy(dm_rconn *c);
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* Every entry point from the event loop or hiredis brackets its work with enter/leave; the
 * memory is released by the leave that finds the connection freed, idle and empty. Nothing
 * may touch @p c after leave. */
static void enter(dm_rconn *c)
{
    c->busy++;
}

static void leave(dm_rconn *c)
{
    if (--c->busy == 0 && c->free_pending && c->inflight == 0)
        destroy(c);
}

/*---------------------------------------------------------------- resolver ---*/

dm_rconn_dns *dm_rconn_dns_new(struct event_base *base)
{
    dm_rconn_dns *d = dm_xcalloc(1, sizeof *d);
    /* Inactive between lookups: no socket, no timer, so one per client costs nothing. */
    d->evdns =
        evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!d->evdns) {
        dm_error("cannot set up the DNS resolver", "reason=\"evdns_base_new failed\"");
        free(d);
        return NULL;
    }
    d->refs = 1;
    return d;
}

static void dns_unref(dm_rconn_dns *d)
{
    if (--d->refs == 0) {
        if (d->evdns)
            evdns_base_free(d->evdns, 0);
        free(d);
    }
}

void dm_rconn_dns_release(dm_rconn_dns *d)
{
    if (!d)
        return;
    /* Lookups still in flight (their connections let go of them, uncancelled): in libevent
     * 2.1.12 evdns_base_free(.., 1) fails them with DNS_ERR_SHUTDOWN, a report that no longer
     * reads the evdns_base, so the resolver and its UDP socket go now instead of at the last
     * report, which never comes when the event_base is freed next (a worker's shutdown). A
     * cancelled lookup's report (DNS_ERR_CANCEL) does read it: then it waits for that. Each
     * report is deferred to the next loop pass, which frees the lookup's records. */
    if (d->refs > 1 && d->cancelled == 0 && d->evdns) {
        struct evdns_base *e = d->evdns;
        d->evdns = NULL;
        evdns_base_free(e, 1);
    }
    dns_unref(d);
}

bool dm_rconn_is_name(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return host && evutil_inet_pton(AF_INET, host, buf) != 1 &&
           evutil_inet_pton(AF_INET6, host, buf) != 1;
}

/* Give up on the lookup in flight, if any: its report finds no connection. @p cancel stops it
 * (a connection that tries again); a closing connection leaves it to finish, or to fail when
 * its owner releases the resolver. */
static void drop_lookup(dm_rconn *c, bool cancel)
{
    lookup *lk = c->lookup;
    if (!lk)
        return;
    c->lookup = NULL;
    lk->c = NULL;
    if (cancel && lk->req && lk->dns->evdns) {
        lk->cancelled = true;
        lk->dns->cancelled++;
        evdns_getaddrinfo_cancel(lk->req);
    }
}

/*---------------------------------------------------------------- connection state ---*/

static void report(dm_rconn *c, bool ready)
{
    if (c->reported_ready == ready)
        return;
    c->reported_ready = ready;
    if (c->on_state && c->state != ST_CLOSED)
        c->on_state(c, ready, c->arg);
}

static void schedule_reconnect(dm_rconn *c)
{
    if (c->state == ST_CLOSED)
        return;
    c->state = ST_IDLE;
    int jitter = rand_r(&c->seed) % (c->backoff_ms / 4 + 1);
    struct timeval tv = {(c->backoff_ms + jitter) / 1000, ((c->backoff_ms + jitter) % 1000) * 1000};
    evtimer_add(c->reconnect_timer, &tv);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    report(c, false);
}

/* Free the context now. Never called from inside a hiredis callback (0.14 does not guard its
 * connect/disconnect callbacks), only from our own timers and dm_rconn_free. */
static void teardown(dm_rconn *c, const char *why)
{
    evtimer_del(c->connect_timer);
    drop_lookup(c, true);
    redisAsyncContext *ac = c->ac;
    if (ac) {
        dm_warn("redis connection closed", "conn=%s reason=\"%s\"", c->name, why);
        c->ac = NULL;
        ac->data = NULL;
        if (c->state != ST_CLOSED)
            c->state = ST_BROKEN;
        redisAsyncFree(ac); /* runs every pending callback with a NULL reply */
    }
    schedule_reconnect(c);
}

static void on_teardown_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_rconn *c = arg;
    enter(c);
    teardown(c, c->teardown_why ? c->teardown_why : "error");
    leave(c);
}

/* Ask for a teardown from inside a hiredis callback: it runs on the next loop iteration. */
static void defer_teardown(dm_rconn *c, const char *why)
{
    c->teardown_why = why;
    if (c->state != ST_CLOSED)
        c->state = ST_BROKEN;
    event_active(c->teardown_ev, EV_TIMEOUT, 0);
}

static void on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_rconn *c = arg;
    enter(c);
    connect_now(c);
    leave(c);
}

static void on_connect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_rconn *c = arg;
    enter(c);
    if (c->state == ST_RESOLVING) {
        char hb[300];
        dm_warn("redis host name not resolved", "conn=%s host=%s reason=\"timeout\"", c->name,
                dm_log_quote_str(c->host, hb, sizeof hb));
        dm_metrics_redis_event(DM_RE_DNS_FAILURE);
        drop_lookup(c, true);
        schedule_reconnect(c);
    } else if (c->state == ST_CONNECTING) {
        teardown(c, "connect timeout");
    }
    leave(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    dm_rconn *c = ac->data;
    if (!c)
        return;
    if (status != REDIS_OK) {
        enter(c);
        /* hiredis frees the context right after this callback returns. */
        dm_warn("redis connect failed", "conn=%s reason=\"%s\"", c->name, ac->errstr);
        ((redisAsyncContext *)ac)->data = NULL;
        c->ac = NULL;
        evtimer_del(c->connect_timer);
        schedule_reconnect(c);
        leave(c);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    dm_rconn *c = ac->data;
    if (!c)
        return;
    enter(c);
    dm_warn("redis disconnected", "conn=%s reason=\"%s\"", c->name,
            status == REDIS_OK ? "closed" : ac->errstr);
    ((redisAsyncContext *)ac)->data = NULL;
    c->ac = NULL;
    evtimer_del(c->connect_timer);
    schedule_reconnect(c);
    leave(c);
}

/* Replies to the connection set-up commands (AUTH, SELECT, SCRIPT LOAD). */
static void setup_reply(dm_rconn *c, redisReply *rep, void *privdata)
{
    const char *nl;
    if (rep->type == REDIS_REPLY_ERROR && privdata != NULL) {
        size_t i = (size_t)((char(*)[41])privdata - c->shas);
        if (strncmp(c->srcs[i], "#!", 2) == 0 && (nl = strchr(c->srcs[i], '\n')) != NULL) {
            /* A Redis before 7.0 compiles the flags line as Lua. Without it the script runs
             * as scripts always did there: over maxmemory, its first write that needs memory
             * fails (park.lua makes that its first write). */
            char reply[160];
            dm_warn("redis refused a script's flags line; loading it without",
                    "conn=%s reply=%s note=\"Redis < 7.0 has no script flags\"", c->name,
                    dm_log_quote(rep->str, rep->len, reply, sizeof reply));
            c->srcs[i] = nl + 1;
            redisAsyncCommand(c->ac, on_setup_reply, c->shas[i], "SCRIPT LOAD %s", c->srcs[i]);
            return;
        }
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        char reply[200];
        dm_error("redis setup failed", "conn=%s reply=%s", c->name,
                 dm_log_quote(rep->str, rep->len, reply, sizeof reply));
        defer_teardown(c, "setup command failed");
        return;
    }
    if (privdata == NULL)
        return; /* AUTH or SELECT */
    size_t i = (size_t)((char(*)[41])privdata - c->shas);
    if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        defer_teardown(c, "unexpected SCRIPT LOAD reply");
        return;
    }
    memcpy(c->shas[i], rep->str, 40);
    c->shas[i][40] = '\0';
    if (++c->scripts_loaded == c->nscripts && c->state == ST_CONNECTING) {
        evtimer_del(c->connect_timer);
        c->state = ST_READY;
        c->backoff_ms = BACKOFF_MIN_MS;
        if (c->clock_known) /* TIME went before the scripts: its answer came first */
            dm_info("redis ready", "conn=%s clock_offset_ms=%lld", c->name, c->clock_offset_ms);
        else
            dm_info("redis ready", "conn=%s", c->name);
        report(c, true);
    }
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    dm_rconn *c = ac->data;
    if (!c || c->ac != ac || !reply)
        return; /* the connection is already gone; its owner is reconnecting */
    enter(c);
    setup_reply(c, reply, privdata);
    leave(c);
}

/* Redis's TIME at connect, against our clock: park.lua takes an event's arrival from our clock
 * while the sweeper and the queries judge expiry by Redis's (docs/park-path.md "Whose clock"),
 * so a difference beyond a second is said once per connection and shown as a gauge. The reply
 * comes a round trip after the command left: the offset is exact to within that. */
#define CLOCK_WARN_MS 1000

static void on_time_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    dm_rconn *c = ac->data;
    redisReply *rep = reply;
    if (!c || c->ac != ac || !rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING)
        return; /* gone, or a proxy without TIME: nothing to compare */
    long long sec = strtoll(rep->element[0]->str, NULL, 10);
    long long usec = strtoll(rep->element[1]->str, NULL, 10);
    int64_t offset = dm_now_ms() - (int64_t)(sec * 1000 + usec / 1000);
    c->clock_offset_ms = (long long)offset;
    c->clock_known = true;
    dm_metrics_set(DM_G_REDIS_CLOCK_OFFSET_MS, offset);
    if (offset > CLOCK_WARN_MS || offset < -CLOCK_WARN_MS)
        dm_warn("digestmapd's clock and redis's differ", "conn=%s offset_ms=%lld note=\"%s\"",
                c->name, (long long)offset,
                "synchronise both (NTP): arrivals are judged by this clock, expiry by redis's");
}

/* Connect to @p host (an IP literal) or the unix socket, and pipeline the set-up behind. */
static void start_connect(dm_rconn *c, const char *host)
{
    redisAsyncContext *ac =
        c->unix_path ? redisAsyncConnectUnix(c->unix_path) : redisAsyncConnect(host, c->port);
    if (!ac) {
        dm_error("redis connect failed", "conn=%s reason=\"out of memory\"", c->name);
        evtimer_del(c->connect_timer);
        schedule_reconnect(c);
        return;
    }
    if (ac->err) {
        dm_warn("redis connect failed", "conn=%s reason=\"%s\"", c->name, ac->errstr);
        redisAsyncFree(ac);
        evtimer_del(c->connect_timer);
        schedule_reconnect(c);
        return;
    }
    ac->data = c;
    dm_resp_bound(ac->c.reader);
    c->ac = ac;
    c->state = ST_CONNECTING;
    c->scripts_loaded = 0;
    c->clock_known = false;
    rc_attach(ac, c->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);

    /* Pipelined behind the connect: hiredis sends them once the socket is up. */
    if (c->password && c->username)
        redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s %s", c->username, c->password);
    else if (c->password)
        redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", c->password);
    if (c->db)
        redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", c->db);
    redisAsyncCommand(ac, on_time_reply, NULL, "TIME");
    for (size_t i = 0; i < c->nscripts; i++)
        redisAsyncCommand(ac, on_setup_reply, c->shas[i], "SCRIPT LOAD %s", c->srcs[i]);
    if (c->nscripts == 0) {
        /* Nothing to load: ready as soon as a PING comes back. */
        redisAsyncCommand(ac, on_setup_reply, NULL, "PING");
        evtimer_del(c->connect_timer);
        c->state = ST_READY;
        report(c, true);
    }
}

static void resolved(dm_rconn *c, int err, struct evutil_addrinfo *res)
{
    char hb[300];
    if (c->state != ST_RESOLVING)
        return;
    /* IPv4 first: a Redis bound to 127.0.0.1 is common, and "localhost" may list ::1 first. */
    const struct evutil_addrinfo *ai = res;
    while (ai && ai->ai_family != AF_INET)
        ai = ai->ai_next;
    for (ai = ai ? ai : res; ai && ai->ai_family != AF_INET && ai->ai_family != AF_INET6;)
        ai = ai->ai_next;
    if (err || !ai) {
        dm_warn("redis host name not resolved", "conn=%s host=%s reason=\"%s\"", c->name,
                dm_log_quote_str(c->host, hb, sizeof hb),
                err ? evutil_gai_strerror(err) : "no IPv4 or IPv6 address");
        dm_metrics_redis_event(DM_RE_DNS_FAILURE);
        evtimer_del(c->connect_timer);
        schedule_reconnect(c);
        return;
    }
    char addr[INET6_ADDRSTRLEN] = "";
    const void *a = ai->ai_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)ai->ai_addr)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
    evutil_inet_ntop(ai->ai_family, a, addr, sizeof addr);
    if (strcmp(addr, c->addr) != 0) {
        /* Once per change: the first connect, and each time DNS moves the name elsewhere. */
        dm_info("redis host name resolved", "conn=%s host=%s addr=%s", c->name,
                dm_log_quote_str(c->host, hb, sizeof hb), addr);
        memcpy(c->addr, addr, sizeof addr);
    }
    start_connect(c, addr);
}

static void on_resolved(int err, struct evutil_addrinfo *res, void *arg)
{
    lookup *lk = arg;
    dm_rconn *c = lk->c;
    dm_rconn_dns *dns = lk->dns;
    dns->cancelled -= lk->cancelled;
    free(lk);
    if (c) {
        c->lookup = NULL;
        enter(c);
        resolved(c, err, res);
        leave(c);
    }
    if (res)
        evutil_freeaddrinfo(res);
    dns_unref(dns);
}

static void connect_now(dm_rconn *c)
{
    if (c->state == ST_CLOSED)
        return;
    struct timeval tv = {c->connect_timeout_ms / 1000, (c->connect_timeout_ms % 1000) * 1000};
    evtimer_add(c->connect_timer, &tv);
    if (c->unix_path || !dm_rconn_is_name(c->host)) {
        start_connect(c, c->host);
        return;
    }
    if (!c->dns) {
        dm_error("redis connect failed", "conn=%s reason=\"no DNS resolver\"", c->name);
        evtimer_del(c->connect_timer);
        schedule_reconnect(c);
        return;
    }
    /* Resolved before every attempt: a managed Redis fails over by moving its name. */
    lookup *lk = dm_xcalloc(1, sizeof *lk);
    lk->c = c;
    lk->dns = c->dns;
    c->dns->refs++;
    c->lookup = lk;
    c->state = ST_RESOLVING;
    struct evutil_addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(c->dns->evdns, c->host, NULL, &hints, on_resolved, lk);
    /* NULL: it was answered already (/etc/hosts, or an error), and lk is gone. */
    if (req && c->lookup == lk)
        lk->req = req;
}

/*---------------------------------------------------------------- commands ---*/

static void on_internal_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac, (void)reply, (void)privdata; /* ASKING: its command's reply says what matters */
}

/* Every request's completion: c stays valid through it even if the callback frees it. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    dm_rconn_req *q = privdata;
    dm_rconn *c = q->conn;
    enter(c);
    c->inflight--;
    q->conn = NULL;
    int err = DM_OK;
    if (!reply) {
        /* The connection is going away; refuse new commands until it is rebuilt. */
        if (c->state == ST_READY || c->state == ST_CONNECTING) {
            c->state = ST_BROKEN;
            report(c, false);
        }
        err = c->timing_out ? DM_ETIMEOUT : DM_EUNAVAIL;
    }
    q->cb(q, c, err, reply);
    leave(c);
}

/* The commands of every request served in one loop turn are written together, at the end of
 * that turn: hiredis only buffers them and asks for a write event, which would cost an
 * epoll_ctl to add and one to remove, and a loop turn of latency; writing from here, still in
 * the same turn, the event's addition and removal cancel out in libevent's change list. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_rconn *c = arg;
    c->flush_pending = false;
    enter(c);
    if (c->state == ST_READY && c->ac)
        redisAsyncHandleWrite(c->ac);
    leave(c);
}

/* Queue @p argv in Redis's wire form. hiredis's redisFormatCommandArgv sizes the command first
 * and writes it with one allocation; redisAsyncCommandArgv would build it with sdscatfmt, a
 * printf of hiredis's own per argument, which was most of the client's cost per event. */
static int queue_argv(dm_rconn *c, dm_rconn_req *q, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0 || !cmd)
        return REDIS_ERR;
    int rc = redisAsyncFormattedCommand(c->ac, on_reply, q, cmd, (size_t)len);
    free(cmd);
    return rc;
}

int dm_rconn_send(dm_rconn *c, dm_rconn_req *q, bool asking, long script, bool eval_source,
                  int argc, const char **argv, const size_t *lens)
{
    if (!c || c->state != ST_READY || !c->ac)
        return DM_EUNAVAIL;
    if (script >= (long)c->nscripts)
        return DM_EINVAL;
    const char *sv[34], **hv = NULL, *const *av = argv;
    size_t sl[34], *hl = NULL;
    const size_t *al = lens;
    if (script >= 0) {
        /* EVALSHA <this connection's sha> (or EVAL <source>) in front of the arguments. */
        bool small = (size_t)argc + 2 <= DM_ARRAY_LEN(sv);
        const char **wv = small ? sv : (hv = dm_xcalloc((size_t)argc + 2, sizeof *hv));
        size_t *wl = small ? sl : (hl = dm_xcalloc((size_t)argc + 2, sizeof *hl));
        wv[0] = eval_source ? "EVAL" : "EVALSHA";
        wl[0] = strlen(wv[0]);
        wv[1] = eval_source ? c->srcs[script] : c->shas[script];
        wl[1] = strlen(wv[1]);
        for (int i = 0; i < argc; i++) {
            wv[i + 2] = argv[i];
            wl[i + 2] = lens[i];
        }
        av = wv;
        al = wl;
        argc += 2;
    }
    if (asking)
        redisAsyncCommand(c->ac, on_internal_reply, NULL, "ASKING");
    q->conn = c;
    int rc = queue_argv(c, q, argc, (const char **)av, al);
    free(hv);
    free(hl);
    if (rc != REDIS_OK) {
        q->conn = NULL;
        return DM_EUNAVAIL;
    }
    c->inflight++;
    if (!c->flush_pending) {
        c->flush_pending = true;
        event_active(c->flush_ev, EV_WRITE, 0);
    }
    return DM_OK;
}

void dm_rconn_timeout(dm_rconn *c)
{
    if (!c || c->state == ST_CLOSED)
        return;
    enter(c);
    c->timing_out = true;
    teardown(c, "command timeout"); /* fails everything in flight here */
    c->timing_out = false;
    leave(c);
}

/*---------------------------------------------------------------- lifecycle ---*/

dm_rconn *dm_rconn_new(struct event_base *base, const dm_rconn_opts *opts)
{
    dm_rconn *c = dm_xcalloc(1, sizeof *c);
    c->base = base;
    c->host = opts->host ? dm_xstrdup(opts->host) : NULL;
    c->unix_path = opts->unix_path ? dm_xstrdup(opts->unix_path) : NULL;
    c->username = opts->username ? dm_xstrdup(opts->username) : NULL;
    c->password = opts->password ? dm_xstrdup(opts->password) : NULL;
    c->name = dm_xstrdup(opts->name ? opts->name : "redis");
    c->port = opts->port;
    c->db = opts->db;
    c->dns = opts->dns;
    c->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 2000;
    c->nscripts = opts->nscripts;
    c->shas = dm_xcalloc(opts->nscripts ? opts->nscripts : 1, sizeof *c->shas);
    c->srcs = dm_xcalloc(opts->nscripts ? opts->nscripts : 1, sizeof *c->srcs);
    for (size_t i = 0; i < opts->nscripts; i++)
        c->srcs[i] = opts->scripts[i];
    c->backoff_ms = BACKOFF_MIN_MS;
    c->on_state = opts->on_state;
    c->arg = opts->arg;
    c->seed = (unsigned)(uintptr_t)c ^ (unsigned)time(NULL);
    c->reconnect_timer = evtimer_new(base, on_reconnect_timer, c);
    c->connect_timer = evtimer_new(base, on_connect_timer, c);
    c->teardown_ev = event_new(base, -1, 0, on_teardown_ev, c);
    c->flush_ev = event_new(base, -1, 0, on_flush, c);
    if (!c->reconnect_timer || !c->connect_timer || !c->teardown_ev || !c->flush_ev) {
        dm_rconn_free(c);
        return NULL;
    }
    enter(c);
    connect_now(c);
    leave(c);
    return c;
}

static void destroy(dm_rconn *c)
{
    if (c->reconnect_timer)
        event_free(c->reconnect_timer);
    if (c->connect_timer)
        event_free(c->connect_timer);
    if (c->teardown_ev)
        event_free(c->teardown_ev);
    if (c->flush_ev)
        event_free(c->flush_ev);
    if (c->password)
        memset(c->password, 0, strlen(c->password));
    free(c->host);
    free(c->unix_path);
    free(c->password);
    free(c->username);
    free(c->name);
    free(c->shas);
    free(c->srcs);
    free(c);
}

void dm_rconn_free(dm_rconn *c)
{
    if (!c || c->free_pending)
        return;
    c->free_pending = true;
    c->state = ST_CLOSED;
    c->on_state = NULL;
    enter(c);
    if (c->reconnect_timer)
        evtimer_del(c->reconnect_timer);
    if (c->connect_timer)
        evtimer_del(c->connect_timer);
    if (c->teardown_ev)
        event_del(c->teardown_ev);
    if (c->flush_ev)
        event_del(c->flush_ev);
    drop_lookup(c, false);
    c->dns = NULL;
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        ac->data = NULL;
        /* Fails every pending command through on_reply, now or (inside one of this
         * context's callbacks) as soon as that callback returns. */
        redisAsyncFree(ac);
    }
    leave(c);
}

void dm_rconn_kick(dm_rconn *c)
{
    if (c && c->state == ST_IDLE && evtimer_pending(c->reconnect_timer, NULL)) {
        enter(c);
        evtimer_del(c->reconnect_timer);
        connect_now(c);
        leave(c);
    }
}

bool dm_rconn_ready(const dm_rconn *c)
{
    return c && c->state == ST_READY;
}

size_t dm_rconn_inflight(const dm_rconn *c)
{
    return c ? c->inflight : 0;
}

const char *dm_rconn_name(const dm_rconn *c)
{
    return c->name;
}

const char *dm_rconn_host(const dm_rconn *c)
{
    return c->host;
}

int dm_rconn_port(const dm_rconn *c)
{
    return c->port;
}
