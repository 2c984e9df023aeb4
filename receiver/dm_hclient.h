/* dm_hclient.h - outgoing HTTP(S) requests on an event_base (placeholder; see dm_sink). */
#ifndef DM_RECEIVER_DM_HCLIENT_H
#define DM_RECEIVER_DM_HCLIENT_H

#include "dm_common.h"

#endif
