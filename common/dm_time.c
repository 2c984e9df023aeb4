#include "dm_common.h"
#include "dm_time.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t dm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dm_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
 * algorithm); timegm() is not in C11/POSIX and mktime() depends on the local zone. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int digits(const char *s, size_t len, size_t *pos, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (*pos >= len || s[*pos] < '0' || s[*pos] > '9')
            return -1;
        v = v * 10 + (s[*pos] - '0');
        (*pos)++;
    }
    *out = v;
    return 0;
}

static int expect(const char *s, size_t len, size_t *pos, const char *set)
{
    if (*pos >= len || !strchr(set, s[*pos]) || s[*pos] == '\0')
        return -1;
    (*pos)++;
    return 0;
}

int dm_time_parse_rfc3339(const char *s, size_t len, int64_t *ms)
{
    size_t p = 0;
    int Y, M, D, h, mi, sec, frac_ms = 0;
    if (digits(s, len, &p, 4, &Y) || expect(s, len, &p, "-") || digits(s, len, &p, 2, &M) ||
        expect(s, len, &p, "-") || digits(s, len, &p, 2, &D) || expect(s, len, &p, "Tt ") ||
        digits(s, len, &p, 2, &h) || expect(s, len, &p, ":") || digits(s, len, &p, 2, &mi) ||
        expect(s, len, &p, ":") || digits(s, len, &p, 2, &sec))
        return DM_EINVAL;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || sec > 60)
        return DM_EINVAL;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (D > mdays[M - 1] || (M == 2 && D == 29 && !((Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0)))
        return DM_EINVAL;
    if (p < len && s[p] == '.') {
        p++;
        int n = 0;
        while (p < len && s[p] >= '0' && s[p] <= '9') {
            if (n < 3)
                frac_ms = frac_ms * 10 + (s[p] - '0');
            n++;
            p++;
        }
        if (n == 0 || n > 12)
            return DM_EINVAL;
        for (; n < 3; n++)
            frac_ms *= 10;
    }
    int64_t offset_s = 0;
    if (p < len && (s[p] == 'Z' || s[p] == 'z')) {
        p++;
    } else if (p < len && (s[p] == '+' || s[p] == '-')) {
        int sign = s[p] == '-' ? -1 : 1, oh, om;
        p++;
        if (digits(s, len, &p, 2, &oh) || expect(s, len, &p, ":") || digits(s, len, &p, 2, &om) ||
            oh > 23 || om > 59)
            return DM_EINVAL;
        offset_s = sign * (oh * 3600 + om * 60);
    } else {
        return DM_EINVAL;
    }
    if (p != len)
        return DM_EINVAL;
    if (sec == 60)
        sec = 59; /* a leap second is reported as the second before it */
    int64_t t = days_from_civil(Y, M, D) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
    *ms = t * 1000 + frac_ms;
    return DM_OK;
}

void dm_time_format(int64_t ms, char buf[DM_TIME_BUFLEN])
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int msr = (int)(ms - secs * 1000);
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t rem = secs - days * 86400;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0)
        y = 0;
    if (y > 9999)
        y = 9999; /* keeps the fixed-width form; such times are rejected long before */
    snprintf(buf, DM_TIME_BUFLEN, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)y % 10000u,
             (unsigned)m % 100u, (unsigned)d % 100u, (unsigned)(rem / 3600) % 100u,
             (unsigned)(rem % 3600 / 60) % 100u, (unsigned)(rem % 60) % 100u,
             (unsigned)msr % 1000u);
}
