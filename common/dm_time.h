/* dm_time.h - wall-clock time and RFC 3339 timestamps in milliseconds since the epoch. */
#ifndef DM_COMMON_DM_TIME_H
#define DM_COMMON_DM_TIME_H

#include "dm_common.h"

/** Current wall-clock time in ms since 1970-01-01T00:00:00Z. */
int64_t dm_now_ms(void);

/** Monotonic clock in ms (for timers and durations only). */
int64_t dm_mono_ms(void);

/**
 * Parse an RFC 3339 timestamp ("2026-11-28T14:02:11.483920117Z", "…+02:00", any number of
 * fractional digits; fractions below a millisecond are truncated) from @p s of @p len bytes
 * (not NUL-terminated). Returns DM_OK and sets *ms, or DM_EINVAL.
 */
int dm_time_parse_rfc3339(const char *s, size_t len, int64_t *ms);

/** Size of a buffer that holds any dm_time_format() result. */
#define DM_TIME_BUFLEN 32

/** Format @p ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into @p buf (DM_TIME_BUFLEN bytes). */
void dm_time_format(int64_t ms, char buf[DM_TIME_BUFLEN]);

#endif
