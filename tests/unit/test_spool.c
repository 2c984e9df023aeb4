/* test_spool.c - the spool's journal when the disk fails (spool/dm_spool.h, docs/spool.md): a
 * failed write or fdatasync leaves nothing of the failed batch in the segment (it is cut back
 * to its last sync), so the next acknowledged record never follows a fragment and no record
 * answered 503 is replayed; when even the cut fails the segment is closed and the next append
 * opens a new one, and the replayer reads the closed one only up to what was synced. The
 * failures are injected through the journal's I/O seam (dm_spool_conf.io). */
#include "dm_common.h"
#include "dm_spool.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* How many of the next calls fail (the write after writing half of its bytes). */
static int fail_writes, fail_syncs, fail_truncates;

static ssize_t fake_write(int fd, const void *buf, size_t n)
{
    if (fail_writes > 0) {
        fail_writes--;
        if (n > 1 && write(fd, buf, n / 2) < 0)
            return -1;
        errno = EIO;
        return -1;
    }
    return write(fd, buf, n);
}

static int fake_fdatasync(int fd)
{
    if (fail_syncs > 0) {
        fail_syncs--;
        errno = EIO;
        return -1;
    }
    return fdatasync(fd);
}

static int fake_ftruncate(int fd, off_t len)
{
    if (fail_truncates > 0) {
        fail_truncates--;
        errno = EIO;
        return -1;
    }
    return ftruncate(fd, len);
}

static const dm_spool_io fake_io = {fake_write, fake_fdatasync, fake_ftruncate};

typedef struct fixture {
    char dir[64];
    struct event_base *base;
    dm_spool *spool;
    dm_spool_client *cl;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/dmspool.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    fail_writes = fail_syncs = fail_truncates = 0;
    f->base = event_base_new();
    char err[256];
    dm_spool_conf c = {.dir = f->dir, .max_bytes = 1 << 20, .io = &fake_io};
    if (dm_spool_open(&c, &f->spool, err, sizeof err) != DM_OK)
        return -1;
    f->cl = dm_spool_client_new(f->spool, f->base);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    dm_spool_client_free(f->cl);
    dm_spool_close(f->spool);
    event_base_free(f->base);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

typedef struct result {
    bool done;
    int err;
    uint64_t seq;
    char *data;
    size_t len;
} result;

static void on_done(int err, void *arg)
{
    result *r = arg;
    r->done = true;
    r->err = err;
}

static void on_loaded(int err, uint64_t seq, char *data, size_t len, size_t start, void *arg)
{
    (void)start;
    result *r = arg;
    r->done = true;
    r->err = err;
    r->seq = seq;
    r->data = data;
    r->len = len;
}

static void run_until(fixture *f, const result *r)
{
    while (!r->done)
        event_base_loop(f->base, EVLOOP_ONCE);
}

/* A record line for digest number @p n. */
static const char *line(int n)
{
    static char buf[256];
    snprintf(buf, sizeof buf,
             "{\"at\":1000,\"ev\":{\"digest\":\"sha256:%064d\",\"side\":\"registry\"}}\n", n);
    return buf;
}

static int append(fixture *f, int n)
{
    result r = {0};
    const char *l = line(n);
    assert_int_equal(dm_spool_append(f->cl, l, strlen(l), 1, 1000, on_done, &r), DM_OK);
    run_until(f, &r);
    return r.err;
}

/* The oldest segment's bytes, as the replayer gets them. */
static char *load(fixture *f, uint64_t *seq)
{
    result r = {0};
    dm_spool_load_oldest(f->cl, on_loaded, &r);
    run_until(f, &r);
    assert_int_equal(r.err, DM_OK);
    *seq = r.seq;
    return r.data ? r.data : strdup("");
}

static char *segment_file(fixture *f, uint64_t seq)
{
    char path[128], *buf = calloc(1, 4096);
    snprintf(path, sizeof path, "%s/segment-%020llu.jsonl", f->dir, (unsigned long long)seq);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, 4095, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static char *lines(int a, int b)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s", line(a));
    if (b)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s", line(b));
    return buf;
}

static void test_failed_write_leaves_no_fragment(void **state)
{
    fixture *f = *state;
    assert_int_equal(append(f, 1), DM_OK);
    fail_writes = 1; /* half of the record is written, then EIO */
    assert_int_equal(append(f, 2), DM_EIO);
    assert_int_equal(append(f, 3), DM_OK);
    char *file = segment_file(f, 1);
    assert_string_equal(file, lines(1, 3));
    free(file);
    dm_spool_stats st;
    dm_spool_get_stats(f->spool, &st);
    assert_int_equal(st.events, 2);
    assert_int_equal(st.bytes, (long long)strlen(lines(1, 3)));
}

static void test_failed_sync_is_cut_back(void **state)
{
    fixture *f = *state;
    assert_int_equal(append(f, 1), DM_OK);
    fail_syncs = 1; /* record 2 is written, its fdatasync fails: answered 503, so it must go */
    assert_int_equal(append(f, 2), DM_EIO);
    assert_int_equal(append(f, 3), DM_OK);
    char *file = segment_file(f, 1);
    assert_string_equal(file, lines(1, 3));
    free(file);
    dm_spool_stats st;
    dm_spool_get_stats(f->spool, &st);
    assert_int_equal(st.events, 2);
}

static void test_failed_cut_closes_the_segment(void **state)
{
    fixture *f = *state;
    assert_int_equal(append(f, 1), DM_OK);
    fail_syncs = 1;
    fail_truncates = 1; /* the cut back fails too: the segment is closed */
    assert_int_equal(append(f, 2), DM_EIO);
    assert_int_equal(append(f, 3), DM_OK); /* in a new segment */
    char *second = segment_file(f, 2);
    assert_string_equal(second, lines(3, 0));
    free(second);
    uint64_t seq;
    char *data = load(f, &seq);
    assert_int_equal(seq, 1);
    assert_string_equal(data, lines(1, 0)); /* not the unsynced record 2 left in the file */
    free(data);
    dm_spool_stats st;
    dm_spool_get_stats(f->spool, &st);
    assert_int_equal(st.events, 2);
}

static void test_failed_write_and_cut_then_recovers(void **state)
{
    fixture *f = *state;
    fail_writes = 1;
    fail_truncates = 1; /* the very first write fails and cannot be cut: closed */
    assert_int_equal(append(f, 1), DM_EIO);
    assert_int_equal(append(f, 2), DM_OK);
    dm_spool_stats st;
    dm_spool_get_stats(f->spool, &st);
    assert_int_equal(st.events, 1);
    char *second = segment_file(f, 2);
    assert_string_equal(second, lines(2, 0));
    free(second);
}

int main(void)
{
    evthread_use_pthreads();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failed_write_leaves_no_fragment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_sync_is_cut_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_cut_closes_the_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_and_cut_then_recovers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
