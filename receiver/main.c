/* digestmapd - maps container image digests to the pipeline runs that built them.
 *
 * main: parse the command line, load the configuration and build its runtime objects (the
 * keyrings and SNS caches of dm_trust, the listener's TLS of dm_tls), start the private Redis if
 * no redis.url is configured, the fetcher, the sinks and the workers, wait for SIGTERM/SIGINT
 * (reloading the TLS certificate on SIGHUP), and stop in reverse order.
 */
#include "dm_common.h"
#include "dm_json.h"
#include "dm_auth.h"
#include "dm_config.h"
#include "dm_fetch.h"
#include "dm_log.h"
#include "dm_redis_child.h"
#include "dm_server.h"
#include "dm_sink.h"
#include "dm_spool.h"
#include "dm_tls.h"
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
    "SIGTERM or SIGINT: stop accepting, finish in-flight requests, exit 0.\n"
    "SIGHUP: reload the tls certificate and key (a failed reload keeps the current ones).\n";

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    dm_info("shutting down", "signal=%d", (int)sig);
    event_base_loopbreak(arg);
}

/* SIGHUP: read the certificate and key again. The files are small and local, so reading them on
 * the main loop holds up only the fetcher and the sinks, for a moment; requests never wait. */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig, (void)what;
    dm_tls *tls = arg;
    char err[512], desc[400];
    if (!tls) {
        dm_info("SIGHUP ignored: no tls configured", NULL);
        return;
    }
    if (dm_tls_reload(tls, err, sizeof err) != DM_OK) {
        char q[600];
        dm_error("tls reload failed; keeping the current certificate", "reason=%s",
                 dm_log_quote(err, strlen(err), q, sizeof q));
        return;
    }
    dm_info("tls certificate reloaded", "%s", dm_tls_describe(tls, desc, sizeof desc));
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

/* Everything main starts, so that one function stops it (NULL: not started). */
typedef struct process {
    dm_config *conf;
    dm_trust *trust;
    dm_tls *tls; /**< the listener's TLS, or NULL: plain HTTP */
    dm_redis_child *child;
    struct event_base *base;
    struct event *sigterm, *sigint, *sighup;
    dm_fetch *fetch;
    dm_sinks *sinks;
    dm_spool *spool;
    dm_server *server;
} process;

/* Returns the exit code when the command line is all there is to do (--version, --help, a
 * usage error), else -1 with *config_path set. */
static int parse_args(int argc, char **argv, const char **config_path, bool *check_only)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            *config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            *config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            *check_only = true;
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
    if (!*config_path) {
        fprintf(stderr, "digestmapd: --config FILE is required\n%s", usage);
        return 2;
    }
    return -1;
}

/* The process-wide settings, once the configuration is known and before any thread starts. */
static void setup_process(const dm_config *conf)
{
    dm_log_level level = DM_LOG_INFO;
    if (conf->log_level)
        dm_log_parse_level(conf->log_level, &level);
    dm_log_set_level(level);
    dm_log_hook_libevent();
    signal(SIGPIPE, SIG_IGN);
    /* Before any event_base exists: lets the main thread wake the workers on shutdown. */
    evthread_use_pthreads();
    warn_anonymous(conf);
}

/* Start the embedded Redis (without redis.url), the signal events, the fetcher, the sinks and
 * the workers, in that order. On failure @p err says why; what started is left for stop(). */
static int start(process *p, char *err, size_t errlen)
{
    const dm_config *conf = p->conf;
    int rc;
    if (!conf->redis.url &&
        (rc = dm_redis_child_start(conf->redis.server_bin, conf->data_dir, conf->redis.maxmemory,
                                   &p->child, err, errlen)) != DM_OK)
        return rc;
    /* The embedded server's socket path is absolute (redis-server runs in data_dir): every
     * connection uses it rather than the configuration's data_dir-relative one. */
    const char *redis_socket = p->child ? dm_redis_child_socket(p->child) : NULL;
    /* The changelist merges the epoll_ctl calls of one loop iteration: a kept-alive sink
     * delivery turns its connection's read and write interest off and on several times. */
    struct event_config *cfg = event_config_new();
    if (cfg)
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    p->base = cfg ? event_base_new_with_config(cfg) : NULL;
    if (cfg)
        event_config_free(cfg);
    p->sigterm = p->base ? evsignal_new(p->base, SIGTERM, on_signal, p->base) : NULL;
    p->sigint = p->base ? evsignal_new(p->base, SIGINT, on_signal, p->base) : NULL;
    /* Also without tls: SIGHUP's default action would end the process. */
    p->sighup = p->base ? evsignal_new(p->base, SIGHUP, on_sighup, p->tls) : NULL;
    if (!p->sigterm || !p->sigint || !p->sighup || event_add(p->sigterm, NULL) ||
        event_add(p->sigint, NULL) || event_add(p->sighup, NULL)) {
        snprintf(err, errlen, "cannot set up signal handling");
        return DM_EIO;
    }
    /* Key and certificate fetches run on this (the main) thread's base. The first JWKS ones
     * start before the workers accept: tokens arriving meanwhile are refused without using up
     * the entry's unknown-kid refresh (a fetch is already in flight). */
    if ((rc = dm_fetch_start(p->base, p->trust, &p->fetch, err, errlen)) != DM_OK)
        return rc;
    /* Webhook sinks also run on this thread: request workers never wait for a sink. They start
     * first: a sink that cannot start (a malformed ca_file) stops us before we accept. */
    if ((rc = dm_sinks_start(p->base, conf, redis_socket, &p->sinks, err, errlen)) != DM_OK)
        return rc;
    /* The spool (docs/spool.md) before the workers: they append to it, and worker 1 replays
     * what a previous run left. A spool directory another process holds refuses the start. */
    dm_spool_conf sc = {.dir = conf->spool.dir, .max_bytes = conf->spool.max_bytes};
    if ((rc = dm_spool_open(&sc, &p->spool, err, errlen)) != DM_OK)
        return rc;
    return dm_server_start(conf, p->trust, redis_socket, p->tls, p->spool, &p->server, NULL, err,
                           errlen);
}

/* Stop and free what start() started, in reverse, then the configuration. */
static void stop(process *p)
{
    /* Workers first: once joined, none can ask the fetcher for a refresh. */
    dm_server_stop(p->server);
    dm_spool_close(p->spool); /* after the workers: their clients are gone */
    dm_sinks_stop(p->sinks);
    dm_fetch_stop(p->fetch);
    if (p->sigterm)
        event_free(p->sigterm);
    if (p->sigint)
        event_free(p->sigint);
    if (p->sighup)
        event_free(p->sighup);
    if (p->base)
        event_base_free(p->base);
    dm_redis_child_stop(p->child);
    dm_tls_free(p->tls); /* after the workers: they make connections from it */
    dm_trust_free(p->trust);
    dm_config_free(p->conf);
    libevent_global_shutdown();
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    bool check_only = false;
    int rc = parse_args(argc, argv, &config_path, &check_only);
    if (rc >= 0)
        return rc;

    /* Before any thread: the ingest's parse arena (dm_json.h, docs/hot-path.md). */
    dm_json_arena_install();
    process p = {0};
    char err[512] = "";
    /* The trust and the TLS certificate are loaded here too, so --check-config checks all that
     * a start would, and a bad file refuses to start before anything runs. */
    if (dm_config_load_file(config_path, &p.conf, err, sizeof err) != DM_OK ||
        dm_trust_new(p.conf, &p.trust, err, sizeof err) != DM_OK ||
        dm_tls_new(p.conf, &p.tls, err, sizeof err) != DM_OK) {
        fprintf(stderr, "digestmapd: %s: %s\n", config_path, err);
        dm_trust_free(p.trust);
        dm_config_free(p.conf);
        return 1;
    }
    if (check_only) {
        printf("digestmapd: %s: configuration is valid\n", config_path);
        dm_tls_free(p.tls);
        dm_trust_free(p.trust);
        dm_config_free(p.conf);
        return 0;
    }
    setup_process(p.conf);
    if (p.tls) {
        char desc[400];
        dm_info("tls certificate loaded", "%s", dm_tls_describe(p.tls, desc, sizeof desc));
    }
    if (start(&p, err, sizeof err) != DM_OK) {
        dm_error("cannot start", "reason=\"%s\"", err);
        stop(&p);
        return 1;
    }
    dm_info("digestmapd started", "version=%s redis=%s", DM_VERSION,
            p.conf->redis.url ? "external" : "embedded");
    event_base_dispatch(p.base);
    dm_server_stop(p.server);
    p.server = NULL;
    dm_info("stopped", NULL);
    stop(&p);
    return 0;
}
