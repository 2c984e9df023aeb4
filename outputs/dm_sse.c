#include "dm_common.h"
#include "dm_sse.h"
#include "dm_http.h"
#include "dm_keys.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_redis.h"
#include "dm_redis_conf.h"
#include "dm_time.h"

#include <sys/queue.h> /* LIST of a hub's streams */

#include <errno.h>
#include <stdarg.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* While a client is paused by back-pressure, look at its buffer this often. */
#define PAUSE_POLL_MS       50
/* Bytes a client may send us during a stream before its socket is no longer read (the bytes
 * are ignored: reading only serves to notice a hang-up early). */
#define READ_HIGH_WATERMARK 4096
#define STR_(x)             #x
#define STR(x)              STR_(x)

/*---------------------------------------------------------------- state ---*/

typedef enum {
    S_STARTING = 0, /**< reading the start position / checking Redis; no answer sent yet */
    S_STREAMING,    /**< 200 sent; XREAD loop */
    S_DONE,         /**< ended; waiting for reap_ev to free it */
} stream_state;

typedef struct stream stream;

/* One shard's Redis connection. A connection serializes blocking commands, and an XREAD may
 * name keys of one hash slot only on a Cluster: so every shard blocks on its own. */
typedef struct shard_conn {
    stream *s;
    size_t shard;
    dm_redis *redis;
    bool reading; /**< an XREAD is in flight */
    bool started; /**< its start command was sent (it waits for the connection until then) */
} shard_conn;

struct stream {
    dm_sse_hub *hub;
    LIST_ENTRY(stream) link; /**< in hub->streams */
    stream_state state;
    size_t route;                    /**< for the metrics */
    const char *route_name;          /**< for log lines (static) */
    struct evhttp_request *req;      /**< until handed back to evhttp (then NULL) */
    struct evhttp_connection *evcon; /**< NULL once evhttp closed the connection */
    shard_conn *conns;               /**< nshards, conns[i] reads keys[i] */
    bool inflight;                   /**< admitted by the hub's admit, not yet done */
    dm_sse_from from;
    size_t pending; /**< start replies still expected: one per shard */
    size_t nshards;
    dm_sse_id *pos; /**< last delivered id (or start position) per shard */
    char (*keys)[DM_KEY_BUFLEN];
    char *idtext; /**< composite id last sent to the client */
    size_t idsize;
    bool id_stale; /**< pos moved past idtext without a record (skipped) */
    uint64_t records;
    int64_t paused_since; /**< monotonic ms when back-pressure began; 0: not paused */
    char peer[64];
    char fromtext[72];       /**< for the log lines */
    struct event *timer;     /**< start deadline, then back-pressure polling */
    struct event *keepalive; /**< fires when nothing was written for block_ms */
    struct event *reap_ev;
};

struct dm_sse_hub {
    dm_sse_hub_conf hc;
    LIST_HEAD(, stream) streams; /**< newest first */
    bool closed;
};

/* Open streams of the whole process (api.max_stream_clients is process-wide). Taken with a
 * compare-exchange so it never goes over the limit, even for a moment (a fetch_add followed
 * by an undo would refuse a client that another thread's undo was about to make room for). */
static atomic_int g_clients;

static bool slot_take(int max)
{
    int n = atomic_load(&g_clients);
    do {
        if (n >= max)
            return false;
    } while (!atomic_compare_exchange_weak(&g_clients, &n, n + 1));
    dm_metrics_gauge_add(DM_G_SSE_CLIENTS, 1);
    return true;
}

static void slot_release(void)
{
    atomic_fetch_sub(&g_clients, 1);
    dm_metrics_gauge_add(DM_G_SSE_CLIENTS, -1);
}

static int block_ms(const dm_config *c)
{
    int half = c->limits.idle_timeout_seconds * 500;
    return half > 0 && half < DM_SSE_KEEPALIVE_MS ? half : DM_SSE_KEEPALIVE_MS;
}

static void stream_free(stream *s)
{
    LIST_REMOVE(s, link);
    /* Runs the callbacks still pending (XREAD, start commands) with DM_EUNAVAIL: they see
     * S_DONE and return, so s and its conns must still be alive here. */
    for (size_t i = 0; i < s->nshards; i++)
        dm_redis_free(s->conns[i].redis);
    if (s->timer)
        event_free(s->timer);
    if (s->keepalive)
        event_free(s->keepalive);
    if (s->reap_ev)
        event_free(s->reap_ev);
    free(s->conns);
    free(s->pos);
    free(s->keys);
    free(s->idtext);
    free(s);
}

/* Never free in place: we may be inside a callback of a Redis connection, or of evhttp. */
static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    stream_free(arg);
}

/*
 * End the stream: give the request back to evhttp (the last chunk; "Connection: close" then
 * frees the connection once it is written), release the client slot and schedule the free.
 * In S_STARTING the caller has already answered (or the client is gone).
 */
static void finish(stream *s, const char *reason)
{
    if (s->state == S_DONE)
        return;
    bool streaming = s->state == S_STREAMING;
    s->state = S_DONE;
    evtimer_del(s->timer);
    evtimer_del(s->keepalive);
    if (s->evcon)
        evhttp_connection_set_closecb(s->evcon, NULL, NULL); /* s is going away */
    s->evcon = NULL;
    if (s->req && streaming)
        evhttp_send_reply_end(s->req);
    s->req = NULL;
    if (s->inflight) {
        s->inflight = false;
        s->hub->hc.done(s->hub->hc.arg);
    }
    slot_release();
    if (streaming)
        dm_info("event stream closed", "peer=%s records=%llu reason=\"%s\"", s->peer,
                (unsigned long long)s->records, reason);
    else
        dm_debug("event stream abandoned before it started", "peer=%s reason=\"%s\"", s->peer,
                 reason);
    event_active(s->reap_ev, EV_TIMEOUT, 0);
}

/*
 * End a slow client's stream by freeing its connection, with the request and every byte still
 * waiting for it. Ending the reply instead would queue the last chunk behind up to
 * DM_SSE_HARD_BUFFER unsent bytes that live until the write timeout (for ever with a client
 * that reads a trickle), while the released slot lets the client open another stream: memory
 * would no longer be bounded by api.max_stream_clients. Only called from our own events
 * (timers, Redis replies), never from inside an evhttp callback of this connection.
 */
static void drop(stream *s, const char *reason)
{
    struct evhttp_connection *evcon = s->evcon;
    if (evcon) {
        evhttp_connection_set_closecb(evcon, NULL, NULL);
        s->evcon = NULL;
        s->req = NULL; /* queued on evcon: freed with it */
    }
    finish(s, reason);
    if (evcon)
        evhttp_connection_free(evcon);
}

/* The answer before the stream started: 503 (Redis unusable, or shutting down). */
static void refuse_start(stream *s, int err, const char *what)
{
    if (s->state != S_STARTING)
        return;
    dm_metric m = err == DM_ETIMEOUT ? DM_M_REDIS_TIMEOUT
                  : err == DM_EREDIS ? DM_M_REDIS_ERROR
                                     : DM_M_REDIS_UNAVAILABLE;
    if (err != DM_OK)
        dm_metrics_inc(m);
    dm_warn("request refused", "status=503 route=%s reason=\"%s\" peer=%s", s->route_name, what,
            s->peer);
    if (s->req && evhttp_request_get_connection(s->req))
        dm_http_error(s->req, s->route, 503, "%s; retry later", what);
    else if (s->req)
        evhttp_send_reply_end(s->req); /* detached from its closed connection: frees it */
    s->req = NULL;
    finish(s, what);
}

/* evhttp is freeing the connection: the client hung up, a write timed out, or the server is
 * being freed. The request is either detached (EOF/timeout before we ended it: ours to free)
 * or still queued on the connection (evhttp frees it right after this callback). */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    stream *s = arg;
    /* Unsent bytes mean evhttp gave up writing (write timeout, or a reset while writing). */
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    bool unsent = bev && evbuffer_get_length(bufferevent_get_output(bev)) > 0;
    s->evcon = NULL;
    if (s->req && evhttp_request_get_connection(s->req) == NULL)
        evhttp_send_reply_end(s->req); /* no connection: this only frees it */
    s->req = NULL;
    finish(s, unsent ? "client stopped reading (write timeout)" : "client gone");
}

/*---------------------------------------------------------------- streaming ---*/

static size_t unsent_bytes(const stream *s)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(s->evcon);
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

/* Send @p out (emptied) and push the keepalive back: only silence needs one. */
static void send_buf(stream *s, struct evbuffer *out)
{
    evhttp_send_reply_chunk(s->req, out);
    const dm_config *c = s->hub->hc.conf;
    int ms = block_ms(c);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->keepalive, &tv);
}

/* Append "id: <composite id>\n" (the current position) and remember it as sent. */
static void add_id_line(stream *s, struct evbuffer *out)
{
    dm_sse_format_ids(s->pos, s->nshards, s->idtext, s->idsize);
    evbuffer_add_printf(out, "id: %s\n", s->idtext);
    s->id_stale = false;
}

/* Silence for block_ms: a comment line for the proxies, and the position if it moved past
 * skipped entries since the last id the client got (a block without data sets the client's
 * last event id without dispatching an event). */
static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    stream *s = arg;
    if (s->state != S_STREAMING)
        return;
    struct evbuffer *out = evbuffer_new();
    if (!out)
        abort();
    evbuffer_add(out, ": keepalive\n", 12);
    if (s->id_stale)
        add_id_line(s, out);
    evbuffer_add(out, "\n", 1);
    send_buf(s, out);
    evbuffer_free(out);
}

static void on_read(int err, redisReply *rep, void *arg);

/* Start an XREAD on every shard that has none in flight, unless the client is behind. */
static void next_read(stream *s)
{
    if (s->state != S_STREAMING)
        return;
    const dm_config *c = s->hub->hc.conf;
    size_t unsent = unsent_bytes(s);
    if (unsent > DM_SSE_HARD_BUFFER) {
        drop(s, "slow client: send buffer over the hard limit");
        return;
    }
    if (unsent > DM_SSE_SOFT_BUFFER) {
        int64_t now = dm_mono_ms();
        if (!s->paused_since) {
            s->paused_since = now;
            dm_debug("event stream paused", "peer=%s unsent=%zu", s->peer, unsent);
        } else if (now - s->paused_since > (int64_t)c->limits.idle_timeout_seconds * 2000) {
            drop(s, "slow client: paused too long");
            return;
        }
        struct timeval tv = {0, PAUSE_POLL_MS * 1000};
        evtimer_add(s->timer, &tv);
        return;
    }
    if (s->paused_since)
        dm_debug("event stream resumed", "peer=%s unsent=%zu", s->peer, unsent);
    s->paused_since = 0;

    char blk[16];
    int blen = snprintf(blk, sizeof blk, "%d", block_ms(c));
    for (size_t i = 0; i < s->nshards; i++) {
        shard_conn *sc = &s->conns[i];
        if (sc->reading)
            continue;
        char id[DM_SSE_ID_MAX + 1];
        size_t idlen = dm_sse_format_ids(&s->pos[i], 1, id, sizeof id);
        const char *argv[] = {"XREAD", "COUNT",   STR(DM_SSE_BATCH), "BLOCK",
                              blk,     "STREAMS", s->keys[i],        id};
        size_t lens[] = {5,    5, strlen(STR(DM_SSE_BATCH)), 5, (size_t)blen, 7, strlen(s->keys[i]),
                         idlen};
        if (dm_redis_command(sc->redis, s->keys[i], on_read, sc, (int)DM_ARRAY_LEN(argv), argv,
                             lens) != DM_OK) {
            dm_metrics_inc(DM_M_REDIS_UNAVAILABLE);
            finish(s, "redis unavailable");
            return;
        }
        sc->reading = true;
    }
}

static bool str_is(const redisReply *r, const char *s)
{
    return r->type == REDIS_REPLY_STRING && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

static const redisReply *field(const redisReply *fields, const char *name)
{
    if (fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        if (str_is(fields->element[i], name) && fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1];
    }
    return NULL;
}

/* Append the entries of one shard's part of an XREAD reply. Returns false on a reply that
 * does not have the XREAD shape. */
static bool add_entries(stream *s, size_t shard, const redisReply *entries, struct evbuffer *out,
                        uint64_t *sent)
{
    if (entries->type != REDIS_REPLY_ARRAY)
        return false;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        dm_sse_id id;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
            e->element[0]->type != REDIS_REPLY_STRING ||
            dm_sse_parse_id(e->element[0]->str, e->element[0]->len, &id) != DM_OK)
            return false;
        s->pos[shard] = id;
        const redisReply *type = field(e->element[1], "type");
        const redisReply *event = field(e->element[1], "event");
        if (!event) {
            /* Not an output record (README.md "Output records": type, digest, event): skip it,
             * but move past it; the next keepalive carries the new position. */
            char idq[DM_SSE_ID_MAX + 1];
            dm_sse_format_ids(&id, 1, idq, sizeof idq);
            dm_warn("event stream skipped an entry without an event field", "key=%s id=%s",
                    s->keys[shard], idq);
            s->id_stale = true;
            continue;
        }
        dm_sse_format_ids(s->pos, s->nshards, s->idtext, s->idsize);
        s->id_stale = false;
        dm_sse_format_event(out, s->idtext, type ? type->str : "", type ? type->len : 0, event->str,
                            event->len);
        (*sent)++;
    }
    return true;
}

static void on_read(int err, redisReply *rep, void *arg)
{
    shard_conn *sc = arg;
    stream *s = sc->s;
    sc->reading = false;
    if (s->state != S_STREAMING)
        return;
    if (err != DM_OK) {
        dm_metrics_inc(err == DM_ETIMEOUT ? DM_M_REDIS_TIMEOUT : DM_M_REDIS_UNAVAILABLE);
        finish(s, err == DM_ETIMEOUT ? "redis timeout" : "redis unavailable");
        return;
    }
    if (rep->type == REDIS_REPLY_NIL) { /* BLOCK ran out; on_keepalive covers the silence */
        next_read(s);
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        char q[160];
        dm_metrics_inc(DM_M_REDIS_ERROR);
        dm_error("event stream: XREAD failed", "peer=%s key=%s reply=%s", s->peer,
                 s->keys[sc->shard], dm_log_quote(rep->str, rep->len, q, sizeof q));
        finish(s, "redis error");
        return;
    }
    struct evbuffer *out = evbuffer_new();
    if (!out)
        abort();
    uint64_t sent = 0;
    /* One key per XREAD: [[key, entries]]. */
    bool ok = rep->type == REDIS_REPLY_ARRAY;
    for (size_t i = 0; ok && i < rep->elements; i++) {
        const redisReply *part = rep->element[i];
        ok = part->type == REDIS_REPLY_ARRAY && part->elements == 2 &&
             str_is(part->element[0], s->keys[sc->shard]) &&
             add_entries(s, sc->shard, part->element[1], out, &sent);
    }
    if (!ok) {
        evbuffer_free(out);
        dm_metrics_inc(DM_M_REDIS_ERROR);
        dm_error("event stream: unexpected XREAD reply", "peer=%s type=%d", s->peer, rep->type);
        finish(s, "unexpected redis reply");
        return;
    }
    /* The batch counts before it is queued: with it, more than the hard limit would wait. */
    if (unsent_bytes(s) + evbuffer_get_length(out) > DM_SSE_HARD_BUFFER) {
        evbuffer_free(out);
        drop(s, "slow client: send buffer over the hard limit");
        return;
    }
    if (evbuffer_get_length(out))
        send_buf(s, out);
    evbuffer_free(out);
    s->records += sent;
    dm_metrics_add(DM_M_SSE_RECORDS, sent);
    next_read(s);
}

/* Redis answered every start command: send the 200 and enter the XREAD loop. */
static void begin_stream(stream *s)
{
    evtimer_del(s->timer);
    if (s->req && !evhttp_request_get_connection(s->req)) {
        evhttp_send_reply_end(s->req); /* detached from a closed connection: frees it */
        s->req = NULL;
    }
    if (!s->req) {
        finish(s, "client gone");
        return;
    }
    const dm_config *c = s->hub->hc.conf;
    struct evkeyvalq *h = evhttp_request_get_output_headers(s->req);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    /* After the last chunk evhttp frees the connection instead of waiting for another
     * request on it: a client reconnects anyway. */
    evhttp_add_header(h, "Connection", "close");
    evhttp_send_reply_start(s->req, 200, "OK");
    dm_metrics_request(s->route, 200);
    s->state = S_STREAMING;
    if (s->inflight) {
        s->inflight = false;
        s->hub->hc.done(s->hub->hc.arg); /* a stream is not a request in flight (drain) */
    }
    /* The connection's read timeout would end an idle stream whatever we write; the write
     * timeout stays: a client that reads nothing for idle_timeout_seconds is dropped. Reading
     * (with the data ignored: evhttp set no read callback while it writes) notices a hang-up
     * at once instead of at the next keepalive; the watermark bounds what a client can make
     * us buffer. */
    struct bufferevent *bev = evhttp_connection_get_bufferevent(s->evcon);
    if (bev) {
        struct timeval wtv = {c->limits.idle_timeout_seconds, 0};
        bufferevent_set_timeouts(bev, NULL, &wtv);
        bufferevent_setwatermark(bev, EV_READ, 0, READ_HIGH_WATERMARK);
        bufferevent_enable(bev, EV_READ);
    }
    /* The start position goes out at once as an id-only block: a client that reconnects
     * before its first record (server restart, Redis lost, proxy timeout) resumes here
     * instead of at the new end, so records added in between are not lost. */
    struct evbuffer *out = evbuffer_new();
    if (!out)
        abort();
    evbuffer_add_printf(out, "retry: %d\n", DM_SSE_RETRY_MS);
    add_id_line(s, out);
    evbuffer_add(out, "\n", 1);
    send_buf(s, out);
    evbuffer_free(out);
    dm_info("event stream opened", "peer=%s from=%s shards=%zu", s->peer, s->fromtext, s->nshards);
    next_read(s);
}

static void on_start_reply(int err, redisReply *rep, void *arg)
{
    shard_conn *sc = arg;
    stream *s = sc->s;
    if (s->state != S_STARTING)
        return;
    if (err != DM_OK) {
        refuse_start(s, err, "storage unavailable");
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        char q[160];
        dm_error("event stream: start command failed", "peer=%s reply=%s", s->peer,
                 dm_log_quote(rep->str, rep->len, q, sizeof q));
        refuse_start(s, DM_EREDIS, "storage error");
        return;
    }
    if (s->from == DM_SSE_FROM_NEW) {
        /* XREVRANGE <key> + - COUNT 1: the last entry, or nothing for an empty stream. */
        dm_sse_id id = {0, 0};
        if (rep->type != REDIS_REPLY_ARRAY ||
            (rep->elements > 0 &&
             (rep->element[0]->type != REDIS_REPLY_ARRAY || rep->element[0]->elements < 1 ||
              rep->element[0]->element[0]->type != REDIS_REPLY_STRING ||
              dm_sse_parse_id(rep->element[0]->element[0]->str, rep->element[0]->element[0]->len,
                              &id) != DM_OK))) {
            refuse_start(s, DM_EREDIS, "unexpected storage reply");
            return;
        }
        s->pos[sc->shard] = id;
    }
    if (--s->pending == 0)
        begin_stream(s);
}

/* The start deadline while starting, then the back-pressure poll. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    stream *s = arg;
    if (s->state == S_STARTING)
        refuse_start(s, DM_ETIMEOUT, "storage timeout");
    else
        next_read(s);
}

static void send_start(shard_conn *sc);

static void on_redis_ready(bool ready, void *arg)
{
    shard_conn *sc = arg;
    stream *s = sc->s;
    if (ready) {
        /* sc->redis is NULL while dm_redis_new runs: start_shards sends it then */
        if (s->state == S_STARTING && !sc->started && sc->redis)
            send_start(sc);
        return;
    }
    /* Called from inside the client's callbacks: finish only schedules the free. */
    if (s->state == S_STARTING)
        refuse_start(s, DM_EUNAVAIL, "storage unavailable");
    else if (s->state == S_STREAMING) {
        dm_metrics_inc(DM_M_REDIS_UNAVAILABLE);
        finish(s, "redis unavailable");
    }
}

/*---------------------------------------------------------------- request ---*/

static void refuse(struct evhttp_request *req, size_t route, const char *route_name, int status,
                   dm_metric m, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void refuse(struct evhttp_request *req, size_t route, const char *route_name, int status,
                   dm_metric m, const char *fmt, ...)
{
    char text[320], q[360], peer[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (m != DM_M_COUNT)
        dm_metrics_inc(m);
    dm_log(status >= 500 ? DM_LOG_WARN : DM_LOG_INFO, "request refused",
           "status=%d route=%s reason=%s peer=%s", status, route_name,
           dm_log_quote(text, strlen(text), q, sizeof q), dm_http_peer(req, peer));
    dm_http_error(req, route, status, "%s", text);
}

/* The checks before a stream may start, in this order. Returns true when it may: the client
 * then holds a slot and the worker admitted it. Otherwise @p req has been answered (refused,
 * or HEAD's headers). */
static bool may_open(dm_sse_hub *h, struct evhttp_request *req, size_t route,
                     const char *route_name)
{
    int max = h->hc.conf->api_max_stream_clients;
    if (max == 0) {
        refuse(req, route, route_name, 403, DM_M_COUNT,
               "event streams are disabled on this server "
               "(api.max_stream_clients is 0)");
        return false;
    }
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
        evhttp_add_header(oh, "Content-Type", "text/event-stream");
        evhttp_add_header(oh, "Cache-Control", "no-cache");
        evhttp_send_reply(req, 200, "OK", NULL);
        dm_metrics_request(route, 200);
        return false;
    }
    if (h->closed) {
        refuse(req, route, route_name, 503, DM_M_COUNT, "server is shutting down; retry later");
        return false;
    }
    if (!evhttp_request_get_connection(req)) { /* cannot happen while evhttp holds reading off */
        evhttp_send_reply_end(req);
        return false;
    }
    if (!slot_take(max)) {
        refuse(req, route, route_name, 503, DM_M_OVERLOADED,
               "too many event-stream clients (%d open, "
               "api.max_stream_clients)",
               max);
        return false;
    }
    if (!h->hc.admit(h->hc.arg)) {
        slot_release();
        refuse(req, route, route_name, 503, DM_M_OVERLOADED,
               "too many requests in flight; retry later");
        return false;
    }
    return true;
}

/* A stream in S_STARTING for @p req (admitted by may_open), on @p h's list; it takes @p pos. */
static stream *stream_new(dm_sse_hub *h, struct evhttp_request *req, size_t route,
                          const char *route_name, const dm_sse_start *start, size_t nshards,
                          dm_sse_id *pos)
{
    stream *s = dm_xcalloc(1, sizeof *s);
    s->hub = h;
    s->route = route;
    s->route_name = route_name;
    s->req = req;
    s->evcon = evhttp_request_get_connection(req);
    s->inflight = true;
    s->from = start->from;
    s->nshards = nshards;
    s->pos = pos;
    s->keys = dm_xcalloc(nshards, sizeof *s->keys);
    s->conns = dm_xcalloc(nshards, sizeof *s->conns);
    s->idsize = nshards * (DM_SSE_ID_MAX + 1) + 1;
    s->idtext = dm_xcalloc(1, s->idsize);
    snprintf(s->fromtext, sizeof s->fromtext, "%s", start->text);
    dm_http_peer(req, s->peer);
    for (size_t i = 0; i < nshards; i++) {
        dm_key_out(s->keys[i], h->hc.join->prefix, (unsigned)i);
        s->conns[i].s = s;
        s->conns[i].shard = i;
    }
    s->timer = evtimer_new(h->hc.base, on_timer, s);
    s->keepalive = evtimer_new(h->hc.base, on_keepalive, s);
    s->reap_ev = event_new(h->hc.base, -1, 0, on_reap, s);
    if (!s->timer || !s->keepalive || !s->reap_ev)
        abort(); /* out of memory: as dm_xmalloc */
    LIST_INSERT_HEAD(&h->streams, s, link);
    evhttp_connection_set_closecb(s->evcon, on_conn_close, s);
    return s;
}

/* Queue @p sc's start command (the last entry id, or a PING) once its connection is ready;
 * refuse the stream when it cannot be queued. */
static void send_start(shard_conn *sc)
{
    stream *s = sc->s;
    const char *key = s->keys[sc->shard];
    int rc;
    sc->started = true;
    if (s->from == DM_SSE_FROM_NEW) {
        const char *argv[] = {"XREVRANGE", key, "+", "-", "COUNT", "1"};
        size_t lens[] = {9, strlen(key), 1, 1, 5, 1};
        rc = dm_redis_command(sc->redis, key, on_start_reply, sc, 6, argv, lens);
    } else {
        const char *argv[] = {"PING"};
        size_t lens[] = {4};
        rc = dm_redis_command(sc->redis, key, on_start_reply, sc, 1, argv, lens);
    }
    if (rc != DM_OK)
        refuse_start(s, rc, "storage unavailable"); /* replies already queued find it done */
}

/* Open every shard's Redis connection; each sends its start command as soon as it is ready
 * (a TCP connection, or a cluster's topology, is not ready at once); begin_stream runs when
 * all have answered, refuse_start when one fails or the deadline passes. Every connection is
 * checked before the 200: a stream must not start half blind. */
static void start_shards(stream *s)
{
    const dm_config *c = s->hub->hc.conf;
    int cmd_ms = block_ms(c) + c->redis.command_timeout_ms;
    dm_redis_opts ro = dm_redis_conf_opts(c, s->hub->hc.redis_socket, "event-stream");
    ro.command_timeout_ms = cmd_ms;
    ro.max_inflight = 2; /* a start command, then one XREAD at a time */
    ro.scripts = NULL;   /* XREAD, XREVRANGE and PING only */
    ro.nscripts = 0;
    ro.on_ready = on_redis_ready;
    s->pending = s->nshards;
    for (size_t i = 0; i < s->nshards; i++) {
        ro.on_ready_arg = &s->conns[i];
        ro.only_route = s->keys[i];
        s->conns[i].redis = dm_redis_new(s->hub->hc.base, &ro);
    }
    for (size_t i = 0; i < s->nshards && s->state == S_STARTING; i++)
        if (!s->conns[i].started && dm_redis_ready(s->conns[i].redis))
            send_start(&s->conns[i]);
    if (s->state != S_STARTING)
        return;
    int deadline = c->redis.connect_timeout_ms + c->redis.command_timeout_ms;
    struct timeval tv = {deadline / 1000, (deadline % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

void dm_sse_serve(dm_sse_hub *h, struct evhttp_request *req, size_t route, const char *route_name)
{
    size_t nshards = h->hc.join->shards ? h->hc.join->shards : 1;
    dm_sse_id *pos = dm_xcalloc(nshards, sizeof *pos);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    const char *header = evhttp_find_header(evhttp_request_get_input_headers(req), "Last-Event-ID");
    dm_sse_start start;
    char err[320];
    if (dm_sse_parse_start(query, header, nshards, &start, pos, err, sizeof err) != DM_OK) {
        free(pos);
        refuse(req, route, route_name, 400, DM_M_INVALID, "%s", err);
        return;
    }
    if (!may_open(h, req, route, route_name)) {
        free(pos);
        return;
    }
    start_shards(stream_new(h, req, route, route_name, &start, nshards, pos));
}

/*---------------------------------------------------------------- hub ---*/

dm_sse_hub *dm_sse_hub_new(const dm_sse_hub_conf *hc)
{
    dm_sse_hub *h = dm_xcalloc(1, sizeof *h);
    h->hc = *hc;
    LIST_INIT(&h->streams);
    return h;
}

void dm_sse_hub_close(dm_sse_hub *h)
{
    if (!h)
        return;
    h->closed = true;
    stream *s;
    LIST_FOREACH(s, &h->streams, link)
    {
        if (s->state == S_STARTING)
            refuse_start(s, DM_OK, "server is shutting down");
        else
            finish(s, "server shutting down");
    }
}

void dm_sse_hub_free(dm_sse_hub *h)
{
    if (!h)
        return;
    /* The loop has ended: reap events will not run. Streams still open here (the worker never
     * drained) stay on their connections, which evhttp_free frees with their requests; only
     * our close callbacks must go, since they would find s freed. */
    while (!LIST_EMPTY(&h->streams)) {
        stream *s = LIST_FIRST(&h->streams);
        if (s->evcon)
            evhttp_connection_set_closecb(s->evcon, NULL, NULL);
        if (s->state != S_DONE) {
            s->state = S_DONE;
            slot_release();
        }
        stream_free(s);
    }
    free(h);
}
