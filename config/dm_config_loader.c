/* dm_config_loader.c - what every section of the configuration loader uses: error messages
 * that name the key by its path, typed field access, and checks of values that several
 * sections take (ports, IP literals, http URLs). See dm_config_loader.h.
 */
#include "dm_config_loader.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>

/*---- Errors and key paths ---------------------------------------------------------------*/

/* Writes "<path>: <message>" (just the message at the top level) and returns @p code. */
int dm_cfg_fail(dm_cfg_loader *ld, int code, const char *path, const char *fmt, ...)
{
    if (!ld->err || ld->errlen == 0)
        return code;
    size_t off = 0;
    if (path && *path) {
        int n = snprintf(ld->err, ld->errlen, "%s: ", path);
        off = n < 0 ? 0 : (size_t)n;
        if (off >= ld->errlen)
            return code;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->err + off, ld->errlen - off, fmt, ap);
    va_end(ap);
    return code;
}

/* Make @p len bytes of a user-supplied string safe to embed in a one-line, double-quoted
 * message: control bytes (NUL included), quotes and backslashes become '?', and long values
 * are cut with "...". */
const char *dm_cfg_show_n(const char *s, size_t len, char buf[SHOW_BUF])
{
    size_t i = 0, o = 0;
    for (; i < len && o < SHOW_BUF - 4; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[o++] = (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') ? '?' : (char)ch;
    }
    if (i < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

const char *dm_cfg_show(const char *s, char buf[SHOW_BUF])
{
    return dm_cfg_show_n(s, strlen(s), buf);
}

/* Key paths are only for messages: a (very deep, very long) path is cut, never overflowed. */
const char *dm_cfg_pathf(char buf[PATH_BUF], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, PATH_BUF, fmt, ap);
    va_end(ap);
    return buf;
}

const char *dm_cfg_key_path(char buf[PATH_BUF], const char *parent, const char *key)
{
    return dm_cfg_pathf(buf, "%s%s%s", parent, *parent ? "." : "", key);
}

const char *dm_cfg_index_path(char buf[PATH_BUF], const char *parent, size_t i)
{
    return dm_cfg_pathf(buf, "%s[%zu]", parent, i);
}

/*---- Typed field access -----------------------------------------------------------------*/

/* @p allowed is NULL-terminated. Keys are compared with their length: the parser refuses
 * "\u0000" today (no JSON_ALLOW_NUL), and if that ever changes "value\u0000x" must still not
 * pass as "value" and then be silently ignored. */
int dm_cfg_check_keys(dm_cfg_loader *ld, const json_t *obj, const char *path,
                      const char *const *allowed)
{
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)obj, key, klen, v)
    {
        bool known = false;
        for (size_t i = 0; allowed[i] && !known; i++)
            known = strlen(allowed[i]) == klen && memcmp(allowed[i], key, klen) == 0;
        if (!known) {
            char sb[SHOW_BUF];
            return dm_cfg_fail(ld, DM_EINVAL, path, "unknown key \"%s\"",
                               dm_cfg_show_n(key, klen, sb));
        }
    }
    return DM_OK;
}

/* Integer in [min, max]; absent → @p def. */
int dm_cfg_get_int(dm_cfg_loader *ld, const json_t *obj, const char *parent, const char *key,
                   long long min, long long max, long long def, long long *out)
{
    const json_t *v = json_object_get(obj, key);
    *out = def;
    if (!v)
        return DM_OK;
    if (json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max) {
        *out = json_integer_value(v);
        return DM_OK;
    }
    char pb[PATH_BUF];
    dm_cfg_key_path(pb, parent, key);
    if (max == LLONG_MAX)
        return dm_cfg_fail(ld, DM_EINVAL, pb, "must be an integer >= %lld", min);
    return dm_cfg_fail(ld, DM_EINVAL, pb, "must be an integer between %lld and %lld", min, max);
}

/* String value; absent → *out = NULL. The result is borrowed from the document. */
int dm_cfg_get_str(dm_cfg_loader *ld, const json_t *obj, const char *parent, const char *key,
                   bool nonempty, const char **out)
{
    const json_t *v = json_object_get(obj, key);
    char pb[PATH_BUF];
    *out = NULL;
    if (!v)
        return DM_OK;
    if (!json_is_string(v) || (nonempty && json_string_length(v) == 0))
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, parent, key),
                           nonempty ? "must be a non-empty string" : "must be a string");
    *out = json_string_value(v);
    return DM_OK;
}

/* Object value; absent → *out = NULL. */
int dm_cfg_get_obj(dm_cfg_loader *ld, const json_t *obj, const char *parent, const char *key,
                   const json_t **out)
{
    const json_t *v = json_object_get(obj, key);
    char pb[PATH_BUF];
    *out = NULL;
    if (!v)
        return DM_OK;
    if (!json_is_object(v))
        return dm_cfg_fail(ld, DM_EINVAL, dm_cfg_key_path(pb, parent, key), "must be an object");
    *out = v;
    return DM_OK;
}

/*---- Values ----------------------------------------------------------------------------*/

/* "0".."65535" (or @p min..65535), digits only. */
bool dm_cfg_parse_port(const char *s, size_t len, int min, int *out)
{
    long v = 0;
    if (len == 0 || len > 5)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > 65535)
        return false;
    *out = (int)v;
    return true;
}

bool dm_cfg_is_ipv4(const char *s)
{
    struct in_addr a;
    return inet_pton(AF_INET, s, &a) == 1;
}

bool dm_cfg_is_ipv6(const char *s)
{
    struct in6_addr a;
    return inet_pton(AF_INET6, s, &a) == 1;
}

#define URL_MAX    2048
#define URL_SCHEME "must be an https:// URL (http:// only to 127.0.0.1, [::1] or localhost)"

/* jwks_url and webhook urls: https://, or plain http:// to the loopback interface only
 * (tests, a local proxy): keys fetched or records sent in cleartext over a network could be
 * replaced or read by anyone on the path. Credentials in the URL are refused: the URL is
 * logged. */
int dm_cfg_check_http_url(dm_cfg_loader *ld, const char *kpath, const char *url)
{
    static const char *const loopback[] = {"127.0.0.1", "[::1]", "localhost"};
    char sb[SHOW_BUF];
    bool tls = strncmp(url, "https://", 8) == 0;
    if (!tls && strncmp(url, "http://", 7) != 0)
        return dm_cfg_fail(ld, DM_EINVAL, kpath, URL_SCHEME);
    if (strlen(url) > URL_MAX)
        return dm_cfg_fail(ld, DM_EINVAL, kpath, "must be at most %d characters", URL_MAX);
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, 0);
    if (!u)
        return dm_cfg_fail(ld, DM_EINVAL, kpath, "\"%s\" is not a valid URL", dm_cfg_show(url, sb));
    const char *host = evhttp_uri_get_host(u);
    int rc = DM_OK;
    if (evhttp_uri_get_userinfo(u)) {
        rc = dm_cfg_fail(ld, DM_EINVAL, kpath, "must not contain user info");
    } else if (!host || !*host) {
        rc = dm_cfg_fail(ld, DM_EINVAL, kpath, "must name a host");
    } else if (evhttp_uri_get_port(u) == 0) {
        rc = dm_cfg_fail(ld, DM_EINVAL, kpath, "port must be 1..65535");
    } else if (evhttp_uri_get_fragment(u)) {
        rc = dm_cfg_fail(ld, DM_EINVAL, kpath, "must not have a fragment");
    } else if (!tls) {
        bool local = false;
        for (size_t i = 0; i < DM_ARRAY_LEN(loopback) && !local; i++)
            local = strcasecmp(host, loopback[i]) == 0;
        if (!local)
            rc = dm_cfg_fail(ld, DM_EINVAL, kpath, URL_SCHEME);
    }
    evhttp_uri_free(u);
    return rc;
}
