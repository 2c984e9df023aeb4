/* dm_sink_ceid.c - a record's CloudEvent id (see dm_sink_ceid.h).
 *
 * jansson builds the whole document (about 17 us and 60 allocations for an 884-byte record:
 * a quarter of a kept-alive delivery's CPU) for one string. A scan without allocation reads
 * the records the daemon writes instead: it accepts a subset of JSON that jansson certainly
 * accepts too (ASCII strings without \u escapes, integers of at most 18 digits, decimals
 * without exponent, nesting up to SCAN_DEPTH) and gives the same answer, the last top-level
 * "id" (jansson keeps the last of duplicate keys). Anything else (\u, other bytes, exponents,
 * any error) makes it unsure and jansson decides, so what counts as a record is jansson's
 * answer either way.
 */
#include "dm_common.h"
#include "dm_sink_ceid.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define SCAN_DEPTH 32

typedef struct scan {
    const char *s;
    size_t n, i;
    const char *id; /* the last top-level "id" string, or NULL */
    size_t id_len;
} scan;

static bool scan_value(scan *x, int depth);

static void scan_ws(scan *x)
{
    while (x->i < x->n &&
           (x->s[x->i] == ' ' || x->s[x->i] == '\t' || x->s[x->i] == '\n' || x->s[x->i] == '\r'))
        x->i++;
}

static bool scan_at(const scan *x, char c)
{
    return x->i < x->n && x->s[x->i] == c;
}

/* A string at x->i (its opening quote) of printable ASCII and the escapes other than \u; its
 * contents in *start / *len, and whether it has no escape at all in *plain. */
static bool scan_string(scan *x, const char **start, size_t *len, bool *plain)
{
    x->i++;
    *start = x->s + x->i;
    *plain = true;
    while (x->i < x->n) {
        /* Skip the plain run first: printable ASCII other than '"' and '\\'. */
        while (x->i < x->n && (unsigned char)(x->s[x->i] - 0x20) < 0x5f && x->s[x->i] != '"' &&
               x->s[x->i] != '\\')
            x->i++;
        if (x->i >= x->n)
            break;
        unsigned char ch = (unsigned char)x->s[x->i];
        if (ch == '"') {
            *len = (size_t)(x->s + x->i - *start);
            x->i++;
            return true;
        }
        if (ch < 0x20 || ch > 0x7e)
            return false;
        if (ch == '\\') {
            char e = x->i + 1 < x->n ? x->s[x->i + 1] : '\0';
            if (e == '\0' || !strchr("\"\\/bfnrt", e))
                return false;
            *plain = false;
            x->i++;
        }
        x->i++;
    }
    return false;
}

static bool scan_digits(scan *x, size_t *count)
{
    size_t from = x->i;
    while (x->i < x->n && x->s[x->i] >= '0' && x->s[x->i] <= '9')
        x->i++;
    *count = x->i - from;
    return *count > 0;
}

/* -?(0|[1-9][0-9]{0,17})(.[0-9]+)?: fits jansson's json_int_t, or a double without overflow. */
static bool scan_number(scan *x)
{
    if (scan_at(x, '-'))
        x->i++;
    size_t nint, nfrac;
    bool zero = scan_at(x, '0');
    if (!scan_digits(x, &nint) || nint > 18 || (zero && nint > 1))
        return false;
    if (scan_at(x, '.')) {
        x->i++;
        if (!scan_digits(x, &nfrac))
            return false;
    }
    return !scan_at(x, 'e') && !scan_at(x, 'E');
}

static bool scan_literal(scan *x, const char *lit)
{
    size_t n = strlen(lit);
    if (x->n - x->i < n || memcmp(x->s + x->i, lit, n) != 0)
        return false;
    x->i += n;
    return true;
}

static bool scan_object(scan *x, int depth)
{
    if (depth > SCAN_DEPTH)
        return false;
    x->i++;
    scan_ws(x);
    if (scan_at(x, '}')) {
        x->i++;
        return true;
    }
    for (;;) {
        const char *key, *v;
        size_t klen, vlen;
        bool kplain, vplain;
        if (!scan_at(x, '"') || !scan_string(x, &key, &klen, &kplain))
            return false;
        scan_ws(x);
        if (!scan_at(x, ':'))
            return false;
        x->i++;
        scan_ws(x);
        /* No escape other than \u spells "id", so an escaped key is never it. */
        if (depth == 1 && kplain && klen == 2 && memcmp(key, "id", 2) == 0) {
            if (scan_at(x, '"')) {
                if (!scan_string(x, &v, &vlen, &vplain) || !vplain)
                    return false; /* unescaping is jansson's job */
                x->id = v;
                x->id_len = vlen;
            } else {
                if (!scan_value(x, depth))
                    return false;
                x->id = NULL; /* the last "id" is not a string */
            }
        } else if (!scan_value(x, depth)) {
            return false;
        }
        scan_ws(x);
        if (scan_at(x, '}')) {
            x->i++;
            return true;
        }
        if (!scan_at(x, ','))
            return false;
        x->i++;
        scan_ws(x);
    }
}

static bool scan_array(scan *x, int depth)
{
    if (depth > SCAN_DEPTH)
        return false;
    x->i++;
    scan_ws(x);
    if (scan_at(x, ']')) {
        x->i++;
        return true;
    }
    for (;;) {
        if (!scan_value(x, depth))
            return false;
        scan_ws(x);
        if (scan_at(x, ']')) {
            x->i++;
            return true;
        }
        if (!scan_at(x, ','))
            return false;
        x->i++;
        scan_ws(x);
    }
}

static bool scan_value(scan *x, int depth)
{
    if (x->i >= x->n)
        return false;
    const char *v;
    size_t len;
    bool plain;
    switch (x->s[x->i]) {
    case '{':
        return scan_object(x, depth + 1);
    case '[':
        return scan_array(x, depth + 1);
    case '"':
        return scan_string(x, &v, &len, &plain);
    case 't':
        return scan_literal(x, "true");
    case 'f':
        return scan_literal(x, "false");
    case 'n':
        return scan_literal(x, "null");
    default:
        return scan_number(x);
    }
}

char *dm_sink_cloudevent_id(const char *event, size_t len)
{
    scan x = {.s = event, .n = len};
    scan_ws(&x);
    if (scan_at(&x, '{') && scan_object(&x, 1)) {
        scan_ws(&x);
        if (x.i == x.n)
            return x.id && x.id_len > 0 ? dm_xstrndup(x.id, x.id_len) : NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(event, len, 0, &jerr);
    const json_t *id = root ? json_object_get(root, "id") : NULL;
    char *out = json_is_string(id) && json_string_length(id) > 0
                    ? dm_xstrndup(json_string_value(id), json_string_length(id))
                    : NULL;
    json_decref(root);
    return out;
}
