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
 * "key=value" pairs verbatim. Every value that comes from outside the process (a request, a
 * fetched document, a peer's reply) or may contain a space or a quote must be passed through
 * dm_log_quote() (or dm_log_quote_str()) by the caller: that is the one way such a value
 * reaches a log line. As a last resort, any control byte left in the line is written as '?',
 * so one call is always exactly one line.
 */
void dm_log(dm_log_level level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Quote @p s (at most @p len bytes, not NUL-terminated; NULL is "") for a log value into @p buf
 * of @p size bytes (at least 8): wraps it in double quotes and escapes what could end the value
 * or the line, or drive a terminal: '"' and '\\' as \" and \\, LF, CR and TAB as \n, \r
 * and \t, every other control byte (ESC, DEL, …), byte of malformed UTF-8, C1 control or
 * bidirectional override as \xHH per byte. Well-formed UTF-8 text is kept. A value that does
 * not fit is cut (never inside an escape or a UTF-8 sequence) and ends with "…". Returns @p buf.
 */
const char *dm_log_quote(const char *s, size_t len, char *buf, size_t size);

/** dm_log_quote of a NUL-terminated string (NULL is ""). */
const char *dm_log_quote_str(const char *s, char *buf, size_t size);

/** Route libevent's internal messages through dm_log. */
void dm_log_hook_libevent(void);

#define dm_debug(msg, ...) dm_log(DM_LOG_DEBUG, msg, __VA_ARGS__)
#define dm_info(msg, ...)  dm_log(DM_LOG_INFO, msg, __VA_ARGS__)
#define dm_warn(msg, ...)  dm_log(DM_LOG_WARN, msg, __VA_ARGS__)
#define dm_error(msg, ...) dm_log(DM_LOG_ERROR, msg, __VA_ARGS__)

#endif
