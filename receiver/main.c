/* digestmapd - maps container image digests to the pipeline runs that built them.
 *
 * main: parse the command line, load the configuration, start the private Redis if no
 * redis.url is configured, start the workers, wait for SIGTERM/SIGINT, and stop in order.
 */
#include "dm_common.h"
#include "dm_auth.h"
#include "dm_config.h"
#include "dm_fetch.h"
#include "dm_log.h"
#include "dm_redis_child.h"
#include "dm_server.h"
#include "dm_sink.h"
#include "dm_trust.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DM_VERSION
#define DM_VERSION "0.0.0"
#endif

static const char usage[] =
    "usage: digestmapd --config FILE [--check-config]\n"
    "       digestmapd --version | --help\n"
    "\n"
    "  --config FILE    JSON configuration (see configs/README.md)\n"
    "  --check-config   validate the configuration and exit (0 valid, 1 invalid)\n"
    "  --version        print the version and exit\n"
    "  --help           print this help and exit\n"
    "\n"
    "Without redis.url in the configuration, digestmapd starts its own redis-server with a\n"
    "unix socket and an append-only file in data_dir, and stops it on exit.\n"
    "SIGTERM or SIGINT: stop accepting, finish in-flight requests, exit 0.\n";

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    dm_info("shutting down", "signal=%d", (int)sig);
    event_base_loopbreak(arg);
}

static void warn_anonymous(const dm_config *c)
{
    for (size_t i = 0; i < c->nsources; i++) {
        if (dm_auth_allows_anonymous(&c->sources[i].auth))
            dm_warn("source accepts unauthenticated requests (auth type none)", "path=%s",
                    c->sources[i].path);
    }
    if (c->api_configured && dm_auth_allows_anonymous(&c->api_auth))
        dm_warn("query API accepts unauthenticated requests (auth type none)", NULL);
    if (!c->api_configured)
        dm_warn("no api.auth configured: the query API answers 401 to every request", NULL);
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    bool check_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check_only = true;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("digestmapd %s\n", DM_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "digestmapd: unknown argument \"%s\"\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!config_path) {
        fprintf(stderr, "digestmapd: --config FILE is required\n%s", usage);
        return 2;
    }

    char err[512] = "";
    dm_config *conf = NULL;
    dm_trust *trust = NULL;
    if (dm_config_load_file(config_path, &conf, err, sizeof err) != DM_OK ||
        dm_trust_new(conf, &trust, err, sizeof err) != DM_OK) {
        fprintf(stderr, "digestmapd: %s: %s\n", config_path, err);
        dm_config_free(conf);
        return 1;
    }
    if (check_only) {
        printf("digestmapd: %s: configuration is valid\n", config_path);
        dm_trust_free(trust);
        dm_config_free(conf);
        return 0;
    }
    dm_log_level level = DM_LOG_INFO;
    if (conf->log_level)
        dm_log_parse_level(conf->log_level, &level);
    dm_log_set_level(level);
    dm_log_hook_libevent();
    signal(SIGPIPE, SIG_IGN);
    /* Before any event_base exists: lets the main thread wake the workers on shutdown. */
    evthread_use_pthreads();
    warn_anonymous(conf);

    int rc = 1;
    dm_redis_child *child = NULL;
    dm_server *server = NULL;
    dm_fetch *fetch = NULL;
    dm_sinks *sinks = NULL;
    struct event_base *base = NULL;
    struct event *sigterm = NULL, *sigint = NULL;

    if (!conf->redis.url) {
        if (dm_redis_child_start(conf->redis.server_bin, conf->data_dir, &child, err, sizeof err) !=
            DM_OK)
            goto fail;
    }
    /* The embedded server's socket path is absolute (redis-server runs in data_dir): every
     * connection uses it rather than the configuration's data_dir-relative one. */
    const char *redis_socket = child ? dm_redis_child_socket(child) : NULL;
    base = event_base_new();
    sigterm = base ? evsignal_new(base, SIGTERM, on_signal, base) : NULL;
    sigint = base ? evsignal_new(base, SIGINT, on_signal, base) : NULL;
    if (!sigterm || !sigint || event_add(sigterm, NULL) || event_add(sigint, NULL)) {
        snprintf(err, sizeof err, "cannot set up signal handling");
        goto fail;
    }
    /* Key and certificate fetches run on this (the main) thread's base. The first JWKS ones
     * start before the workers accept: tokens arriving meanwhile are refused without using up
     * the entry's unknown-kid refresh (a fetch is already in flight). */
    if (dm_fetch_start(base, trust, &fetch, err, sizeof err) != DM_OK)
        goto fail;
    /* Webhook sinks also run on this thread: request workers never wait for a sink. They start
     * first: a sink that cannot start (a malformed ca_file) stops us before we accept. */
    if (dm_sinks_start(base, conf, redis_socket, &sinks, err, sizeof err) != DM_OK)
        goto fail;
    if (dm_server_start(conf, trust, redis_socket, &server, NULL, err, sizeof err) != DM_OK)
        goto fail;
    dm_info("digestmapd started", "version=%s redis=%s", DM_VERSION,
            conf->redis.url ? "external" : "embedded");
    event_base_dispatch(base);
    /* Workers first: once joined, none can ask the fetcher for a refresh. */
    dm_server_stop(server);
    dm_info("stopped", NULL);
    rc = 0;
fail:
    if (rc != 0)
        dm_error("cannot start", "reason=\"%s\"", err);
    if (rc != 0)
        dm_server_stop(server);
    dm_sinks_stop(sinks);
    dm_fetch_stop(fetch);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (base)
        event_base_free(base);
    dm_redis_child_stop(child);
    dm_trust_free(trust);
    dm_config_free(conf);
    libevent_global_shutdown();
    return rc;
}
