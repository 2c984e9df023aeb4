#include "dm_common.h"
#include "dm_spool.h"
#include "dm_spool_files.h"
#include "dm_jtiset.h"
#include "dm_event.h"
#include "dm_log.h"
#include "dm_metrics.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEGMENT_MIN (4 * 1024)
#define SEGMENT_MAX (16 * 1024 * 1024)
#define NAME_FMT    "segment-%020llu.jsonl"
#define DEAD_NAME   "dead-letter.jsonl"
#define CURSOR_NAME "cursor"

typedef enum {
    JOB_APPEND,
    JOB_LOAD,
    JOB_REMOVE,
    JOB_DEAD,
    JOB_CURSOR
} job_kind;

/* One request to the spool's thread, and later its completion. */
typedef struct job {
    job_kind kind;
    dm_spool_client *cl; /**< NULL once the client is gone: no completion */
    char *data;          /**< APPEND, DEAD: the lines (owned); LOAD: the segment read (owned) */
    size_t len, nrecords;
    int64_t first_ms;
    uint64_t seq;  /**< REMOVE, CURSOR: which; LOAD: which was read */
    size_t offset; /**< LOAD: where its replay starts; CURSOR: the offset to keep */
    int err;
    dm_spool_done_cb done;
    dm_spool_segment_cb loaded;
    void *arg;
    struct job *next;
} job;

typedef struct segment {
    uint64_t seq;
    long long bytes, events;
    int64_t first_ms; /**< earliest arrival in it (0: none) */
} segment;

struct dm_spool_client {
    dm_spool *s;
    struct event *ev; /**< activated by the spool's thread when done has jobs */
    job *done, *done_tail;
};

struct dm_spool {
    char *dir;
    int dir_fd, lock_fd;
    long long max_bytes, segment_bytes;
    pthread_t thread;
    bool started;

    /* Everything below is guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    job *queue, *queue_tail;
    long long queued_bytes; /**< appends queued, not yet written */
    segment *segs;          /**< by seq, oldest first; the last may be the active one */
    size_t nsegs, cap;
    int active_fd;         /**< the segment appends go to (the last of segs), or -1 */
    long long active_size; /**< its bytes written (spool thread only) */
    long long synced_size; /**< of which synced: the records acknowledged (spool thread only) */
    dm_spool_io io;        /**< the journal's system calls (a test's, or the system's) */
    int cursor_fd;         /**< the replay cursor file (dm_spool_set_cursor) */
    dm_jtiset *jti;        /**< tokens of requests spooled unchecked (dm_spool_jti) */
    uint64_t cursor_seq;   /**< the segment it is for (guarded by mu) */
    size_t cursor_off;     /**< and the offset its replay goes on from */
    uint64_t next_seq;
    /* Only the spool's thread clears a client out of a job after the queue was taken, so
     * clients are also tracked here for dm_spool_client_free. */
    job *working; /**< jobs taken from the queue and not yet completed */
};

/*---------------------------------------------------------------- files ---*/

static void seg_path(const dm_spool *s, uint64_t seq, char *buf, size_t len)
{
    snprintf(buf, len, "%s/" NAME_FMT, s->dir, (unsigned long long)seq);
}

static int write_all(dm_spool *s, int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = s->io.write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/*---------------------------------------------------------------- segments ---*/

static segment *seg_add(dm_spool *s, uint64_t seq)
{
    if (s->nsegs == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->segs = realloc(s->segs, s->cap * sizeof *s->segs);
        if (!s->segs)
            abort();
    }
    segment *g = &s->segs[s->nsegs++];
    *g = (segment){.seq = seq};
    return g;
}

static segment *seg_find(dm_spool *s, uint64_t seq, size_t *at)
{
    for (size_t i = 0; i < s->nsegs; i++) {
        if (s->segs[i].seq == seq) {
            if (at)
                *at = i;
            return &s->segs[i];
        }
    }
    return NULL;
}

static void totals(const dm_spool *s, dm_spool_stats *st)
{
    *st = (dm_spool_stats){0};
    for (size_t i = 0; i < s->nsegs; i++) {
        st->events += s->segs[i].events;
        st->bytes += s->segs[i].bytes;
        if (s->segs[i].first_ms && (!st->oldest_ms || s->segs[i].first_ms < st->oldest_ms))
            st->oldest_ms = s->segs[i].first_ms;
    }
}

/* Called with mu held. */
static void publish(const dm_spool *s)
{
    dm_spool_stats st;
    totals(s, &st);
    dm_metrics_set(DM_G_SPOOL_EVENTS, st.events);
    dm_metrics_set(DM_G_SPOOL_BYTES, st.bytes);
    dm_metrics_spool_oldest(st.oldest_ms);
}

void dm_spool_get_stats(dm_spool *s, dm_spool_stats *out)
{
    pthread_mutex_lock(&s->mu);
    totals(s, out);
    pthread_mutex_unlock(&s->mu);
}

/* Check one segment left by a previous run: count its records, and cut off a torn last one
 * (no newline: the write was cut; or not a record: a partly written line). It was never
 * acknowledged: its append's fdatasync had not returned. Records in the middle that cannot be
 * read are left for the replayer, which drops them with a log line. */
static int scan_segment(dm_spool *s, uint64_t seq, char *err, size_t errlen)
{
    char path[4200];
    seg_path(s, seq, path, sizeof path);
    char *buf;
    size_t len;
    if (dm_spool_read_file(path, &buf, &len) != 0) {
        snprintf(err, errlen, "spool: cannot read %s: %s", path, strerror(errno));
        return DM_EIO;
    }
    segment g = {.seq = seq};
    size_t pos = 0, good = 0;
    while (pos < len) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        dm_spool_record rec;
        json_t *doc;
        bool ok = dm_spool_decode(buf + pos, end - pos, &rec, &doc) == DM_OK;
        if (ok) {
            if (!g.first_ms || rec.arrival_ms < g.first_ms)
                g.first_ms = rec.arrival_ms;
            free((char *)rec.event);
            json_decref(doc);
        }
        if (!nl || (!ok && end + 1 == len)) {
            dm_warn("spool: torn last record dropped (it was never acknowledged)",
                    "segment=%s offset=%zu bytes=%zu", path, pos, len - pos);
            dm_metrics_inc(DM_M_SPOOL_DROPPED);
            break;
        }
        g.events++;
        pos = end + 1;
        good = pos;
    }
    free(buf);
    if (good < len) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ftruncate(fd, (off_t)good) != 0 || fdatasync(fd) != 0) {
            snprintf(err, errlen, "spool: cannot truncate %s: %s", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            return DM_EIO;
        }
        close(fd);
    }
    if (g.events == 0) {
        unlink(path);
        return DM_OK;
    }
    g.bytes = (long long)good;
    *seg_add(s, seq) = g;
    return DM_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int scan_dir(dm_spool *s, char *err, size_t errlen)
{
    DIR *d = opendir(s->dir);
    if (!d) {
        snprintf(err, errlen, "spool: cannot open %s: %s", s->dir, strerror(errno));
        return DM_EIO;
    }
    uint64_t *seqs = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned long long seq;
        char tail[8];
        if (sscanf(de->d_name, "segment-%20llu.%7s", &seq, tail) != 2 ||
            strcmp(tail, "jsonl") != 0 || seq == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            seqs = realloc(seqs, cap * sizeof *seqs);
            if (!seqs)
                abort();
        }
        seqs[n++] = seq;
    }
    closedir(d);
    if (n)
        qsort(seqs, n, sizeof *seqs, cmp_u64);
    int rc = DM_OK;
    for (size_t i = 0; i < n && rc == DM_OK; i++)
        rc = scan_segment(s, seqs[i], err, errlen);
    s->next_seq = n ? seqs[n - 1] + 1 : 1;
    free(seqs);
    return rc;
}

/*---------------------------------------------------------------- the thread ---*/

/* Close the active segment (its data was synced by the batch that wrote it). */
static void seal_active(dm_spool *s)
{
    if (s->active_fd >= 0)
        close(s->active_fd);
    s->active_fd = -1;
    s->active_size = s->synced_size = 0;
}

static int open_active(dm_spool *s)
{
    char path[4200];
    uint64_t seq = s->next_seq++;
    seg_path(s, seq, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    /* The new name itself must survive a crash. */
    if (fsync(s->dir_fd) != 0) {
        close(fd);
        unlink(path);
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    seg_add(s, seq);
    s->active_fd = fd;
    s->active_size = s->synced_size = 0;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static const char *errtext(int e, char *buf, size_t len)
{
    return strerror_r(e, buf, len) == 0 ? buf : "?";
}

/* Fail the appends from @p from up to (not including) @p to. */
static void fail_jobs(job *from, job *to)
{
    for (job *k = from; k && k != to; k = k->next)
        if (k->kind == JOB_APPEND)
            k->err = DM_EIO;
}

/* A write or sync of the active segment failed: nothing since its last sync may stay, or the
 * next acknowledged record would follow a fragment (or records answered 503 would be
 * replayed). Cut it back to what was synced and sync that; if even this fails, close the
 * segment (its records up to the synced size stay valid: the replayer reads no further) and
 * let the next append open a new one (until one can be opened, appends fail: 503). */
static void roll_back(dm_spool *s)
{
    char errbuf[128];
    if (s->io.ftruncate(s->active_fd, (off_t)s->synced_size) == 0 &&
        s->io.fdatasync(s->active_fd) == 0) {
        s->active_size = s->synced_size;
        return;
    }
    dm_error("spool: cannot cut a failed write back; the segment is closed", "dir=%s reason=\"%s\"",
             s->dir, errtext(errno, errbuf, sizeof errbuf));
    pthread_mutex_lock(&s->mu);
    seal_active(s);
    pthread_mutex_unlock(&s->mu);
}

/* Sync the active segment and count what the batch wrote to it since its last sync (from
 * @p first): the records are acknowledged only now. False (and rolled back) on failure. */
static bool sync_active(dm_spool *s, job *first, job *end)
{
    char errbuf[128];
    if (!first)
        return true;
    if (s->io.fdatasync(s->active_fd) != 0) {
        dm_error("spool: fdatasync failed", "dir=%s reason=\"%s\"", s->dir,
                 errtext(errno, errbuf, sizeof errbuf));
        roll_back(s);
        return false;
    }
    pthread_mutex_lock(&s->mu);
    segment *g = &s->segs[s->nsegs - 1];
    for (job *k = first; k && k != end; k = k->next) {
        if (k->kind != JOB_APPEND || k->err != DM_OK)
            continue;
        g->bytes += (long long)k->len;
        g->events += (long long)k->nrecords;
        if (!g->first_ms || k->first_ms < g->first_ms)
            g->first_ms = k->first_ms;
    }
    s->synced_size = s->active_size;
    pthread_mutex_unlock(&s->mu);
    return true;
}

/* Write the appends of one batch, then one fdatasync for all of them (group commit); a
 * segment filled in between is synced as it is closed. After a failed write or sync the
 * segment is cut back to its last sync (roll_back) and every append of the batch not synced
 * yet fails (DM_EIO: its request is answered 503 + Retry-After). */
static void write_appends(dm_spool *s, job *list)
{
    char errbuf[128];
    job *unsynced = NULL; /* first job written since the last sync */
    bool failed = false;
    for (job *j = list; j; j = j->next) {
        if (j->kind != JOB_APPEND)
            continue;
        if (failed) {
            j->err = DM_EIO;
            continue;
        }
        if (s->active_fd >= 0 && s->active_size > 0 &&
            s->active_size + (long long)j->len > s->segment_bytes) {
            if (!sync_active(s, unsynced, j)) {
                fail_jobs(unsynced, j);
                j->err = DM_EIO;
                failed = true;
                continue;
            }
            unsynced = NULL;
            pthread_mutex_lock(&s->mu);
            seal_active(s);
            pthread_mutex_unlock(&s->mu);
        }
        if (s->active_fd < 0 && open_active(s) != 0) {
            j->err = DM_EIO;
            failed = true;
            dm_error("spool: cannot open a segment", "dir=%s reason=\"%s\"", s->dir,
                     errtext(errno, errbuf, sizeof errbuf));
            continue;
        }
        if (write_all(s, s->active_fd, j->data, j->len) != 0) {
            dm_error("spool: write failed", "dir=%s reason=\"%s\"", s->dir,
                     errtext(errno, errbuf, sizeof errbuf));
            roll_back(s);
            fail_jobs(unsynced, j);
            j->err = DM_EIO;
            failed = true;
            continue;
        }
        j->err = DM_OK;
        if (!unsynced)
            unsynced = j;
        s->active_size += (long long)j->len;
    }
    if (!failed && unsynced && !sync_active(s, unsynced, NULL))
        fail_jobs(unsynced, NULL);
}

static void do_load(dm_spool *s, job *j)
{
    pthread_mutex_lock(&s->mu);
    if (s->nsegs == 0) {
        pthread_mutex_unlock(&s->mu);
        j->seq = 0;
        j->err = DM_OK;
        return;
    }
    j->seq = s->segs[0].seq;
    size_t valid = (size_t)s->segs[0].bytes;
    if (s->nsegs == 1 && s->active_fd >= 0)
        seal_active(s); /* appends from now on go to a new segment */
    size_t start = s->cursor_seq == j->seq ? s->cursor_off : 0;
    pthread_mutex_unlock(&s->mu);
    char path[4200];
    seg_path(s, j->seq, path, sizeof path);
    j->err = dm_spool_read_file(path, &j->data, &j->len) == 0 ? DM_OK : DM_EIO;
    if (j->err != DM_OK) {
        dm_error("spool: cannot read a segment", "segment=%s", path);
        return;
    }
    /* Past the synced size: a write that failed and could not be cut back (never
     * acknowledged). */
    if (j->len > valid) {
        j->len = valid;
        j->data[valid] = '\0';
    }
    /* Where an earlier pass got to (its events parked and confirmed), if it is a line start. */
    j->offset = start <= j->len && (start == 0 || j->data[start - 1] == '\n') ? start : 0;
}

static void do_remove(dm_spool *s, job *j)
{
    char path[4200];
    seg_path(s, j->seq, path, sizeof path);
    pthread_mutex_lock(&s->mu);
    size_t at;
    segment *g = seg_find(s, j->seq, &at);
    if (g && at == s->nsegs - 1 && s->active_fd >= 0)
        seal_active(s);
    pthread_mutex_unlock(&s->mu);
    j->err = DM_OK;
    if (!g)
        return;
    /* Out of the list only once the file is gone: a segment that stays on disk must stay
     * counted and replayed (else it would come back, unannounced, at the next start). */
    if (unlink(path) != 0 && errno != ENOENT) {
        j->err = DM_EIO;
        dm_error("spool: cannot remove a segment", "segment=%s", path);
        return;
    }
    fsync(s->dir_fd);
    pthread_mutex_lock(&s->mu);
    if ((g = seg_find(s, j->seq, &at)) != NULL) {
        memmove(&s->segs[at], &s->segs[at + 1], (s->nsegs - at - 1) * sizeof *s->segs);
        s->nsegs--;
    }
    /* All replayed, and nothing on its way in: their tokens' markers are in Redis now. */
    if (s->nsegs == 0 && !s->queue)
        dm_jtiset_clear(s->jti);
    pthread_mutex_unlock(&s->mu);
}

/* Keep where the replay of a segment got to: one fixed-size line written in place and synced
 * (a write of 42 bytes at offset 0 does not tear). */
static void do_cursor(dm_spool *s, job *j)
{
    char line[64];
    int n = snprintf(line, sizeof line, "%020llu %020llu\n", (unsigned long long)j->seq,
                     (unsigned long long)j->offset);
    j->err = DM_EIO;
    if (s->cursor_fd >= 0 && pwrite(s->cursor_fd, line, (size_t)n, 0) == n &&
        s->io.fdatasync(s->cursor_fd) == 0)
        j->err = DM_OK;
    pthread_mutex_lock(&s->mu);
    if (j->err == DM_OK) {
        s->cursor_seq = j->seq;
        s->cursor_off = j->offset;
    }
    pthread_mutex_unlock(&s->mu);
    if (j->err != DM_OK)
        dm_warn("spool: cannot write the replay cursor", "dir=%s", s->dir);
}

/* Append a record the replayer gives up on to the dead-letter file, synced; nothing of a
 * failed write stays. */
static void do_dead_letter(dm_spool *s, job *j)
{
    char path[4200], errbuf[128];
    snprintf(path, sizeof path, "%s/" DEAD_NAME, s->dir);
    struct stat st;
    bool created = stat(path, &st) != 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    j->err = DM_EIO;
    if (fd >= 0) {
        off_t before = lseek(fd, 0, SEEK_END);
        if (before >= 0 && write_all(s, fd, j->data, j->len) == 0 && s->io.fdatasync(fd) == 0 &&
            (!created || fsync(s->dir_fd) == 0))
            j->err = DM_OK;
        else if (before >= 0 && s->io.ftruncate(fd, before) == 0)
            (void)s->io.fdatasync(fd);
        close(fd);
    }
    if (j->err != DM_OK)
        dm_error("spool: cannot write the dead-letter file", "path=%s reason=\"%s\"", path,
                 strerror_r(errno, errbuf, sizeof errbuf) == 0 ? errbuf : "?");
}

/* With mu held: hand @p j to its client's loop, or drop it when the client is gone. */
static void complete(dm_spool *s, job *j)
{
    (void)s;
    dm_spool_client *c = j->cl;
    if (!c) {
        free(j->data);
        free(j);
        return;
    }
    j->next = NULL;
    if (c->done_tail)
        c->done_tail->next = j;
    else
        c->done = j;
    c->done_tail = j;
    /* Safe from this thread: evthread_use_pthreads() ran before any event_base was made. */
    event_active(c->ev, EV_READ, 0);
}

static void *spool_main(void *arg)
{
    dm_spool *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && !s->queue)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->queue)
            break;
        job *list = s->queue;
        s->queue = s->queue_tail = NULL;
        s->working = list;
        pthread_mutex_unlock(&s->mu);

        write_appends(s, list);
        for (job *j = list; j; j = j->next) {
            if (j->kind == JOB_LOAD)
                do_load(s, j);
            else if (j->kind == JOB_REMOVE)
                do_remove(s, j);
            else if (j->kind == JOB_DEAD)
                do_dead_letter(s, j);
            else if (j->kind == JOB_CURSOR)
                do_cursor(s, j);
        }

        pthread_mutex_lock(&s->mu);
        s->working = NULL;
        for (job *j = list, *next; j; j = next) {
            next = j->next;
            if (j->kind == JOB_APPEND)
                s->queued_bytes -= (long long)j->len;
            if (j->kind == JOB_APPEND || j->kind == JOB_DEAD) {
                free(j->data);
                j->data = NULL;
            }
            complete(s, j);
        }
        publish(s);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void enqueue(dm_spool *s, job *j)
{
    j->next = NULL;
    if (s->queue_tail)
        s->queue_tail->next = j;
    else
        s->queue = j;
    s->queue_tail = j;
    pthread_cond_signal(&s->cv);
}

/*---------------------------------------------------------------- clients ---*/

static void on_client_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dm_spool_client *c = arg;
    pthread_mutex_lock(&c->s->mu);
    job *list = c->done;
    c->done = c->done_tail = NULL;
    pthread_mutex_unlock(&c->s->mu);
    for (job *j = list, *next; j; j = next) {
        next = j->next;
        if (j->kind == JOB_LOAD)
            j->loaded(j->err, j->seq, j->data, j->len, j->offset, j->arg);
        else
            j->done(j->err, j->arg);
        free(j);
    }
}

dm_spool_client *dm_spool_client_new(dm_spool *s, struct event_base *base)
{
    dm_spool_client *c = dm_xcalloc(1, sizeof *c);
    c->s = s;
    c->ev = event_new(base, -1, 0, on_client_done, c);
    if (!c->ev) {
        free(c);
        return NULL;
    }
    return c;
}

void dm_spool_client_free(dm_spool_client *c)
{
    if (!c)
        return;
    dm_spool *s = c->s;
    pthread_mutex_lock(&s->mu);
    for (job *j = s->queue; j; j = j->next)
        if (j->cl == c)
            j->cl = NULL;
    for (job *j = s->working; j; j = j->next)
        if (j->cl == c)
            j->cl = NULL;
    job *list = c->done;
    c->done = c->done_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    for (job *j = list, *next; j; j = next) {
        next = j->next;
        free(j->data);
        free(j);
    }
    event_free(c->ev);
    free(c);
}

int dm_spool_append(dm_spool_client *c, const char *data, size_t len, size_t nrecords,
                    int64_t first_ms, dm_spool_done_cb cb, void *arg)
{
    dm_spool *s = c->s;
    pthread_mutex_lock(&s->mu);
    dm_spool_stats st;
    totals(s, &st);
    if (st.bytes + s->queued_bytes + (long long)len > s->max_bytes) {
        pthread_mutex_unlock(&s->mu);
        return DM_EBUSY;
    }
    job *j = dm_xcalloc(1, sizeof *j);
    j->kind = JOB_APPEND;
    j->cl = c;
    j->data = dm_xmalloc(len);
    memcpy(j->data, data, len);
    j->len = len;
    j->nrecords = nrecords;
    j->first_ms = first_ms;
    j->done = cb;
    j->arg = arg;
    s->queued_bytes += (long long)len;
    enqueue(s, j);
    pthread_mutex_unlock(&s->mu);
    return DM_OK;
}

/* A job of @p kind for the writer thread, on behalf of @p c, completed by @p cb (NULL for a
 * load, whose callback is j->loaded). */
static job *job_new(dm_spool_client *c, job_kind kind, dm_spool_done_cb cb, void *arg)
{
    job *j = dm_xcalloc(1, sizeof *j);
    j->kind = kind;
    j->cl = c;
    j->done = cb;
    j->arg = arg;
    return j;
}

static int submit(dm_spool_client *c, job *j)
{
    pthread_mutex_lock(&c->s->mu);
    enqueue(c->s, j);
    pthread_mutex_unlock(&c->s->mu);
    return DM_OK;
}

int dm_spool_load_oldest(dm_spool_client *c, dm_spool_segment_cb cb, void *arg)
{
    job *j = job_new(c, JOB_LOAD, NULL, arg);
    j->loaded = cb;
    return submit(c, j);
}

int dm_spool_remove(dm_spool_client *c, uint64_t seq, dm_spool_done_cb cb, void *arg)
{
    job *j = job_new(c, JOB_REMOVE, cb, arg);
    j->seq = seq;
    return submit(c, j);
}

int dm_spool_set_cursor(dm_spool_client *c, uint64_t seq, size_t offset, dm_spool_done_cb cb,
                        void *arg)
{
    job *j = job_new(c, JOB_CURSOR, cb, arg);
    j->seq = seq;
    j->offset = offset;
    return submit(c, j);
}

int dm_spool_dead_letter(dm_spool_client *c, const char *data, size_t len, dm_spool_done_cb cb,
                         void *arg)
{
    job *j = job_new(c, JOB_DEAD, cb, arg);
    j->data = dm_xmalloc(len);
    memcpy(j->data, data, len);
    j->len = len;
    return submit(c, j);
}

dm_jtiset *dm_spool_jti(dm_spool *s)
{
    return s->jti;
}

/*---------------------------------------------------------------- open, close ---*/

static int lock_dir(dm_spool *s, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/lock", s->dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        snprintf(err, errlen, "spool: cannot open %s: %s", path, strerror(errno));
        return DM_EIO;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            snprintf(err, errlen,
                     "spool.dir %s is in use by another digestmapd (%s is locked): give each "
                     "instance its own spool.dir (or data_dir)",
                     s->dir, path);
            return DM_EBUSY;
        }
        snprintf(err, errlen, "spool: cannot lock %s: %s", path, strerror(e));
        return DM_EIO;
    }
    return DM_OK;
}

/* The replay cursor left by a previous run (dm_spool_set_cursor); a file that does not parse
 * is ignored (the replay then starts its segment from the beginning). */
static int open_cursor(dm_spool *s, char *err, size_t errlen)
{
    char path[4200], buf[64] = {0};
    snprintf(path, sizeof path, "%s/" CURSOR_NAME, s->dir);
    struct stat st;
    bool created = stat(path, &st) != 0;
    s->cursor_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->cursor_fd < 0 || (created && fsync(s->dir_fd) != 0)) {
        snprintf(err, errlen, "spool: cannot open %s: %s", path, strerror(errno));
        return DM_EIO;
    }
    unsigned long long seq, off;
    if (pread(s->cursor_fd, buf, sizeof buf - 1, 0) > 0 &&
        sscanf(buf, "%20llu %20llu", &seq, &off) == 2) {
        s->cursor_seq = seq;
        s->cursor_off = (size_t)off;
    }
    return DM_OK;
}

int dm_spool_open(const dm_spool_conf *c, dm_spool **out, char *err, size_t errlen)
{
    *out = NULL;
    dm_spool *s = dm_xcalloc(1, sizeof *s);
    s->dir = dm_xstrdup(c->dir);
    s->dir_fd = s->lock_fd = s->active_fd = s->cursor_fd = -1;
    s->max_bytes = c->max_bytes;
    s->io.write = c->io && c->io->write ? c->io->write : write;
    s->io.fdatasync = c->io && c->io->fdatasync ? c->io->fdatasync : fdatasync;
    s->io.ftruncate = c->io && c->io->ftruncate ? c->io->ftruncate : ftruncate;
    s->segment_bytes = c->segment_bytes ? c->segment_bytes : c->max_bytes / 8;
    if (!c->segment_bytes && s->segment_bytes < SEGMENT_MIN)
        s->segment_bytes = SEGMENT_MIN;
    if (!c->segment_bytes && s->segment_bytes > SEGMENT_MAX)
        s->segment_bytes = SEGMENT_MAX;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->jti = dm_jtiset_new(1u << 20);
    int rc = DM_OK;
    if (dm_spool_mkdir(s->dir) != 0 ||
        (s->dir_fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "spool: cannot create %s: %s", s->dir, strerror(errno));
        rc = DM_EIO;
    }
    if (rc == DM_OK)
        rc = lock_dir(s, err, errlen);
    if (rc == DM_OK)
        rc = scan_dir(s, err, errlen);
    if (rc == DM_OK)
        rc = open_cursor(s, err, errlen);
    if (rc == DM_OK && pthread_create(&s->thread, NULL, spool_main, s) != 0) {
        snprintf(err, errlen, "spool: cannot start its thread");
        rc = DM_EIO;
    }
    if (rc != DM_OK) {
        dm_spool_close(s);
        return rc;
    }
    s->started = true;
    dm_spool_stats st;
    pthread_mutex_lock(&s->mu);
    totals(s, &st);
    publish(s);
    pthread_mutex_unlock(&s->mu);
    dm_info("spool open", "dir=%s events=%lld bytes=%lld max_bytes=%lld", s->dir, st.events,
            st.bytes, s->max_bytes);
    *out = s;
    return DM_OK;
}

void dm_spool_close(dm_spool *s)
{
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    seal_active(s);
    if (s->cursor_fd >= 0)
        close(s->cursor_fd);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    if (s->dir_fd >= 0)
        close(s->dir_fd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    dm_jtiset_free(s->jti);
    free(s->segs);
    free(s->dir);
    free(s);
}
