/* dm_sink.h - webhook sinks (outputs.webhooks): deliver output records by HTTP POST. */
#ifndef DM_RECEIVER_DM_SINK_H
#define DM_RECEIVER_DM_SINK_H

#include "dm_config.h"

struct event_base;
typedef struct dm_sinks dm_sinks;

/**
 * Start delivering for every configured sink on @p base (the main thread's). @p conf is
 * borrowed and must outlive the sinks. Returns DM_OK and *out (NULL when no sink is
 * configured), or an error with a reason in @p err.
 */
int dm_sinks_start(struct event_base *base, const dm_config *conf, dm_sinks **out, char *err,
                   size_t errlen);

/** Stop: deliveries in flight are abandoned (they stay pending and are redelivered). */
void dm_sinks_stop(dm_sinks *s);

#endif
