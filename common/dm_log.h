/* dm_log.h - one line per event on stderr: "ts=… level=… msg=\"…\" key=value …".
 *
 * Safe to call from any thread: each line is formatted into a local buffer and written
 * with a single write(2), so lines of different workers never interleave.
 */
#ifndef DM_COMMON_DM_LOG_H
#define DM_COMMON_DM_LOG_H

#include "dm_common.h"

typedef enum {
    DM_LOG_DEBUG = 0,
    DM_LOG_INFO,
    DM_LOG_WARN,
    DM_LOG_ERROR
} dm_log_level;

/** Set the minimum level written (default DM_LOG_INFO). Call before starting threads. */
void dm_log_set_level(dm_log_level level);

/** Parse "debug" | "info" | "warn" | "error"; returns DM_OK or DM_EINVAL. */
int dm_log_parse_level(const char *name, dm_log_level *out);

/**
 * Write one line. @p msg is quoted; @p fmt (printf-style, may be NULL) appends
 * "key=value" pairs verbatim. Values that may contain spaces or quotes must be passed
 * through dm_log_quote() by the caller.
 */
void dm_log(dm_log_level level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Quote @p s (at most @p len bytes, not NUL-terminated) for a log value into @p buf of
 * @p size bytes: wraps in double quotes, escapes quotes/backslashes and replaces control
 * bytes, truncating with "…" when needed. Returns @p buf.
 */
const char *dm_log_quote(const char *s, size_t len, char *buf, size_t size);

/** Route libevent's internal messages through dm_log. */
void dm_log_hook_libevent(void);

#define dm_debug(msg, ...) dm_log(DM_LOG_DEBUG, msg, __VA_ARGS__)
#define dm_info(msg, ...)  dm_log(DM_LOG_INFO, msg, __VA_ARGS__)
#define dm_warn(msg, ...)  dm_log(DM_LOG_WARN, msg, __VA_ARGS__)
#define dm_error(msg, ...) dm_log(DM_LOG_ERROR, msg, __VA_ARGS__)

#endif
