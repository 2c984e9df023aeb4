/* dm_cli_conf.h - the settings of the digestmap command-line client, resolved from the flags,
 * then the configuration file, then built-in defaults, and the synchronous Redis connection
 * used by "tail". "query" and "send-build" use digestmapd's own HTTP client (dm_hclient) on a
 * private event_base (dm_cli_api.h).
 *
 * Ownership: dm_cli_resolve fills a caller's dm_cli whose strings it owns; dm_cli_dispose
 * frees them (secrets wiped). The Redis context belongs to the caller (redisFree).
 */
#ifndef DM_CLI_DM_CLI_CONF_H
#define DM_CLI_DM_CLI_CONF_H

#include "dm_cli_opts.h"
#include "dm_config.h"

#include <hiredis/hiredis.h>

/** The settings the commands use, resolved by dm_cli_resolve(); all strings owned. */
typedef struct dm_cli {
    dm_config *conf; /**< the loaded --config file, or NULL. Loaded with
                          DM_CONFIG_SECRETS_OPTIONAL: a secret the command does not need may
                          be unresolved (NULL, with secret_missing) */

    /* Redis */
    char *redis_where; /**< for messages: the unix path or host:port (never the password) */
    char *redis_unix;  /**< unix socket path, or NULL for TCP */
    char *redis_host;  /**< TCP host: an IP literal or a DNS name (digestmapd's redis.url rules;
                            sync hiredis resolves it) */
    int redis_port;
    char *redis_user;             /**< ACL user, or NULL */
    char *redis_password;         /**< or NULL */
    char *redis_password_missing; /**< "<config>: redis.password_env: …" when the config names
                                       a password that could not be resolved, else NULL;
                                       dm_cli_redis_connect() then fails with it */
    int redis_db;
    bool redis_cluster; /**< the config's redis.cluster: redis_host:redis_port is a seed node */
    int connect_timeout_ms;
    int command_timeout_ms;
    char *prefix;
    unsigned shards;

    /* HTTP API */
    char *url;           /**< base URL, without a trailing slash, e.g. "http://127.0.0.1:8080";
                          NULL when the configuration listens on port 0 and --url is missing */
    char *token_header;  /**< header that carries the API credential ("Authorization"), or NULL */
    char *token;         /**< its value (--token, or the config's api.auth header entry), or NULL */
    char *token_missing; /**< no --token and the config's api.auth header entries are all
                              unresolved: "<config>: api.auth[i].value_env: …"; else NULL */
    char *cacert;        /**< PEM trust anchors for https instead of the system store, or NULL */
} dm_cli;

/**
 * Load the configuration (if any) and resolve every setting from @p f, the configuration and
 * the defaults. Returns DM_OK, or DM_EINVAL (a bad flag value: usage error) / DM_EIO (the
 * configuration could not be loaded) with @p err filled. A secret of the configuration that
 * cannot be resolved does not fail here: only the command that needs it fails, naming the key
 * and the variable or file (redis_password_missing, token_missing, the entries' secret_missing).
 */
int dm_cli_resolve(const dm_cli_flags *f, dm_cli *out, char *err, size_t errlen);

/**
 * dm_cli_resolve() for @p command, which prints a failure (a usage error for a bad flag
 * value) and returns its exit code, with @p out disposed; DM_CLI_OK otherwise.
 */
int dm_cli_resolve_for(const char *command, const dm_cli_flags *f, dm_cli *out);

/** Free what dm_cli_resolve() filled (secrets are wiped). */
void dm_cli_dispose(dm_cli *c);

/**
 * Connect to Redis as resolved (AUTH and SELECT included) with the connect timeout; the
 * socket then waits at most @p read_timeout_ms for a reply (0: no limit). Returns the
 * context, or NULL with @p err filled ("cannot connect to redis at …: …", or
 * redis_password_missing without trying).
 */
redisContext *dm_cli_redis_connect(const dm_cli *c, int read_timeout_ms, char *err, size_t errlen);

/** dm_cli_redis_connect() to node @p host:@p port (a Redis Cluster node) instead. */
redisContext *dm_cli_redis_connect_node(const dm_cli *c, const char *host, int port,
                                        int read_timeout_ms, char *err, size_t errlen);

#endif
