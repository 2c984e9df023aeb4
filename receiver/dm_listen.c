#include "dm_common.h"
#include "dm_listen.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_time.h"

#include <event2/event.h>
#include <event2/listener.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dm_listen {
    dm_listen *next; /**< in the registry of gated listeners */
    int worker;
    struct evconnlistener *lev;
    struct event *retry; /**< resumes the listener after accept failed */
    bool full;           /**< paused at max_connections */
    bool starved;        /**< paused after accept failed */
    int n;               /**< connections, for log lines */
    int64_t last_log_ms; /**< last log line about a pause */
    unsigned quiet;      /**< pauses not logged since */
};

/* libevent hands the error callback the listener's user data, which is evhttp's: the gate of a
 * listener is found here (an error is rare; a few workers per process). */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static dm_listen *registry;

static dm_listen *gate_of(struct evconnlistener *lev)
{
    pthread_mutex_lock(&reg_lock);
    dm_listen *g = registry;
    while (g && g->lev != lev)
        g = g->next;
    pthread_mutex_unlock(&reg_lock);
    return g;
}

static void unregister(dm_listen *g)
{
    pthread_mutex_lock(&reg_lock);
    for (dm_listen **p = &registry; *p; p = &(*p)->next)
        if (*p == g) {
            *p = g->next;
            break;
        }
    g->lev = NULL;
    pthread_mutex_unlock(&reg_lock);
}

static void update(dm_listen *g)
{
    if (!g->lev)
        return;
    if (g->full || g->starved)
        evconnlistener_disable(g->lev);
    else
        evconnlistener_enable(g->lev);
}

static void log_pause(dm_listen *g, const char *why)
{
    int64_t now = dm_mono_ms();
    if (g->last_log_ms && now - g->last_log_ms < DM_LISTEN_LOG_EVERY_S * 1000) {
        g->quiet++;
        return;
    }
    dm_warn("listener paused", "worker=%d reason=\"%s\" connections=%d pauses_not_logged=%u",
            g->worker, why, g->n, g->quiet);
    g->last_log_ms = now;
    g->quiet = 0;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_listen *g = arg;
    g->starved = false;
    update(g);
}

/* libevent calls this when accept fails for another reason than "try again": whatever it was
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM) would fail again at once, so wait. Without it libevent
 * logs a line per failed accept and the loop spins on the ready listener. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)arg;
    dm_listen *g = gate_of(lev);
    char why[160];
    if (!g) {
        evconnlistener_disable(lev); /* cannot happen: a gated listener is registered */
        return;
    }
    snprintf(why, sizeof why, "accept failed: %s", strerror(EVUTIL_SOCKET_ERROR()));
    g->starved = true;
    dm_metrics_accept_paused(true);
    log_pause(g, why);
    update(g);
    struct timeval tv = {0, DM_LISTEN_RETRY_MS * 1000};
    evtimer_add(g->retry, &tv);
}

dm_listen *dm_listen_new(struct event_base *base, int worker)
{
    dm_listen *g = dm_xcalloc(1, sizeof *g);
    g->worker = worker;
    g->retry = evtimer_new(base, on_retry, g);
    if (!g->retry)
        abort(); /* out of memory: as dm_xmalloc */
    return g;
}

void dm_listen_attach(dm_listen *g, struct evconnlistener *lev)
{
    pthread_mutex_lock(&reg_lock);
    g->lev = lev;
    g->next = registry;
    registry = g;
    pthread_mutex_unlock(&reg_lock);
    evconnlistener_set_error_cb(lev, on_accept_error);
    update(g);
}

void dm_listen_detach(dm_listen *g)
{
    unregister(g);
    evtimer_del(g->retry);
}

void dm_listen_count(dm_listen *g, int n, int max)
{
    g->n = n;
    if (n >= max && !g->full) {
        g->full = true;
        dm_metrics_accept_paused(false);
        log_pause(g, "limits.max_connections reached");
        update(g);
    } else if (n < max && g->full) {
        g->full = false;
        update(g);
    }
}

void dm_listen_free(dm_listen *g)
{
    if (!g)
        return;
    unregister(g);
    event_free(g->retry);
    free(g);
}
