/* digestmap - the command-line client of digestmapd: follow the output streams, query the
 * API, post a build event.
 *
 * usage: digestmap [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]
 *
 *   digestmap tail [--group G [--consumer C] [--claim-idle-ms MS]] [--from-start] [--count N]
 *                  [--block-ms MS]
 *       print every output record's CloudEvents JSON ("event" field) as one line, reading
 *       <prefix>:{0}:out … <prefix>:{shards-1}:out; with --group through a consumer group,
 *       acknowledging each record after it was written (a consumer first re-reads what it had
 *       not acknowledged, then claims what other consumers left pending too long)
 *   digestmap query DIGEST
 *       GET /v1/images/DIGEST and print the answer (exit 1 on 404 and errors)
 *   digestmap send-build --image NAME --digest DIGEST [--tag T]… [--run-id ID] …
 *       post a build event signed with HMAC-SHA256 (X-Digestmap-Signature)
 *
 * Global options (before or after the command): --config FILE (digestmapd's configuration:
 * Redis, listen address and credentials), --redis URL, --prefix P, --shards N, --url URL,
 * --token VALUE, --cacert FILE, --help, --version. Flags override the configuration; without
 * either the defaults match configs/dev.json (Redis at unix:var/redis.sock, prefix dm, one
 * shard, http://127.0.0.1:8080). Exit status: 0 ok, 1 operational failure (reason on
 * stderr), 2 usage error. The full texts are usage_main below and each command's (printed
 * by --help).
 */
#include "dm_common.h"
#include "dm_cli_api.h"
#include "dm_cli_opts.h"
#include "dm_cli_tail.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#ifndef DM_VERSION
#define DM_VERSION "0.0.0"
#endif

static const char usage_main[] =
    "usage: digestmap [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "The command-line client of digestmapd.\n"
    "\n"
    "Commands:\n"
    "  tail         print the output records (CloudEvents JSON, one per line) of every\n"
    "               shard's stream, optionally through a consumer group\n"
    "  query        show what is known about one digest (GET /v1/images/DIGEST)\n"
    "  send-build   post a build event, signed with HMAC-SHA256 (for testing a deployment)\n"
    "\n"
    "Global options (before or after the command):\n"
    "  --config FILE   digestmapd's configuration: Redis, listen address and credentials\n"
    "                  (the secrets a command needs are resolved: set the same environment\n"
    "                  variables; tail needs only Redis's, query only api.auth's, send-build\n"
    "                  only the build source's)\n"
    "  --redis URL     the forms of digestmapd's redis.url:\n"
    "                  redis://[[user]:password@]HOST[:PORT][/DB] (a host name, an IPv4 or\n"
    "                  [IPv6] literal; a cluster node with the configuration's redis.cluster),\n"
    "                  unix:///absolute/path.sock[?db=N] or unix:relative/path.sock[?db=N]\n"
    "                  (default: the configuration's Redis, else unix:var/redis.sock)\n"
    "  --prefix P      key prefix (default: the configuration's, else dm)\n"
    "  --shards N      number of shards, 1..1024 (default: the configuration's, else 1)\n"
    "  --url URL       digestmapd's base URL, http:// or https:// (default: the\n"
    "                  configuration's listen address, else http://127.0.0.1:8080)\n"
    "  --token VALUE   the Authorization header value, e.g. \"Bearer abc\" (default: the\n"
    "                  configuration's api.auth header entry); send-build sends it\n"
    "                  instead of a signature when no --secret is given\n"
    "  --cacert FILE   trust the PEM certificates in FILE for https (default: system store)\n"
    "  --help          this text; \"digestmap COMMAND --help\" describes a command\n"
    "  --version       print the version\n"
    "\n"
    "Exit status: 0 success, 1 operational failure (the reason on stderr), 2 usage error.\n";

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        DM_CLI_GLOBAL_OPTIONS,
        {"version", no_argument, NULL, DM_OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    dm_cli_flags f = {0};
    int ret;

    /* A closed stdout or socket must be a write error (reported, exit 1), not a silent
     * death by SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    opterr = 0;
    /* "+": stop at the command name; its options are parsed by the command. */
    while ((ret = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        if (ret == 'h' || ret == DM_OPT_HELP) {
            fputs(usage_main, stdout);
            return DM_CLI_OK;
        }
        if (ret == DM_OPT_VERSION) {
            printf("digestmap %s\n", DM_VERSION);
            return DM_CLI_OK;
        }
        if (!dm_cli_global_option(&f, ret, optarg))
            return dm_cli_bad_option(NULL, ret, argv);
    }
    if (optind >= argc)
        return dm_cli_usage_error(NULL, "a command is required: tail, query or send-build");

    const char *cmd = argv[optind];
    int cargc = argc - optind;
    char **cargv = argv + optind;
    if (strcmp(cmd, "tail") == 0)
        return dm_cli_cmd_tail(&f, cargc, cargv);
    if (strcmp(cmd, "query") == 0)
        return dm_cli_cmd_query(&f, cargc, cargv);
    if (strcmp(cmd, "send-build") == 0)
        return dm_cli_cmd_send_build(&f, cargc, cargv);
    if (strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return DM_CLI_OK;
    }
    return dm_cli_usage_error(NULL, "unknown command \"%s\" (expected tail, query or send-build)",
                              cmd);
}
