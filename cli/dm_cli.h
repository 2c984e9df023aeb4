/* dm_cli.h - what the digestmap command-line client's commands share: the resolved settings
 * (configuration file, then flags, then built-in defaults), option parsing helpers, the
 * synchronous Redis connection used by "tail". "query" and "send-build" use digestmapd's own
 * HTTP client (dm_hclient) on a private event_base.
 *
 * The client is a short-lived process: blocking calls are fine here (unlike in digestmapd).
 * Every function that fails writes a one-line reason into the caller's buffer; only the
 * command functions (dm_cli_cmd_*) print, and they return the process exit code.
 */
#ifndef DM_CLI_DM_CLI_H
#define DM_CLI_DM_CLI_H

#include "dm_common.h"
#include "dm_config.h"

#include <getopt.h>
#include <hiredis/hiredis.h>

/** Exit codes. */
enum {
    DM_CLI_OK = 0,
    DM_CLI_FAIL = 1,
    DM_CLI_USAGE = 2
};

/** Raw global options as given on the command line (borrowed from argv), NULL = not given. */
typedef struct dm_cli_flags {
    const char *config;
    const char *redis;
    const char *prefix;
    const char *shards;
    const char *url;
    const char *token;
    const char *cacert;
} dm_cli_flags;

/** The settings the commands use, resolved by dm_cli_resolve(); all strings owned. */
typedef struct dm_cli {
    dm_config *conf; /**< the loaded --config file, or NULL. Loaded with
                          DM_CONFIG_SECRETS_OPTIONAL: a secret the command does not need may
                          be unresolved (NULL, with secret_missing) */

    /* Redis */
    char *redis_where; /**< for messages: the unix path or host:port (never the password) */
    char *redis_unix;  /**< unix socket path, or NULL for TCP */
    char *redis_host;  /**< TCP host: an IP literal (digestmapd's redis.url rules) */
    int redis_port;
    char *redis_user;             /**< ACL user, or NULL */
    char *redis_password;         /**< or NULL */
    char *redis_password_missing; /**< "<config>: redis.password_env: …" when the config names
                                       a password that could not be resolved, else NULL;
                                       dm_cli_redis_connect() then fails with it */
    int redis_db;
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

/* Long-option values of the global options (also accepted after the command name). */
enum {
    DM_OPT_CONFIG = 1000,
    DM_OPT_REDIS,
    DM_OPT_PREFIX,
    DM_OPT_SHARDS,
    DM_OPT_URL,
    DM_OPT_TOKEN,
    DM_OPT_CACERT,
    DM_OPT_HELP,
    DM_OPT_VERSION,
    DM_OPT_FIRST_COMMAND_OPTION /**< commands number their own options from here */
};

/** The getopt_long entries of the global options, to append to a command's table. */
#define DM_CLI_GLOBAL_OPTIONS                               \
    {"config", required_argument, NULL, DM_OPT_CONFIG},     \
        {"redis", required_argument, NULL, DM_OPT_REDIS},   \
        {"prefix", required_argument, NULL, DM_OPT_PREFIX}, \
        {"shards", required_argument, NULL, DM_OPT_SHARDS}, \
        {"url", required_argument, NULL, DM_OPT_URL},       \
        {"token", required_argument, NULL, DM_OPT_TOKEN},   \
        {"cacert", required_argument, NULL, DM_OPT_CACERT}, \
    {                                                       \
        "help", no_argument, NULL, DM_OPT_HELP              \
    }

/** Usage texts (static). */
extern const char dm_cli_usage_main[];
extern const char dm_cli_usage_tail[];
extern const char dm_cli_usage_query[];
extern const char dm_cli_usage_send_build[];

/** Print "digestmap: <message>\n" on stderr. Returns DM_CLI_FAIL. */
int dm_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Print "digestmap: <message>\n" and a hint to --help on stderr. Returns DM_CLI_USAGE. */
int dm_cli_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * Record global option @p opt (DM_OPT_*) with argument @p arg in @p f. Returns true if @p opt
 * is a global option (other than --help, which commands handle themselves).
 */
bool dm_cli_global_option(dm_cli_flags *f, int opt, const char *arg);

/**
 * Report getopt_long's '?' / ':' result for @p command (NULL = before the command) as a
 * usage error, naming the offending argument. Returns DM_CLI_USAGE.
 */
int dm_cli_bad_option(const char *command, int ret, char **argv);

/** Parse a decimal integer in [min, max] (the whole string). */
bool dm_cli_parse_int(const char *s, long long min, long long max, long long *out);

/**
 * Load the configuration (if any) and resolve every setting from @p f, the configuration and
 * the defaults. Returns DM_OK, or DM_EINVAL (a bad flag value: usage error) / DM_EIO (the
 * configuration could not be loaded) with @p err filled. A secret of the configuration that
 * cannot be resolved does not fail here: only the command that needs it fails, naming the key
 * and the variable or file (redis_password_missing, token_missing, the entries' secret_missing).
 */
int dm_cli_resolve(const dm_cli_flags *f, dm_cli *out, char *err, size_t errlen);

/** Free what dm_cli_resolve() filled (secrets are wiped). */
void dm_cli_dispose(dm_cli *c);

/**
 * Connect to Redis as resolved (AUTH and SELECT included) with the connect timeout; the
 * socket then waits at most @p read_timeout_ms for a reply (0: no limit). Returns the
 * context, or NULL with @p err filled ("cannot connect to redis at …: …", or
 * redis_password_missing without trying).
 */
redisContext *dm_cli_redis_connect(const dm_cli *c, int read_timeout_ms, char *err, size_t errlen);

/* Commands: @p argc/@p argv start at the command name; @p f holds the global options given
 * before it. Each returns the exit code. */
int dm_cli_cmd_tail(dm_cli_flags *f, int argc, char **argv);
int dm_cli_cmd_query(dm_cli_flags *f, int argc, char **argv);
int dm_cli_cmd_send_build(dm_cli_flags *f, int argc, char **argv);

#endif
