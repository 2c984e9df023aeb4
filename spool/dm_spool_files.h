/* dm_spool_files.h - the file helpers of the spool's thread (spool/dm_spool.c): creating the
 * spool directory durably and reading a segment whole. No state; any thread. */
#ifndef DM_SPOOL_DM_SPOOL_FILES_H
#define DM_SPOOL_DM_SPOOL_FILES_H

#include <stddef.h>

/** Create @p dir (mode 0700) and its missing parents; each directory made is synced into its
 *  parent, so that it survives a crash. 0, or -1 with errno. */
int dm_spool_mkdir(const char *dir);

/** The whole file at @p path, malloc'd in *@p out (NUL-terminated, not counted in *@p len).
 *  0, or -1 with errno. */
int dm_spool_read_file(const char *path, char **out, size_t *len);

#endif
