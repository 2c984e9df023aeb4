/* dm_sink_group.h - what the parts of a webhook sink share: the sink's consumer group (its
 * name, the output and dead-letter stream of each shard, whether the group exists), what all
 * the sinks of the daemon share (the event base, the control Redis connection, the HTTP
 * client, the consumer name), and the small Redis and timer helpers of those parts.
 *
 * The parts (dm_sink.h gives the rules they keep together):
 *   dm_sink.c         the sinks: start, stop, the control connection
 *   dm_sink_reader.c  one sink: creating its group, reading, claiming, refreshing claims
 *   dm_sink_record.c  the records a sink holds: delivery, retries, acknowledgement and
 *                     dead-lettering
 *   dm_sink_prune.c   removing the consumers that stopped instances left in the group
 *
 * Ownership: dm_sinks (dm_sink.c) owns the dm_sink_shared and what it points to; each sink
 * (dm_sink_reader.c) owns its dm_sink_group, which borrows the shared part and the sink's
 * configuration. Everything runs on the main thread's event_base.
 */
#ifndef DM_OUTPUTS_DM_SINK_GROUP_H
#define DM_OUTPUTS_DM_SINK_GROUP_H

#include "dm_config.h"
#include "dm_hclient.h"
#include "dm_redis.h"
#include "dm_keys.h"

struct event;
struct event_base;
struct redisReply;

/** Size of the consumer name "<hostname>:<pid>". */
#define DM_SINK_CONSUMER_BUF 300
/** Size of a group name "digestmap:<sink name>". */
#define DM_SINK_GROUP_BUF    (64 + 16)

/** What all sinks share; owned by dm_sinks. */
typedef struct dm_sink_shared {
    struct event_base *base;  /**< the main thread's (borrowed) */
    const dm_config *conf;    /**< borrowed */
    const char *redis_socket; /**< the embedded redis-server's socket, or NULL (borrowed) */
    dm_redis *ctl;            /**< every sink's XGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM and
                                  scripts; never a blocking read (reads have their own) */
    dm_hclient *http;         /**< every delivery */
    char consumer[DM_SINK_CONSUMER_BUF]; /**< "<hostname>:<pid>" */
    bool stopping;     /**< dm_sinks_stop has begun: every Redis callback returns at once */
    size_t held_total; /**< records held by all sinks (the gauge DM_G_SINK_INFLIGHT) */
} dm_sink_shared;

/** One sink's consumer group and its streams. */
typedef struct dm_sink_group {
    dm_sink_shared *all;
    const dm_sink_conf *c;
    char name[DM_SINK_GROUP_BUF]; /**< "digestmap:<sink name>" */
    unsigned nshards;
    char (*out_keys)[DM_KEY_BUFLEN];  /**< per shard: <prefix>:{s}:out, read through the group */
    char (*dead_keys)[DM_KEY_BUFLEN]; /**< per shard: <prefix>:{s}:dead */
    bool running; /**< the group exists on every shard: reads, claims and pruning may run */
    dm_hclient_pool *pool; /**< the sink's kept-alive connections (at most max_inflight; owned
                                by all->http) */
} dm_sink_group;

/** Name the group of sink @p c and its streams (one per shard of all->conf). */
void dm_sink_group_init(dm_sink_group *g, dm_sink_shared *all, const dm_sink_conf *c);

/** Free what dm_sink_group_init allocated. */
void dm_sink_group_dispose(dm_sink_group *g);

/** The shard whose output stream is @p key, or -1. */
int dm_sink_group_shard(const dm_sink_group *g, const char *key);

/** XACK entry @p id of @p shard's output stream on the control connection. As
 *  dm_redis_command. */
int dm_sink_group_ack(const dm_sink_group *g, unsigned shard, const char *id, dm_redis_cb cb,
                      void *arg);

/**
 * XACK an entry nobody waits for (filtered out, or trimmed before it was delivered): if it
 * fails, the entry stays pending and a later claim acknowledges it again.
 */
void dm_sink_group_ack_loose(const dm_sink_group *g, unsigned shard, const char *id);

/** dm_redis_command with each argument's length taken by strlen. */
int dm_sink_command(dm_redis *r, const char *route, dm_redis_cb cb, void *arg, int argc,
                    const char **argv);

/** @p rep is an error reply (starting with @p prefix, when not NULL). */
bool dm_sink_error_reply(const struct redisReply *rep, const char *prefix);

/** (Re)arm timer @p ev to fire in @p ms. */
void dm_sink_set_timer(struct event *ev, int64_t ms);

/** @p s quoted for a log line, in @p buf (dm_log_quote). */
const char *dm_sink_quote(const char *s, char *buf, size_t size);

#endif
