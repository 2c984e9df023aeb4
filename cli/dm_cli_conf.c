/* dm_cli_conf.c - resolve the client's settings (flags over configuration over defaults) and
 * open the synchronous Redis connection. --redis and --prefix follow digestmapd's own rules
 * (dm_config); --url is checked with libevent's URI parser. */
#include "dm_common.h"
#include "dm_cli_conf.h"
#include "dm_resp.h"

#include <event2/http.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_REDIS_SOCKET "var/redis.sock"
#define DEFAULT_URL          "http://127.0.0.1:8080"

static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* "[v6]:port", "v4:port" or the socket path, for messages. */
static void set_where(dm_cli *c)
{
    if (c->redis_unix) {
        c->redis_where = dm_xstrdup(c->redis_unix);
        return;
    }
    size_t wn = strlen(c->redis_host) + 16;
    c->redis_where = dm_xmalloc(wn);
    snprintf(c->redis_where, wn, strchr(c->redis_host, ':') ? "[%s]:%d" : "%s:%d", c->redis_host,
             c->redis_port);
}

/* --redis takes exactly what digestmapd's redis.url takes (the daemon's own parser).
 * Errors never echo the url: it may hold the password. */
static int parse_redis_url(const char *url, dm_cli *c, char *err, size_t errlen)
{
    dm_redis_endpoint e;
    char why[512];
    if (dm_config_parse_redis_url(url, &e, why, sizeof why) != DM_OK) {
        snprintf(err, errlen, "--redis: %s", why);
        return DM_EINVAL;
    }
    /* Move the strings: dm_cli frees them the same way (secrets wiped). */
    c->redis_host = e.host;
    c->redis_port = e.port;
    c->redis_unix = e.unix_path;
    c->redis_db = e.db;
    c->redis_user = e.username;
    c->redis_password = e.password;
    set_where(c);
    return DM_OK;
}

/* "<config path>: <what>" (the form of a configuration load error). */
static char *config_message(const char *config, const char *what)
{
    size_t n = strlen(config) + 2 + strlen(what) + 1;
    char *m = dm_xmalloc(n);
    snprintf(m, n, "%s: %s", config, what);
    return m;
}

static void redis_from_config(const dm_config *conf, const char *config, dm_cli *c)
{
    if (conf->redis.unix_path) {
        c->redis_unix = dm_xstrdup(conf->redis.unix_path);
    } else {
        c->redis_host = dm_xstrdup(conf->redis.host);
        c->redis_port = conf->redis.port;
    }
    set_where(c);
    if (conf->redis.username)
        c->redis_user = dm_xstrdup(conf->redis.username);
    if (conf->redis.password)
        c->redis_password = dm_xstrdup(conf->redis.password);
    else if (conf->redis.password_missing)
        c->redis_password_missing = config_message(config, conf->redis.password_missing);
    c->redis_db = conf->redis.db;
    c->redis_cluster = conf->redis.cluster;
}

static int check_url(const char *url, char *err, size_t errlen)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    int rc = DM_OK;
    if (!u || !scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(err, errlen,
                 "--url \"%.200s\": expected http://HOST[:PORT] or https://HOST[:PORT]", url);
        rc = DM_EINVAL;
    } else if (!host || !*host) {
        snprintf(err, errlen, "--url \"%.200s\": missing host", url);
        rc = DM_EINVAL;
    } else if (evhttp_uri_get_query(u) || evhttp_uri_get_fragment(u) ||
               evhttp_uri_get_userinfo(u)) {
        snprintf(err, errlen,
                 "--url \"%.200s\": only scheme, host, port and a path prefix are "
                 "allowed",
                 url);
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

/* The API's base URL: --url, else the configuration's listen address, else the default;
 * without a trailing slash. */
static int resolve_url(const dm_cli_flags *f, const dm_config *conf, dm_cli *c, char *err,
                       size_t errlen)
{
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
    return DM_OK;
}

/* The first header entry of api.auth is a credential the client can present; the daemon
 * accepts any entry, so one whose secret is unresolved here is skipped. */
static void token_from_config(const dm_config *conf, const char *config, dm_cli *c)
{
    const dm_auth_entry *missing = NULL;
    for (size_t i = 0; i < conf->api_auth.n; i++) {
        const dm_auth_entry *e = &conf->api_auth.v[i];
        if (e->type != DM_AUTH_HEADER)
            continue;
        if (e->secret) {
            c->token_header = dm_xstrdup(e->name);
            c->token = dm_xstrndup((const char *)e->secret, e->secret_len);
            return;
        }
        if (!missing)
            missing = e;
    }
    if (missing)
        c->token_missing = config_message(config, missing->secret_missing);
}

int dm_cli_resolve(const dm_cli_flags *f, dm_cli *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    char cerr[512] = "";
    /* Secrets are resolved, but one the command does not need may be missing: tail must not
     * need the webhook sinks' secrets, nor query the Redis password. */
    if (f->config && dm_config_load_file_opts(f->config, DM_CONFIG_SECRETS_OPTIONAL, &c->conf, cerr,
                                              sizeof cerr) != DM_OK) {
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
        redis_from_config(conf, f->config, c);
    } else {
        c->redis_unix = dm_xstrdup(DEFAULT_REDIS_SOCKET);
        set_where(c);
    }
    c->connect_timeout_ms = conf ? conf->redis.connect_timeout_ms : 2000;
    c->command_timeout_ms = conf ? conf->redis.command_timeout_ms : 2000;

    if (f->prefix && !dm_config_prefix_valid(f->prefix)) {
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

    if (resolve_url(f, conf, c, err, errlen) != DM_OK)
        return DM_EINVAL;

    if (f->token) {
        c->token_header = dm_xstrdup("Authorization");
        c->token = dm_xstrdup(f->token);
    } else if (conf) {
        token_from_config(conf, f->config, c);
    }
    if (f->cacert)
        c->cacert = dm_xstrdup(f->cacert);
    return DM_OK;
}

int dm_cli_resolve_for(const char *command, const dm_cli_flags *f, dm_cli *out)
{
    char err[768];
    int rc = dm_cli_resolve(f, out, err, sizeof err);
    if (rc == DM_OK)
        return DM_CLI_OK;
    dm_cli_dispose(out);
    if (rc == DM_EINVAL)
        return dm_cli_usage_error(command, "%s", err);
    return dm_cli_fail("%s", err);
}

void dm_cli_dispose(dm_cli *c)
{
    dm_config_free(c->conf);
    free(c->redis_where);
    free(c->redis_unix);
    free(c->redis_host);
    free(c->redis_user);
    free_secret(c->redis_password);
    free(c->redis_password_missing);
    free(c->prefix);
    free(c->url);
    free(c->token_header);
    free_secret(c->token);
    free(c->token_missing);
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

/* Connect to @p unix_path, or else @p host:@p port (@p where names it in messages). */
static redisContext *connect_to(const dm_cli *c, const char *unix_path, const char *host, int port,
                                const char *where, int read_timeout_ms, char *err, size_t errlen)
{
    /* Connecting without the password the configuration asks for would only end in NOAUTH. */
    if (c->redis_password_missing) {
        snprintf(err, errlen, "%s", c->redis_password_missing);
        return NULL;
    }
    struct timeval ctv = ms_tv(c->connect_timeout_ms);
    redisContext *ctx = unix_path ? redisConnectUnixWithTimeout(unix_path, ctv)
                                  : redisConnectWithTimeout(host, port, ctv);
    if (!ctx) {
        snprintf(err, errlen, "cannot connect to redis at %s: out of memory", where);
        return NULL;
    }
    if (ctx->err) {
        snprintf(err, errlen, "cannot connect to redis at %s: %s", where, ctx->errstr);
        redisFree(ctx);
        return NULL;
    }
    dm_resp_bound(ctx->reader);
    /* Connecting with a timeout leaves that timeout on the socket: replace it. */
    struct timeval rtv = ms_tv(read_timeout_ms);
    if (redisSetTimeout(ctx, rtv) != REDIS_OK) {
        snprintf(err, errlen, "redis at %s: cannot set the socket timeout: %s", where, ctx->errstr);
        redisFree(ctx);
        return NULL;
    }
    if (c->redis_password) {
        const char *argv[3] = {"AUTH", c->redis_user ? c->redis_user : c->redis_password,
                               c->redis_password};
        if (!command_ok(ctx, c->redis_user ? 3 : 2, argv, "AUTH", where, err, errlen)) {
            redisFree(ctx);
            return NULL;
        }
    }
    if (c->redis_db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", c->redis_db);
        const char *argv[2] = {"SELECT", db};
        if (!command_ok(ctx, 2, argv, "SELECT", where, err, errlen)) {
            redisFree(ctx);
            return NULL;
        }
    }
    return ctx;
}

redisContext *dm_cli_redis_connect(const dm_cli *c, int read_timeout_ms, char *err, size_t errlen)
{
    return connect_to(c, c->redis_unix, c->redis_host, c->redis_port, c->redis_where,
                      read_timeout_ms, err, errlen);
}

redisContext *dm_cli_redis_connect_node(const dm_cli *c, const char *host, int port,
                                        int read_timeout_ms, char *err, size_t errlen)
{
    char where[300];
    snprintf(where, sizeof where, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    return connect_to(c, NULL, host, port, where, read_timeout_ms, err, errlen);
}
