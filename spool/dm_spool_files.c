#include "dm_common.h"
#include "dm_spool_files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Sync the directory holding @p path's last component, so that a name made in it survives a
 * crash. */
static int sync_parent(const char *path)
{
    char *p = dm_xstrdup(path);
    char *slash = strrchr(p, '/');
    const char *parent = slash == p ? "/" : slash ? (*slash = '\0', p) : ".";
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = -1;
    if (fd >= 0) {
        rc = fsync(fd);
        close(fd);
    }
    free(p);
    return rc;
}

/* Create @p dir and its missing parents; each directory made is synced into its parent. */
int dm_spool_mkdir(const char *dir)
{
    char *p = dm_xstrdup(dir);
    int rc = 0;
    for (char *q = p + 1; rc == 0; q++) {
        if (*q != '/' && *q != '\0')
            continue;
        char c = *q;
        *q = '\0';
        if (mkdir(p, 0700) == 0)
            rc = sync_parent(p);
        else if (errno != EEXIST)
            rc = -1;
        *q = c;
        if (!c)
            break;
    }
    free(p);
    return rc;
}

/* The whole file at @p path, malloc'd (NUL-terminated, not counted). */
int dm_spool_read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t n = (size_t)st.st_size, got = 0;
    char *buf = dm_xmalloc(n + 1);
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}
