/* dm_config_spool.c - the "spool" section: where the journal of events Redis could not take
 * lives and how large it may grow (configs/README.md, docs/spool.md). Owned by the spool
 * (spool/dm_spool.h reads what it holds).
 */
#include "dm_config_loader.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPOOL_DEFAULT_MAX_BYTES (1024LL * 1024 * 1024)

int dm_cfg_parse_spool(dm_cfg_loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {"dir", "max_bytes", NULL};
    const json_t *sp;
    const char *dir = NULL;
    long long v = SPOOL_DEFAULT_MAX_BYTES;
    int rc;

    if ((rc = dm_cfg_get_obj(ld, root, "", "spool", &sp)) < 0)
        return rc;
    if (sp) {
        if ((rc = dm_cfg_check_keys(ld, sp, "spool", keys)) < 0 ||
            (rc = dm_cfg_get_str(ld, sp, "spool", "dir", true, &dir)) < 0 ||
            (rc = dm_cfg_get_int(ld, sp, "spool", "max_bytes", 1024, LLONG_MAX,
                                 SPOOL_DEFAULT_MAX_BYTES, &v)) < 0)
            return rc;
    }
    c->spool.max_bytes = v;
    if (dir) {
        /* Relative like data_dir: to the working directory. */
        c->spool.dir = dm_xstrdup(dir);
    } else {
        size_t n = strlen(c->data_dir) + sizeof "/spool";
        c->spool.dir = dm_xmalloc(n);
        snprintf(c->spool.dir, n, "%s/spool", c->data_dir);
    }
    return DM_OK;
}

void dm_cfg_free_spool(dm_config *c)
{
    free(c->spool.dir);
    c->spool.dir = NULL;
}
