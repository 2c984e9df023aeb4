/* dm_hretry.c - Retry-After values (dm_hclient_retry_after_ms, declared in dm_hclient.h). */
/* strptime (HTTP-date in Retry-After) is an X/Open function. */
#define _XOPEN_SOURCE 700
#include "dm_common.h"
#include "dm_hclient.h"

#include <ctype.h>
#include <string.h>
#include <time.h>

int dm_hclient_retry_after_ms(const char *value, int64_t now_ms, int64_t *delay_ms)
{
    if (!value)
        return DM_EINVAL;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        n--;
    if (n == 0 || n > 64)
        return DM_EINVAL;
    char v[65];
    memcpy(v, value, n);
    v[n] = '\0';

    if (isdigit((unsigned char)v[0])) {
        int64_t s = 0;
        for (size_t i = 0; i < n; i++) {
            if (!isdigit((unsigned char)v[i]))
                return DM_EINVAL;
            if (s < INT64_MAX / 10000) /* saturate: "wait very long" stays very long */
                s = s * 10 + (v[i] - '0');
        }
        *delay_ms = s < INT64_MAX / 10000 ? s * 1000 : INT64_MAX / 10;
        return DM_OK;
    }
    /* HTTP-date, the three forms a recipient must accept (RFC 9110 §5.6.7). strptime uses
     * the C locale's day and month names: the daemon never calls setlocale. */
    static const char *const forms[] = {
        "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        "%A, %d-%b-%y %H:%M:%S GMT", /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
        "%a %b %e %H:%M:%S %Y",      /* asctime: Sun Nov  6 08:49:37 1994 */
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(forms); i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(v, forms[i], &tm);
        if (!end || *end != '\0')
            continue;
        time_t t = timegm(&tm);
        if (t == (time_t)-1)
            return DM_EINVAL;
        int64_t at = (int64_t)t * 1000;
        *delay_ms = at > now_ms ? at - now_ms : 0;
        return DM_OK;
    }
    return DM_EINVAL;
}
