/* dm_cli_conf.c - resolve the client's settings (flags over configuration over defaults) and
 * open the synchronous Redis connection. URLs are parsed with libevent's URI parser. */
#include "dm_common.h"
#include "dm_cli.h"

#include <errno.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REDIS_URL_FORM "expected redis://[[user]:password@]HOST[:PORT][/DB] or unix:PATH[?db=N]"
#define DEFAULT_REDIS_SOCKET "var/redis.sock"
#define DEFAULT_URL "http://127.0.0.1:8080"
#define REDIS_DB_MAX 15

static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* The decoded %-escapes of @p s[0..len), or NULL if they are malformed or decode to NUL. */
static char *uri_decode(const char *s, size_t len)
{
    char *raw = dm_xstrndup(s, len);
    size_t n = 0;
    char *d = evhttp_uridecode(raw, 0, &n);
    free_secret(raw);
    if (d && strlen(d) != n) {
        free_secret(d);
        return NULL;
    }
    return d;
}

static bool parse_db(const char *s, int *out)
{
    long long v;
    if (!dm_cli_parse_int(s, 0, REDIS_DB_MAX, &v))
        return false;
    *out = (int)v;
    return true;
}

/* Errors never echo the url: it may hold the password. */
static int parse_redis_url(const char *url, dm_cli *c, char *err, size_t errlen)
{
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, EVHTTP_URI_NONCONFORMANT);
    int rc = DM_EINVAL;
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    if (!scheme) {
        snprintf(err, errlen, "--redis: not a URL (" REDIS_URL_FORM ")");
        goto out;
    }
    const char *path = evhttp_uri_get_path(u);
    const char *query = evhttp_uri_get_query(u);
    if (strcmp(scheme, "unix") == 0) {
        if (!path || !*path) {
            snprintf(err, errlen, "--redis: missing socket path (" REDIS_URL_FORM ")");
            goto out;
        }
        if (query) {
            if (strncmp(query, "db=", 3) != 0 || !parse_db(query + 3, &c->redis_db)) {
                snprintf(err, errlen, "--redis: the only query parameter is db=0..%d",
                         REDIS_DB_MAX);
                goto out;
            }
        }
        c->redis_unix = dm_xstrdup(path);
    } else if (strcmp(scheme, "redis") == 0) {
        const char *host = evhttp_uri_get_host(u);
        if (!host || !*host) {
            snprintf(err, errlen, "--redis: missing host (" REDIS_URL_FORM ")");
            goto out;
        }
        size_t hlen = strlen(host);
        if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']')
            c->redis_host = dm_xstrndup(host + 1, hlen - 2);
        else
            c->redis_host = dm_xstrdup(host);
        int port = evhttp_uri_get_port(u);
        c->redis_port = port > 0 ? port : 6379;
        if (path && *path && strcmp(path, "/") != 0 && !parse_db(path + 1, &c->redis_db)) {
            snprintf(err, errlen, "--redis: database must be 0..%d", REDIS_DB_MAX);
            goto out;
        }
        if (query) {
            snprintf(err, errlen, "--redis: redis:// URLs take no query (" REDIS_URL_FORM ")");
            goto out;
        }
        const char *ui = evhttp_uri_get_userinfo(u);
        if (ui) {
            const char *colon = strchr(ui, ':');
            if (!colon) {
                snprintf(err, errlen, "--redis: the user info must be \"[user]:password\"");
                goto out;
            }
            if (colon > ui && !(c->redis_user = uri_decode(ui, (size_t)(colon - ui)))) {
                snprintf(err, errlen, "--redis: bad percent-encoding in the user name");
                goto out;
            }
            if (!(c->redis_password = uri_decode(colon + 1, strlen(colon + 1)))) {
                snprintf(err, errlen, "--redis: bad percent-encoding in the password");
                goto out;
            }
        }
    } else if (strcmp(scheme, "rediss") == 0) {
        snprintf(err, errlen, "--redis: TLS to Redis (rediss://) is not supported");
        goto out;
    } else {
        snprintf(err, errlen, "--redis: unknown scheme \"%.16s\" (" REDIS_URL_FORM ")", scheme);
        goto out;
    }
    size_t wn = (c->redis_unix ? strlen(c->redis_unix) : strlen(c->redis_host)) + 16;
    c->redis_where = dm_xmalloc(wn);
    if (c->redis_unix)
        snprintf(c->redis_where, wn, "%s", c->redis_unix);
    else if (strchr(c->redis_host, ':'))
        snprintf(c->redis_where, wn, "[%s]:%d", c->redis_host, c->redis_port);
    else
        snprintf(c->redis_where, wn, "%s:%d", c->redis_host, c->redis_port);
    rc = DM_OK;
out:
    if (u)
        evhttp_uri_free(u);
    return rc;
}

static void redis_from_config(const dm_config *conf, dm_cli *c)
{
    size_t wn;
    if (conf->redis.unix_path) {
        c->redis_unix = dm_xstrdup(conf->redis.unix_path);
        c->redis_where = dm_xstrdup(conf->redis.unix_path);
    } else {
        c->redis_host = dm_xstrdup(conf->redis.host);
        c->redis_port = conf->redis.port;
        wn = strlen(conf->redis.host) + 16;
        c->redis_where = dm_xmalloc(wn);
        snprintf(c->redis_where, wn, strchr(conf->redis.host, ':') ? "[%s]:%d" : "%s:%d",
                 conf->redis.host, conf->redis.port);
    }
    if (conf->redis.username)
        c->redis_user = dm_xstrdup(conf->redis.username);
    if (conf->redis.password)
        c->redis_password = dm_xstrdup(conf->redis.password);
    c->redis_db = conf->redis.db;
}

/* As digestmapd's redis.prefix: it is part of every key name, braces would move the tag. */
static bool prefix_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == ':' || ch == '-'))
            return false;
    }
    return true;
}

static int check_url(const char *url, char *err, size_t errlen)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    int rc = DM_OK;
    if (!u || !scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(err, errlen, "--url \"%.200s\": expected http://HOST[:PORT] or https://HOST[:PORT]",
                 url);
        rc = DM_EINVAL;
    } else if (!host || !*host) {
        snprintf(err, errlen, "--url \"%.200s\": missing host", url);
        rc = DM_EINVAL;
    } else if (evhttp_uri_get_query(u) || evhttp_uri_get_fragment(u) ||
               evhttp_uri_get_userinfo(u)) {
        snprintf(err, errlen, "--url \"%.200s\": only scheme, host, port and a path prefix are "
                              "allowed", url);
        rc = DM_EINVAL;
    }
    if (u)
        evhttp_uri_free(u);
    return rc;
}

/* NULL when the configuration does not say where digestmapd can be reached. */
static char *url_from_config(const dm_config *conf)
{
    if (conf->listen_port == 0)
        return NULL;
    const char *host = conf->listen_host ? conf->listen_host : "127.0.0.1";
    /* A wildcard listener is reached on loopback. */
    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    size_t n = strlen(host) + 32;
    char *url = dm_xmalloc(n);
    snprintf(url, n, strchr(host, ':') ? "http://[%s]:%d" : "http://%s:%d", host,
             conf->listen_port);
    return url;
}

int dm_cli_resolve(const dm_cli_flags *f, dm_cli *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    char cerr[512] = "";
    if (f->config && dm_config_load_file(f->config, &c->conf, cerr, sizeof cerr) != DM_OK) {
        snprintf(err, errlen, "%s: %s", f->config, cerr);
        c->conf = NULL;
        return DM_EIO;
    }
    const dm_config *conf = c->conf;

    if (f->redis) {
        int rc = parse_redis_url(f->redis, c, err, errlen);
        if (rc != DM_OK)
            return rc;
    } else if (conf) {
        redis_from_config(conf, c);
    } else {
        c->redis_unix = dm_xstrdup(DEFAULT_REDIS_SOCKET);
        c->redis_where = dm_xstrdup(DEFAULT_REDIS_SOCKET);
    }
    c->connect_timeout_ms = conf ? conf->redis.connect_timeout_ms : 2000;
    c->command_timeout_ms = conf ? conf->redis.command_timeout_ms : 2000;

    if (f->prefix && !prefix_ok(f->prefix)) {
        snprintf(err, errlen, "--prefix: must be 1..64 characters of [A-Za-z0-9_.:-]");
        return DM_EINVAL;
    }
    c->prefix = dm_xstrdup(f->prefix ? f->prefix : conf ? conf->redis.prefix : "dm");

    c->shards = conf ? (unsigned)conf->redis.shards : 1;
    if (f->shards) {
        long long v;
        if (!dm_cli_parse_int(f->shards, 1, 1024, &v)) {
            snprintf(err, errlen, "--shards: must be an integer 1..1024, not \"%.32s\"", f->shards);
            return DM_EINVAL;
        }
        c->shards = (unsigned)v;
    }

    if (f->url) {
        if (check_url(f->url, err, errlen) != DM_OK)
            return DM_EINVAL;
        c->url = dm_xstrdup(f->url);
    } else if (conf) {
        c->url = url_from_config(conf); /* only the HTTP commands need it */
    } else {
        c->url = dm_xstrdup(DEFAULT_URL);
    }
    size_t ul = c->url ? strlen(c->url) : 0;
    while (ul > 0 && c->url[ul - 1] == '/')
        c->url[--ul] = '\0';

    if (f->token) {
        c->token_header = dm_xstrdup("Authorization");
        c->token = dm_xstrdup(f->token);
    } else if (conf) {
        /* The first header entry of api.auth is a credential the client can present. */
        for (size_t i = 0; i < conf->api_auth.n; i++) {
            const dm_auth_entry *e = &conf->api_auth.v[i];
            if (e->type == DM_AUTH_HEADER && e->secret) {
                c->token_header = dm_xstrdup(e->name);
                c->token = dm_xstrndup((const char *)e->secret, e->secret_len);
                break;
            }
        }
    }
    if (f->cacert)
        c->cacert = dm_xstrdup(f->cacert);
    return DM_OK;
}

void dm_cli_dispose(dm_cli *c)
{
    dm_config_free(c->conf);
    free(c->redis_where);
    free(c->redis_unix);
    free(c->redis_host);
    free(c->redis_user);
    free_secret(c->redis_password);
    free(c->prefix);
    free(c->url);
    free(c->token_header);
    free_secret(c->token);
    free(c->cacert);
    memset(c, 0, sizeof *c);
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

/* Run one command that must answer +OK; on failure fill @p err with @p what and the reply. */
static bool command_ok(redisContext *ctx, int argc, const char **argv, const char *what,
                       const char *where, char *err, size_t errlen)
{
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    if (!r) {
        snprintf(err, errlen, "redis at %s: %s: %s", where, what, ctx->errstr);
        return false;
    }
    bool ok = r->type == REDIS_REPLY_STATUS;
    if (!ok)
        snprintf(err, errlen, "redis at %s: %s refused: %s", where, what,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return ok;
}

redisContext *dm_cli_redis_connect(const dm_cli *c, int read_timeout_ms, char *err,
                                   size_t errlen)
{
    struct timeval ctv = ms_tv(c->connect_timeout_ms);
    redisContext *ctx = c->redis_unix ? redisConnectUnixWithTimeout(c->redis_unix, ctv)
                                      : redisConnectWithTimeout(c->redis_host, c->redis_port, ctv);
    if (!ctx) {
        snprintf(err, errlen, "cannot connect to redis at %s: out of memory", c->redis_where);
        return NULL;
    }
    if (ctx->err) {
        snprintf(err, errlen, "cannot connect to redis at %s: %s", c->redis_where, ctx->errstr);
        redisFree(ctx);
        return NULL;
    }
    /* Connecting with a timeout leaves that timeout on the socket: replace it. */
    struct timeval rtv = ms_tv(read_timeout_ms);
    if (redisSetTimeout(ctx, rtv) != REDIS_OK) {
        snprintf(err, errlen, "redis at %s: cannot set the socket timeout: %s", c->redis_where,
                 ctx->errstr);
        redisFree(ctx);
        return NULL;
    }
    if (c->redis_password) {
        const char *argv[3] = {"AUTH", c->redis_user ? c->redis_user : c->redis_password,
                               c->redis_password};
        if (!command_ok(ctx, c->redis_user ? 3 : 2, argv, "AUTH", c->redis_where, err,
                        errlen)) {
            redisFree(ctx);
            return NULL;
        }
    }
    if (c->redis_db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", c->redis_db);
        const char *argv[2] = {"SELECT", db};
        if (!command_ok(ctx, 2, argv, "SELECT", c->redis_where, err, errlen)) {
            redisFree(ctx);
            return NULL;
        }
    }
    return ctx;
}
