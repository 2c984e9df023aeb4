/* dm_trim.h - output-stream trimming that never drops what a protected group has not read. */
#ifndef DM_CORRELATOR_DM_TRIM_H
#define DM_CORRELATOR_DM_TRIM_H

#include "dm_join.h"

#endif
