/* dm_cli_opts.h - what every command of the digestmap command-line client shares: the exit
 * codes, the one-line messages on stderr, and the global options (accepted before the command
 * name and after it).
 *
 * The client is a short-lived process: blocking calls are fine here (unlike in digestmapd).
 * Functions that fail write a one-line reason into the caller's buffer; only the functions
 * here that say so, and the commands (dm_cli_cmd_*), print.
 */
#ifndef DM_CLI_DM_CLI_OPTS_H
#define DM_CLI_DM_CLI_OPTS_H

#include "dm_common.h"

#include <getopt.h>

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

#endif
