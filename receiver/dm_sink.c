#include "dm_common.h"
#include "dm_sink.h"

int dm_sinks_start(struct event_base *base, const dm_config *conf, dm_sinks **out, char *err,
                   size_t errlen)
{
    (void)base, (void)conf, (void)err, (void)errlen;
    *out = NULL;
    return DM_OK;
}

void dm_sinks_stop(dm_sinks *s)
{
    (void)s;
}
