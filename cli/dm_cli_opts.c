/* dm_cli_opts.c - exit codes, messages and global options of the command-line client (see
 * dm_cli_opts.h). */
#include "dm_common.h"
#include "dm_cli_opts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int dm_cli_fail(const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "digestmap: %s\n", buf);
    return DM_CLI_FAIL;
}

int dm_cli_usage_error(const char *command, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (command)
        fprintf(stderr, "digestmap: %s: %s\n(\"digestmap %s --help\" for usage)\n", command, buf,
                command);
    else
        fprintf(stderr, "digestmap: %s\n(\"digestmap --help\" for usage)\n", buf);
    return DM_CLI_USAGE;
}

bool dm_cli_global_option(dm_cli_flags *f, int opt, const char *arg)
{
    switch (opt) {
    case DM_OPT_CONFIG:
        f->config = arg;
        return true;
    case DM_OPT_REDIS:
        f->redis = arg;
        return true;
    case DM_OPT_PREFIX:
        f->prefix = arg;
        return true;
    case DM_OPT_SHARDS:
        f->shards = arg;
        return true;
    case DM_OPT_URL:
        f->url = arg;
        return true;
    case DM_OPT_TOKEN:
        f->token = arg;
        return true;
    case DM_OPT_CACERT:
        f->cacert = arg;
        return true;
    default:
        return false;
    }
}

int dm_cli_bad_option(const char *command, int ret, char **argv)
{
    /* getopt_long leaves the offending element just before optind. */
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    if (ret == ':')
        return dm_cli_usage_error(command, "option %s needs a value", arg);
    if (optopt && optopt < 256)
        return dm_cli_usage_error(command, "unknown option -%c", optopt);
    return dm_cli_usage_error(command, "unknown option %s", arg);
}

bool dm_cli_parse_int(const char *s, long long min, long long max, long long *out)
{
    if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}
