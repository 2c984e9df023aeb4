#include "dm_common.h"
#include "dm_redis_child.h"
#include "dm_log.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS  10000

struct dm_redis_child {
    pid_t pid;
    char *socket;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool can_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static int mkdirs(const char *dir, char *err, size_t errlen)
{
    char *p = dm_xstrdup(dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            goto fail;
        *s = '/';
    }
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        goto fail;
    free(p);
    return DM_OK;
fail:
    snprintf(err, errlen, "data_dir: cannot create \"%s\": %s", p, strerror(errno));
    free(p);
    return DM_EIO;
}

long long dm_redis_child_default_maxmemory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || size <= 0)
        return 64LL << 20; /* unknown (not seen on Linux): a small machine's quarter */
    return (long long)pages / 4 * size;
}

const char *dm_redis_child_socket(const dm_redis_child *c)
{
    return c->socket;
}

/* data_dir made and resolved (Redis changes its working directory to --dir, so every path it
 * gets must be absolute), with a socket path that fits and that no Redis answers on yet. */
static int prepare_dir(const char *data_dir, char dir[PATH_MAX], char sock_path[PATH_MAX + 16],
                       char *err, size_t errlen)
{
    int rc = mkdirs(data_dir, err, errlen);
    if (rc != DM_OK)
        return rc;
    if (!realpath(data_dir, dir)) {
        snprintf(err, errlen, "data_dir \"%s\": %s", data_dir, strerror(errno));
        return DM_EIO;
    }
    snprintf(sock_path, PATH_MAX + 16, "%s/redis.sock", dir);
    struct sockaddr_un sa;
    if (strlen(sock_path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "data_dir: socket path \"%s\" is longer than %zu bytes", sock_path,
                 sizeof sa.sun_path - 1);
        return DM_EINVAL;
    }
    if (can_connect(sock_path)) {
        snprintf(err, errlen,
                 "a Redis already listens on %s (another digestmapd using data_dir "
                 "\"%s\"?)",
                 sock_path, data_dir);
        return DM_EIO;
    }
    return DM_OK;
}

/* In the child: become redis-server, or exit 127 with a log line. */
static void exec_redis(const char *bin, const char *dir, const char *sock_path, const char *maxmem,
                       pid_t parent)
{
    /* Die with digestmapd even if it is killed without a chance to stop us. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    /* Own session: a Ctrl-C or a service manager's signal to digestmapd's group must not
     * stop Redis before digestmapd has drained; digestmapd stops it last. */
    setsid();
    if (getppid() != parent)
        _exit(1);
    execlp(bin, bin, "--port", "0", "--unixsocket", sock_path, "--unixsocketperm", "700", "--dir",
           dir, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize",
           "no", "--logfile", "redis.log", "--protected-mode", "yes",
           /* full: refuse writes (503 + Retry-After), never drop a parked event */
           "--maxmemory", maxmem, "--maxmemory-policy", "noeviction",
           /* parked items (~120 bytes) stay in the compact listpack encoding */
           "--hash-max-listpack-value", "256",
           /* query-index members (126 bytes) too, while an index has <= 128 entries */
           "--zset-max-listpack-value", "128", (char *)NULL);
    fprintf(stderr, "level=error msg=\"cannot start redis-server\" bin=\"%s\" reason=\"%s\"\n", bin,
            strerror(errno));
    _exit(127);
}

int dm_redis_child_start(const char *bin, const char *data_dir, long long maxmemory,
                         dm_redis_child **out, char *err, size_t errlen)
{
    if (maxmemory <= 0)
        maxmemory = dm_redis_child_default_maxmemory();
    char maxmem[24];
    snprintf(maxmem, sizeof maxmem, "%lld", maxmemory);
    char dir[PATH_MAX], sock_path[PATH_MAX + 16];
    int rc = prepare_dir(data_dir, dir, sock_path, err, errlen);
    if (rc != DM_OK)
        return rc;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return DM_EIO;
    }
    if (pid == 0)
        exec_redis(bin, dir, sock_path, maxmem, parent);
    for (int waited = 0; waited < START_TIMEOUT_MS; waited += 20) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            snprintf(err, errlen,
                     "redis-server (%s) exited during startup with status %d; see "
                     "%s/redis.log",
                     bin, WIFEXITED(status) ? WEXITSTATUS(status) : -1, data_dir);
            return DM_EIO;
        }
        if (can_connect(sock_path)) {
            dm_redis_child *c = dm_xcalloc(1, sizeof *c);
            c->pid = pid;
            c->socket = dm_xstrdup(sock_path);
            *out = c;
            dm_info("embedded redis started", "pid=%d socket=%s maxmemory=%s", (int)pid, sock_path,
                    maxmem);
            return DM_OK;
        }
        sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    snprintf(err, errlen, "redis-server did not accept connections on %s within %d s", sock_path,
             START_TIMEOUT_MS / 1000);
    return DM_ETIMEOUT;
}

void dm_redis_child_stop(dm_redis_child *c)
{
    if (!c)
        return;
    kill(c->pid, SIGTERM);
    int status = 0;
    for (int waited = 0; waited < STOP_TIMEOUT_MS; waited += 20) {
        if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
            dm_info("embedded redis stopped", "pid=%d", (int)c->pid);
            free(c->socket);
            free(c);
            return;
        }
        sleep_ms(20);
    }
    dm_warn("embedded redis did not stop; killing it", "pid=%d", (int)c->pid);
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &status, 0);
    free(c->socket);
    free(c);
}
