/* dm_config.c - load and validate the JSON configuration file (DESIGN §6.2).
 *
 * The loader walks the document once, top-down, and stops at the first problem with a
 * message that names the offending key by its path ("sources[1].auth[0].value_env: …").
 * Unknown keys are checked before values, so a typo is reported as a typo and not as the
 * "missing" key it was meant to be.
 */
#include "dm_config.h"
#include "dm_jwt.h"
#include "dm_sns.h"
#include "dm_keyring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/http.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stddef.h>

#include "dm_log.h"

/*---- Limits and defaults ----------------------------------------------------------------*/

#define PATH_BUF        192   /* longest key path we print */
#define SHOW_BUF        96    /* longest user value we echo in a message */
#define SECRET_FILE_MAX 65536 /* a secret file larger than this is a mistake */
#define CONFIG_FILE_MAX (4 * 1024 * 1024)
#define ROUTE_PATH_MAX  256
/* Ten years: far beyond any sensible window, and seconds * 1000 stays far from overflow in
 * every consumer that works in milliseconds. */
#define SECONDS_MAX     315360000LL
#define REDIS_DB_MAX    15
#define SUN_PATH_MAX    (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

#define DEFAULT_HMAC_HEADER "X-Digestmap-Signature"
#define NO_AUTH_HINT        "use [{\"type\": \"none\"}] to accept unauthenticated requests"

/* Routes served by the daemon itself (DESIGN §6.3); a source must not shadow them. */
static const char *const reserved_paths[] = {"/healthz", "/readyz", "/metrics", "/v1/mappings",
                                             "/v1/events/stream"};
static const char *const reserved_prefixes[] = {"/v1/images/"};

/*---- Loader state and error reporting ---------------------------------------------------*/

typedef struct {
    char *err;
    size_t errlen;
    const char *base_dir; /* for relative *_file paths; NULL: the working directory */
    unsigned flags;       /* DM_CONFIG_* */
} loader;

static int failf(loader *ld, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes "<path>: <message>" (just the message at the top level) and returns @p code. */
static int failf(loader *ld, int code, const char *path, const char *fmt, ...)
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
static const char *show_n(const char *s, size_t len, char buf[SHOW_BUF])
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

static const char *show(const char *s, char buf[SHOW_BUF])
{
    return show_n(s, strlen(s), buf);
}

static const char *pathf(char buf[PATH_BUF], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Key paths are only for messages: a (very deep, very long) path is cut, never overflowed. */
static const char *pathf(char buf[PATH_BUF], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, PATH_BUF, fmt, ap);
    va_end(ap);
    return buf;
}

static const char *key_path(char buf[PATH_BUF], const char *parent, const char *key)
{
    return pathf(buf, "%s%s%s", parent, *parent ? "." : "", key);
}

static const char *index_path(char buf[PATH_BUF], const char *parent, size_t i)
{
    return pathf(buf, "%s[%zu]", parent, i);
}

/*---- Typed field access -----------------------------------------------------------------*/

/* @p allowed is NULL-terminated. Keys are compared with their length: the parser refuses
 * "\u0000" today (no JSON_ALLOW_NUL), and if that ever changes "value\u0000x" must still not
 * pass as "value" and then be silently ignored. */
static int check_keys(loader *ld, const json_t *obj, const char *path, const char *const *allowed)
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
            return failf(ld, DM_EINVAL, path, "unknown key \"%s\"", show_n(key, klen, sb));
        }
    }
    return DM_OK;
}

/* Integer in [min, max]; absent → @p def. */
static int get_int(loader *ld, const json_t *obj, const char *parent, const char *key,
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
    key_path(pb, parent, key);
    if (max == LLONG_MAX)
        return failf(ld, DM_EINVAL, pb, "must be an integer >= %lld", min);
    return failf(ld, DM_EINVAL, pb, "must be an integer between %lld and %lld", min, max);
}

/* String value; absent → *out = NULL. The result is borrowed from the document. */
static int get_str(loader *ld, const json_t *obj, const char *parent, const char *key,
                   bool nonempty, const char **out)
{
    const json_t *v = json_object_get(obj, key);
    char pb[PATH_BUF];
    *out = NULL;
    if (!v)
        return DM_OK;
    if (!json_is_string(v) || (nonempty && json_string_length(v) == 0))
        return failf(ld, DM_EINVAL, key_path(pb, parent, key),
                     nonempty ? "must be a non-empty string" : "must be a string");
    *out = json_string_value(v);
    return DM_OK;
}

/* Object value; absent → *out = NULL. */
static int get_obj(loader *ld, const json_t *obj, const char *parent, const char *key,
                   const json_t **out)
{
    const json_t *v = json_object_get(obj, key);
    char pb[PATH_BUF];
    *out = NULL;
    if (!v)
        return DM_OK;
    if (!json_is_object(v))
        return failf(ld, DM_EINVAL, key_path(pb, parent, key), "must be an object");
    *out = v;
    return DM_OK;
}

/*---- Secrets ----------------------------------------------------------------------------*/

static void free_secret(void *p, size_t len)
{
    if (!p)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

/* Read a whole file of at most @p limit bytes. Returns DM_OK, or -errno, or DM_EINVAL when
 * the file is larger than @p limit. *out is NUL-terminated (not counted in *outlen). */
static int read_file(const char *path, size_t limit, unsigned char **out, size_t *outlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = limit + 1, len = 0; /* one spare byte detects "too large" */
    unsigned char *buf = dm_xmalloc(cap + 1);
    int rc = DM_OK;
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (rc == DM_OK && len > limit)
        rc = DM_EINVAL;
    if (rc != DM_OK) {
        free_secret(buf, cap + 1);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return DM_OK;
}

/* Relative paths are resolved against the configuration file's directory, so a config and
 * its secret files can move together. */
static char *resolve_path(const loader *ld, const char *p)
{
    if (p[0] == '/' || !ld->base_dir || !*ld->base_dir)
        return dm_xstrdup(p);
    size_t n = strlen(ld->base_dir) + 1 + strlen(p) + 1;
    char *r = dm_xmalloc(n);
    snprintf(r, n, "%s/%s", ld->base_dir, p);
    return r;
}

static int unresolved(loader *ld, char **missing, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* A secret that cannot be resolved: the load fails as failf() would, or, with
 * DM_CONFIG_SECRETS_OPTIONAL, the same "<path>: <message>" goes to *@p missing and the load
 * goes on (the secret stays NULL). */
static int unresolved(loader *ld, char **missing, int code, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!(ld->flags & DM_CONFIG_SECRETS_OPTIONAL))
        return failf(ld, code, path, "%s", msg);
    size_t n = strlen(path) + 2 + strlen(msg) + 1;
    *missing = dm_xmalloc(n);
    snprintf(*missing, n, "%s: %s", path, msg);
    return DM_OK;
}

static int secret_from_file(loader *ld, const char *kpath, const char *file, unsigned char **out,
                            size_t *outlen, char **missing)
{
    char *full = resolve_path(ld, file);
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    char sb[SHOW_BUF];
    int rc = read_file(full, SECRET_FILE_MAX, &buf, &len);
    if (rc == DM_EINVAL) {
        rc = failf(ld, DM_EINVAL, kpath, "\"%s\" is larger than %d bytes", show(full, sb),
                   SECRET_FILE_MAX);
        goto fail;
    }
    if (rc < 0) {
        /* Absent or unreadable here: a tool may not need it (DM_CONFIG_SECRETS_OPTIONAL). An
         * empty or oversized file is read fine and wrong, and stays an error below. */
        rc = unresolved(ld, missing, DM_EIO, kpath, "cannot read \"%s\": %s", show(full, sb),
                        strerror(-rc));
        goto fail;
    }
    cap = len + 1;
    /* `echo token > file` leaves a newline that is not part of the secret; strip exactly one
     * line ending so that a key which really ends in other whitespace survives. */
    if (len >= 2 && buf[len - 2] == '\r' && buf[len - 1] == '\n')
        len -= 2;
    else if (len >= 1 && buf[len - 1] == '\n')
        len -= 1;
    if (len == 0) {
        rc = failf(ld, DM_EINVAL, kpath, "\"%s\" is empty", show(full, sb));
        goto fail;
    }
    *out = dm_xmalloc(len + 1);
    memcpy(*out, buf, len);
    (*out)[len] = '\0';
    *outlen = len;
    free_secret(buf, cap);
    free(full);
    return DM_OK;

fail:
    free_secret(buf, cap);
    free(full);
    return rc;
}

/*
 * A secret given as "<base>", "<base>_env" or "<base>_file" in the object at @p path:
 * exactly one of them, non-empty. Absent and !required → *out = NULL. The result is
 * NUL-terminated; free with free_secret(). With DM_CONFIG_SECRETS_OPTIONAL, an unset variable
 * or unreadable file also gives *out = NULL, and *missing (free()) says why.
 */
static int get_secret(loader *ld, const json_t *obj, const char *path, const char *base,
                      bool required, unsigned char **out, size_t *outlen, char **missing)
{
    char k_env[64], k_file[64], pb[PATH_BUF], sb[SHOW_BUF];
    const char *val, *env, *file;
    int rc;

    *out = NULL;
    *outlen = 0;
    snprintf(k_env, sizeof(k_env), "%s_env", base);
    snprintf(k_file, sizeof(k_file), "%s_file", base);
    if ((rc = get_str(ld, obj, path, base, true, &val)) < 0 ||
        (rc = get_str(ld, obj, path, k_env, true, &env)) < 0 ||
        (rc = get_str(ld, obj, path, k_file, true, &file)) < 0)
        return rc;

    int given = (val != NULL) + (env != NULL) + (file != NULL);
    if (given > 1)
        return failf(ld, DM_EINVAL, path, "give only one of \"%s\", \"%s\" or \"%s\"", base, k_env,
                     k_file);
    if (given == 0) {
        if (!required)
            return DM_OK;
        return failf(ld, DM_EINVAL, path, "one of \"%s\", \"%s\" or \"%s\" is required", base,
                     k_env, k_file);
    }
    if (val) {
        *outlen = strlen(val);
        *out = (unsigned char *)dm_xstrndup(val, *outlen);
        return DM_OK;
    }
    if (env) {
        /* getenv is not thread-safe, but configuration is loaded before any thread starts. */
        const char *ev = getenv(env);
        if (!ev || !*ev)
            return unresolved(ld, missing, DM_EINVAL, key_path(pb, path, k_env),
                              "environment variable \"%s\" is not set or empty", show(env, sb));
        *outlen = strlen(ev);
        *out = (unsigned char *)dm_xstrndup(ev, *outlen);
        return DM_OK;
    }
    return secret_from_file(ld, key_path(pb, path, k_file), file, out, outlen, missing);
}

/*---- listen -----------------------------------------------------------------------------*/

/* "0".."65535" (or @p min..65535), digits only. */
static bool parse_port(const char *s, size_t len, int min, int *out)
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

static bool is_ipv4(const char *s)
{
    struct in_addr a;
    return inet_pton(AF_INET, s, &a) == 1;
}

static bool is_ipv6(const char *s)
{
    struct in6_addr a;
    return inet_pton(AF_INET6, s, &a) == 1;
}

static int parse_listen(loader *ld, const char *s, dm_config *c)
{
    char sb[SHOW_BUF];
    const char *colon;
    char *host = NULL;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            goto bad_form;
        host = dm_xstrndup(s + 1, (size_t)(close - s - 1));
        colon = close + 1;
        if (!is_ipv6(host))
            goto bad_host;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            goto bad_form;
        host = dm_xstrndup(s, (size_t)(colon - s));
        if (strchr(host, ':')) {
            free(host);
            return failf(ld, DM_EINVAL, "listen",
                         "\"%s\": an IPv6 address must be in brackets, "
                         "e.g. \"[::1]:8080\"",
                         show(s, sb));
        }
        if (strcmp(host, "localhost") == 0) {
            free(host);
            host = dm_xstrdup("127.0.0.1");
        } else if (!is_ipv4(host)) {
            goto bad_host;
        }
    }
    if (!parse_port(colon + 1, strlen(colon + 1), 0, &c->listen_port)) {
        free(host);
        return failf(ld, DM_EINVAL, "listen", "\"%s\": port must be 0..65535", show(s, sb));
    }
    c->listen_host = host;
    return DM_OK;

bad_host:
    free(host);
    return failf(ld, DM_EINVAL, "listen",
                 "\"%s\": host must be an IPv4 literal, an [IPv6] literal or localhost",
                 show(s, sb));
bad_form:
    free(host);
    return failf(ld, DM_EINVAL, "listen", "\"%s\" must have the form \"host:port\"", show(s, sb));
}

/*---- redis ------------------------------------------------------------------------------*/

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode @p len bytes of URL user info. NULL on bad escapes or a decoded NUL. */
static char *pct_decode(const char *s, size_t len)
{
    char *o = dm_xmalloc(len + 1);
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            o[j++] = s[i];
            continue;
        }
        if (i + 2 >= len) {
            free_secret(o, len + 1);
            return NULL;
        }
        int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free_secret(o, len + 1);
            return NULL;
        }
        o[j++] = (char)(hi * 16 + lo);
        i += 2;
    }
    o[j] = '\0';
    return o;
}

#define REDIS_URL_FORM "expected redis://[[user]:password@]HOST[:PORT][/DB]"
#define UNIX_URL_FORM  "expected unix:///absolute/path.sock[?db=N] or unix:relative/path.sock"

/* Parses digits 0..REDIS_DB_MAX. */
static bool parse_db(const char *s, int *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 2 || s[0] < '0' || s[0] > '9' || (n == 2 && (s[1] < '0' || s[1] > '9')))
        return false;
    int v = n == 2 ? (s[0] - '0') * 10 + (s[1] - '0') : s[0] - '0';
    if (v > REDIS_DB_MAX)
        return false;
    *out = v;
    return true;
}

/* Error messages never echo the url: it may hold the password. */
static int parse_redis_tcp(loader *ld, const char *rest, dm_config *c)
{
    char sb[SHOW_BUF];
    const char *hostpart = rest, *p;
    char *host = NULL;
    int rc;

    /* The last '@' ends the user info: host, port and db cannot contain one, the password
     * can. */
    const char *at = strrchr(rest, '@');
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (!colon)
            return failf(ld, DM_EINVAL, "redis.url",
                         "the user info must be \"[user]:password\" (" REDIS_URL_FORM ")");
        if (colon > rest && !(c->redis.username = pct_decode(rest, (size_t)(colon - rest))))
            return failf(ld, DM_EINVAL, "redis.url", "bad percent-encoding in the user name");
        if (!(c->redis.password = pct_decode(colon + 1, (size_t)(at - colon - 1))))
            return failf(ld, DM_EINVAL, "redis.url", "bad percent-encoding in the password");
        if (!*c->redis.password)
            return failf(ld, DM_EINVAL, "redis.url", "the password in the url is empty");
        hostpart = at + 1;
    }

    if (hostpart[0] == '[') {
        const char *close = strchr(hostpart, ']');
        if (!close)
            return failf(ld, DM_EINVAL, "redis.url", "unterminated [IPv6] host");
        host = dm_xstrndup(hostpart + 1, (size_t)(close - hostpart - 1));
        p = close + 1;
        if (!is_ipv6(host)) {
            rc = failf(ld, DM_EINVAL, "redis.url", "\"%s\" is not an IPv6 address", show(host, sb));
            goto fail;
        }
    } else {
        size_t hlen = strcspn(hostpart, ":/?#");
        if (hlen == 0)
            return failf(ld, DM_EINVAL, "redis.url", "missing host (" REDIS_URL_FORM ")");
        host = dm_xstrndup(hostpart, hlen);
        p = hostpart + hlen;
        if (!is_ipv4(host)) {
            rc = failf(ld, DM_EINVAL, "redis.url",
                       "host \"%s\" is not an IP address; use an IP literal (resolving a name "
                       "would block the event loop)",
                       show(host, sb));
            goto fail;
        }
    }

    c->redis.port = 6379;
    if (*p == ':') {
        size_t plen = strcspn(p + 1, "/");
        if (!parse_port(p + 1, plen, 1, &c->redis.port)) {
            rc = failf(ld, DM_EINVAL, "redis.url", "port must be 1..65535");
            goto fail;
        }
        p += 1 + plen;
    }
    if (*p == '/') {
        if (p[1] && !parse_db(p + 1, &c->redis.db)) {
            rc = failf(ld, DM_EINVAL, "redis.url", "database must be 0..%d", REDIS_DB_MAX);
            goto fail;
        }
        p += strlen(p);
    }
    if (*p) {
        rc = failf(ld, DM_EINVAL, "redis.url", REDIS_URL_FORM);
        goto fail;
    }
    c->redis.host = host;
    return DM_OK;

fail:
    free(host);
    return rc;
}

static int parse_redis_unix(loader *ld, const char *rest, dm_config *c)
{
    /* unix:///abs → rest "///abs"; the authority between "//" and the path must be empty. */
    if (rest[0] == '/' && rest[1] == '/') {
        rest += 2;
        if (rest[0] != '/')
            return failf(ld, DM_EINVAL, "redis.url", UNIX_URL_FORM);
    }
    size_t plen = strcspn(rest, "?");
    if (plen == 0)
        return failf(ld, DM_EINVAL, "redis.url", "missing socket path (" UNIX_URL_FORM ")");
    if (plen > SUN_PATH_MAX)
        return failf(ld, DM_EINVAL, "redis.url", "the socket path is longer than %zu bytes",
                     (size_t)SUN_PATH_MAX);
    if (rest[plen] == '?') {
        const char *q = rest + plen + 1;
        if (strncmp(q, "db=", 3) != 0)
            return failf(ld, DM_EINVAL, "redis.url", "the only query parameter is \"db\"");
        if (!parse_db(q + 3, &c->redis.db))
            return failf(ld, DM_EINVAL, "redis.url", "database must be 0..%d", REDIS_DB_MAX);
    }
    c->redis.unix_path = dm_xstrndup(rest, plen);
    return DM_OK;
}

/* redis.url into c->redis's host, port, unix_path, db, username and password. */
static int parse_redis_url(loader *ld, const char *url, dm_config *c)
{
    if (strncmp(url, "redis://", 8) == 0)
        return parse_redis_tcp(ld, url + 8, c);
    if (strncmp(url, "unix:", 5) == 0)
        return parse_redis_unix(ld, url + 5, c);
    if (strncmp(url, "rediss://", 9) == 0)
        return failf(ld, DM_EINVAL, "redis.url", "TLS to Redis (rediss://) is not supported yet");
    return failf(ld, DM_EINVAL, "redis.url", "must start with \"redis://\" or \"unix:\"");
}

bool dm_config_prefix_valid(const char *prefix)
{
    /* The prefix is embedded in every key name and stream name: keep it to characters that
     * need no quoting anywhere (no braces, which would change the hash tag). */
    size_t n = strlen(prefix);
    bool ok = n >= 1 && n <= 64;
    for (size_t i = 0; ok && i < n; i++) {
        char ch = prefix[i];
        ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
             ch == '_' || ch == '.' || ch == ':' || ch == '-';
    }
    return ok;
}

int dm_config_parse_redis_url(const char *url, dm_redis_endpoint *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char why[512] = "";
    loader ld = {.err = why, .errlen = sizeof why};
    dm_config tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = parse_redis_url(&ld, url, &tmp);
    if (rc == DM_OK) {
        out->host = tmp.redis.host;
        out->port = tmp.redis.port;
        out->unix_path = tmp.redis.unix_path;
        out->db = tmp.redis.db;
        out->username = tmp.redis.username;
        out->password = tmp.redis.password;
        return DM_OK;
    }
    /* A failed parse can leave what it had already decoded. */
    dm_redis_endpoint part = {.host = tmp.redis.host,
                              .unix_path = tmp.redis.unix_path,
                              .username = tmp.redis.username,
                              .password = tmp.redis.password};
    dm_redis_endpoint_clear(&part);
    const char *msg = strncmp(why, "redis.url: ", 11) == 0 ? why + 11 : why;
    if (errlen)
        snprintf(err, errlen, "%s", msg);
    return rc;
}

void dm_redis_endpoint_clear(dm_redis_endpoint *e)
{
    if (e->username)
        free_secret(e->username, strlen(e->username));
    if (e->password)
        free_secret(e->password, strlen(e->password));
    free(e->host);
    free(e->unix_path);
    memset(e, 0, sizeof *e);
}

static int parse_redis(loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {
        "url",    "password", "password_env",       "password_file",      "prefix",
        "shards", "server",   "command_timeout_ms", "connect_timeout_ms", NULL};
    const json_t *r;
    const char *url = NULL, *prefix = NULL, *server = NULL;
    long long v;
    int rc;

    if ((rc = get_obj(ld, root, "", "redis", &r)) < 0)
        return rc;
    if (r) {
        if ((rc = check_keys(ld, r, "redis", keys)) < 0 ||
            (rc = get_str(ld, r, "redis", "url", true, &url)) < 0 ||
            (rc = get_str(ld, r, "redis", "prefix", true, &prefix)) < 0 ||
            (rc = get_str(ld, r, "redis", "server", true, &server)) < 0)
            return rc;
        if ((rc = get_int(ld, r, "redis", "shards", 1, 1024, 1, &v)) < 0)
            return rc;
        c->redis.shards = (int)v;
        if ((rc = get_int(ld, r, "redis", "command_timeout_ms", 10, 60000, 2000, &v)) < 0)
            return rc;
        c->redis.command_timeout_ms = (int)v;
        if ((rc = get_int(ld, r, "redis", "connect_timeout_ms", 10, 60000, 2000, &v)) < 0)
            return rc;
        c->redis.connect_timeout_ms = (int)v;
    } else {
        c->redis.shards = 1;
        c->redis.command_timeout_ms = 2000;
        c->redis.connect_timeout_ms = 2000;
    }

    if (prefix && !dm_config_prefix_valid(prefix))
        return failf(ld, DM_EINVAL, "redis.prefix", "must be 1..64 characters of [A-Za-z0-9_.:-]");
    c->redis.prefix = dm_xstrdup(prefix ? prefix : "dm");
    c->redis.server_bin = dm_xstrdup(server ? server : "redis-server");

    if (url) {
        c->redis.url = dm_xstrdup(url);
        if ((rc = parse_redis_url(ld, url, c)) < 0)
            return rc;
    } else {
        /* Embedded server: a unix socket inside data_dir, nothing listening on TCP. */
        size_t n = strlen(c->data_dir) + sizeof("/redis.sock");
        if (n - 1 > SUN_PATH_MAX) {
            char sb[SHOW_BUF];
            return failf(ld, DM_EINVAL, "data_dir",
                         "\"%s/redis.sock\" is longer than %zu bytes (the unix socket path "
                         "limit); shorten data_dir or give redis.url",
                         show(c->data_dir, sb), (size_t)SUN_PATH_MAX);
        }
        c->redis.unix_path = dm_xmalloc(n);
        snprintf(c->redis.unix_path, n, "%s/redis.sock", c->data_dir);
    }

    if (r) {
        unsigned char *pw = NULL;
        size_t pwlen = 0;
        if ((rc = get_secret(ld, r, "redis", "password", false, &pw, &pwlen,
                             &c->redis.password_missing)) < 0)
            return rc;
        /* An unresolved password_env is still a second password. */
        if ((pw || c->redis.password_missing) && c->redis.password) {
            free_secret(pw, pwlen);
            return failf(ld, DM_EINVAL, "redis",
                         "give the password once: the url has one, and so has "
                         "\"password\", \"password_env\" or \"password_file\"");
        }
        if (pw && memchr(pw, '\0', pwlen)) {
            free_secret(pw, pwlen);
            return failf(ld, DM_EINVAL, "redis", "the password must not contain NUL bytes");
        }
        if (pw)
            c->redis.password = (char *)pw;
    }
    return DM_OK;
}

/*---- Auth lists -------------------------------------------------------------------------*/

/* RFC 9110 token characters: anything else can never name a received header. */
static bool is_header_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              strchr("!#$%&'*+-.^_`|~", ch)))
            return false;
    }
    return true;
}

#define URL_MAX       2048
#define JWKS_FILE_MAX (1024 * 1024)
#define URL_SCHEME    "must be an https:// URL (http:// only to 127.0.0.1, [::1] or localhost)"

/* jwks_url and webhook urls: https://, or plain http:// to the loopback interface only
 * (tests, a local proxy): keys fetched or records sent in cleartext over a network could be
 * replaced or read by anyone on the path. Credentials in the URL are refused: the URL is
 * logged. */
static int check_http_url(loader *ld, const char *kpath, const char *url)
{
    static const char *const loopback[] = {"127.0.0.1", "[::1]", "localhost"};
    char sb[SHOW_BUF];
    bool tls = strncmp(url, "https://", 8) == 0;
    if (!tls && strncmp(url, "http://", 7) != 0)
        return failf(ld, DM_EINVAL, kpath, URL_SCHEME);
    if (strlen(url) > URL_MAX)
        return failf(ld, DM_EINVAL, kpath, "must be at most %d characters", URL_MAX);
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, 0);
    if (!u)
        return failf(ld, DM_EINVAL, kpath, "\"%s\" is not a valid URL", show(url, sb));
    const char *host = evhttp_uri_get_host(u);
    int rc = DM_OK;
    if (evhttp_uri_get_userinfo(u)) {
        rc = failf(ld, DM_EINVAL, kpath, "must not contain user info");
    } else if (!host || !*host) {
        rc = failf(ld, DM_EINVAL, kpath, "must name a host");
    } else if (evhttp_uri_get_port(u) == 0) {
        rc = failf(ld, DM_EINVAL, kpath, "port must be 1..65535");
    } else if (evhttp_uri_get_fragment(u)) {
        rc = failf(ld, DM_EINVAL, kpath, "must not have a fragment");
    } else if (!tls) {
        bool local = false;
        for (size_t i = 0; i < DM_ARRAY_LEN(loopback) && !local; i++)
            local = strcasecmp(host, loopback[i]) == 0;
        if (!local)
            rc = failf(ld, DM_EINVAL, kpath, URL_SCHEME);
    }
    evhttp_uri_free(u);
    return rc;
}

/* The jwks_file's keys, or none, into a new keyring for @p out. */
static int load_keyring(loader *ld, const char *path, const char *jwks_file, dm_auth_entry *out)
{
    char pb[PATH_BUF], sb[SHOW_BUF];
    dm_error jerr = {0};
    int rc;
    if (!jwks_file)
        return dm_keyring_new(NULL, 0, &out->keyring, &jerr);

    char *full = resolve_path(ld, jwks_file);
    unsigned char *buf = NULL;
    size_t len = 0;
    rc = read_file(full, JWKS_FILE_MAX, &buf, &len);
    if (rc != DM_OK) {
        rc = failf(ld, rc == DM_EINVAL ? DM_EINVAL : DM_EIO, key_path(pb, path, "jwks_file"),
                   "cannot read \"%s\": %s", show(full, sb),
                   rc == DM_EINVAL ? "larger than 1 MiB" : strerror(-rc));
        free(full);
        return rc;
    }
    rc = dm_keyring_new((const char *)buf, len, &out->keyring, &jerr);
    free(buf);
    if (rc != DM_OK) {
        rc = failf(ld, DM_EINVAL, key_path(pb, path, "jwks_file"), "\"%s\": %s%s%s", show(full, sb),
                   jerr.field, jerr.field[0] ? ": " : "", jerr.text);
        free(full);
        return rc;
    }
    if (dm_keyring_count(out->keyring) == 0) {
        rc = failf(ld, DM_EINVAL, key_path(pb, path, "jwks_file"),
                   "\"%s\" has no usable key (RS256 RSA >= 2048 bits or ES256 P-256, with a "
                   "kid)",
                   show(full, sb));
        free(full);
        return rc;
    }
    free(full);
    return DM_OK;
}

/* {"type": "oidc", "issuer", "audience", "jwks_file", "jwks_url", "jwks_refresh_seconds",
 *  "claims", "provider", "server_url"} */
static int parse_oidc_entry(loader *ld, const json_t *e, const char *path, dm_auth_entry *out)
{
    static const char *const keys[] = {
        "type",   "issuer",   "audience",   "jwks_file", "jwks_url", "jwks_refresh_seconds",
        "claims", "provider", "server_url", NULL};
    static const char *const providers[] = {"auto", "github", "gitlab", "azure-devops", "generic"};
    char pb[PATH_BUF], sb[SHOW_BUF];
    const char *issuer, *audience, *jwks_file, *jwks_url, *provider, *server_url;
    long long refresh;
    int rc;
    if ((rc = check_keys(ld, e, path, keys)) < 0 ||
        (rc = get_str(ld, e, path, "issuer", true, &issuer)) < 0 ||
        (rc = get_str(ld, e, path, "audience", true, &audience)) < 0 ||
        (rc = get_str(ld, e, path, "jwks_file", true, &jwks_file)) < 0 ||
        (rc = get_str(ld, e, path, "jwks_url", true, &jwks_url)) < 0 ||
        (rc = get_str(ld, e, path, "provider", true, &provider)) < 0 ||
        (rc = get_str(ld, e, path, "server_url", true, &server_url)) < 0)
        return rc;
    if (!issuer)
        return failf(ld, DM_EINVAL, path, "\"issuer\" is required");
    if (strncmp(issuer, "https://", 8) != 0)
        return failf(ld, DM_EINVAL, key_path(pb, path, "issuer"), "must be an https:// URL");
    if (!audience)
        return failf(ld, DM_EINVAL, path, "\"audience\" is required");
    if (!jwks_file && !jwks_url)
        return failf(ld, DM_EINVAL, path, "one of \"jwks_file\" or \"jwks_url\" is required");
    if (jwks_url && (rc = check_http_url(ld, key_path(pb, path, "jwks_url"), jwks_url)) < 0)
        return rc;
    if (!jwks_url && json_object_get(e, "jwks_refresh_seconds"))
        return failf(ld, DM_EINVAL, key_path(pb, path, "jwks_refresh_seconds"),
                     "only applies with \"jwks_url\"");
    if ((rc = get_int(ld, e, path, "jwks_refresh_seconds", 60, 86400, 3600, &refresh)) < 0)
        return rc;
    out->provider = 0;
    if (provider) {
        size_t i = 0;
        while (i < DM_ARRAY_LEN(providers) && strcmp(provider, providers[i]) != 0)
            i++;
        if (i == DM_ARRAY_LEN(providers))
            return failf(ld, DM_EINVAL, key_path(pb, path, "provider"),
                         "unknown provider \"%s\" (expected auto, github, gitlab, azure-devops "
                         "or generic)",
                         show(provider, sb));
        out->provider = (int)i; /* same order as dm_oidc_provider */
    }
    const json_t *claims = json_object_get(e, "claims");
    if (claims) {
        if (!json_is_object(claims))
            return failf(ld, DM_EINVAL, key_path(pb, path, "claims"),
                         "must be an object of claim name -> list of allowed values");
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)claims, k, v)
        {
            if (!json_is_array(v) || json_array_size(v) == 0)
                return failf(ld, DM_EINVAL, key_path(pb, path, "claims"),
                             "\"%s\" must list the allowed values (a non-empty array)",
                             show(k, sb));
        }
        out->claims = json_deep_copy(claims);
    }
    /* Google signs with "https://accounts.google.com" but older tokens say the bare host. */
    bool google = strcmp(issuer, "https://accounts.google.com") == 0;
    out->nissuers = google ? 2 : 1;
    out->issuers = dm_xcalloc(out->nissuers, sizeof *out->issuers);
    out->issuers[0] = dm_xstrdup(issuer);
    if (google)
        out->issuers[1] = dm_xstrdup("accounts.google.com");
    out->audience = dm_xstrdup(audience);
    if (server_url)
        out->server_url = dm_xstrdup(server_url);
    if (jwks_url) {
        out->jwks_url = dm_xstrdup(jwks_url);
        out->jwks_refresh_seconds = (int)refresh;
    }
    /* The url's keys are fetched after the load (dm_fetch): configuration does no I/O
     * beyond reading files. */
    return load_keyring(ld, path, jwks_file, out);
}

/* {"type": "sns", "topic_arns": [...], "certs": {"<SigningCertURL>": "<pem file>"},
 *  "fetch_certs": bool, "confirm_subscriptions": bool} */
static int parse_sns_entry(loader *ld, const json_t *e, const char *path, dm_auth_entry *out)
{
    static const char *const keys[] = {
        "type", "topic_arns", "certs", "fetch_certs", "confirm_subscriptions", NULL};
    static const char *const flags[] = {"fetch_certs", "confirm_subscriptions"};
    char pb[PATH_BUF], sb[SHOW_BUF];
    int rc;
    if ((rc = check_keys(ld, e, path, keys)) < 0)
        return rc;
    for (size_t i = 0; i < DM_ARRAY_LEN(flags); i++) {
        const json_t *f = json_object_get(e, flags[i]);
        if (f && !json_is_boolean(f))
            return failf(ld, DM_EINVAL, key_path(pb, path, flags[i]), "must be true or false");
    }
    out->fetch_certs = json_is_true(json_object_get(e, "fetch_certs"));
    out->confirm_subscriptions = json_is_true(json_object_get(e, "confirm_subscriptions"));
    const json_t *arns = json_object_get(e, "topic_arns");
    if (!json_is_array(arns) || json_array_size(arns) == 0)
        return failf(ld, DM_EINVAL, key_path(pb, path, "topic_arns"),
                     "must be a non-empty array of topic ARNs");
    out->ntopic_arns = json_array_size(arns);
    out->topic_arns = dm_xcalloc(out->ntopic_arns, sizeof *out->topic_arns);
    for (size_t i = 0; i < out->ntopic_arns; i++) {
        const json_t *a = json_array_get(arns, i);
        if (!json_is_string(a) || strncmp(json_string_value(a), "arn:aws", 7) != 0)
            return failf(ld, DM_EINVAL, key_path(pb, path, "topic_arns"),
                         "must hold topic ARNs (\"arn:aws…:sns:<region>:<account>:<topic>\")");
        out->topic_arns[i] = dm_xstrdup(json_string_value(a));
    }
    /* The cache exists before "certs" is read: a failed load frees it with the entry. */
    if (out->fetch_certs || out->confirm_subscriptions)
        out->sns_cache = dm_sns_cache_new();
    const json_t *certs = json_object_get(e, "certs");
    if (certs && !json_is_object(certs))
        return failf(ld, DM_EINVAL, key_path(pb, path, "certs"),
                     "must map each SigningCertURL to a PEM file");
    if (!out->fetch_certs && json_object_size(certs) == 0)
        return failf(ld, DM_EINVAL, key_path(pb, path, "certs"),
                     "must map each SigningCertURL to a PEM file (or set \"fetch_certs\": true)");
    if (json_object_size(certs) == 0)
        return DM_OK; /* every certificate is fetched */
    out->certs = dm_xcalloc(json_object_size(certs), sizeof *out->certs);
    const char *url;
    const json_t *file;
    json_object_foreach((json_t *)certs, url, file)
    {
        if (!dm_sns_url_ok(url, true))
            return failf(ld, DM_EINVAL, key_path(pb, path, "certs"),
                         "\"%s\" is not an SNS certificate URL (https://sns.<region>."
                         "amazonaws.com[.cn]/….pem)",
                         show(url, sb));
        if (!json_is_string(file))
            return failf(ld, DM_EINVAL, key_path(pb, path, "certs"), "\"%s\" must name a PEM file",
                         show(url, sb));
        char *full = resolve_path(ld, json_string_value(file));
        unsigned char *buf = NULL;
        size_t len = 0;
        rc = read_file(full, 64 * 1024, &buf, &len);
        if (rc != DM_OK) {
            rc = failf(ld, rc == DM_EINVAL ? DM_EINVAL : DM_EIO, key_path(pb, path, "certs"),
                       "cannot read \"%s\": %s", show(full, sb),
                       rc == DM_EINVAL ? "larger than 64 KiB" : strerror(-rc));
            free(full);
            return rc;
        }
        free(full);
        dm_sns_cert *c = &out->certs[out->ncerts++];
        c->url = dm_xstrdup(url);
        c->pem = (char *)buf;
        c->pem_len = len;
    }
    return DM_OK;
}

static int parse_auth_entry(loader *ld, const json_t *e, const char *path, dm_auth_entry *out)
{
    static const char *const none_keys[] = {"type", NULL};
    static const char *const header_keys[] = {"type",      "name",       "value",
                                              "value_env", "value_file", NULL};
    static const char *const hmac_keys[] = {"type",       "header",      "secret",
                                            "secret_env", "secret_file", NULL};
    char pb[PATH_BUF], sb[SHOW_BUF];
    const char *type, *name;
    int rc;

    if (!json_is_object(e))
        return failf(ld, DM_EINVAL, path, "must be an object");
    if ((rc = get_str(ld, e, path, "type", true, &type)) < 0)
        return rc;
    if (!type)
        return failf(ld, DM_EINVAL, path, "\"type\" is required");

    if (strcmp(type, "none") == 0) {
        out->type = DM_AUTH_NONE;
        return check_keys(ld, e, path, none_keys);
    }
    if (strcmp(type, "header") == 0) {
        out->type = DM_AUTH_HEADER;
        if ((rc = check_keys(ld, e, path, header_keys)) < 0 ||
            (rc = get_str(ld, e, path, "name", true, &name)) < 0)
            return rc;
        if (!name)
            return failf(ld, DM_EINVAL, path, "\"name\" is required");
        if (!is_header_name(name))
            return failf(ld, DM_EINVAL, key_path(pb, path, "name"),
                         "\"%s\" is not a valid header name", show(name, sb));
        out->name = dm_xstrdup(name);
        return get_secret(ld, e, path, "value", true, &out->secret, &out->secret_len,
                          &out->secret_missing);
    }
    if (strcmp(type, "hmac-sha256") == 0) {
        out->type = DM_AUTH_HMAC;
        if ((rc = check_keys(ld, e, path, hmac_keys)) < 0 ||
            (rc = get_str(ld, e, path, "header", true, &name)) < 0)
            return rc;
        if (name && !is_header_name(name))
            return failf(ld, DM_EINVAL, key_path(pb, path, "header"),
                         "\"%s\" is not a valid header name", show(name, sb));
        out->name = dm_xstrdup(name ? name : DEFAULT_HMAC_HEADER);
        return get_secret(ld, e, path, "secret", true, &out->secret, &out->secret_len,
                          &out->secret_missing);
    }
    if (strcmp(type, "oidc") == 0) {
        out->type = DM_AUTH_OIDC;
        out->name = dm_xstrdup("Authorization");
        return parse_oidc_entry(ld, e, path, out);
    }
    if (strcmp(type, "sns") == 0) {
        out->type = DM_AUTH_SNS;
        out->name = dm_xstrdup("x-amz-sns-message-type");
        return parse_sns_entry(ld, e, path, out);
    }
    return failf(ld, DM_EINVAL, key_path(pb, path, "type"),
                 "unknown auth type \"%s\" (expected \"header\", \"hmac-sha256\", \"oidc\", "
                 "\"sns\" or \"none\")",
                 show(type, sb));
}

/* @p obj["auth"], a required non-empty array, into @p list. */
static int parse_auth_list(loader *ld, const json_t *obj, const char *parent, dm_auth_list *list)
{
    const json_t *a = json_object_get(obj, "auth");
    char pb[PATH_BUF], eb[PATH_BUF];
    int rc;

    if (!a)
        return failf(ld, DM_EINVAL, parent, "\"auth\" is required; " NO_AUTH_HINT);
    key_path(pb, parent, "auth");
    if (!json_is_array(a) || json_array_size(a) == 0)
        return failf(ld, DM_EINVAL, pb, "must be a non-empty array; " NO_AUTH_HINT);
    list->n = json_array_size(a);
    list->v = dm_xcalloc(list->n, sizeof(*list->v));
    for (size_t i = 0; i < list->n; i++) {
        if ((rc = parse_auth_entry(ld, json_array_get(a, i), index_path(eb, pb, i), &list->v[i])) <
            0)
            return rc;
    }
    return DM_OK;
}

/*---- Sources ----------------------------------------------------------------------------*/

static int check_route_path(loader *ld, const char *pb, const char *p)
{
    char sb[SHOW_BUF];
    if (p[0] != '/')
        return failf(ld, DM_EINVAL, pb, "must start with \"/\"");
    if (strlen(p) > ROUTE_PATH_MAX)
        return failf(ld, DM_EINVAL, pb, "must be at most %d characters", ROUTE_PATH_MAX);
    for (const char *s = p; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '?' || ch == '#')
            return failf(ld, DM_EINVAL, pb, "must not contain '?' or '#'");
        if (ch <= 0x20 || ch >= 0x7f)
            return failf(ld, DM_EINVAL, pb, "must be printable ASCII without spaces");
    }
    for (size_t i = 0; i < DM_ARRAY_LEN(reserved_paths); i++)
        if (strcmp(p, reserved_paths[i]) == 0)
            return failf(ld, DM_EINVAL, pb, "\"%s\" is reserved for a built-in route", show(p, sb));
    for (size_t i = 0; i < DM_ARRAY_LEN(reserved_prefixes); i++)
        if (strncmp(p, reserved_prefixes[i], strlen(reserved_prefixes[i])) == 0)
            return failf(ld, DM_EINVAL, pb, "\"%s\" is reserved for a built-in route", show(p, sb));
    return DM_OK;
}

static int parse_source(loader *ld, const json_t *s, const char *path, dm_source_conf *out)
{
    static const char *const keys[] = {"type", "path", "auth", NULL};
    char pb[PATH_BUF], sb[SHOW_BUF];
    const char *type, *route;
    int rc;

    if (!json_is_object(s))
        return failf(ld, DM_EINVAL, path, "must be an object");
    if ((rc = check_keys(ld, s, path, keys)) < 0 ||
        (rc = get_str(ld, s, path, "type", true, &type)) < 0)
        return rc;
    if (!type)
        return failf(ld, DM_EINVAL, path, "\"type\" is required");
    key_path(pb, path, "type");
    if (strcmp(type, "acr") == 0)
        out->type = DM_SRC_ACR;
    else if (strcmp(type, "build") == 0)
        out->type = DM_SRC_BUILD;
    else if (strcmp(type, "ecr") == 0)
        out->type = DM_SRC_ECR;
    else if (strcmp(type, "gar") == 0)
        out->type = DM_SRC_GAR;
    else
        return failf(ld, DM_EINVAL, pb,
                     "unknown source type \"%s\" (expected \"acr\", \"ecr\", \"gar\" or "
                     "\"build\")",
                     show(type, sb));

    if ((rc = get_str(ld, s, path, "path", true, &route)) < 0)
        return rc;
    if (route && (rc = check_route_path(ld, key_path(pb, path, "path"), route)) < 0)
        return rc;
    if (!route)
        route = out->type == DM_SRC_ACR   ? "/v1/registry/acr"
                : out->type == DM_SRC_ECR ? "/v1/registry/ecr"
                : out->type == DM_SRC_GAR ? "/v1/registry/gar"
                                          : "/v1/builds";
    out->path = dm_xstrdup(route);
    if ((rc = parse_auth_list(ld, s, path, &out->auth)) < 0)
        return rc;
    /* An SNS signature covers only the envelope's documented fields: it authenticates the
     * EventBridge event in "Message", nothing else a body might carry. */
    for (size_t i = 0; i < out->auth.n; i++) {
        if (out->auth.v[i].type == DM_AUTH_SNS && out->type != DM_SRC_ECR)
            return failf(ld, DM_EINVAL, pathf(pb, "%s.auth[%zu].type", path, i),
                         "\"sns\" authenticates only \"ecr\" sources");
    }
    return DM_OK;
}

static int parse_sources(loader *ld, const json_t *root, dm_config *c)
{
    const json_t *a = json_object_get(root, "sources");
    char pb[PATH_BUF], sb[SHOW_BUF];
    int rc;

    if (!a)
        return failf(ld, DM_EINVAL, "", "\"sources\" is required");
    if (!json_is_array(a) || json_array_size(a) == 0)
        return failf(ld, DM_EINVAL, "sources", "must be a non-empty array");
    c->nsources = json_array_size(a);
    c->sources = dm_xcalloc(c->nsources, sizeof(*c->sources));
    for (size_t i = 0; i < c->nsources; i++) {
        if ((rc = parse_source(ld, json_array_get(a, i), index_path(pb, "sources", i),
                               &c->sources[i])) < 0)
            return rc;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->sources[i].path, c->sources[j].path) == 0) {
                char pp[PATH_BUF];
                pathf(pp, "sources[%zu].path", i);
                return failf(ld, DM_EINVAL, pp, "\"%s\" is already used by sources[%zu]",
                             show(c->sources[i].path, sb), j);
            }
        }
    }
    return DM_OK;
}

/*---- Top level --------------------------------------------------------------------------*/

static int parse_correlation(loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {
        "window_seconds",    "grace_seconds", "max_clock_skew_seconds", "mapping_ttl_seconds",
        "sweep_interval_ms", "sweep_batch",   "report_untagged",        NULL};
    const json_t *o;
    long long v;
    int rc;

    if ((rc = get_obj(ld, root, "", "correlation", &o)) < 0)
        return rc;
    if (o && (rc = check_keys(ld, o, "correlation", keys)) < 0)
        return rc;
    const char *p = "correlation";
    if ((rc = get_int(ld, o, p, "window_seconds", 1, SECONDS_MAX, 1800, &v)) < 0)
        return rc;
    c->correlation.window_seconds = v;
    if ((rc = get_int(ld, o, p, "grace_seconds", 0, SECONDS_MAX, 60, &v)) < 0)
        return rc;
    c->correlation.grace_seconds = v;
    if ((rc = get_int(ld, o, p, "max_clock_skew_seconds", 0, SECONDS_MAX, 300, &v)) < 0)
        return rc;
    c->correlation.max_clock_skew_seconds = v;
    if ((rc = get_int(ld, o, p, "mapping_ttl_seconds", 1, SECONDS_MAX, 7776000, &v)) < 0)
        return rc;
    c->correlation.mapping_ttl_seconds = v;
    /* A mapping must outlive the parked events that can still join into it. */
    long long min_ttl = c->correlation.window_seconds + c->correlation.grace_seconds;
    if (v < min_ttl)
        return failf(ld, DM_EINVAL, "correlation.mapping_ttl_seconds",
                     "must be >= window_seconds + grace_seconds (%lld)", min_ttl);
    if ((rc = get_int(ld, o, p, "sweep_interval_ms", 10, 60000, 1000, &v)) < 0)
        return rc;
    c->correlation.sweep_interval_ms = (int)v;
    if ((rc = get_int(ld, o, p, "sweep_batch", 1, 10000, 256, &v)) < 0)
        return rc;
    c->correlation.sweep_batch = (int)v;
    const json_t *ru = o ? json_object_get(o, "report_untagged") : NULL;
    if (ru && !json_is_boolean(ru))
        return failf(ld, DM_EINVAL, "correlation.report_untagged", "must be true or false");
    c->correlation.report_untagged = ru && json_is_true(ru);
    return DM_OK;
}

static int parse_limits(loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {"max_body_bytes", "max_header_bytes", "max_inflight",
                                       "idle_timeout_seconds", NULL};
    const json_t *o;
    const char *p = "limits";
    long long v;
    int rc;

    if ((rc = get_obj(ld, root, "", "limits", &o)) < 0)
        return rc;
    if (o && (rc = check_keys(ld, o, p, keys)) < 0)
        return rc;
    if ((rc = get_int(ld, o, p, "max_body_bytes", 1, 67108864, 1048576, &v)) < 0)
        return rc;
    c->limits.max_body_bytes = (size_t)v;
    if ((rc = get_int(ld, o, p, "max_header_bytes", 1024, 1048576, 16384, &v)) < 0)
        return rc;
    c->limits.max_header_bytes = (size_t)v;
    if ((rc = get_int(ld, o, p, "max_inflight", 1, 1000000, 10000, &v)) < 0)
        return rc;
    c->limits.max_inflight = (int)v;
    if ((rc = get_int(ld, o, p, "idle_timeout_seconds", 1, 3600, 30, &v)) < 0)
        return rc;
    c->limits.idle_timeout_seconds = (int)v;
    return DM_OK;
}

static int parse_api(loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {"auth", "max_stream_clients", NULL};
    const json_t *o;
    long long v;
    int rc;

    if ((rc = get_obj(ld, root, "", "api", &o)) < 0)
        return rc;
    if (o && (rc = check_keys(ld, o, "api", keys)) < 0)
        return rc;
    if ((rc = get_int(ld, o, "api", "max_stream_clients", 0, 10000, 64, &v)) < 0)
        return rc;
    c->api_max_stream_clients = (int)v;
    if (!o)
        return DM_OK;
    if ((rc = parse_auth_list(ld, o, "api", &c->api_auth)) < 0)
        return rc;
    c->api_configured = true;
    return DM_OK;
}

/*---- Outputs ----------------------------------------------------------------------------*/

/* Record types of DESIGN §6.4: the only values a sink's "types" filter may name. */
static const char *const record_types[] = {"dev.digestmap.mapping.confirmed.v1",
                                           "dev.digestmap.mapping.unmatched.v1",
                                           "dev.digestmap.image.deleted.v1"};

/* Sink and consumer-group names go into Redis group names and log lines. */
static bool is_simple_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-' || ch == ':'))
            return false;
    }
    return true;
}

/* A stable default name: the group (and so the delivery position) survives restarts. */
static char *default_sink_name(const char *url)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(url, strlen(url), md, &mdlen, EVP_sha256(), NULL) != 1)
        abort();
    char *name = dm_xmalloc(5 + 12 + 1);
    memcpy(name, "sink-", 5);
    for (int i = 0; i < 6; i++)
        snprintf(name + 5 + 2 * i, 3, "%02x", md[i]);
    return name;
}

static int parse_sink(loader *ld, const json_t *w, const char *path, dm_sink_conf *out)
{
    static const char *const keys[] = {"name",
                                       "url",
                                       "secret",
                                       "secret_env",
                                       "secret_file",
                                       "types",
                                       "ca_file",
                                       "timeout_ms",
                                       "max_attempts",
                                       "max_inflight",
                                       "backoff_initial_ms",
                                       "backoff_max_ms",
                                       "claim_idle_ms",
                                       NULL};
    char pb[PATH_BUF], sb[SHOW_BUF];
    const char *s;
    long long v;
    int rc;

    if (!json_is_object(w))
        return failf(ld, DM_EINVAL, path, "must be an object");
    if ((rc = check_keys(ld, w, path, keys)) < 0)
        return rc;
    if ((rc = get_str(ld, w, path, "url", true, &s)) < 0)
        return rc;
    if (!s)
        return failf(ld, DM_EINVAL, key_path(pb, path, "url"), "is required");
    if ((rc = check_http_url(ld, key_path(pb, path, "url"), s)) < 0)
        return rc;
    out->url = dm_xstrdup(s);
    if ((rc = get_str(ld, w, path, "name", true, &s)) < 0)
        return rc;
    if (s && !is_simple_name(s, 64))
        return failf(ld, DM_EINVAL, key_path(pb, path, "name"),
                     "\"%s\" must be 1..64 characters of A-Z a-z 0-9 . _ - :", show(s, sb));
    out->name = s ? dm_xstrdup(s) : default_sink_name(out->url);
    if ((rc = get_secret(ld, w, path, "secret", true, &out->secret, &out->secret_len,
                         &out->secret_missing)) < 0)
        return rc;

    const json_t *types = json_object_get(w, "types");
    if (types && (!json_is_array(types) || json_array_size(types) == 0))
        return failf(ld, DM_EINVAL, key_path(pb, path, "types"),
                     "must be a non-empty array of record types");
    out->ntypes = 0;
    out->types = json_array_size(types) ? dm_xcalloc(json_array_size(types), sizeof(char *)) : NULL;
    for (size_t i = 0; i < json_array_size(types); i++) {
        const json_t *t = json_array_get(types, i);
        bool known = false;
        for (size_t k = 0; json_is_string(t) && k < DM_ARRAY_LEN(record_types) && !known; k++)
            known = strcmp(json_string_value(t), record_types[k]) == 0;
        if (!known)
            return failf(ld, DM_EINVAL, key_path(pb, path, "types"),
                         "must hold record types (\"dev.digestmap.mapping.confirmed.v1\", "
                         "\"dev.digestmap.mapping.unmatched.v1\", "
                         "\"dev.digestmap.image.deleted.v1\")");
        out->types[out->ntypes++] = dm_xstrdup(json_string_value(t));
    }
    if ((rc = get_str(ld, w, path, "ca_file", true, &s)) < 0)
        return rc;
    if (s) {
        if (strncmp(out->url, "https://", 8) != 0)
            return failf(ld, DM_EINVAL, key_path(pb, path, "ca_file"), "needs an https:// url");
        out->ca_file = resolve_path(ld, s);
        if (access(out->ca_file, R_OK) != 0)
            return failf(ld, DM_EIO, key_path(pb, path, "ca_file"), "cannot read \"%s\": %s",
                         show(out->ca_file, sb), strerror(errno));
    }
    static const struct {
        const char *key;
        long long min, max, def;
        size_t off;
    } ints[] = {
        {"timeout_ms", 100, 600000, 10000, offsetof(dm_sink_conf, timeout_ms)},
        {"max_attempts", 1, 1000, 8, offsetof(dm_sink_conf, max_attempts)},
        {"max_inflight", 1, 1000, 16, offsetof(dm_sink_conf, max_inflight)},
        {"backoff_initial_ms", 1, 3600000, 1000, offsetof(dm_sink_conf, backoff_initial_ms)},
        {"backoff_max_ms", 1, 86400000, 300000, offsetof(dm_sink_conf, backoff_max_ms)},
        {"claim_idle_ms", 1000, 86400000, 60000, offsetof(dm_sink_conf, claim_idle_ms)},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(ints); i++) {
        if ((rc = get_int(ld, w, path, ints[i].key, ints[i].min, ints[i].max, ints[i].def, &v)) < 0)
            return rc;
        *(int *)((char *)out + ints[i].off) = (int)v;
    }
    if (out->backoff_max_ms < out->backoff_initial_ms)
        return failf(ld, DM_EINVAL, key_path(pb, path, "backoff_max_ms"),
                     "must be at least backoff_initial_ms");
    /* A record held for a retry must not look abandoned to the other instances: the holder
     * refreshes its claim, but an attempt in progress cannot, so it must end well before. */
    if (out->claim_idle_ms < 2 * out->timeout_ms)
        return failf(ld, DM_EINVAL, key_path(pb, path, "claim_idle_ms"),
                     "must be at least twice timeout_ms");
    return DM_OK;
}

static int parse_outputs(loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {"stream_maxlen", "trim_interval_ms", "stream_groups",
                                       "webhooks", NULL};
    const json_t *o;
    char pb[PATH_BUF], sb[SHOW_BUF];
    long long v;
    int rc;

    if ((rc = get_obj(ld, root, "", "outputs", &o)) < 0)
        return rc;
    if (o && (rc = check_keys(ld, o, "outputs", keys)) < 0)
        return rc;
    if ((rc = get_int(ld, o, "outputs", "stream_maxlen", 1, LLONG_MAX, 1000000, &v)) < 0)
        return rc;
    c->outputs.stream_maxlen = v;
    if ((rc = get_int(ld, o, "outputs", "trim_interval_ms", 10, 3600000, 1000, &v)) < 0)
        return rc;
    c->outputs.trim_interval_ms = (int)v;

    const json_t *groups = o ? json_object_get(o, "stream_groups") : NULL;
    if (groups && !json_is_array(groups))
        return failf(ld, DM_EINVAL, "outputs.stream_groups", "must be an array of group names");
    c->outputs.stream_groups =
        json_array_size(groups) ? dm_xcalloc(json_array_size(groups), sizeof(char *)) : NULL;
    for (size_t i = 0; i < json_array_size(groups); i++) {
        const json_t *g = json_array_get(groups, i);
        if (!json_is_string(g) || !is_simple_name(json_string_value(g), 128))
            return failf(ld, DM_EINVAL, index_path(pb, "outputs.stream_groups", i),
                         "must be a group name of 1..128 characters of A-Z a-z 0-9 . _ - :");
        c->outputs.stream_groups[c->outputs.nstream_groups++] = dm_xstrdup(json_string_value(g));
    }

    const json_t *hooks = o ? json_object_get(o, "webhooks") : NULL;
    if (hooks && !json_is_array(hooks))
        return failf(ld, DM_EINVAL, "outputs.webhooks", "must be an array of sinks");
    if (json_array_size(hooks) > 64)
        return failf(ld, DM_EINVAL, "outputs.webhooks", "at most 64 sinks");
    c->outputs.webhooks =
        json_array_size(hooks) ? dm_xcalloc(json_array_size(hooks), sizeof(dm_sink_conf)) : NULL;
    for (size_t i = 0; i < json_array_size(hooks); i++) {
        index_path(pb, "outputs.webhooks", i);
        dm_sink_conf *sk = &c->outputs.webhooks[c->outputs.nwebhooks++];
        if ((rc = parse_sink(ld, json_array_get(hooks, i), pb, sk)) < 0)
            return rc;
        for (size_t k = 0; k + 1 < c->outputs.nwebhooks; k++) {
            if (strcmp(c->outputs.webhooks[k].name, sk->name) == 0)
                return failf(ld, DM_EINVAL, pb,
                             "sink name \"%s\" is used twice (give each a distinct \"name\")",
                             show(sk->name, sb));
        }
    }
    return DM_OK;
}

static int parse_root(loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {"listen",  "workers", "data_dir",    "log_level",
                                       "tls",     "redis",   "correlation", "limits",
                                       "sources", "api",     "outputs",     NULL};
    const char *s;
    long long v;
    dm_log_level lvl;
    int rc;

    if ((rc = check_keys(ld, root, "", keys)) < 0)
        return rc;
    /* Refuse rather than ignore: a config that asks for TLS must not run in cleartext. */
    if (json_object_get(root, "tls"))
        return failf(ld, DM_EINVAL, "tls", "not supported yet (planned: issue \"TLS\")");

    if ((rc = get_str(ld, root, "", "listen", true, &s)) < 0 ||
        (rc = parse_listen(ld, s ? s : "127.0.0.1:8080", c)) < 0)
        return rc;
    if ((rc = get_int(ld, root, "", "workers", 1, 64, 2, &v)) < 0)
        return rc;
    c->workers = (int)v;
    if ((rc = get_str(ld, root, "", "data_dir", true, &s)) < 0)
        return rc;
    c->data_dir = dm_xstrdup(s ? s : "var");
    if ((rc = get_str(ld, root, "", "log_level", false, &s)) < 0)
        return rc;
    if (s && dm_log_parse_level(s, &lvl) != DM_OK)
        return failf(ld, DM_EINVAL, "log_level",
                     "must be one of \"debug\", \"info\", \"warn\", \"error\"");
    c->log_level = dm_xstrdup(s ? s : "info");

    if ((rc = parse_redis(ld, root, c)) < 0 || (rc = parse_correlation(ld, root, c)) < 0 ||
        (rc = parse_limits(ld, root, c)) < 0 || (rc = parse_sources(ld, root, c)) < 0 ||
        (rc = parse_api(ld, root, c)) < 0 || (rc = parse_outputs(ld, root, c)) < 0)
        return rc;
    return DM_OK;
}

/*---- API --------------------------------------------------------------------------------*/

static int load(const char *json, size_t len, const char *base_dir, unsigned flags, dm_config **out,
                char *err, size_t errlen)
{
    loader ld = {.err = err, .errlen = errlen, .base_dir = base_dir, .flags = flags};
    json_error_t jerr;
    dm_config *c = NULL;
    int rc;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    /* Duplicate keys are refused: with "last one wins", a second "auth" further down could
     * quietly replace the one a reviewer checked. Without JSON_ALLOW_NUL, "\u0000" is refused
     * too, so no string or key we read can be silently truncated at a NUL. */
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return failf(&ld, DM_EINVAL, "", "invalid JSON at line %d, column %d: %s", jerr.line,
                     jerr.column, jerr.text);
    if (!json_is_object(root)) {
        rc = failf(&ld, DM_EINVAL, "", "the configuration must be a JSON object");
        goto fail;
    }
    c = dm_xcalloc(1, sizeof(*c));
    if ((rc = parse_root(&ld, root, c)) < 0)
        goto fail;
    json_decref(root);
    *out = c;
    return DM_OK;

fail:
    dm_config_free(c);
    json_decref(root);
    return rc;
}

int dm_config_load_buffer(const char *json, size_t len, const char *base_dir, dm_config **out,
                          char *err, size_t errlen)
{
    return load(json, len, base_dir, 0, out, err, errlen);
}

int dm_config_load_buffer_opts(const char *json, size_t len, const char *base_dir, unsigned flags,
                               dm_config **out, char *err, size_t errlen)
{
    return load(json, len, base_dir, flags, out, err, errlen);
}

int dm_config_load_file(const char *path, dm_config **out, char *err, size_t errlen)
{
    return dm_config_load_file_opts(path, 0, out, err, errlen);
}

int dm_config_load_file_opts(const char *path, unsigned flags, dm_config **out, char *err,
                             size_t errlen)
{
    loader ld = {.err = err, .errlen = errlen};
    unsigned char *buf = NULL;
    size_t len = 0;
    char sb[SHOW_BUF];

    *out = NULL;
    int rc = read_file(path, CONFIG_FILE_MAX, &buf, &len);
    if (rc == DM_EINVAL)
        return failf(&ld, DM_EINVAL, "", "\"%s\" is larger than %d bytes", show(path, sb),
                     CONFIG_FILE_MAX);
    if (rc < 0)
        return failf(&ld, DM_EIO, "", "cannot read \"%s\": %s", show(path, sb), strerror(-rc));

    const char *slash = strrchr(path, '/');
    char *base = slash ? dm_xstrndup(path, (size_t)(slash - path)) : dm_xstrdup(".");
    if (slash == path) { /* "/digestmap.json" */
        free(base);
        base = dm_xstrdup("/");
    }
    rc = load((const char *)buf, len, base, flags, out, err, errlen);
    free(base);
    /* The file may hold inline secrets (dev configs do). */
    free_secret(buf, len + 1);
    return rc;
}

static void free_auth_list(dm_auth_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        dm_auth_entry *a = &l->v[i];
        free(a->name);
        free_secret(a->secret, a->secret_len);
        free(a->secret_missing);
        for (size_t k = 0; k < a->nissuers; k++)
            free(a->issuers[k]);
        free(a->issuers);
        free(a->audience);
        free(a->server_url);
        dm_keyring_free(a->keyring);
        free(a->jwks_url);
        json_decref(a->claims);
        for (size_t k = 0; k < a->ntopic_arns; k++)
            free(a->topic_arns[k]);
        free(a->topic_arns);
        for (size_t k = 0; k < a->ncerts; k++) {
            free(a->certs[k].url);
            free(a->certs[k].pem);
        }
        free(a->certs);
        dm_sns_cache_free(a->sns_cache);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void dm_config_free(dm_config *c)
{
    if (!c)
        return;
    free(c->listen_host);
    free(c->data_dir);
    free(c->log_level);
    /* The url can carry the password. */
    if (c->redis.url)
        free_secret(c->redis.url, strlen(c->redis.url));
    if (c->redis.username)
        free_secret(c->redis.username, strlen(c->redis.username));
    if (c->redis.password)
        free_secret(c->redis.password, strlen(c->redis.password));
    free(c->redis.password_missing);
    free(c->redis.prefix);
    free(c->redis.host);
    free(c->redis.unix_path);
    free(c->redis.server_bin);
    for (size_t i = 0; i < c->nsources; i++) {
        free(c->sources[i].path);
        free_auth_list(&c->sources[i].auth);
    }
    free(c->sources);
    free_auth_list(&c->api_auth);
    for (size_t i = 0; i < c->outputs.nstream_groups; i++)
        free(c->outputs.stream_groups[i]);
    free(c->outputs.stream_groups);
    for (size_t i = 0; i < c->outputs.nwebhooks; i++) {
        dm_sink_conf *w = &c->outputs.webhooks[i];
        free(w->name);
        free(w->url);
        free_secret(w->secret, w->secret_len);
        free(w->secret_missing);
        for (size_t k = 0; k < w->ntypes; k++)
            free(w->types[k]);
        free(w->types);
        free(w->ca_file);
    }
    free(c->outputs.webhooks);
    free(c);
}
