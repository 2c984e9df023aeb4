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

/* Length of the well-formed UTF-8 sequence at @p s (at most @p n bytes) that is safe to show
 * as it is, or 0: invalid or overlong sequences, surrogates, C1 controls (U+0080..U+009F, which
 * some terminals obey like ESC) and the bidirectional overrides (U+202A..U+202E,
 * U+2066..U+2069, which reorder what a reader sees) are escaped byte by byte instead. */
static size_t utf8_safe_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f ||
        (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
        return 0;
    return len;
}

const char *dm_log_quote(const char *s, size_t len, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (size < 8) {
        if (size)
            buf[0] = '\0';
        return buf;
    }
    if (!s)
        len = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < len;) {
        const unsigned char *u = (const unsigned char *)s + i;
        char esc[4];
        size_t n = 0, take = 1;
        if (*u == '"' || *u == '\\') {
            esc[n++] = '\\';
            esc[n++] = (char)*u;
        } else if (*u == '\n' || *u == '\r' || *u == '\t') {
            esc[n++] = '\\';
            esc[n++] = *u == '\n' ? 'n' : *u == '\r' ? 'r' : 't';
        } else if (*u >= 0x20 && *u < 0x7f) {
            esc[n++] = (char)*u;
        } else if (*u >= 0x80 && (take = utf8_safe_len(u, len - i)) > 0) {
            n = 0; /* copied below as it is */
        } else {
            take = 1;
            esc[n++] = '\\';
            esc[n++] = 'x';
            esc[n++] = hex[*u >> 4];
            esc[n++] = hex[*u & 15];
        }
        size_t out = n ? n : take;
        if (o + out + 5 > size) { /* room for the ellipsis, quote and NUL */
            memcpy(buf + o, "\xe2\x80\xa6", 3);
            o += 3;
            break;
        }
        memcpy(buf + o, n ? esc : (const char *)u, out);
        o += out;
        i += take;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

const char *dm_log_quote_str(const char *s, char *buf, size_t size)
{
    return dm_log_quote(s ? s : "", s ? strlen(s) : 0, buf, size);
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
    /* The last line of defence: whatever a caller forgot to quote, no byte of it can end the
     * line early or drive a terminal. */
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f)
            line[i] = '?';
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
