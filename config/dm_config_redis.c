/* dm_config_redis.c - the "redis" section, and the redis URL parser that the command-line
 * client shares (dm_config_parse_redis_url): one set of rules for every place that takes a
 * redis.url.
 *
 * Error messages never echo the url: it may hold the password.
 */
#include "dm_config_loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/un.h>

#define REDIS_DB_MAX 15
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/*---- The url ----------------------------------------------------------------------------*/

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
            dm_cfg_free_secret(o, len + 1);
            return NULL;
        }
        int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            dm_cfg_free_secret(o, len + 1);
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

/* A host name as DNS allows it: labels of 1..63 letters, digits and '-' (not first or last)
 * joined by '.', 253 characters at most, and not all digits (999.1.1.1 is a bad address, not a
 * name). Resolved asynchronously at each connect (correlator/dm_rconn.h). */
static bool is_dns_name(const char *h)
{
    size_t n = strlen(h), label = 0;
    bool alpha = false;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i <= n; i++) {
        char ch = h[i];
        if (ch == '.' || ch == '\0') {
            if (label == 0 || label > 63 || h[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        bool digit = ch >= '0' && ch <= '9';
        bool letter = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
        if (!digit && !letter && !(ch == '-' && label > 0))
            return false;
        alpha = alpha || !digit;
        label++;
    }
    return alpha;
}

/* Error messages never echo the url: it may hold the password. */
static int parse_redis_tcp(dm_cfg_loader *ld, const char *rest, dm_config *c)
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
            return dm_cfg_fail(ld, DM_EINVAL, "redis.url",
                               "the user info must be \"[user]:password\" (" REDIS_URL_FORM ")");
        if (colon > rest && !(c->redis.username = pct_decode(rest, (size_t)(colon - rest))))
            return dm_cfg_fail(ld, DM_EINVAL, "redis.url", "bad percent-encoding in the user name");
        if (!(c->redis.password = pct_decode(colon + 1, (size_t)(at - colon - 1))))
            return dm_cfg_fail(ld, DM_EINVAL, "redis.url", "bad percent-encoding in the password");
        if (!*c->redis.password)
            return dm_cfg_fail(ld, DM_EINVAL, "redis.url", "the password in the url is empty");
        hostpart = at + 1;
    }

    if (hostpart[0] == '[') {
        const char *close = strchr(hostpart, ']');
        if (!close)
            return dm_cfg_fail(ld, DM_EINVAL, "redis.url", "unterminated [IPv6] host");
        host = dm_xstrndup(hostpart + 1, (size_t)(close - hostpart - 1));
        p = close + 1;
        if (!dm_cfg_is_ipv6(host)) {
            rc = dm_cfg_fail(ld, DM_EINVAL, "redis.url", "\"%s\" is not an IPv6 address",
                             dm_cfg_show(host, sb));
            goto fail;
        }
    } else {
        size_t hlen = strcspn(hostpart, ":/?#");
        if (hlen == 0)
            return dm_cfg_fail(ld, DM_EINVAL, "redis.url", "missing host (" REDIS_URL_FORM ")");
        host = dm_xstrndup(hostpart, hlen);
        p = hostpart + hlen;
        if (!dm_cfg_is_ipv4(host) && !is_dns_name(host)) {
            rc = dm_cfg_fail(ld, DM_EINVAL, "redis.url",
                             "host \"%s\" is neither an IPv4 address nor a DNS name (letters, "
                             "digits, '-' and '.', labels of 1..63, at most 253 characters)",
                             dm_cfg_show(host, sb));
            goto fail;
        }
    }

    c->redis.port = 6379;
    if (*p == ':') {
        size_t plen = strcspn(p + 1, "/");
        if (!dm_cfg_parse_port(p + 1, plen, 1, &c->redis.port)) {
            rc = dm_cfg_fail(ld, DM_EINVAL, "redis.url", "port must be 1..65535");
            goto fail;
        }
        p += 1 + plen;
    }
    if (*p == '/') {
        if (p[1] && !parse_db(p + 1, &c->redis.db)) {
            rc = dm_cfg_fail(ld, DM_EINVAL, "redis.url", "database must be 0..%d", REDIS_DB_MAX);
            goto fail;
        }
        p += strlen(p);
    }
    if (*p) {
        rc = dm_cfg_fail(ld, DM_EINVAL, "redis.url", REDIS_URL_FORM);
        goto fail;
    }
    c->redis.host = host;
    return DM_OK;

fail:
    free(host);
    return rc;
}

static int parse_redis_unix(dm_cfg_loader *ld, const char *rest, dm_config *c)
{
    /* unix:///abs → rest "///abs"; the authority between "//" and the path must be empty. */
    if (rest[0] == '/' && rest[1] == '/') {
        rest += 2;
        if (rest[0] != '/')
            return dm_cfg_fail(ld, DM_EINVAL, "redis.url", UNIX_URL_FORM);
    }
    size_t plen = strcspn(rest, "?");
    if (plen == 0)
        return dm_cfg_fail(ld, DM_EINVAL, "redis.url", "missing socket path (" UNIX_URL_FORM ")");
    if (plen > SUN_PATH_MAX)
        return dm_cfg_fail(ld, DM_EINVAL, "redis.url", "the socket path is longer than %zu bytes",
                           (size_t)SUN_PATH_MAX);
    if (rest[plen] == '?') {
        const char *q = rest + plen + 1;
        if (strncmp(q, "db=", 3) != 0)
            return dm_cfg_fail(ld, DM_EINVAL, "redis.url", "the only query parameter is \"db\"");
        if (!parse_db(q + 3, &c->redis.db))
            return dm_cfg_fail(ld, DM_EINVAL, "redis.url", "database must be 0..%d", REDIS_DB_MAX);
    }
    c->redis.unix_path = dm_xstrndup(rest, plen);
    return DM_OK;
}

/* redis.url into c->redis's host, port, unix_path, db, username and password. */
static int parse_redis_url(dm_cfg_loader *ld, const char *url, dm_config *c)
{
    if (strncmp(url, "redis://", 8) == 0)
        return parse_redis_tcp(ld, url + 8, c);
    if (strncmp(url, "unix:", 5) == 0)
        return parse_redis_unix(ld, url + 5, c);
    if (strncmp(url, "rediss://", 9) == 0)
        return dm_cfg_fail(ld, DM_EINVAL, "redis.url",
                           "TLS to Redis (rediss://) is not supported yet");
    return dm_cfg_fail(ld, DM_EINVAL, "redis.url", "must start with \"redis://\" or \"unix:\"");
}

/*---- For the command-line client ---------------------------------------------------------*/

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
    dm_cfg_loader ld = {.err = why, .errlen = sizeof why};
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
        dm_cfg_free_secret(e->username, strlen(e->username));
    if (e->password)
        dm_cfg_free_secret(e->password, strlen(e->password));
    free(e->host);
    free(e->unix_path);
    memset(e, 0, sizeof *e);
}

/*---- The redis section ------------------------------------------------------------------*/

/* Embedded server: a unix socket inside data_dir, nothing listening on TCP. */
static int embedded_socket(dm_cfg_loader *ld, dm_config *c)
{
    size_t n = strlen(c->data_dir) + sizeof("/redis.sock");
    if (n - 1 > SUN_PATH_MAX) {
        char sb[SHOW_BUF];
        return dm_cfg_fail(ld, DM_EINVAL, "data_dir",
                           "\"%s/redis.sock\" is longer than %zu bytes (the unix socket path "
                           "limit); shorten data_dir or give redis.url",
                           dm_cfg_show(c->data_dir, sb), (size_t)SUN_PATH_MAX);
    }
    c->redis.unix_path = dm_xmalloc(n);
    snprintf(c->redis.unix_path, n, "%s/redis.sock", c->data_dir);
    return DM_OK;
}

/* "password", "password_env" or "password_file" of the redis object @p r, after the url. */
static int parse_redis_password(dm_cfg_loader *ld, const json_t *r, dm_config *c)
{
    unsigned char *pw = NULL;
    size_t pwlen = 0;
    int rc;
    if ((rc = dm_cfg_get_secret(ld, r, "redis", "password", false, &pw, &pwlen,
                                &c->redis.password_missing)) < 0)
        return rc;
    /* An unresolved password_env is still a second password. */
    if ((pw || c->redis.password_missing) && c->redis.password) {
        dm_cfg_free_secret(pw, pwlen);
        return dm_cfg_fail(ld, DM_EINVAL, "redis",
                           "give the password once: the url has one, and so has "
                           "\"password\", \"password_env\" or \"password_file\"");
    }
    if (pw && memchr(pw, '\0', pwlen)) {
        dm_cfg_free_secret(pw, pwlen);
        return dm_cfg_fail(ld, DM_EINVAL, "redis", "the password must not contain NUL bytes");
    }
    if (pw)
        c->redis.password = (char *)pw;
    return DM_OK;
}

int dm_cfg_parse_redis(dm_cfg_loader *ld, const json_t *root, dm_config *c)
{
    static const char *const keys[] = {"url",
                                       "password",
                                       "password_env",
                                       "password_file",
                                       "prefix",
                                       "shards",
                                       "server",
                                       "command_timeout_ms",
                                       "cluster",
                                       "connect_timeout_ms",
                                       "maxmemory",
                                       "wait_replicas",
                                       NULL};
    const json_t *r;
    const char *url = NULL, *prefix = NULL, *server = NULL;
    long long v;
    int rc;

    if ((rc = dm_cfg_get_obj(ld, root, "", "redis", &r)) < 0)
        return rc;
    if (r) {
        if ((rc = dm_cfg_check_keys(ld, r, "redis", keys)) < 0 ||
            (rc = dm_cfg_get_str(ld, r, "redis", "url", true, &url)) < 0 ||
            (rc = dm_cfg_get_str(ld, r, "redis", "prefix", true, &prefix)) < 0 ||
            (rc = dm_cfg_get_str(ld, r, "redis", "server", true, &server)) < 0)
            return rc;
        if ((rc = dm_cfg_get_int(ld, r, "redis", "shards", 1, 1024, 1, &v)) < 0)
            return rc;
        c->redis.shards = (int)v;
        if ((rc = dm_cfg_get_int(ld, r, "redis", "command_timeout_ms", 10, 60000, 2000, &v)) < 0)
            return rc;
        c->redis.command_timeout_ms = (int)v;
        if ((rc = dm_cfg_get_int(ld, r, "redis", "connect_timeout_ms", 10, 60000, 2000, &v)) < 0)
            return rc;
        c->redis.connect_timeout_ms = (int)v;
        if ((rc = dm_cfg_get_int(ld, r, "redis", "wait_replicas", 0, 64, 0, &v)) < 0)
            return rc;
        c->redis.wait_replicas = (int)v;
        /* The embedded server's memory cap: over it every ingest gets 503, never a 202 that
         * Redis could not hold. An external Redis has its own maxmemory. */
        if ((rc = dm_cfg_get_int(ld, r, "redis", "maxmemory", 1048576, LLONG_MAX, 0, &v)) < 0)
            return rc;
        c->redis.maxmemory = v;
        if (v && json_object_get(r, "url"))
            return dm_cfg_fail(ld, DM_EINVAL, "redis.maxmemory",
                               "applies to the embedded redis-server only (set maxmemory in the "
                               "configuration of the Redis that redis.url names)");
        const json_t *cl = json_object_get(r, "cluster");
        if (cl && !json_is_boolean(cl))
            return dm_cfg_fail(ld, DM_EINVAL, "redis.cluster", "must be true or false");
        c->redis.cluster = cl && json_is_true(cl);
    } else {
        c->redis.shards = 1;
        c->redis.command_timeout_ms = 2000;
        c->redis.connect_timeout_ms = 2000;
    }

    if (prefix && !dm_config_prefix_valid(prefix))
        return dm_cfg_fail(ld, DM_EINVAL, "redis.prefix",
                           "must be 1..64 characters of [A-Za-z0-9_.:-]");
    c->redis.prefix = dm_xstrdup(prefix ? prefix : "dm");
    c->redis.server_bin = dm_xstrdup(server ? server : "redis-server");

    if (url)
        c->redis.url = dm_xstrdup(url);
    if ((rc = url ? parse_redis_url(ld, url, c) : embedded_socket(ld, c)) < 0)
        return rc;
    if (c->redis.cluster && !c->redis.host)
        return dm_cfg_fail(ld, DM_EINVAL, "redis.cluster",
                           "needs redis.url = \"redis://HOST:PORT\" naming a cluster node (not "
                           "a unix socket or the embedded server)");
    if (c->redis.cluster && c->redis.db != 0)
        return dm_cfg_fail(ld, DM_EINVAL, "redis.cluster",
                           "Redis Cluster has database 0 only; redis.url selects database %d",
                           c->redis.db);
    return r ? parse_redis_password(ld, r, c) : DM_OK;
}

void dm_cfg_free_redis(dm_config *c)
{
    /* The url can carry the password. */
    if (c->redis.url)
        dm_cfg_free_secret(c->redis.url, strlen(c->redis.url));
    if (c->redis.username)
        dm_cfg_free_secret(c->redis.username, strlen(c->redis.username));
    if (c->redis.password)
        dm_cfg_free_secret(c->redis.password, strlen(c->redis.password));
    free(c->redis.password_missing);
    free(c->redis.prefix);
    free(c->redis.host);
    free(c->redis.unix_path);
    free(c->redis.server_bin);
}
