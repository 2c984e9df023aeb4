#include "dm_common.h"
#include "dm_server.h"
#include "dm_tls.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_routes.h"
#include "dm_worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

struct dm_server {
    dm_app app;
    dm_worker_siblings workers; /**< the workers, and how many have their Redis ready */
    pthread_t *threads;         /**< one per worker, in the same order */
    char **protected_groups;    /**< consumer groups trimming waits for (sinks', stream_groups) */
    size_t nprotected;
    dm_tls *tls; /**< borrowed; NULL: plain HTTP */
};

/* What every worker calls for each request: the route table, which the worker itself does
 * not know (so the handlers can use the worker without a circle). */
static void on_request(dm_worker *w, struct evhttp_request *req, void *arg)
{
    const dm_server *s = arg;
    dm_routes_dispatch(w, s->app.conf, req);
}

/* The same for the requests the connection layer serves itself (the sources' routes). */
static void on_direct(dm_worker *w, dm_req *req, void *arg)
{
    (void)arg;
    dm_routes_direct(w, req);
}

static void *worker_main(void *arg)
{
    dm_worker_run(arg);
    return NULL;
}

static int listen_socket(const char *host, int port, bool reuseport, int *fd_out, char *err,
                         size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sslen = sizeof *s4;
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sslen = sizeof *s6;
    } else {
        snprintf(err, errlen, "listen: \"%s\" is not an IP address", host);
        return DM_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errlen, "listen on %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return DM_EIO;
    }
    *fd_out = fd;
    return DM_OK;
}

static int bound_port(int fd);

/* Bind (and listen) once without SO_REUSEPORT: fails if anyone listens on the port. Resolves
 * port 0 to the port the kernel picked. */
static int probe_port(const char *host, int *port, char *err, size_t errlen)
{
    int fd;
    int rc = listen_socket(host, *port, false, &fd, err, errlen);
    if (rc != DM_OK)
        return rc;
    *port = bound_port(fd);
    close(fd);
    return DM_OK;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* Stop the first @p started workers (their threads run), then free every worker and @p s. */
static void stop_workers(dm_server *s, int started)
{
    dm_worker **all = s->workers.all;
    for (int i = 0; i < started; i++)
        dm_worker_drain(all[i]);
    for (int i = 0; i < started; i++)
        pthread_join(s->threads[i], NULL);
    for (int i = 0; i < s->workers.n; i++)
        dm_worker_free(all[i]);
    free(all);
    free(s->threads);
    for (size_t i = 0; i < s->nprotected; i++)
        free(s->protected_groups[i]);
    free(s->protected_groups);
    free(s);
    dm_metrics_shutdown();
}

/* Trimming must spare what the sinks (dm_sink.h names their groups) and the listed
 * external consumers have not acknowledged yet. */
static void protect_groups(dm_server *s, const dm_config *conf)
{
    s->nprotected = conf->outputs.nwebhooks + conf->outputs.nstream_groups;
    s->protected_groups = dm_xcalloc(s->nprotected + 1, sizeof *s->protected_groups);
    for (size_t i = 0; i < conf->outputs.nwebhooks; i++) {
        const char *name = conf->outputs.webhooks[i].name;
        s->protected_groups[i] = dm_xmalloc(strlen("digestmap:") + strlen(name) + 1);
        strcpy(s->protected_groups[i], "digestmap:");
        strcat(s->protected_groups[i], name);
    }
    for (size_t i = 0; i < conf->outputs.nstream_groups; i++)
        s->protected_groups[conf->outputs.nwebhooks + i] =
            dm_xstrdup(conf->outputs.stream_groups[i]);
}

/* Bind every socket before any thread starts, so a port in use is a startup error and
 * port 0 resolves once: the first bind picks the port, the others join it. SO_REUSEPORT
 * would also let us join another process's group on that port and split its traffic, so
 * the port is first bound once without it. */
static int bind_sockets(const dm_config *conf, int *fds, int n, int *port, char *err, size_t errlen)
{
    *port = conf->listen_port;
    int rc = probe_port(conf->listen_host, port, err, errlen);
    for (int i = 0; i < n && rc == DM_OK; i++)
        rc = listen_socket(conf->listen_host, *port, true, &fds[i], err, errlen);
    return rc;
}

/* File descriptors the process needs beside its client connections: per worker its Redis
 * connections, listener and event loop; per event stream redis.shards Redis connections; per
 * sink its reader's Redis connections and up to max_inflight kept-alive delivery connections
 * (docs/sink-connections.md); logs, the embedded Redis, key and certificate fetches. */
static long fd_reserve(const dm_config *conf)
{
    long sinks = 0;
    for (size_t i = 0; i < conf->outputs.nwebhooks; i++)
        sinks += 4L + conf->outputs.webhooks[i].max_inflight;
    return 64 + 8L * conf->workers + sinks +
           (long)conf->api_max_stream_clients * conf->redis.shards;
}

/* limits.max_connections, lowered to what the file-descriptor limit allows once the reserve
 * is set aside (the soft limit is first raised toward the hard one if that helps). Clients
 * get at least half of the descriptors: past the limit accept fails and the listener pauses
 * (dm_conn.h), it never spins. */
static int effective_connections(const dm_config *conf)
{
    long want = conf->limits.max_connections, reserve = fd_reserve(conf);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return (int)want;
    if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < want + reserve &&
        (rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max > (long)rl.rlim_cur)) {
        rlim_t to = (rlim_t)(want + reserve);
        if (rl.rlim_max != RLIM_INFINITY && to > rl.rlim_max)
            to = rl.rlim_max;
        struct rlimit raised = {to, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = to;
    }
    long nofile = rl.rlim_cur == RLIM_INFINITY ? want + reserve : (long)rl.rlim_cur;
    long avail = nofile - reserve;
    if (avail < nofile / 2)
        avail = nofile / 2;
    long eff = want < avail ? want : avail;
    if (eff < conf->workers)
        eff = conf->workers;
    dm_log(eff < want ? DM_LOG_WARN : DM_LOG_INFO, "connection limit",
           "max_connections=%ld configured=%ld nofile=%ld reserve=%ld", eff, want, nofile, reserve);
    return (int)eff;
}

/* Create the workers on the sockets @p fds, unless @p rc already failed. Each worker takes its
 * socket, also when its creation fails; the sockets no worker took are closed here. */
static int create_workers(dm_server *s, int rc, const int *fds, char *err, size_t errlen)
{
    int conns = rc == DM_OK ? effective_connections(s->app.conf) : 1;
    for (int i = 0; i < s->workers.n; i++) {
        if (rc != DM_OK) {
            if (fds[i] >= 0)
                close(fds[i]);
            continue;
        }
        dm_worker_conf wc = {
            .id = i + 1,
            .app = &s->app,
            .siblings = &s->workers,
            .fd = fds[i],
            .protected_groups = (const char *const *)s->protected_groups,
            .nprotected = s->nprotected,
            .on_request = on_request,
            .on_request_arg = s,
            .on_direct = on_direct,
            .on_head = dm_routes_check_head,
            .on_head_arg = &s->app,
            .max_connections = conns / s->workers.n,
            /* With TLS every connection's lowest layer is a TLS bufferevent: the connection
             * layer reads the decrypted bytes, and there is no cleartext fallback. */
            .make_bev = s->tls ? dm_tls_evhttp_bevcb : NULL,
            .make_bev_arg = s->tls,
        };
        rc = dm_worker_new(&wc, &s->workers.all[i], err, errlen);
    }
    return rc;
}

int dm_server_start(const dm_config *conf, const dm_trust *trust, const char *redis_socket,
                    dm_tls *tls, struct dm_spool *spool, dm_server **out, int *port_out, char *err,
                    size_t errlen)
{
    dm_server *s = dm_xcalloc(1, sizeof *s);
    s->tls = tls;
    s->app.conf = conf;
    s->app.trust = trust;
    s->app.redis_socket = redis_socket;
    s->app.spool = spool;
    dm_join_conf_init(&s->app.join, conf);
    int n = s->workers.n = conf->workers;
    s->workers.all = dm_xcalloc((size_t)n, sizeof *s->workers.all);
    s->threads = dm_xcalloc((size_t)n, sizeof *s->threads);
    protect_groups(s, conf);

    int port, *fds = dm_xcalloc((size_t)n, sizeof *fds);
    for (int i = 0; i < n; i++)
        fds[i] = -1;
    int rc = bind_sockets(conf, fds, n, &port, err, errlen);
    dm_routes_init_metrics(conf);
    rc = create_workers(s, rc, fds, err, errlen);
    free(fds);

    int started = 0;
    for (int i = 0; i < n && rc == DM_OK; i++) {
        if (pthread_create(&s->threads[i], NULL, worker_main, s->workers.all[i]) != 0) {
            snprintf(err, errlen, "cannot start worker thread: %s", strerror(errno));
            rc = DM_EIO;
            break;
        }
        started++;
    }
    if (rc != DM_OK) {
        stop_workers(s, started);
        return rc;
    }
    dm_info("listening", "addr=%s%s%s:%d workers=%d tls=%s",
            strchr(conf->listen_host, ':') ? "[" : "", conf->listen_host,
            strchr(conf->listen_host, ':') ? "]" : "", port, n, tls ? "on" : "off");
    if (port_out)
        *port_out = port;
    *out = s;
    return DM_OK;
}

void dm_server_stop(dm_server *s)
{
    if (s)
        stop_workers(s, s->workers.n);
}
