#include "dm_common.h"
#include "dm_log.h"
#include "dm_time.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static atomic_int min_level = DM_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void dm_log_set_level(dm_log_level level)
{
    atomic_store(&min_level, (int)level);
}

int dm_log_parse_level(const char *name, dm_log_level *out)
{
    for (size_t i = 0; i < DM_ARRAY_LEN(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (dm_log_level)i;
            return DM_OK;
        }
    }
    return DM_EINVAL;
}

const char *dm_log_quote(const char *s, size_t len, char *buf, size_t size)
{
    size_t o = 0;
    if (size < 8) {
        if (size)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t need = (c == '"' || c == '\\') ? 2 : 1;
        if (o + need + 5 > size) { /* room for the ellipsis, quote and NUL */
            memcpy(buf + o, "\xe2\x80\xa6", 3);
            o += 3;
            break;
        }
        if (need == 2)
            buf[o++] = '\\';
        buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

void dm_log(dm_log_level level, const char *msg, const char *fmt, ...)
{
    if ((int)level < atomic_load(&min_level))
        return;
    char line[2048], ts[DM_TIME_BUFLEN], q[512];
    dm_time_format(dm_now_ms(), ts);
    int n = snprintf(line, sizeof line, "ts=%s level=%s msg=%s", ts, level_names[level],
                     dm_log_quote(msg, strlen(msg), q, sizeof q));
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    if (fmt && *fmt) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m < (int)(sizeof line - (size_t)n - 1) ? m : (int)(sizeof line - (size_t)n - 2);
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

static void libevent_log(int severity, const char *msg)
{
    dm_log_level l = severity >= EVENT_LOG_ERR    ? DM_LOG_ERROR
                     : severity == EVENT_LOG_WARN ? DM_LOG_WARN
                     : severity == EVENT_LOG_MSG  ? DM_LOG_INFO
                                                  : DM_LOG_DEBUG;
    char q[512];
    dm_log(l, "libevent", "detail=%s", dm_log_quote(msg, strlen(msg), q, sizeof q));
}

void dm_log_hook_libevent(void)
{
    event_set_log_callback(libevent_log);
}
