/* dm_spool.h - the local journal of events Redis could not take (docs/spool.md).
 *
 * When Redis is down, failing over, over its maxmemory, or does not confirm redis.wait_replicas
 * in time, ingest (receiver/dm_ingest.c) appends the request's events here and answers 202
 * "spooled" only once they are on disk (fdatasync). The replayer (dm_replay.h) parks them in
 * Redis later, oldest segment first, and removes a segment only after all its events are
 * parked.
 *
 * On disk: a directory (spool.dir) holding a lock file ("lock", flock'd for the process's
 * life: one process per spool directory), a dead-letter file (dm_spool_dead_letter) and
 * segments "segment-<20 digits>.jsonl", numbered
 * in the order they were opened, each a sequence of records, one JSON object per line
 * (dm_spool_encode). A segment is closed when it reaches its size (spool.max_bytes / 8, at
 * most 16 MiB) or when the replayer takes it; a new one is opened by the next append. After a
 * crash a segment's last line may be torn (no newline, or not JSON): it was never
 * acknowledged, so dm_spool_open cuts it off, with a log line.
 *
 * Threads: the spool has one thread of its own that does every file operation (write, fsync,
 * read, unlink), batching all appends queued meanwhile into one write and one fdatasync
 * (group commit). Callers never touch the disk: each thread that uses the spool has a client
 * on its event_base, and the completions of its requests run there, as events.
 *
 * Ownership: receiver/main.c opens the spool before the server starts (a spool directory
 * locked by another process refuses the start) and closes it after the server has stopped.
 * Each worker (receiver/dm_worker.c) owns a client on its event_base and frees it before its
 * event_base. The gauges digestmap_spool_events, _bytes and _oldest_age_seconds are this
 * module's (common/dm_metrics.h).
 */
#ifndef DM_SPOOL_DM_SPOOL_H
#define DM_SPOOL_DM_SPOOL_H

#include "dm_common.h"

#include <jansson.h>
#include <sys/types.h>

struct event_base;
struct dm_jtiset;

typedef struct dm_spool dm_spool;
typedef struct dm_spool_client dm_spool_client;

/** The system calls the journal writes with: a seam for tests that make them fail. */
typedef struct dm_spool_io {
    ssize_t (*write)(int fd, const void *buf, size_t n);
    int (*fdatasync)(int fd);
    int (*ftruncate)(int fd, off_t len);
} dm_spool_io;

typedef struct dm_spool_conf {
    const char *dir;         /**< created (mode 0700) if missing; borrowed for the call */
    long long max_bytes;     /**< appends beyond this total are refused (DM_EBUSY) */
    long long segment_bytes; /**< 0: max_bytes / 8, between 4 KiB and 16 MiB */
    const dm_spool_io *io;   /**< tests only: NULL (or a NULL member): the system's calls */
} dm_spool_conf;

/**
 * Lock @p c->dir, read what a previous run left there (cutting off torn last records) and start
 * the spool's thread. Returns DM_OK with *out, or an error with a one-line reason in @p err:
 * DM_EBUSY when another process holds the directory's lock, DM_EIO for a file error.
 */
int dm_spool_open(const dm_spool_conf *c, dm_spool **out, char *err, size_t errlen);

/** Finish what is queued, stop the thread, release the lock and free. NULL is fine. Every
 *  client must have been freed before. */
void dm_spool_close(dm_spool *s);

/** What the spool holds now (any thread). */
typedef struct dm_spool_stats {
    long long events;  /**< records in the segments, not yet removed */
    long long bytes;   /**< bytes of the segments */
    int64_t oldest_ms; /**< arrival of the oldest record (0: empty) */
} dm_spool_stats;

void dm_spool_get_stats(dm_spool *s, dm_spool_stats *out);

/** The tokens of requests spooled before Redis checked them (dm_jtiset.h): emptied when the
 *  spool is. Lives as long as the spool. */
struct dm_jtiset *dm_spool_jti(dm_spool *s);

/** A client for the thread that runs @p base. Completions run on @p base. */
dm_spool_client *dm_spool_client_new(dm_spool *s, struct event_base *base);

/** Free @p c (NULL is fine) on its own thread. Requests still queued are carried out, but
 *  their completions never run (and their arguments are not touched). */
void dm_spool_client_free(dm_spool_client *c);

/** Completion of an append or remove: DM_OK (appended: on disk; removed), or DM_EIO. */
typedef void (*dm_spool_done_cb)(int err, void *arg);

/**
 * Append @p len bytes of @p nrecords complete records (dm_spool_encode lines, each ending in
 * a newline; copied), the oldest of which arrived at @p first_ms. All of them go to one
 * segment. Returns DM_OK (@p cb will run: DM_OK once they are on disk, or DM_EIO and nothing
 * of them is kept), or DM_EBUSY when the spool would grow past max_bytes (@p cb will not run).
 */
int dm_spool_append(dm_spool_client *c, const char *data, size_t len, size_t nrecords,
                    int64_t first_ms, dm_spool_done_cb cb, void *arg);

/** Completion of dm_spool_load_oldest: @p err DM_OK with segment @p seq's @p len bytes in
 *  @p data (the callee frees it; only what was synced: a failed write's remains are not) and
 *  @p start, where its replay goes on (the cursor dm_spool_set_cursor kept for it, else 0); or
 *  seq 0 and no data when the spool is empty; or DM_EIO. */
typedef void (*dm_spool_segment_cb)(int err, uint64_t seq, char *data, size_t len, size_t start,
                                    void *arg);

/** Read the oldest segment (closing it first if appends still go to it: later appends start a
 *  new one). Returns DM_OK (@p cb will run). */
int dm_spool_load_oldest(dm_spool_client *c, dm_spool_segment_cb cb, void *arg);

/**
 * Keep that the records of segment @p seq before @p offset (a line start) are parked (and
 * confirmed): later loads of it start there, in this process and after a restart. One small
 * file in the directory ("cursor"), rewritten in place and synced. Returns DM_OK (@p cb will
 * run: DM_OK once synced, or DM_EIO: the previous cursor stays).
 */
int dm_spool_set_cursor(dm_spool_client *c, uint64_t seq, size_t offset, dm_spool_done_cb cb,
                        void *arg);

/** Delete segment @p seq (its records are all parked); the segment stays in the spool when
 *  its file cannot be removed. Returns DM_OK (@p cb will run). */
int dm_spool_remove(dm_spool_client *c, uint64_t seq, dm_spool_done_cb cb, void *arg);

/**
 * Append @p len bytes (complete lines, copied) to the spool directory's dead-letter file
 * ("dead-letter.jsonl", kept for an operator: never read back nor removed by digestmapd, not
 * counted in the spool's size), synced. The replayer puts there the records it cannot park
 * ever (the join script refuses them, or they cannot be read) instead of deleting them.
 * Returns DM_OK (@p cb will run: DM_OK once synced, or DM_EIO and nothing of them is kept).
 */
int dm_spool_dead_letter(dm_spool_client *c, const char *data, size_t len, dm_spool_done_cb cb,
                         void *arg);

/*---------------------------------------------------------------- records ---*/

/** One spooled event. */
typedef struct dm_spool_record {
    int64_t arrival_ms; /**< when it reached digestmap (ms since the epoch) */
    const char *event;  /**< its dm_event_to_json form */
    size_t event_len;
    /** The request's OIDC token, if it had a jti: the replay marker's key (dm_key_jti), the
     *  request's id (the value ingest set, or would have set, under that key) and the
     *  marker's expiry (ms since the epoch). NULL / 0 otherwise. */
    const char *jti_key;
    const char *request_id;
    int64_t jti_pxat;
} dm_spool_record;

/**
 * The record as one line: a compact JSON object {"at", "ev", and with a token "jti", "rid",
 * "pxat"} and a newline, malloc'd, its length in @p len. NULL when @p r->event is not a JSON
 * object.
 */
char *dm_spool_encode(const dm_spool_record *r, size_t *len);

/**
 * Parse one line (without its newline) into @p out, whose strings point into @p *doc (the
 * parsed object: json_decref it when done) except @p out->event, which is malloc'd (free it).
 * Returns DM_OK, or DM_EINVAL (nothing to free) when the line is not a record.
 */
int dm_spool_decode(const char *line, size_t len, dm_spool_record *out, json_t **doc);

#endif
