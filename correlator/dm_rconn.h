/* dm_rconn.h - one asynchronous connection to one Redis address (hiredis 0.14 + libevent).
 * Internal to dm_redis: every other module goes through dm_redis.h.
 *
 * The connection resolves its host name when it has one (evdns, before every attempt, so a
 * DNS-based failover is followed on reconnect), connects, authenticates, selects the database
 * and loads the Lua scripts, and only then is "ready". It reconnects by itself with capped
 * exponential backoff. It has no deadlines of its own: its owner keeps one per command and
 * calls dm_rconn_timeout when one expires, which tears the connection down (FIFO order means
 * the commands behind could not be answered anyway) and fails everything in flight on it.
 * Not thread-safe: one event_base, that base's thread only.
 */
#ifndef DM_CORRELATOR_DM_RCONN_H
#define DM_CORRELATOR_DM_RCONN_H

#include "dm_common.h"

struct event_base;
struct redisReply;

typedef struct dm_rconn dm_rconn;

/**
 * A resolver (one evdns_base) shared by the connections of one owner. The owner holds one
 * reference and every lookup in flight another, so the evdns_base outlives each lookup it
 * still has to report, even a cancelled one.
 */
typedef struct dm_rconn_dns dm_rconn_dns;

/** A resolver with the system's resolv.conf and /etc/hosts, or NULL (logged). */
dm_rconn_dns *dm_rconn_dns_new(struct event_base *base);

/** Drop the owner's reference. NULL is fine. */
void dm_rconn_dns_release(dm_rconn_dns *d);

/** True when @p host needs resolving (not an IPv4 or IPv6 literal). */
bool dm_rconn_is_name(const char *host);

typedef struct dm_rconn_opts {
    const char *host; /**< IP literal or DNS name for TCP, or NULL */
    int port;
    const char *unix_path; /**< unix socket path, or NULL */
    const char *username;  /**< ACL user for AUTH, or NULL */
    const char *password;  /**< AUTH password, or NULL */
    int db;                /**< SELECT when not 0 */
    int connect_timeout_ms;
    const char *const *scripts; /**< Lua sources loaded at connect (borrowed) */
    size_t nscripts;
    const char *name;  /**< for log lines, e.g. "worker-1" or "worker-1@10.0.0.5:7000" */
    dm_rconn_dns *dns; /**< required when host is a name (borrowed, referenced per lookup) */
    /** Readiness changes; never called after dm_rconn_free. */
    void (*on_state)(dm_rconn *c, bool ready, void *arg);
    void *arg;
} dm_rconn_opts;

typedef struct dm_rconn_req dm_rconn_req;

/**
 * Completion of one request, called exactly once, never from inside dm_rconn_send: @p err is
 * DM_OK with @p reply (borrowed, maybe an error reply), or DM_EUNAVAIL (connection lost) or
 * DM_ETIMEOUT (dm_rconn_timeout tore it down) with @p reply NULL. @p c is the connection it
 * ran on, valid for the callback (it may already be freed by then: only dm_rconn_send to it,
 * which then refuses, dm_rconn_name and dm_rconn_host are allowed).
 */
typedef void (*dm_rconn_cb)(dm_rconn_req *q, dm_rconn *c, int err, struct redisReply *reply);

/** Embedded by the caller in its own command record; owned by the caller. */
struct dm_rconn_req {
    dm_rconn_cb cb;
    dm_rconn *conn; /**< set while in flight on a connection, NULL otherwise */
};

dm_rconn *dm_rconn_new(struct event_base *base, const dm_rconn_opts *opts);

/**
 * Close: everything in flight fails with DM_EUNAVAIL (now, or right after the hiredis callback
 * that is running returns), and the memory goes after the last completion. NULL is fine.
 */
void dm_rconn_free(dm_rconn *c);

/**
 * Send a command. With @p script >= 0 it is EVALSHA of that script with this connection's
 * SHA (EVAL of its source when @p eval_source) followed by @p argv (numkeys, keys, args).
 * With @p asking an ASKING goes first. DM_OK: @p q->cb will run; DM_EUNAVAIL: not ready.
 */
int dm_rconn_send(dm_rconn *c, dm_rconn_req *q, bool asking, long script, bool eval_source,
                  int argc, const char **argv, const size_t *lens);

/** A deadline of a command in flight here passed: tear down and reconnect. */
void dm_rconn_timeout(dm_rconn *c);

/** Reconnect now if waiting out a backoff delay. */
void dm_rconn_kick(dm_rconn *c);

bool dm_rconn_ready(const dm_rconn *c);
size_t dm_rconn_inflight(const dm_rconn *c);
const char *dm_rconn_name(const dm_rconn *c);
/** The configured host (maybe a name) and port. */
const char *dm_rconn_host(const dm_rconn *c);
int dm_rconn_port(const dm_rconn *c);

#endif
