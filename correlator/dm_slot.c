#include "dm_slot.h"

#include <stdlib.h>
#include <string.h>

unsigned dm_slot_crc16(const char *buf, size_t len)
{
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)buf[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

unsigned dm_slot_of(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1) /* "{}" is no tag: the whole key is hashed */
            return dm_slot_crc16(open + 1, (size_t)(close - open - 1)) % DM_SLOTS;
    }
    return dm_slot_crc16(key, len) % DM_SLOTS;
}

/* A decimal number of 1..maxdigits digits at the start of [*p, end) into *out; advances *p. */
static bool parse_uint(const char **p, const char *end, int maxdigits, unsigned long *out)
{
    unsigned long v = 0;
    int n = 0;
    while (*p < end && **p >= '0' && **p <= '9' && n < maxdigits) {
        v = v * 10 + (unsigned long)(**p - '0');
        (*p)++;
        n++;
    }
    *out = v;
    return n > 0 && !(*p < end && **p >= '0' && **p <= '9');
}

bool dm_redirect_parse(const char *err, size_t len, dm_redirect *out)
{
    const char *p = err, *end = err + len;
    if (len > 5 && memcmp(p, "MOVED ", 6) == 0) {
        out->ask = false;
        p += 6;
    } else if (len > 4 && memcmp(p, "ASK ", 4) == 0) {
        out->ask = true;
        p += 4;
    } else {
        return false;
    }
    unsigned long slot, port;
    if (!parse_uint(&p, end, 5, &slot) || slot >= DM_SLOTS || p == end || *p != ' ')
        return false;
    p++;
    /* host:port, the port after the last ':' (an IPv6 literal has colons of its own) */
    const char *colon = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == ':')
            colon = q;
    if (!colon)
        return false;
    const char *h = p, *he = colon;
    if (he - h >= 2 && h[0] == '[' && he[-1] == ']')
        h++, he--;
    size_t hlen = (size_t)(he - h);
    if (hlen == 0 || hlen >= DM_SLOT_HOST_MAX || memchr(h, ' ', hlen) || memchr(h, '\0', hlen))
        return false;
    p = colon + 1;
    if (!parse_uint(&p, end, 5, &port) || p != end || port == 0 || port > 65535)
        return false;
    out->slot = (unsigned)slot;
    memcpy(out->host, h, hlen);
    out->host[hlen] = '\0';
    out->port = (int)port;
    return true;
}
