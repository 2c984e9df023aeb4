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
 * stderr), 2 usage error. The full texts are dm_cli_usage_* below (printed by --help).
 */
#include "dm_common.h"
#include "dm_cli.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DM_VERSION
#define DM_VERSION "0.0.0"
#endif

const char dm_cli_usage_main[] =
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
    "                  redis://[[user]:password@]IP[:PORT][/DB] (an IPv4 or [IPv6] literal),\n"
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

const char dm_cli_usage_tail[] =
    "usage: digestmap [GLOBAL OPTIONS] tail [--group G [--consumer C] [--claim-idle-ms MS]]\n"
    "                 [--from-start] [--count N] [--block-ms MS]\n"
    "\n"
    "Prints the \"event\" field of each output record (a CloudEvents 1.0 JSON document) as\n"
    "one line on stdout, reading the streams <prefix>:{0}:out … <prefix>:{N-1}:out (N =\n"
    "shards). Records are ordered within a shard's stream, not across streams.\n"
    "\n"
    "  --group G      read through consumer group G, created on each stream if missing (at\n"
    "                 the stream's end, or at its start with --from-start), and acknowledge\n"
    "                 (XACK) each record once it was written to stdout. The consumer first\n"
    "                 re-reads the records it had received but not acknowledged, then takes\n"
    "                 over (XAUTOCLAIM) the records other consumers of the group left\n"
    "                 unacknowledged for --claim-idle-ms, at start and whenever a read finds\n"
    "                 nothing new: a consumer that died loses nothing. On a clean exit a\n"
    "                 consumer with nothing pending is removed from the group.\n"
    "  --consumer C   consumer name in the group (default <hostname>:<pid>); a consumer\n"
    "                 restarted under the same name re-reads its pending records at once\n"
    "  --claim-idle-ms MS  take over another consumer's record once it was pending that\n"
    "                 long, 1..86400000 (default 60000: longer than any print and\n"
    "                 acknowledgement, so a live consumer's records are not taken)\n"
    "  --from-start   without --group: print the streams' whole content first;\n"
    "                 with --group: create missing groups at the start of the streams\n"
    "  --count N      exit 0 after N records (N >= 1)\n"
    "  --block-ms MS  longest wait of one read on the server, 1..3600000 (default 5000)\n"
    "\n"
    "Without --group nothing is acknowledged: records added while tail is not running are not\n"
    "printed later. SIGINT/SIGTERM end tail with status 0; a record is acknowledged only after\n"
    "it was printed, so an interrupted consumer gets it again at its next start. A failed\n"
    "acknowledgement ends tail with status 1 (the record stays pending).\n";

const char dm_cli_usage_query[] =
    "usage: digestmap [GLOBAL OPTIONS] query DIGEST\n"
    "\n"
    "Asks digestmapd what it knows about DIGEST (GET /v1/images/DIGEST, with the API token)\n"
    "and prints the answer, pretty-printed: the confirmed mappings, the pending registry and\n"
    "build events, and deletes.\n"
    "\n"
    "Exit status: 0 when found (200); 1 when unknown (404, the answer is printed too) or on\n"
    "any other answer or failure (status and error on stderr).\n";

const char dm_cli_usage_send_build[] =
    "usage: digestmap [GLOBAL OPTIONS] send-build --image NAME --digest DIGEST [OPTIONS]\n"
    "\n"
    "Posts a build event for one image (the body of POST /v1/builds) and prints the answer.\n"
    "\n"
    "  --image NAME          registry/repository, e.g. contoso.azurecr.io/team/api\n"
    "  --digest DIGEST       sha256:<64 hex digits> of the image or index\n"
    "  --tag T               a tag (repeatable)\n"
    "  --manifest DIGEST     a platform manifest of the index (repeatable)\n"
    "  --provider P          github, azure-devops, gitlab or generic (default generic)\n"
    "  --run-id ID           the run's id (needed unless an OIDC token is sent)\n"
    "  --run-attempt N       the run's attempt (the daemon's default: 1)\n"
    "  --repository R        code repository, e.g. acme/api\n"
    "  --commit SHA  --ref REF  --workflow W  --actor A  --run-url URL\n"
    "  --built-at RFC3339    build time (default: the arrival time at digestmapd)\n"
    "  --path PATH           route (default: the configuration's build source, else\n"
    "                        /v1/builds)\n"
    "  --secret S            HMAC-SHA256 key of the signature (not with --token)\n"
    "  --secret-env VAR      the same, read from the environment variable VAR\n"
    "  --signature-header H  header of the signature (default: the configuration's, else\n"
    "                        X-Digestmap-Signature)\n"
    "\n"
    "Credentials, the first that applies: --secret / --secret-env (header H: sha256=<hex\n"
    "HMAC-SHA256(secret, body)>); --token (sent as Authorization, e.g. \"Bearer <OIDC token>\");\n"
    "the configuration's build source: its hmac-sha256 entry, else its header entry.\n"
    "A \"run\" object is sent when any of --provider, --run-id, --run-attempt, --repository,\n"
    "--commit, --ref, --workflow, --actor or --run-url is given.\n"
    "\n"
    "Exit status: 0 on a 2xx answer, 1 otherwise (status and error on stderr).\n";

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
            fputs(dm_cli_usage_main, stdout);
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
        fputs(dm_cli_usage_main, stdout);
        return DM_CLI_OK;
    }
    return dm_cli_usage_error(NULL, "unknown command \"%s\" (expected tail, query or send-build)",
                              cmd);
}
