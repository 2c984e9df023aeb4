/* test_config.c - dm_config: defaults, every key, and the exact message of every error path.
 *
 * Configurations are written with single quotes (turned into double quotes by q()) so that
 * the JSON stays readable; expected messages use real double quotes.
 */
#include "dm_config.h"
#include "dm_jwt.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define CONFIGS_DIR DM_FIXTURES "/../../configs"
#define SRC_NONE    "'sources': [{'type': 'acr', 'auth': [{'type': 'none'}]}]"

static char tmpdir[64];

/*---- Helpers ----------------------------------------------------------------------------*/

/* Single quotes → double quotes; the result lives until the next call. */
static const char *q(const char *s)
{
    static char buf[8192];
    size_t n = strlen(s);
    assert_true(n < sizeof(buf));
    for (size_t i = 0; i <= n; i++)
        buf[i] = s[i] == '\'' ? '"' : s[i];
    return buf;
}

static int try_load(const char *json, const char *base, dm_config **out, char *err, size_t n)
{
    const char *j = q(json);
    return dm_config_load_buffer(j, strlen(j), base, out, err, n);
}

static dm_config *load_ok_at(const char *json, const char *base)
{
    char err[512] = "";
    dm_config *c = NULL;
    int rc = try_load(json, base, &c, err, sizeof(err));
    if (rc != DM_OK)
        fail_msg("unexpected error %d: %s", rc, err);
    assert_non_null(c);
    return c;
}

static dm_config *load_ok(const char *json)
{
    return load_ok_at(json, NULL);
}

/* A macro so that a failure reports the line of the case, not of a helper. */
#define EXPECT_ERR_AT(json, base, code, msg)                                     \
    do {                                                                         \
        char e_[512] = "";                                                       \
        dm_config *c_ = (dm_config *)1;                                          \
        assert_int_equal(try_load((json), (base), &c_, e_, sizeof(e_)), (code)); \
        assert_null(c_);                                                         \
        assert_string_equal(e_, (msg));                                          \
    } while (0)
#define EXPECT_ERR(json, msg) EXPECT_ERR_AT(json, NULL, DM_EINVAL, msg)

static void write_file(const char *name, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void remove_file(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    unlink(path);
}

static const char *const tmp_files[] = {"secret.txt",  "crlf.txt", "two-nl.txt", "empty.txt",
                                        "nl-only.txt", "big.txt",  "max.txt",    "sub/rel.txt",
                                        "cfg.json",    "sns-a.pem"};

static int group_setup(void **state)
{
    (void)state;
    char big[65537];
    strcpy(tmpdir, "/tmp/dm-test-config-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    char sub[96];
    snprintf(sub, sizeof(sub), "%s/sub", tmpdir);
    if (mkdir(sub, 0700) != 0)
        return -1;
    write_file("secret.txt", "s3cret\n", 7);
    write_file("crlf.txt", "tok\r\n", 5);
    write_file("two-nl.txt", "tok\n\n", 5);
    write_file("empty.txt", "", 0);
    write_file("nl-only.txt", "\n", 1);
    memset(big, 'x', sizeof(big));
    write_file("big.txt", big, sizeof(big));
    write_file("max.txt", big, sizeof(big) - 1);
    write_file("sub/rel.txt", "relative-secret", 15);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char sub[96];
    for (size_t i = 0; i < DM_ARRAY_LEN(tmp_files); i++)
        remove_file(tmp_files[i]);
    snprintf(sub, sizeof(sub), "%s/sub", tmpdir);
    rmdir(sub);
    rmdir(tmpdir);
    return 0;
}

static void assert_secret(const dm_auth_entry *e, const char *want)
{
    assert_non_null(e->secret);
    assert_int_equal(e->secret_len, strlen(want));
    assert_memory_equal(e->secret, want, strlen(want));
    assert_int_equal(e->secret[e->secret_len], '\0');
}

/*---- Defaults and every key -------------------------------------------------------------*/

static void test_defaults(void **state)
{
    (void)state;
    dm_config *c = load_ok("{" SRC_NONE "}");

    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 8080);
    assert_int_equal(c->workers, 2);
    assert_string_equal(c->data_dir, "var");
    assert_string_equal(c->log_level, "info");

    assert_null(c->redis.url);
    assert_null(c->redis.username);
    assert_null(c->redis.password);
    assert_string_equal(c->redis.prefix, "dm");
    assert_int_equal(c->redis.shards, 1);
    assert_null(c->redis.host);
    assert_int_equal(c->redis.port, 0);
    assert_string_equal(c->redis.unix_path, "var/redis.sock");
    assert_int_equal(c->redis.db, 0);
    assert_string_equal(c->redis.server_bin, "redis-server");
    assert_int_equal(c->redis.command_timeout_ms, 2000);
    assert_int_equal(c->redis.connect_timeout_ms, 2000);

    assert_int_equal(c->correlation.window_seconds, 1800);
    assert_int_equal(c->correlation.grace_seconds, 60);
    assert_int_equal(c->correlation.max_clock_skew_seconds, 300);
    assert_int_equal(c->correlation.mapping_ttl_seconds, 7776000);

    assert_int_equal(c->limits.max_body_bytes, 1048576);
    assert_int_equal(c->limits.max_header_bytes, 16384);
    assert_int_equal(c->limits.max_inflight, 10000);
    assert_int_equal(c->limits.idle_timeout_seconds, 30);
    assert_int_equal(c->limits.max_connections, 4096);
    assert_int_equal(c->limits.header_timeout_ms, 10000);
    assert_int_equal(c->limits.body_timeout_ms, 30000);
    assert_int_equal(c->limits.max_body_memory_bytes, 67108864);
    assert_int_equal(c->limits.max_builds_per_digest, 256);
    assert_int_equal(c->limits.max_locations_per_digest, 256);
    assert_int_equal(c->limits.max_tags_per_location, 64);
    assert_null(c->tls.cert_file);
    assert_int_equal(c->redis.maxmemory, 0);
    assert_true(c->outputs.max_group_lag == c->outputs.stream_maxlen);
    assert_true(c->sources[0].rate.per_second == 0);

    assert_int_equal(c->nsources, 1);
    assert_int_equal(c->sources[0].type, DM_SRC_ACR);
    assert_string_equal(c->sources[0].path, "/v1/registry/acr");
    assert_int_equal(c->sources[0].auth.n, 1);
    assert_int_equal(c->sources[0].auth.v[0].type, DM_AUTH_NONE);
    assert_null(c->sources[0].auth.v[0].name);
    assert_null(c->sources[0].auth.v[0].secret);

    assert_false(c->api_configured);
    assert_int_equal(c->api_auth.n, 0);
    assert_int_equal(c->outputs.stream_maxlen, 1000000);
    dm_config_free(c);

    /* Empty section objects give the same defaults. */
    c = load_ok("{'redis': {}, 'correlation': {}, 'limits': {}, 'outputs': {}, " SRC_NONE "}");
    assert_int_equal(c->redis.shards, 1);
    assert_string_equal(c->redis.unix_path, "var/redis.sock");
    assert_int_equal(c->correlation.window_seconds, 1800);
    assert_int_equal(c->limits.max_inflight, 10000);
    assert_int_equal(c->outputs.stream_maxlen, 1000000);
    dm_config_free(c);

    /* The build type has its own default path. */
    c = load_ok("{'sources': [{'type': 'build', 'auth': [{'type': 'none'}]}]}");
    assert_int_equal(c->sources[0].type, DM_SRC_BUILD);
    assert_string_equal(c->sources[0].path, "/v1/builds");
    dm_config_free(c);
}

static void test_every_key(void **state)
{
    (void)state;
    dm_config *c = load_ok(
        "{'listen': '[::1]:9090', 'workers': 64, 'data_dir': '/srv/dm', 'log_level': 'debug',"
        " 'redis': {'url': 'redis://10.1.2.3:6380/7', 'password': 'pw', 'prefix': 'acme.dm:x-1_',"
        "           'shards': 1024, 'server': '/usr/bin/redis-server',"
        "           'command_timeout_ms': 10, 'connect_timeout_ms': 60000},"
        " 'correlation': {'window_seconds': 600, 'grace_seconds': 0,"
        "                 'max_clock_skew_seconds': 0, 'mapping_ttl_seconds': 600},"
        " 'limits': {'max_body_bytes': 67108864, 'max_header_bytes': 1024,"
        "            'max_inflight': 1000000, 'idle_timeout_seconds': 3600},"
        " 'sources': ["
        "   {'type': 'acr', 'path': '/hooks/acr-a',"
        "    'auth': [{'type': 'header', 'name': 'X-Token', 'value': 'a-token'}]},"
        "   {'type': 'build', 'path': '/hooks/ci',"
        "    'auth': [{'type': 'hmac-sha256', 'header': 'X-Sig', 'secret': 'k'},"
        "             {'type': 'hmac-sha256', 'secret': 'k2'}, {'type': 'none'}]}],"
        " 'api': {'auth': [{'type': 'header', 'name': 'Authorization', 'value': 'Bearer q'}]},"
        " 'outputs': {'stream_maxlen': 1}}");

    assert_string_equal(c->listen_host, "::1");
    assert_int_equal(c->listen_port, 9090);
    assert_int_equal(c->workers, 64);
    assert_string_equal(c->data_dir, "/srv/dm");
    assert_string_equal(c->log_level, "debug");

    assert_string_equal(c->redis.url, "redis://10.1.2.3:6380/7");
    assert_null(c->redis.username);
    assert_string_equal(c->redis.password, "pw");
    assert_string_equal(c->redis.prefix, "acme.dm:x-1_");
    assert_int_equal(c->redis.shards, 1024);
    assert_string_equal(c->redis.host, "10.1.2.3");
    assert_int_equal(c->redis.port, 6380);
    assert_null(c->redis.unix_path);
    assert_int_equal(c->redis.db, 7);
    assert_string_equal(c->redis.server_bin, "/usr/bin/redis-server");
    assert_int_equal(c->redis.command_timeout_ms, 10);
    assert_int_equal(c->redis.connect_timeout_ms, 60000);

    assert_int_equal(c->correlation.window_seconds, 600);
    assert_int_equal(c->correlation.grace_seconds, 0);
    assert_int_equal(c->correlation.max_clock_skew_seconds, 0);
    assert_int_equal(c->correlation.mapping_ttl_seconds, 600);

    assert_int_equal(c->limits.max_body_bytes, 67108864);
    assert_int_equal(c->limits.max_header_bytes, 1024);
    assert_int_equal(c->limits.max_inflight, 1000000);
    assert_int_equal(c->limits.idle_timeout_seconds, 3600);

    assert_int_equal(c->nsources, 2);
    assert_int_equal(c->sources[0].type, DM_SRC_ACR);
    assert_string_equal(c->sources[0].path, "/hooks/acr-a");
    assert_int_equal(c->sources[0].auth.n, 1);
    assert_int_equal(c->sources[0].auth.v[0].type, DM_AUTH_HEADER);
    assert_string_equal(c->sources[0].auth.v[0].name, "X-Token");
    assert_secret(&c->sources[0].auth.v[0], "a-token");

    assert_int_equal(c->sources[1].type, DM_SRC_BUILD);
    assert_string_equal(c->sources[1].path, "/hooks/ci");
    assert_int_equal(c->sources[1].auth.n, 3);
    assert_int_equal(c->sources[1].auth.v[0].type, DM_AUTH_HMAC);
    assert_string_equal(c->sources[1].auth.v[0].name, "X-Sig");
    assert_secret(&c->sources[1].auth.v[0], "k");
    assert_int_equal(c->sources[1].auth.v[1].type, DM_AUTH_HMAC);
    assert_string_equal(c->sources[1].auth.v[1].name, "X-Digestmap-Signature");
    assert_secret(&c->sources[1].auth.v[1], "k2");
    assert_int_equal(c->sources[1].auth.v[2].type, DM_AUTH_NONE);

    assert_true(c->api_configured);
    assert_int_equal(c->api_auth.n, 1);
    assert_int_equal(c->api_auth.v[0].type, DM_AUTH_HEADER);
    assert_string_equal(c->api_auth.v[0].name, "Authorization");
    assert_secret(&c->api_auth.v[0], "Bearer q");
    assert_int_equal(c->outputs.stream_maxlen, 1);
    dm_config_free(c);
}

/*---- Top-level scalars ------------------------------------------------------------------*/

static void test_listen(void **state)
{
    (void)state;
    static const struct {
        const char *listen, *host;
        int port;
    } ok[] = {
        {"localhost:0", "127.0.0.1", 0}, {"0.0.0.0:80", "0.0.0.0", 80},
        {"[::]:65535", "::", 65535},     {"10.0.0.1:00080", "10.0.0.1", 80},
        {"[fe80::1]:1", "fe80::1", 1},
    };
    char json[256];
    for (size_t i = 0; i < DM_ARRAY_LEN(ok); i++) {
        snprintf(json, sizeof(json), "{'listen': '%s', " SRC_NONE "}", ok[i].listen);
        dm_config *c = load_ok(json);
        assert_string_equal(c->listen_host, ok[i].host);
        assert_int_equal(c->listen_port, ok[i].port);
        dm_config_free(c);
    }

    EXPECT_ERR("{'listen': '127.0.0.1', " SRC_NONE "}",
               "listen: \"127.0.0.1\" must have the form \"host:port\"");
    EXPECT_ERR("{'listen': '[::1]8080', " SRC_NONE "}",
               "listen: \"[::1]8080\" must have the form \"host:port\"");
    EXPECT_ERR("{'listen': '[::1:8080', " SRC_NONE "}",
               "listen: \"[::1:8080\" must have the form \"host:port\"");
    EXPECT_ERR("{'listen': '::1:8080', " SRC_NONE "}",
               "listen: \"::1:8080\": an IPv6 address must be in brackets, e.g. \"[::1]:8080\"");
    EXPECT_ERR("{'listen': 'example.com:80', " SRC_NONE "}",
               "listen: \"example.com:80\": host must be an IPv4 literal, an [IPv6] literal or "
               "localhost");
    EXPECT_ERR("{'listen': '300.1.1.1:80', " SRC_NONE "}",
               "listen: \"300.1.1.1:80\": host must be an IPv4 literal, an [IPv6] literal or "
               "localhost");
    EXPECT_ERR("{'listen': ':80', " SRC_NONE "}",
               "listen: \":80\": host must be an IPv4 literal, an [IPv6] literal or localhost");
    EXPECT_ERR("{'listen': '[1.2.3.4]:80', " SRC_NONE "}",
               "listen: \"[1.2.3.4]:80\": host must be an IPv4 literal, an [IPv6] literal or "
               "localhost");
    EXPECT_ERR("{'listen': '127.0.0.1:65536', " SRC_NONE "}",
               "listen: \"127.0.0.1:65536\": port must be 0..65535");
    EXPECT_ERR("{'listen': '127.0.0.1:', " SRC_NONE "}",
               "listen: \"127.0.0.1:\": port must be 0..65535");
    EXPECT_ERR("{'listen': '127.0.0.1:-1', " SRC_NONE "}",
               "listen: \"127.0.0.1:-1\": port must be 0..65535");
    EXPECT_ERR("{'listen': '127.0.0.1:80x', " SRC_NONE "}",
               "listen: \"127.0.0.1:80x\": port must be 0..65535");
    EXPECT_ERR("{'listen': 8080, " SRC_NONE "}", "listen: must be a non-empty string");
    EXPECT_ERR("{'listen': '', " SRC_NONE "}", "listen: must be a non-empty string");
}

static void test_scalars(void **state)
{
    (void)state;
    dm_config *c = load_ok("{'workers': 1, 'log_level': 'error', " SRC_NONE "}");
    assert_int_equal(c->workers, 1);
    assert_string_equal(c->log_level, "error");
    dm_config_free(c);
    c = load_ok("{'log_level': 'warn', 'data_dir': 'x', " SRC_NONE "}");
    assert_string_equal(c->log_level, "warn");
    assert_string_equal(c->redis.unix_path, "x/redis.sock");
    dm_config_free(c);

    EXPECT_ERR("{'workers': 0, " SRC_NONE "}", "workers: must be an integer between 1 and 64");
    EXPECT_ERR("{'workers': 65, " SRC_NONE "}", "workers: must be an integer between 1 and 64");
    EXPECT_ERR("{'workers': '2', " SRC_NONE "}", "workers: must be an integer between 1 and 64");
    EXPECT_ERR("{'workers': 2.0, " SRC_NONE "}", "workers: must be an integer between 1 and 64");
    EXPECT_ERR("{'workers': true, " SRC_NONE "}", "workers: must be an integer between 1 and 64");
    EXPECT_ERR("{'workers': null, " SRC_NONE "}", "workers: must be an integer between 1 and 64");
    EXPECT_ERR("{'data_dir': '', " SRC_NONE "}", "data_dir: must be a non-empty string");
    EXPECT_ERR("{'data_dir': ['var'], " SRC_NONE "}", "data_dir: must be a non-empty string");
    /* NUL would truncate the C string: the parser refuses it. */
    EXPECT_ERR("{'data_dir': 'a\\u0000b', " SRC_NONE "}",
               "invalid JSON at line 1, column 23: \\u0000 is not allowed without JSON_ALLOW_NUL "
               "near '\"a\\u0000b\"'");
    EXPECT_ERR("{'log_level': 'verbose', " SRC_NONE "}",
               "log_level: must be one of \"debug\", \"info\", \"warn\", \"error\"");
    EXPECT_ERR("{'log_level': 'INFO', " SRC_NONE "}",
               "log_level: must be one of \"debug\", \"info\", \"warn\", \"error\"");
    EXPECT_ERR("{'log_level': 1, " SRC_NONE "}", "log_level: must be a string");

    /* The embedded server's socket must fit in sun_path (107 bytes + NUL). */
    char dir[200], json[400];
    memset(dir, 'd', 96);
    dir[96] = '\0'; /* 96 + strlen("/redis.sock") = 107: fits */
    snprintf(json, sizeof(json), "{'data_dir': '%s', " SRC_NONE "}", dir);
    c = load_ok(json);
    assert_int_equal(strlen(c->redis.unix_path), 107);
    dm_config_free(c);
    strcat(dir, "d");
    snprintf(json, sizeof(json), "{'data_dir': '%s', " SRC_NONE "}", dir);
    /* Long values are cut to 92 characters in messages. */
    char msg[300];
    snprintf(msg, sizeof(msg),
             "data_dir: \"%.92s.../redis.sock\" is longer than 107 bytes (the unix socket path "
             "limit); shorten data_dir or give redis.url",
             dir);
    EXPECT_ERR(json, msg);
}

/*---- Unknown keys and unsupported features ----------------------------------------------*/

static void test_unknown_keys(void **state)
{
    (void)state;
    EXPECT_ERR("{'listen': '127.0.0.1:1', 'wokers': 2, " SRC_NONE "}", "unknown key \"wokers\"");
    EXPECT_ERR("{'redis': {'url': 'redis://127.0.0.1', 'passwrd': 'x'}, " SRC_NONE "}",
               "redis: unknown key \"passwrd\"");
    EXPECT_ERR("{'correlation': {'window': 5}, " SRC_NONE "}",
               "correlation: unknown key \"window\"");
    EXPECT_ERR("{'limits': {'max_body': 5}, " SRC_NONE "}", "limits: unknown key \"max_body\"");
    EXPECT_ERR("{'outputs': {'maxlen': 5}, " SRC_NONE "}", "outputs: unknown key \"maxlen\"");
    EXPECT_ERR("{'api': {'auth': [{'type': 'none'}], 'open': true}, " SRC_NONE "}",
               "api: unknown key \"open\"");
    EXPECT_ERR("{'api': {'auth': [{'type': 'header', 'name': 'A', 'valeu': 'x'}]}, " SRC_NONE "}",
               "api.auth[0]: unknown key \"valeu\"");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'auth': [{'type': 'none'}]},"
               "             {'type': 'build', 'pth': '/x', 'auth': [{'type': 'none'}]}]}",
               "sources[1]: unknown key \"pth\"");
    /* The example from the header comment. */
    EXPECT_ERR("{'sources': [{'type': 'acr', 'auth': [{'type': 'none'}]},"
               "             {'type': 'build', 'auth': [{'type': 'header', 'name': 'A',"
               "                                         'valeu': 'x'}]}]}",
               "sources[1].auth[0]: unknown key \"valeu\"");
    EXPECT_ERR("{'sources': [{'type': 'build', 'auth': [{'type': 'none'},"
               "  {'type': 'hmac-sha256', 'secret': 'k', 'name': 'X-Sig'}]}]}",
               "sources[0].auth[1]: unknown key \"name\"");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'auth': [{'type': 'none', 'value': 'x'}]}]}",
               "sources[0].auth[0]: unknown key \"value\"");
    /* A typo is reported as such, not as the missing key it was meant to be. */
    EXPECT_ERR("{'sources': [{'type': 'acr', 'auht': []}]}", "sources[0]: unknown key \"auht\"");
    /* Keys with control characters are shown safely; NUL never reaches us. */
    EXPECT_ERR("{'workers\\u0000x': 2, " SRC_NONE "}",
               "invalid JSON at line 1, column 17: NUL byte in object key not supported near "
               "'\"workers\\u0000x\"'");
    EXPECT_ERR("{'a\\nb\\\"c': 2, " SRC_NONE "}", "unknown key \"a?b?c\"");
}

static void test_unsupported(void **state)
{
    (void)state;
    EXPECT_ERR("{'tls': {'cert_file': 'c'}, " SRC_NONE "}",
               "tls: \"cert_file\" and \"key_file\" are required");
    EXPECT_ERR("{'tls': {'cert_file': 'c', 'key_file': 'k', 'min_version': '1.1'}, " SRC_NONE "}",
               "tls.min_version: must be \"1.2\" or \"1.3\"");
    EXPECT_ERR("{'tls': {'cert_file': 'c', 'key_file': 'k', 'ciphers': 'x'}, " SRC_NONE "}",
               "tls: unknown key \"ciphers\"");
    /* ecr and gar sources exist; their default paths collide with an explicit one. */
    EXPECT_ERR("{'sources': [{'type': 'ecr', 'auth': [{'type': 'none'}]},"
               "  {'type': 'acr', 'path': '/v1/registry/ecr', 'auth': [{'type': 'none'}]}]}",
               "sources[1].path: \"/v1/registry/ecr\" is already used by sources[0]");
    EXPECT_ERR("{'sources': [{'type': 'build', 'auth': [{'type': 'none'},"
               "  {'type': 'oidc', 'issuer': 'https://token.actions.githubusercontent.com'}]}]}",
               "sources[0].auth[1]: \"audience\" is required");
    EXPECT_ERR("{'sources': [{'type': 'build', 'auth': [{'type': 'oidc', 'issuer': 'http://i',"
               "  'audience': 'a', 'jwks_file': 'x'}]}]}",
               "sources[0].auth[0].issuer: must be an https:// URL");
    EXPECT_ERR("{'sources': [{'type': 'ecr', 'auth': [{'type': 'sns', 'topic_arns': []}]}]}",
               "sources[0].auth[0].topic_arns: must be a non-empty array of topic ARNs");
    EXPECT_ERR("{'sources': [{'type': 'ecr', 'auth': [{'type': 'sns', 'topic_arns': "
               "  ['arn:aws:sns:eu-west-1:1:t'], 'certs': "
               "  {'https://sns.eu-west-1.amazonaws.com.evil.com/x.pem': 'c.pem'}}]}]}",
               "sources[0].auth[0].certs: \"https://sns.eu-west-1.amazonaws.com.evil.com/x.pem\" "
               "is not an SNS certificate URL (https://sns.<region>.amazonaws.com[.cn]/….pem)");
    EXPECT_ERR("{'api': {'auth': [{'type': 'oidc'}]}, " SRC_NONE "}",
               "api.auth[0]: \"issuer\" is required");
    /* An SNS signature authenticates only the event inside "Message". */
    EXPECT_ERR("{'sources': [{'type': 'build', 'auth': [{'type': 'sns', 'topic_arns': "
               "  ['arn:aws:sns:eu-west-1:1:t'], 'fetch_certs': true}]}]}",
               "sources[0].auth[0].type: \"sns\" authenticates only \"ecr\" sources");
}

#define SNS_ENTRY(extra)                                                   \
    "{'sources': [{'type': 'ecr', 'auth': [{'type': 'sns', 'topic_arns': " \
    "['arn:aws:sns:eu-west-1:1:t']" extra "}]}]}"
#define SNS_URL "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-a.pem"

static void test_sns_entry(void **state)
{
    (void)state;
    write_file("sns-a.pem", "-----BEGIN CERTIFICATE-----\n", 28);

    /* certs only: nothing is fetched. */
    dm_config *c = load_ok_at(SNS_ENTRY(", 'certs': {'" SNS_URL "': 'sns-a.pem'}"), tmpdir);
    const dm_auth_entry *e = &c->sources[0].auth.v[0];
    assert_int_equal(e->type, DM_AUTH_SNS);
    assert_int_equal(e->ncerts, 1);
    assert_false(e->fetch_certs);
    assert_false(e->confirm_subscriptions);
    dm_config_free(c);

    /* fetch_certs: certs becomes optional (test_auth: the trust gives the entry a cache). */
    c = load_ok(SNS_ENTRY(", 'fetch_certs': true"));
    e = &c->sources[0].auth.v[0];
    assert_true(e->fetch_certs);
    assert_false(e->confirm_subscriptions);
    assert_int_equal(e->ncerts, 0);
    dm_config_free(c);

    c = load_ok(SNS_ENTRY(", 'fetch_certs': true, 'certs': {}, 'confirm_subscriptions': true"));
    e = &c->sources[0].auth.v[0];
    assert_true(e->fetch_certs);
    assert_true(e->confirm_subscriptions);
    dm_config_free(c);

    /* Both, with listed certificates too; false is the default. */
    c = load_ok_at(SNS_ENTRY(", 'fetch_certs': true, 'confirm_subscriptions': false, 'certs': "
                             "{'" SNS_URL "': 'sns-a.pem'}"),
                   tmpdir);
    e = &c->sources[0].auth.v[0];
    assert_int_equal(e->ncerts, 1);
    assert_string_equal(e->certs[0].url, SNS_URL);
    assert_true(e->fetch_certs);
    assert_false(e->confirm_subscriptions);
    dm_config_free(c);

    /* confirm_subscriptions alone: certificates still have to be listed. */
    c = load_ok_at(
        SNS_ENTRY(", 'confirm_subscriptions': true, 'certs': {'" SNS_URL "': 'sns-a.pem'}"),
        tmpdir);
    e = &c->sources[0].auth.v[0];
    assert_false(e->fetch_certs);
    assert_true(e->confirm_subscriptions);
    dm_config_free(c);

    EXPECT_ERR(SNS_ENTRY(""),
               "sources[0].auth[0].certs: must map each SigningCertURL to a PEM file (or set "
               "\"fetch_certs\": true)");
    EXPECT_ERR(SNS_ENTRY(", 'confirm_subscriptions': true"),
               "sources[0].auth[0].certs: must map each SigningCertURL to a PEM file (or set "
               "\"fetch_certs\": true)");
    EXPECT_ERR(SNS_ENTRY(", 'fetch_certs': false, 'certs': {}"),
               "sources[0].auth[0].certs: must map each SigningCertURL to a PEM file (or set "
               "\"fetch_certs\": true)");
    EXPECT_ERR(SNS_ENTRY(", 'fetch_certs': true, 'certs': ['" SNS_URL "']"),
               "sources[0].auth[0].certs: must map each SigningCertURL to a PEM file");
    EXPECT_ERR(SNS_ENTRY(", 'fetch_certs': 'yes'"),
               "sources[0].auth[0].fetch_certs: must be true or false");
    EXPECT_ERR(SNS_ENTRY(", 'fetch_certs': true, 'confirm_subscriptions': 1"),
               "sources[0].auth[0].confirm_subscriptions: must be true or false");
    EXPECT_ERR(SNS_ENTRY(", 'fetch_certs': true, 'certs': {'https://sns.eu-west-1.amazonaws.com:"
                         "8443/x.pem': 'sns-a.pem'}"),
               "sources[0].auth[0].certs: \"https://sns.eu-west-1.amazonaws.com:8443/x.pem\" "
               "is not an SNS certificate URL (https://sns.<region>.amazonaws.com[.cn]/….pem)");
    EXPECT_ERR(SNS_ENTRY(", 'fetch_certs': true, 'fetch_cert': true"),
               "sources[0].auth[0]: unknown key \"fetch_cert\"");
    EXPECT_ERR("{'sources': [{'type': 'ecr', 'auth': [{'type': 'sns', 'fetch_certs': true}]}]}",
               "sources[0].auth[0].topic_arns: must be a non-empty array of topic ARNs");
}

/* The usable keys of the jwks_file kept in @p e (its bytes, as the keyring will read them). */
static size_t jwks_keys(const dm_auth_entry *e)
{
    dm_jwks *keys = NULL;
    dm_error err = {0};
    assert_non_null(e->jwks);
    assert_int_equal(strlen(e->jwks), e->jwks_len);
    assert_int_equal(dm_jwks_parse(e->jwks, e->jwks_len, &keys, &err), DM_OK);
    size_t n = dm_jwks_count(keys);
    dm_jwks_free(keys);
    return n;
}

static void test_oidc_entry(void **state)
{
    (void)state;
    dm_config *c = load_ok_at("{'sources': [{'type': 'build', 'auth': [{'type': 'oidc',"
                              "  'issuer': 'https://accounts.google.com', 'audience': 'digestmap',"
                              "  'jwks_file': 'jwks/rsa-public.json', 'provider': 'gitlab',"
                              "  'claims': {'email_verified': [true]}}]}]}",
                              DM_FIXTURES);
    const dm_auth_entry *e = &c->sources[0].auth.v[0];
    assert_int_equal(e->type, DM_AUTH_OIDC);
    assert_int_equal(e->nissuers, 2); /* Google's bare-host alias */
    assert_string_equal(e->issuers[1], "accounts.google.com");
    assert_string_equal(e->audience, "digestmap");
    assert_int_equal(e->provider, 2);
    assert_non_null(e->claims);
    assert_int_equal(jwks_keys(e), 1);
    assert_null(e->jwks_url);
    dm_config_free(c);
    /* Not a JWKS: the message names the key and the file (the path is shortened when long). */
    char msg[512] = "";
    dm_config *bad = NULL;
    assert_int_equal(try_load("{'sources': [{'type': 'build', 'auth': [{'type': 'oidc',"
                              "  'issuer': 'https://i', 'audience': 'a',"
                              "  'jwks_file': 'oidc/gitlab-claims.json'}]}]}",
                              DM_FIXTURES, &bad, msg, sizeof msg),
                     DM_EINVAL);
    assert_null(bad);
    assert_memory_equal(msg, "sources[0].auth[0].jwks_file: \"", 31);
    assert_string_equal(msg + strlen(msg) - strlen("keys: must be an array"),
                        "keys: must be an array");
    EXPECT_ERR("{'sources': [{'type': 'build', 'auth': [{'type': 'oidc', 'issuer': 'https://i',"
               "  'audience': 'a', 'jwks_file': 'x', 'claims': {'sub': 'repo:a/*'}}]}]}",
               "sources[0].auth[0].claims: \"sub\" must list the allowed values (a non-empty "
               "array)");
    EXPECT_ERR("{'sources': [{'type': 'build', 'auth': [{'type': 'oidc', 'issuer': 'https://i',"
               "  'audience': 'a', 'jwks_file': 'x', 'provider': 'jenkins'}]}]}",
               "sources[0].auth[0].provider: unknown provider \"jenkins\" (expected auto, "
               "github, gitlab, azure-devops or generic)");
}

/* jwks_url: https, or http to loopback only; no user info; jwks_refresh_seconds 60..86400 and
 * only with jwks_url; one of jwks_file or jwks_url. */
#define OIDC_HEAD                                                                                  \
    "{'sources': [{'type': 'build', 'auth': [{'type': 'oidc', 'issuer': 'https://i', 'audience': " \
    "'a', "
#define OIDC_TAIL "}]}]}"

/* k8s sources: the default path, "replay", the k8s section, findings_ttl_seconds. */
static void test_k8s_keys(void **state)
{
    (void)state;
    dm_config *c = load_ok("{'sources': [{'type': 'k8s', 'auth': [{'type': 'oidc', 'issuer': "
                           "'https://i', 'audience': 'digestmap', 'jwks_url': 'https://i/jwks', "
                           "'replay': false}, {'type': 'oidc', 'issuer': 'https://j', "
                           "'audience': 'a', 'jwks_url': 'https://j/jwks'}]}],"
                           " 'k8s': {'internal_ingress_classes': ['nginx-internal', 'int.a']},"
                           " 'correlation': {'mapping_ttl_seconds': 86400}}");
    assert_int_equal(c->sources[0].type, DM_SRC_K8S);
    assert_string_equal(c->sources[0].path, "/v1/workloads");
    assert_false(c->sources[0].auth.v[0].replay);
    assert_true(c->sources[0].auth.v[1].replay);
    assert_int_equal(c->k8s.ninternal_ingress_classes, 2);
    assert_string_equal(c->k8s.internal_ingress_classes[1], "int.a");
    assert_int_equal(c->correlation.findings_ttl_seconds, 86400); /* mapping_ttl_seconds */
    dm_config_free(c);
    c = load_ok("{" SRC_NONE ", 'correlation': {'findings_ttl_seconds': 60}}");
    assert_int_equal(c->correlation.findings_ttl_seconds, 60);
    assert_int_equal(c->k8s.ninternal_ingress_classes, 0);
    dm_config_free(c);
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'https://i/jwks', 'replay': 'no'" OIDC_TAIL,
               "sources[0].auth[0].replay: must be true or false");
    EXPECT_ERR("{'sources': [{'type': 'k8s', 'auth': [{'type': 'header', 'name': 'X', "
               "'value': 'v', 'replay': false}]}]}",
               "sources[0].auth[0]: unknown key \"replay\"");
    EXPECT_ERR("{" SRC_NONE ", 'k8s': {'internal_ingress_class': []}}",
               "k8s: unknown key \"internal_ingress_class\"");
    EXPECT_ERR("{" SRC_NONE ", 'k8s': {'internal_ingress_classes': 'nginx'}}",
               "k8s.internal_ingress_classes: must be an array of ingress class names");
    EXPECT_ERR("{" SRC_NONE ", 'k8s': {'internal_ingress_classes': ['Nginx']}}",
               "k8s.internal_ingress_classes[0]: must be an ingress class name (1..253 of a-z, "
               "0-9, '.', '-')");
    EXPECT_ERR("{" SRC_NONE ", 'correlation': {'findings_ttl_seconds': 0}}",
               "correlation.findings_ttl_seconds: must be an integer between 1 and 315360000");
    EXPECT_ERR("{'sources': [{'type': 'k8s', 'path': '/v1/exposure', 'auth': [{'type': 'none'}]}]}",
               "sources[0].path: \"/v1/exposure\" is reserved for a built-in route");
    /* clusters: the names a k8s source may report */
    c = load_ok("{'sources': [{'type': 'k8s', 'clusters': ['prod-weu', 'a:b_c.d'], "
                "'auth': [{'type': 'none'}]}]}");
    assert_int_equal(c->sources[0].nclusters, 2);
    assert_string_equal(c->sources[0].clusters[1], "a:b_c.d");
    dm_config_free(c);
    c = load_ok("{" SRC_NONE "}");
    assert_int_equal(c->sources[0].nclusters, 0);
    dm_config_free(c);
    EXPECT_ERR("{'sources': [{'type': 'k8s', 'clusters': [], 'auth': [{'type': 'none'}]}]}",
               "sources[0].clusters: must be a non-empty array of cluster names");
    EXPECT_ERR("{'sources': [{'type': 'k8s', 'clusters': ['a/b'], 'auth': [{'type': 'none'}]}]}",
               "sources[0].clusters[0]: must be a cluster name: 1 to 128 of A-Z a-z 0-9 . _ : -");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'clusters': ['a'], 'auth': [{'type': 'none'}]}]}",
               "sources[0].clusters: only a \"k8s\" source names clusters");
}

static void test_oidc_jwks_url(void **state)
{
    (void)state;
    /* Only a url: no keys until the first fetch, default refresh period. */
    dm_config *c = load_ok(OIDC_HEAD "'jwks_url': 'https://i.example/.well-known/jwks'" OIDC_TAIL);
    const dm_auth_entry *e = &c->sources[0].auth.v[0];
    assert_string_equal(e->jwks_url, "https://i.example/.well-known/jwks");
    assert_int_equal(e->jwks_refresh_seconds, 3600);
    assert_null(e->jwks);
    assert_int_equal(e->jwks_len, 0);
    dm_config_free(c);

    /* File and url: the file's keys are there from the start. */
    c = load_ok_at(OIDC_HEAD
                   "'jwks_file': 'jwks/rsa-public.json', 'jwks_url': "
                   "'https://i.example:8443/keys?v=2', 'jwks_refresh_seconds': 60" OIDC_TAIL,
                   DM_FIXTURES);
    e = &c->sources[0].auth.v[0];
    assert_string_equal(e->jwks_url, "https://i.example:8443/keys?v=2");
    assert_int_equal(e->jwks_refresh_seconds, 60);
    assert_int_equal(jwks_keys(e), 1);
    dm_config_free(c);

    /* Plain http to the loopback interface is allowed (tests, a local proxy). */
    static const char *const loopback[] = {
        OIDC_HEAD
        "'jwks_url': 'http://127.0.0.1:8080/jwks.json', 'jwks_refresh_seconds': 86400" OIDC_TAIL,
        OIDC_HEAD "'jwks_url': 'http://[::1]:8080/jwks.json'" OIDC_TAIL,
        OIDC_HEAD "'jwks_url': 'http://localhost/jwks.json'" OIDC_TAIL,
        OIDC_HEAD "'jwks_url': 'https://127.0.0.1'" OIDC_TAIL,
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(loopback); i++)
        dm_config_free(load_ok(loopback[i]));

    EXPECT_ERR("{'sources': [{'type': 'build', 'auth': [{'type': 'oidc', 'issuer': 'https://i',"
               "  'audience': 'a'}]}]}",
               "sources[0].auth[0]: one of \"jwks_file\" or \"jwks_url\" is required");
    EXPECT_ERR(OIDC_HEAD "'jwks_url': ''" OIDC_TAIL,
               "sources[0].auth[0].jwks_url: must be a non-empty string");
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 42" OIDC_TAIL,
               "sources[0].auth[0].jwks_url: must be a non-empty string");
#define SCHEME_MSG                                                           \
    "sources[0].auth[0].jwks_url: must be an https:// URL (http:// only to " \
    "127.0.0.1, [::1] or localhost)"
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'http://i.example/jwks'" OIDC_TAIL, SCHEME_MSG);
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'http://10.0.0.1/jwks'" OIDC_TAIL, SCHEME_MSG);
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'http://localhost.evil.example/jwks'" OIDC_TAIL, SCHEME_MSG);
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'http://127.0.0.1.evil.example/jwks'" OIDC_TAIL, SCHEME_MSG);
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'ftp://i.example/jwks'" OIDC_TAIL, SCHEME_MSG);
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'HTTPS://i.example/jwks'" OIDC_TAIL, SCHEME_MSG);
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'i.example/jwks'" OIDC_TAIL, SCHEME_MSG);
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'https://user:pw@i.example/jwks'" OIDC_TAIL,
               "sources[0].auth[0].jwks_url: must not contain user info");
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'http://u@127.0.0.1/jwks'" OIDC_TAIL,
               "sources[0].auth[0].jwks_url: must not contain user info");
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'https:///jwks'" OIDC_TAIL,
               "sources[0].auth[0].jwks_url: must name a host");
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'https://i.example:0/jwks'" OIDC_TAIL,
               "sources[0].auth[0].jwks_url: port must be 1..65535");
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'https://i.example:99999/jwks'" OIDC_TAIL,
               "sources[0].auth[0].jwks_url: \"https://i.example:99999/jwks\" is not a valid "
               "URL");
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'https://i.example/a b'" OIDC_TAIL,
               "sources[0].auth[0].jwks_url: \"https://i.example/a b\" is not a valid URL");
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'https://i.example/jwks#k'" OIDC_TAIL,
               "sources[0].auth[0].jwks_url: must not have a fragment");

    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'https://i/k', 'jwks_refresh_seconds': 59" OIDC_TAIL,
               "sources[0].auth[0].jwks_refresh_seconds: must be an integer between 60 and "
               "86400");
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'https://i/k', 'jwks_refresh_seconds': 86401" OIDC_TAIL,
               "sources[0].auth[0].jwks_refresh_seconds: must be an integer between 60 and "
               "86400");
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'https://i/k', 'jwks_refresh_seconds': '60'" OIDC_TAIL,
               "sources[0].auth[0].jwks_refresh_seconds: must be an integer between 60 and "
               "86400");
    EXPECT_ERR_AT(OIDC_HEAD
                  "'jwks_file': 'jwks/rsa-public.json', 'jwks_refresh_seconds': 60" OIDC_TAIL,
                  DM_FIXTURES, DM_EINVAL,
                  "sources[0].auth[0].jwks_refresh_seconds: only applies with \"jwks_url\"");
    /* The url is checked before any file is read, and the file still must hold a key. */
    EXPECT_ERR(OIDC_HEAD "'jwks_file': 'no-such-file', 'jwks_url': 'http://i/k'" OIDC_TAIL,
               SCHEME_MSG);
    EXPECT_ERR_AT(OIDC_HEAD "'jwks_file': 'no-such-file.json', 'jwks_url': 'https://i/k'" OIDC_TAIL,
                  "/nonexistent", DM_EIO,
                  "sources[0].auth[0].jwks_file: cannot read \"/nonexistent/no-such-file.json\": "
                  "No such file or directory");
    /* A typo next to jwks_url is still a typo. */
    EXPECT_ERR(OIDC_HEAD "'jwks_url': 'https://i/k', 'jwks_refresh_second': 60" OIDC_TAIL,
               "sources[0].auth[0]: unknown key \"jwks_refresh_second\"");
#undef SCHEME_MSG
}

/*---- Sources and auth entries -----------------------------------------------------------*/

static void test_sources_errors(void **state)
{
    (void)state;
    EXPECT_ERR("{}", "\"sources\" is required");
    EXPECT_ERR("{'sources': []}", "sources: must be a non-empty array");
    EXPECT_ERR("{'sources': {'type': 'acr'}}", "sources: must be a non-empty array");
    EXPECT_ERR("{'sources': ['acr']}", "sources[0]: must be an object");
    EXPECT_ERR("{'sources': [{'auth': [{'type': 'none'}]}]}", "sources[0]: \"type\" is required");
    EXPECT_ERR("{'sources': [{'type': 'ghcr', 'auth': [{'type': 'none'}]}]}",
               "sources[0].type: unknown source type \"ghcr\" (expected \"acr\", \"ecr\", \"gar\", "
               "\"build\", \"scan\" or \"k8s\")");
    EXPECT_ERR("{'sources': [{'type': 7, 'auth': [{'type': 'none'}]}]}",
               "sources[0].type: must be a non-empty string");
    EXPECT_ERR("{'sources': [{'type': 'acr'}]}",
               "sources[0]: \"auth\" is required; use [{\"type\": \"none\"}] to accept "
               "unauthenticated requests");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'auth': []}]}",
               "sources[0].auth: must be a non-empty array; use [{\"type\": \"none\"}] to accept "
               "unauthenticated requests");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'auth': {'type': 'none'}}]}",
               "sources[0].auth: must be a non-empty array; use [{\"type\": \"none\"}] to accept "
               "unauthenticated requests");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'auth': ['none']}]}",
               "sources[0].auth[0]: must be an object");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'auth': [{'name': 'A', 'value': 'b'}]}]}",
               "sources[0].auth[0]: \"type\" is required");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'auth': [{'type': 'basic'}]}]}",
               "sources[0].auth[0].type: unknown auth type \"basic\" (expected \"header\", "
               "\"hmac-sha256\", \"oidc\", \"sns\" or \"none\")");
}

static void test_paths(void **state)
{
    (void)state;
    /* Several sources of one type with different paths. */
    dm_config *c = load_ok("{'sources': ["
                           "  {'type': 'acr', 'auth': [{'type': 'none'}]},"
                           "  {'type': 'acr', 'path': '/v1/registry/acr/b',"
                           "   'auth': [{'type': 'none'}]},"
                           "  {'type': 'build', 'auth': [{'type': 'none'}]}]}");
    assert_int_equal(c->nsources, 3);
    assert_string_equal(c->sources[0].path, "/v1/registry/acr");
    assert_string_equal(c->sources[1].path, "/v1/registry/acr/b");
    assert_string_equal(c->sources[2].path, "/v1/builds");
    dm_config_free(c);

    /* Defaults count as duplicates too: two ACR registries need two paths. */
    EXPECT_ERR("{'sources': [{'type': 'acr', 'auth': [{'type': 'none'}]},"
               "             {'type': 'build', 'auth': [{'type': 'none'}]},"
               "             {'type': 'acr', 'auth': [{'type': 'none'}]}]}",
               "sources[2].path: \"/v1/registry/acr\" is already used by sources[0]");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'path': '/a', 'auth': [{'type': 'none'}]},"
               "             {'type': 'build', 'path': '/a', 'auth': [{'type': 'none'}]}]}",
               "sources[1].path: \"/a\" is already used by sources[0]");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'path': 'hooks', 'auth': [{'type': 'none'}]}]}",
               "sources[0].path: must start with \"/\"");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'path': '', 'auth': [{'type': 'none'}]}]}",
               "sources[0].path: must be a non-empty string");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'path': '/a?b=1', 'auth': [{'type': 'none'}]}]}",
               "sources[0].path: must not contain '?' or '#'");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'path': '/a#b', 'auth': [{'type': 'none'}]}]}",
               "sources[0].path: must not contain '?' or '#'");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'path': '/a b', 'auth': [{'type': 'none'}]}]}",
               "sources[0].path: must be printable ASCII without spaces");
    static const char *const reserved[] = {"/healthz",     "/readyz",           "/metrics",
                                           "/v1/mappings", "/v1/events/stream", "/v1/images/x"};
    char json[512], msg[256];
    for (size_t i = 0; i < DM_ARRAY_LEN(reserved); i++) {
        snprintf(json, sizeof(json),
                 "{'sources': [{'type': 'acr', 'path': '%s', 'auth': [{'type': 'none'}]}]}",
                 reserved[i]);
        snprintf(msg, sizeof(msg), "sources[0].path: \"%s\" is reserved for a built-in route",
                 reserved[i]);
        EXPECT_ERR(json, msg);
    }
    /* 256 characters is the limit. */
    char p[300];
    p[0] = '/';
    memset(p + 1, 'p', 255);
    p[256] = '\0';
    snprintf(json, sizeof(json),
             "{'sources': [{'type': 'acr', 'path': '%s', 'auth': [{'type': 'none'}]}]}", p);
    c = load_ok(json);
    assert_int_equal(strlen(c->sources[0].path), 256);
    dm_config_free(c);
    strcat(p, "p");
    snprintf(json, sizeof(json),
             "{'sources': [{'type': 'acr', 'path': '%s', 'auth': [{'type': 'none'}]}]}", p);
    EXPECT_ERR(json, "sources[0].path: must be at most 256 characters");
}

#define SRC_AUTH(entry) "{'sources': [{'type': 'acr', 'auth': [" entry "]}]}"

static void test_auth_entries(void **state)
{
    (void)state;
    EXPECT_ERR(SRC_AUTH("{'type': 'header', 'value': 'x'}"),
               "sources[0].auth[0]: \"name\" is required");
    EXPECT_ERR(SRC_AUTH("{'type': 'header', 'name': '', 'value': 'x'}"),
               "sources[0].auth[0].name: must be a non-empty string");
    EXPECT_ERR(SRC_AUTH("{'type': 'header', 'name': 'X Token', 'value': 'x'}"),
               "sources[0].auth[0].name: \"X Token\" is not a valid header name");
    EXPECT_ERR(SRC_AUTH("{'type': 'header', 'name': 'Authorization:', 'value': 'x'}"),
               "sources[0].auth[0].name: \"Authorization:\" is not a valid header name");
    EXPECT_ERR(SRC_AUTH("{'type': 'header', 'name': 'A'}"),
               "sources[0].auth[0]: one of \"value\", \"value_env\" or \"value_file\" is "
               "required");
    EXPECT_ERR(SRC_AUTH("{'type': 'header', 'name': 'A', 'value': 'x', 'value_env': 'X'}"),
               "sources[0].auth[0]: give only one of \"value\", \"value_env\" or \"value_file\"");
    EXPECT_ERR(SRC_AUTH("{'type': 'header', 'name': 'A', 'value': ''}"),
               "sources[0].auth[0].value: must be a non-empty string");
    EXPECT_ERR(SRC_AUTH("{'type': 'header', 'name': 'A', 'value': 5}"),
               "sources[0].auth[0].value: must be a non-empty string");
    EXPECT_ERR(SRC_AUTH("{'type': 'hmac-sha256'}"),
               "sources[0].auth[0]: one of \"secret\", \"secret_env\" or \"secret_file\" is "
               "required");
    EXPECT_ERR(SRC_AUTH("{'type': 'hmac-sha256', 'secret': 'a', 'secret_file': 'b'}"),
               "sources[0].auth[0]: give only one of \"secret\", \"secret_env\" or "
               "\"secret_file\"");
    EXPECT_ERR(SRC_AUTH("{'type': 'hmac-sha256', 'header': 'X(Sig)', 'secret': 'a'}"),
               "sources[0].auth[0].header: \"X(Sig)\" is not a valid header name");
    EXPECT_ERR(SRC_AUTH("{'type': 'hmac-sha256', 'secret_env': ''}"),
               "sources[0].auth[0].secret_env: must be a non-empty string");
}

static void test_env_secrets(void **state)
{
    (void)state;
    setenv("DM_TEST_TOKEN", "Bearer from-env", 1);
    setenv("DM_TEST_EMPTY", "", 1);
    unsetenv("DM_TEST_UNSET");

    dm_config *c = load_ok(SRC_AUTH("{'type': 'header', 'name': 'Authorization',"
                                    " 'value_env': 'DM_TEST_TOKEN'},"
                                    "{'type': 'hmac-sha256', 'secret_env': 'DM_TEST_TOKEN'}"));
    assert_secret(&c->sources[0].auth.v[0], "Bearer from-env");
    assert_secret(&c->sources[0].auth.v[1], "Bearer from-env");
    dm_config_free(c);

    EXPECT_ERR(SRC_AUTH("{'type': 'header', 'name': 'A', 'value_env': 'DM_TEST_UNSET'}"),
               "sources[0].auth[0].value_env: environment variable \"DM_TEST_UNSET\" is not set "
               "or empty");
    EXPECT_ERR(SRC_AUTH("{'type': 'none'}, {'type': 'hmac-sha256', 'secret_env': 'DM_TEST_EMPTY'}"),
               "sources[0].auth[1].secret_env: environment variable \"DM_TEST_EMPTY\" is not set "
               "or empty");
    EXPECT_ERR("{'redis': {'password_env': 'DM_TEST_UNSET'}, " SRC_NONE "}",
               "redis.password_env: environment variable \"DM_TEST_UNSET\" is not set or empty");
    unsetenv("DM_TEST_TOKEN");
    unsetenv("DM_TEST_EMPTY");
}

static void test_file_secrets(void **state)
{
    (void)state;
    char json[1024], msg[512];

    /* Absolute path; exactly one trailing "\n" is stripped. */
    snprintf(json, sizeof(json),
             SRC_AUTH("{'type': 'header', 'name': 'A', 'value_file': '%s/secret.txt'}"), tmpdir);
    dm_config *c = load_ok(json);
    assert_secret(&c->sources[0].auth.v[0], "s3cret");
    dm_config_free(c);

    /* "\r\n" is stripped; a second newline is kept (only one line ending goes). */
    c = load_ok_at(SRC_AUTH("{'type': 'hmac-sha256', 'secret_file': 'crlf.txt'},"
                            "{'type': 'hmac-sha256', 'header': 'X-B', 'secret_file': 'two-nl.txt'},"
                            "{'type': 'hmac-sha256', 'header': 'X-C', 'secret_file': 'max.txt'}"),
                   tmpdir);
    assert_secret(&c->sources[0].auth.v[0], "tok");
    assert_secret(&c->sources[0].auth.v[1], "tok\n");
    assert_int_equal(c->sources[0].auth.v[2].secret_len, 65536);
    dm_config_free(c);

    /* Relative paths are resolved against base_dir. */
    c = load_ok_at(SRC_AUTH("{'type': 'header', 'name': 'A', 'value_file': 'sub/rel.txt'}"),
                   tmpdir);
    assert_secret(&c->sources[0].auth.v[0], "relative-secret");
    dm_config_free(c);

    snprintf(msg, sizeof(msg),
             "sources[0].auth[0].value_file: cannot read \"%s/nope.txt\": No such file or "
             "directory",
             tmpdir);
    EXPECT_ERR_AT(SRC_AUTH("{'type': 'header', 'name': 'A', 'value_file': 'nope.txt'}"), tmpdir,
                  DM_EIO, msg);
    snprintf(msg, sizeof(msg), "api.auth[0].value_file: cannot read \"%s/sub\": Is a directory",
             tmpdir);
    EXPECT_ERR_AT(
        "{'api': {'auth': [{'type': 'header', 'name': 'A', 'value_file': 'sub'}]}, " SRC_NONE "}",
        tmpdir, DM_EIO, msg);
    snprintf(msg, sizeof(msg), "sources[0].auth[0].secret_file: \"%s/empty.txt\" is empty", tmpdir);
    EXPECT_ERR_AT(SRC_AUTH("{'type': 'hmac-sha256', 'secret_file': 'empty.txt'}"), tmpdir,
                  DM_EINVAL, msg);
    snprintf(msg, sizeof(msg), "sources[0].auth[0].secret_file: \"%s/nl-only.txt\" is empty",
             tmpdir);
    EXPECT_ERR_AT(SRC_AUTH("{'type': 'hmac-sha256', 'secret_file': 'nl-only.txt'}"), tmpdir,
                  DM_EINVAL, msg);
    snprintf(msg, sizeof(msg),
             "sources[0].auth[0].secret_file: \"%s/big.txt\" is larger than 65536 bytes", tmpdir);
    EXPECT_ERR_AT(SRC_AUTH("{'type': 'hmac-sha256', 'secret_file': 'big.txt'}"), tmpdir, DM_EINVAL,
                  msg);
    /* Without a base directory a relative path is relative to the working directory. */
    EXPECT_ERR_AT(SRC_AUTH("{'type': 'hmac-sha256', 'secret_file': 'dm-no-such-file'}"), NULL,
                  DM_EIO,
                  "sources[0].auth[0].secret_file: cannot read \"dm-no-such-file\": No such file "
                  "or directory");
}

/*---- Redis ------------------------------------------------------------------------------*/

#define REDIS(body) "{'redis': {" body "}, " SRC_NONE "}"

static void test_redis_urls(void **state)
{
    (void)state;
    static const struct {
        const char *url, *host, *unix_path, *user, *password;
        int port, db;
    } ok[] = {
        {"redis://127.0.0.1", "127.0.0.1", NULL, NULL, NULL, 6379, 0},
        {"redis://127.0.0.1/", "127.0.0.1", NULL, NULL, NULL, 6379, 0},
        {"redis://10.0.0.2:7000", "10.0.0.2", NULL, NULL, NULL, 7000, 0},
        {"redis://10.0.0.2:7000/15", "10.0.0.2", NULL, NULL, NULL, 7000, 15},
        {"redis://[::1]/3", "::1", NULL, NULL, NULL, 6379, 3},
        {"redis://[2001:db8::5]:6380/1", "2001:db8::5", NULL, NULL, NULL, 6380, 1},
        {"redis://:s3cret@127.0.0.1", "127.0.0.1", NULL, NULL, "s3cret", 6379, 0},
        {"redis://app:p%40ss:w@rd@10.0.0.1:6390/2", "10.0.0.1", NULL, "app", "p@ss:w@rd", 6390, 2},
        {"unix:///run/redis/redis.sock", NULL, "/run/redis/redis.sock", NULL, NULL, 0, 0},
        {"unix:///run/redis.sock?db=12", NULL, "/run/redis.sock", NULL, NULL, 0, 12},
        {"unix:var/redis.sock", NULL, "var/redis.sock", NULL, NULL, 0, 0},
        {"unix:/abs.sock?db=1", NULL, "/abs.sock", NULL, NULL, 0, 1},
        /* Host names: resolved asynchronously at every connect (evdns). */
        {"redis://localhost", "localhost", NULL, NULL, NULL, 6379, 0},
        {"redis://redis.internal:6380/2", "redis.internal", NULL, NULL, NULL, 6380, 2},
        {"redis://:pw@my-cache.redis.cache.windows.net:6380", "my-cache.redis.cache.windows.net",
         NULL, NULL, "pw", 6380, 0},
        {"redis://redis-0.redis.default.svc.cluster.local",
         "redis-0.redis.default.svc.cluster.local", NULL, NULL, NULL, 6379, 0},
        {"redis://1redis.x9", "1redis.x9", NULL, NULL, NULL, 6379, 0},
    };
    char json[512];
    for (size_t i = 0; i < DM_ARRAY_LEN(ok); i++) {
        snprintf(json, sizeof(json), REDIS("'url': '%s'"), ok[i].url);
        dm_config *c = load_ok(json);
        assert_string_equal(c->redis.url, ok[i].url);
        if (ok[i].host)
            assert_string_equal(c->redis.host, ok[i].host);
        else
            assert_null(c->redis.host);
        if (ok[i].unix_path)
            assert_string_equal(c->redis.unix_path, ok[i].unix_path);
        else
            assert_null(c->redis.unix_path);
        if (ok[i].user)
            assert_string_equal(c->redis.username, ok[i].user);
        else
            assert_null(c->redis.username);
        if (ok[i].password)
            assert_string_equal(c->redis.password, ok[i].password);
        else
            assert_null(c->redis.password);
        assert_int_equal(c->redis.port, ok[i].port);
        assert_int_equal(c->redis.db, ok[i].db);
        dm_config_free(c);

        /* The exported parser (digestmap --redis) gives the same endpoint. */
        dm_redis_endpoint e;
        char err[256] = "";
        assert_int_equal(dm_config_parse_redis_url(ok[i].url, &e, err, sizeof err), DM_OK);
        if (ok[i].host)
            assert_string_equal(e.host, ok[i].host);
        else
            assert_null(e.host);
        if (ok[i].unix_path)
            assert_string_equal(e.unix_path, ok[i].unix_path);
        else
            assert_null(e.unix_path);
        if (ok[i].user)
            assert_string_equal(e.username, ok[i].user);
        else
            assert_null(e.username);
        if (ok[i].password)
            assert_string_equal(e.password, ok[i].password);
        else
            assert_null(e.password);
        assert_int_equal(e.port, ok[i].port);
        assert_int_equal(e.db, ok[i].db);
        dm_redis_endpoint_clear(&e);
        assert_null(e.host);
        assert_null(e.password);
    }

    static const struct {
        const char *url, *msg;
    } bad[] = {
        {"redis.internal:6379", "redis.url: must start with \"redis://\" or \"unix:\""},
        {"http://127.0.0.1", "redis.url: must start with \"redis://\" or \"unix:\""},
        {"rediss://127.0.0.1", "redis.url: TLS to Redis (rediss://) is not supported yet"},
        {"redis://redis_1.internal",
         "redis.url: host \"redis_1.internal\" is neither an IPv4 address nor a DNS name (letters, "
         "digits, '-' and '.', labels of 1..63, at most 253 characters)"},
        {"redis://-redis.internal",
         "redis.url: host \"-redis.internal\" is neither an IPv4 address nor a DNS name (letters, "
         "digits, '-' and '.', labels of 1..63, at most 253 characters)"},
        {"redis://redis-.internal",
         "redis.url: host \"redis-.internal\" is neither an IPv4 address nor a DNS name (letters, "
         "digits, '-' and '.', labels of 1..63, at most 253 characters)"},
        {"redis://redis..internal",
         "redis.url: host \"redis..internal\" is neither an IPv4 address nor a DNS name (letters, "
         "digits, '-' and '.', labels of 1..63, at most 253 characters)"},
        {"redis://.internal",
         "redis.url: host \".internal\" is neither an IPv4 address nor a DNS name (letters, "
         "digits, '-' and '.', labels of 1..63, at most 253 characters)"},
        {"redis://internal.",
         "redis.url: host \"internal.\" is neither an IPv4 address nor a DNS name (letters, "
         "digits, '-' and '.', labels of 1..63, at most 253 characters)"},
        {"redis://999.1.1.1",
         "redis.url: host \"999.1.1.1\" is neither an IPv4 address nor a DNS name (letters, "
         "digits, '-' and '.', labels of 1..63, at most 253 characters)"},
        {"redis://r%41dis",
         "redis.url: host \"r%41dis\" is neither an IPv4 address nor a DNS name (letters, "
         "digits, '-' and '.', labels of 1..63, at most 253 characters)"},
        {"redis://", "redis.url: missing host (expected "
                     "redis://[[user]:password@]HOST[:PORT][/DB])"},
        {"redis://:6379", "redis.url: missing host (expected "
                          "redis://[[user]:password@]HOST[:PORT][/DB])"},
        {"redis://[::1", "redis.url: unterminated [IPv6] host"},
        {"redis://[10.0.0.1]", "redis.url: \"10.0.0.1\" is not an IPv6 address"},
        {"redis://127.0.0.1:0", "redis.url: port must be 1..65535"},
        {"redis://127.0.0.1:65536", "redis.url: port must be 1..65535"},
        {"redis://127.0.0.1:", "redis.url: port must be 1..65535"},
        {"redis://127.0.0.1:6379/16", "redis.url: database must be 0..15"},
        {"redis://127.0.0.1/x", "redis.url: database must be 0..15"},
        {"redis://127.0.0.1/007", "redis.url: database must be 0..15"},
        {"redis://127.0.0.1?db=1",
         "redis.url: expected redis://[[user]:password@]HOST[:PORT][/DB]"},
        {"redis://[::1]x", "redis.url: expected redis://[[user]:password@]HOST[:PORT][/DB]"},
        {"redis://secret@127.0.0.1",
         "redis.url: the user info must be \"[user]:password\" (expected "
         "redis://[[user]:password@]HOST[:PORT][/DB])"},
        {"redis://user:@127.0.0.1", "redis.url: the password in the url is empty"},
        {"redis://:@127.0.0.1", "redis.url: the password in the url is empty"},
        {"redis://:p%4@127.0.0.1", "redis.url: bad percent-encoding in the password"},
        {"redis://:p%00@127.0.0.1", "redis.url: bad percent-encoding in the password"},
        {"redis://u%zz:p@127.0.0.1", "redis.url: bad percent-encoding in the user name"},
        {"unix:", "redis.url: missing socket path (expected unix:///absolute/path.sock[?db=N] "
                  "or unix:relative/path.sock)"},
        {"unix://host/x.sock", "redis.url: expected unix:///absolute/path.sock[?db=N] or "
                               "unix:relative/path.sock"},
        {"unix:///x.sock?database=1", "redis.url: the only query parameter is \"db\""},
        {"unix:///x.sock?db=16", "redis.url: database must be 0..15"},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(bad); i++) {
        snprintf(json, sizeof(json), REDIS("'url': '%s'"), bad[i].url);
        EXPECT_ERR(json, bad[i].msg);
        /* The exported parser refuses it with the same reason, without the key path. */
        dm_redis_endpoint e;
        char err[256] = "";
        assert_int_equal(dm_config_parse_redis_url(bad[i].url, &e, err, sizeof err), DM_EINVAL);
        assert_string_equal(err, bad[i].msg + strlen("redis.url: "));
        assert_null(e.host);
        assert_null(e.unix_path);
        assert_null(e.username);
        assert_null(e.password);
    }

    char longp[200];
    memset(longp, 'a', 108);
    longp[0] = '/';
    longp[108] = '\0';
    snprintf(json, sizeof(json), REDIS("'url': 'unix://%s'"), longp);
    EXPECT_ERR(json, "redis.url: the socket path is longer than 107 bytes");
    {
        dm_redis_endpoint e;
        char err[256] = "";
        snprintf(json, sizeof(json), "unix://%s", longp);
        assert_int_equal(dm_config_parse_redis_url(json, &e, err, sizeof err), DM_EINVAL);
        assert_string_equal(err, "the socket path is longer than 107 bytes");
    }
    longp[107] = '\0';
    snprintf(json, sizeof(json), REDIS("'url': 'unix://%s'"), longp);
    dm_config *c = load_ok(json);
    assert_int_equal(strlen(c->redis.unix_path), 107);
    dm_config_free(c);

    EXPECT_ERR(REDIS("'url': ''"), "redis.url: must be a non-empty string");

    /* A label of 63 and a name of 253 characters are names; one more of either is not. */
    char name[300], url[320];
    memset(name, 'a', 63);
    snprintf(name + 63, sizeof name - 63, ".b");
    snprintf(url, sizeof url, "redis://%s", name);
    snprintf(json, sizeof(json), REDIS("'url': '%s'"), url);
    c = load_ok(json);
    assert_string_equal(c->redis.host, name);
    dm_config_free(c);
    memset(name, 'a', 64);
    snprintf(name + 64, sizeof name - 64, ".b");
    snprintf(url, sizeof url, "redis://%s", name);
    snprintf(json, sizeof(json), REDIS("'url': '%s'"), url);
    {
        char e[512] = "";
        dm_config *bad_c = NULL;
        assert_int_equal(try_load(json, NULL, &bad_c, e, sizeof e), DM_EINVAL);
        assert_non_null(strstr(e, "is neither an IPv4 address nor a DNS name"));
    }
    for (int i = 0; i < 253; i++)
        name[i] = i % 2 ? '.' : 'a';
    name[253] = '\0';
    snprintf(url, sizeof url, "redis://%s", name);
    snprintf(json, sizeof(json), REDIS("'url': '%s'"), url);
    c = load_ok(json);
    assert_int_equal(strlen(c->redis.host), 253);
    dm_config_free(c);
    name[253] = 'a';
    name[254] = '\0';
    snprintf(url, sizeof url, "redis://%s", name);
    snprintf(json, sizeof(json), REDIS("'url': '%s'"), url);
    {
        char e[512] = "";
        dm_config *bad_c = NULL;
        assert_int_equal(try_load(json, NULL, &bad_c, e, sizeof e), DM_EINVAL);
        assert_non_null(strstr(e, "is neither an IPv4 address nor a DNS name"));
    }

    assert_true(dm_config_prefix_valid("dm"));
    assert_true(dm_config_prefix_valid("acme.dm:x-1_"));
    assert_false(dm_config_prefix_valid(""));
    assert_false(dm_config_prefix_valid("a{b}"));
    memset(longp, 'a', 65);
    longp[65] = '\0';
    assert_false(dm_config_prefix_valid(longp));
    longp[64] = '\0';
    assert_true(dm_config_prefix_valid(longp));
    EXPECT_ERR("{'redis': 'redis://127.0.0.1', " SRC_NONE "}", "redis: must be an object");
}

/* redis.cluster: a seed node by TCP, database 0 (Redis Cluster has no other). */
static void test_redis_cluster(void **state)
{
    (void)state;
    dm_config *c = load_ok(REDIS("'url': 'redis://127.0.0.1:7000'"));
    assert_false(c->redis.cluster);
    dm_config_free(c);
    c = load_ok(REDIS("'url': 'redis://redis.internal:7000', 'cluster': true, 'shards': 16"));
    assert_true(c->redis.cluster);
    assert_string_equal(c->redis.host, "redis.internal");
    assert_int_equal(c->redis.db, 0);
    dm_config_free(c);
    c = load_ok(REDIS("'url': 'redis://127.0.0.1:7000/0', 'cluster': false"));
    assert_false(c->redis.cluster);
    dm_config_free(c);
    EXPECT_ERR(REDIS("'url': 'redis://127.0.0.1:7000/1', 'cluster': true"),
               "redis.cluster: Redis Cluster has database 0 only; redis.url selects database 1");
    EXPECT_ERR(REDIS("'url': 'unix:///r.sock', 'cluster': true"),
               "redis.cluster: needs redis.url = \"redis://HOST:PORT\" naming a cluster node "
               "(not a unix socket or the embedded server)");
    EXPECT_ERR(REDIS("'cluster': true"),
               "redis.cluster: needs redis.url = \"redis://HOST:PORT\" naming a cluster node "
               "(not a unix socket or the embedded server)");
    EXPECT_ERR(REDIS("'url': 'redis://127.0.0.1:7000', 'cluster': 1"),
               "redis.cluster: must be true or false");
    EXPECT_ERR(REDIS("'url': 'redis://127.0.0.1:7000', 'cluster': 'yes'"),
               "redis.cluster: must be true or false");
}

static void test_redis_password(void **state)
{
    (void)state;
    char json[512];
    setenv("DM_TEST_REDIS_PW", "env-pw", 1);

    dm_config *c = load_ok(REDIS("'url': 'redis://127.0.0.1', 'password_env': 'DM_TEST_REDIS_PW'"));
    assert_string_equal(c->redis.password, "env-pw");
    dm_config_free(c);

    /* A password for the embedded server too. */
    c = load_ok(REDIS("'password': 'inline'"));
    assert_string_equal(c->redis.password, "inline");
    assert_null(c->redis.host);
    assert_string_equal(c->redis.unix_path, "var/redis.sock");
    dm_config_free(c);

    snprintf(json, sizeof(json), REDIS("'url': 'unix:///r.sock', 'password_file': '%s/secret.txt'"),
             tmpdir);
    c = load_ok(json);
    assert_string_equal(c->redis.password, "s3cret");
    dm_config_free(c);

    static const char once[] = "redis: give the password once: the url has one, and so has "
                               "\"password\", \"password_env\" or \"password_file\"";
    EXPECT_ERR(REDIS("'url': 'redis://:a@127.0.0.1', 'password': 'b'"), once);
    EXPECT_ERR(REDIS("'url': 'redis://u:a@127.0.0.1', 'password_env': 'DM_TEST_REDIS_PW'"), once);
    EXPECT_ERR(REDIS("'password': 'a', 'password_env': 'DM_TEST_REDIS_PW'"),
               "redis: give only one of \"password\", \"password_env\" or \"password_file\"");
    unsetenv("DM_TEST_REDIS_PW");
}

static void test_redis_other(void **state)
{
    (void)state;
    EXPECT_ERR(REDIS("'shards': 0"), "redis.shards: must be an integer between 1 and 1024");
    EXPECT_ERR(REDIS("'shards': 1025"), "redis.shards: must be an integer between 1 and 1024");
    EXPECT_ERR(REDIS("'shards': '4'"), "redis.shards: must be an integer between 1 and 1024");
    dm_config *c = load_ok(REDIS("'shards': 1"));
    assert_int_equal(c->redis.shards, 1);
    dm_config_free(c);

    static const char prefix_msg[] = "redis.prefix: must be 1..64 characters of [A-Za-z0-9_.:-]";
    EXPECT_ERR(REDIS("'prefix': 'dm{0}'"), prefix_msg);
    EXPECT_ERR(REDIS("'prefix': 'd m'"), prefix_msg);
    /* 65 characters */
    EXPECT_ERR(REDIS("'prefix': 'x123456789012345678901234567890"
                     "1234567890123456789012345678901234'"),
               prefix_msg);
    EXPECT_ERR(REDIS("'prefix': ''"), "redis.prefix: must be a non-empty string");
    c = load_ok(REDIS("'prefix': '123456789012345678901234567890"
                      "1234567890123456789012345678901234'"));
    assert_int_equal(strlen(c->redis.prefix), 64);
    dm_config_free(c);

    EXPECT_ERR(REDIS("'command_timeout_ms': 9"),
               "redis.command_timeout_ms: must be an integer between 10 and 60000");
    EXPECT_ERR(REDIS("'command_timeout_ms': 60001"),
               "redis.command_timeout_ms: must be an integer between 10 and 60000");
    EXPECT_ERR(REDIS("'connect_timeout_ms': 0"),
               "redis.connect_timeout_ms: must be an integer between 10 and 60000");
    EXPECT_ERR(REDIS("'server': ''"), "redis.server: must be a non-empty string");
}

/*---- Correlation, limits, outputs, api --------------------------------------------------*/

static void test_correlation(void **state)
{
    (void)state;
    EXPECT_ERR("{'correlation': {'window_seconds': 0}, " SRC_NONE "}",
               "correlation.window_seconds: must be an integer between 1 and 315360000");
    EXPECT_ERR("{'correlation': {'grace_seconds': -1}, " SRC_NONE "}",
               "correlation.grace_seconds: must be an integer between 0 and 315360000");
    EXPECT_ERR("{'correlation': {'max_clock_skew_seconds': 315360001}, " SRC_NONE "}",
               "correlation.max_clock_skew_seconds: must be an integer between 0 and 315360000");
    EXPECT_ERR("{'correlation': {'mapping_ttl_seconds': 0}, " SRC_NONE "}",
               "correlation.mapping_ttl_seconds: must be an integer between 1 and 315360000");
    EXPECT_ERR("{'correlation': {'window_seconds': 100, 'grace_seconds': 10,"
               " 'mapping_ttl_seconds': 109}, " SRC_NONE "}",
               "correlation.mapping_ttl_seconds: must be >= window_seconds + grace_seconds (110)");
    /* With the default ttl, a window longer than 90 days needs a longer ttl. */
    EXPECT_ERR("{'correlation': {'window_seconds': 7776000}, " SRC_NONE "}",
               "correlation.mapping_ttl_seconds: must be >= window_seconds + grace_seconds "
               "(7776060)");
    dm_config *c = load_ok("{'correlation': {'window_seconds': 100, 'grace_seconds': 10,"
                           " 'mapping_ttl_seconds': 110}, " SRC_NONE "}");
    assert_int_equal(c->correlation.mapping_ttl_seconds, 110);
    dm_config_free(c);
    EXPECT_ERR("{'correlation': [], " SRC_NONE "}", "correlation: must be an object");
}

static void test_limits_outputs(void **state)
{
    (void)state;
    EXPECT_ERR("{'limits': {'max_body_bytes': 0}, " SRC_NONE "}",
               "limits.max_body_bytes: must be an integer between 1 and 67108864");
    EXPECT_ERR("{'limits': {'max_body_bytes': 67108865}, " SRC_NONE "}",
               "limits.max_body_bytes: must be an integer between 1 and 67108864");
    EXPECT_ERR("{'limits': {'max_header_bytes': 1023}, " SRC_NONE "}",
               "limits.max_header_bytes: must be an integer between 1024 and 1048576");
    EXPECT_ERR("{'limits': {'max_header_bytes': 1048577}, " SRC_NONE "}",
               "limits.max_header_bytes: must be an integer between 1024 and 1048576");
    EXPECT_ERR("{'limits': {'max_inflight': 0}, " SRC_NONE "}",
               "limits.max_inflight: must be an integer between 1 and 1000000");
    EXPECT_ERR("{'limits': {'max_inflight': 1000001}, " SRC_NONE "}",
               "limits.max_inflight: must be an integer between 1 and 1000000");
    EXPECT_ERR("{'limits': {'idle_timeout_seconds': 0}, " SRC_NONE "}",
               "limits.idle_timeout_seconds: must be an integer between 1 and 3600");
    EXPECT_ERR("{'limits': {'idle_timeout_seconds': 3601}, " SRC_NONE "}",
               "limits.idle_timeout_seconds: must be an integer between 1 and 3600");
    EXPECT_ERR("{'limits': 5, " SRC_NONE "}", "limits: must be an object");
    EXPECT_ERR("{'limits': {'max_connections': 0}, " SRC_NONE "}",
               "limits.max_connections: must be an integer between 1 and 1000000");
    EXPECT_ERR("{'limits': {'header_timeout_ms': 99}, " SRC_NONE "}",
               "limits.header_timeout_ms: must be an integer between 100 and 600000");
    EXPECT_ERR("{'limits': {'body_timeout_ms': 3600001}, " SRC_NONE "}",
               "limits.body_timeout_ms: must be an integer between 100 and 3600000");
    EXPECT_ERR("{'limits': {'max_body_bytes': 1048576, 'max_body_memory_bytes': 1048575}, " SRC_NONE
               "}",
               "limits.max_body_memory_bytes: must be at least limits.max_body_bytes (1048576): "
               "one body must fit");
    EXPECT_ERR("{'limits': {'max_builds_per_digest': 0}, " SRC_NONE "}",
               "limits.max_builds_per_digest: must be an integer between 1 and 100000");
    EXPECT_ERR("{'limits': {'max_locations_per_digest': 100001}, " SRC_NONE "}",
               "limits.max_locations_per_digest: must be an integer between 1 and 100000");
    EXPECT_ERR("{'limits': {'max_tags_per_location': 1025}, " SRC_NONE "}",
               "limits.max_tags_per_location: must be an integer between 1 and 1024");
    dm_config *l =
        load_ok("{'limits': {'max_connections': 10, 'header_timeout_ms': 100,"
                " 'body_timeout_ms': 200, 'max_body_bytes': 65536,"
                " 'max_body_memory_bytes': 65536, 'max_builds_per_digest': 3,"
                " 'max_locations_per_digest': 4, 'max_tags_per_location': 5}, " SRC_NONE "}");
    assert_int_equal(l->limits.max_connections, 10);
    assert_int_equal(l->limits.header_timeout_ms, 100);
    assert_int_equal(l->limits.body_timeout_ms, 200);
    assert_int_equal(l->limits.max_body_memory_bytes, 65536);
    assert_int_equal(l->limits.max_builds_per_digest, 3);
    assert_int_equal(l->limits.max_locations_per_digest, 4);
    assert_int_equal(l->limits.max_tags_per_location, 5);
    dm_config_free(l);

    /* sources[].rate: a token bucket; burst defaults to per_second rounded up */
    l = load_ok("{'sources': [{'type': 'acr', 'rate': {'per_second': 2.5},"
                " 'auth': [{'type': 'none'}]}]}");
    assert_true(l->sources[0].rate.per_second == 2.5);
    assert_int_equal(l->sources[0].rate.burst, 3);
    dm_config_free(l);
    l = load_ok("{'sources': [{'type': 'acr', 'rate': {'per_second': 0.1, 'burst': 20},"
                " 'auth': [{'type': 'none'}]}]}");
    assert_int_equal(l->sources[0].rate.burst, 20);
    dm_config_free(l);
    EXPECT_ERR("{'sources': [{'type': 'acr', 'rate': {'per_second': 0},"
               " 'auth': [{'type': 'none'}]}]}",
               "sources[0].rate.per_second: must be a number greater than 0 and at most 1000000");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'rate': {'burst': 2},"
               " 'auth': [{'type': 'none'}]}]}",
               "sources[0].rate.per_second: must be a number greater than 0 and at most 1000000");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'rate': {'per_second': 1, 'burst': 0},"
               " 'auth': [{'type': 'none'}]}]}",
               "sources[0].rate.burst: must be an integer between 1 and 10000000");
    EXPECT_ERR("{'sources': [{'type': 'acr', 'rate': {'per_second': 1, 'bust': 3},"
               " 'auth': [{'type': 'none'}]}]}",
               "sources[0].rate: unknown key \"bust\"");

    /* redis.maxmemory: the embedded server's only */
    l = load_ok("{'redis': {'maxmemory': 1048576}, " SRC_NONE "}");
    assert_int_equal(l->redis.maxmemory, 1048576);
    dm_config_free(l);
    EXPECT_ERR("{'redis': {'maxmemory': 1048575}, " SRC_NONE "}",
               "redis.maxmemory: must be an integer >= 1048576");
    EXPECT_ERR("{'redis': {'url': 'redis://127.0.0.1', 'maxmemory': 1048576}, " SRC_NONE "}",
               "redis.maxmemory: applies to the embedded redis-server only (set maxmemory in the "
               "configuration of the Redis that redis.url names)");

    /* outputs.max_group_lag follows stream_maxlen unless given */
    l = load_ok("{'outputs': {'stream_maxlen': 50}, " SRC_NONE "}");
    assert_int_equal(l->outputs.max_group_lag, 50);
    dm_config_free(l);
    l = load_ok("{'outputs': {'stream_maxlen': 50, 'max_group_lag': 7}, " SRC_NONE "}");
    assert_int_equal(l->outputs.max_group_lag, 7);
    dm_config_free(l);
    EXPECT_ERR("{'outputs': {'max_group_lag': 0}, " SRC_NONE "}",
               "outputs.max_group_lag: must be an integer >= 1");

    EXPECT_ERR("{'outputs': {'stream_maxlen': 0}, " SRC_NONE "}",
               "outputs.stream_maxlen: must be an integer >= 1");
    EXPECT_ERR("{'outputs': {'stream_maxlen': 1.5}, " SRC_NONE "}",
               "outputs.stream_maxlen: must be an integer >= 1");
    dm_config *c = load_ok("{'outputs': {'stream_maxlen': 9007199254740993}, " SRC_NONE "}");
    assert_true(c->outputs.stream_maxlen == 9007199254740993LL);
    dm_config_free(c);
}

/* Findings: routing.min_severity, correlation.findings_ttl_seconds,
 * limits.max_findings_per_digest and the scan source (docs/findings.md). */
static void test_findings_keys(void **state)
{
    (void)state;
    dm_config *c = load_ok("{'correlation': {'mapping_ttl_seconds': 86400}, " SRC_NONE "}");
    assert_int_equal(c->routing.min_severity, 1); /* high */
    assert_int_equal(c->correlation.findings_ttl_seconds, 86400);
    assert_int_equal(c->limits.max_findings_per_digest, 2000);
    dm_config_free(c);
    c = load_ok("{'routing': {'min_severity': 'critical'}, 'correlation': "
                "{'findings_ttl_seconds': 60}, 'limits': {'max_findings_per_digest': 5}, "
                "'sources': [{'type': 'scan', 'auth': [{'type': 'none'}]}]}");
    assert_int_equal(c->routing.min_severity, 0);
    assert_int_equal(c->correlation.findings_ttl_seconds, 60);
    assert_int_equal(c->limits.max_findings_per_digest, 5);
    assert_int_equal(c->sources[0].type, DM_SRC_SCAN);
    assert_string_equal(c->sources[0].path, "/v1/findings");
    dm_config_free(c);
    c = load_ok("{'routing': {'min_severity': 'unknown'}, " SRC_NONE "}");
    assert_int_equal(c->routing.min_severity, 4);
    dm_config_free(c);
    EXPECT_ERR("{'routing': {'min_severity': 'HIGH'}, " SRC_NONE "}",
               "routing.min_severity: must be one of \"critical\", \"high\", \"medium\", "
               "\"low\", \"unknown\"");
    EXPECT_ERR("{'routing': {'min_severty': 'high'}, " SRC_NONE "}",
               "routing: unknown key \"min_severty\"");
    EXPECT_ERR("{'routing': 'high', " SRC_NONE "}", "routing: must be an object");
    EXPECT_ERR("{'correlation': {'findings_ttl_seconds': 0}, " SRC_NONE "}",
               "correlation.findings_ttl_seconds: must be an integer between 1 and 315360000");
    EXPECT_ERR("{'limits': {'max_findings_per_digest': 0}, " SRC_NONE "}",
               "limits.max_findings_per_digest: must be an integer between 1 and 100000");
    EXPECT_ERR("{'sources': [{'type': 'scan', 'auth': [{'type': 'sns', 'topic_arns': "
               "['arn:aws:sns:eu-west-1:111122223333:t'], "
               "'fetch_certs': true}]}]}",
               "sources[0].auth[0].type: \"sns\" authenticates only \"ecr\" sources");
}

static void test_webhooks(void **state)
{
    (void)state;
    EXPECT_ERR("{'outputs': {'webhooks': {}}, " SRC_NONE "}",
               "outputs.webhooks: must be an array of sinks");
    EXPECT_ERR("{'outputs': {'webhooks': [{'secret': 's'}]}, " SRC_NONE "}",
               "outputs.webhooks[0].url: is required");
    EXPECT_ERR(
        "{'outputs': {'webhooks': [{'url': 'http://sink.example.com/', 'secret': 's'}]}, " SRC_NONE
        "}",
        "outputs.webhooks[0].url: must be an https:// URL (http:// only to 127.0.0.1, "
        "[::1] or localhost)");
    EXPECT_ERR("{'outputs': {'webhooks': [{'url': 'https://u:p@sink/', 'secret': 's'}]}, " SRC_NONE
               "}",
               "outputs.webhooks[0].url: must not contain user info");
    EXPECT_ERR("{'outputs': {'webhooks': [{'url': 'https://sink/'}]}, " SRC_NONE "}",
               "outputs.webhooks[0]: one of \"secret\", \"secret_env\" or \"secret_file\" is "
               "required");
    EXPECT_ERR(
        "{'outputs': {'webhooks': [{'url': 'https://sink/', 'secret': 's', 'urls': 1}]}, " SRC_NONE
        "}",
        "outputs.webhooks[0]: unknown key \"urls\"");
    EXPECT_ERR("{'outputs': {'webhooks': [{'url': 'https://sink/', 'secret': 's', "
               "'types': ['mapping.confirmed.v1']}]}, " SRC_NONE "}",
               "outputs.webhooks[0].types: must hold record types "
               "(\"dev.digestmap.mapping.confirmed.v1\", \"dev.digestmap.mapping.unmatched.v1\", "
               "\"dev.digestmap.image.deleted.v1\", \"dev.digestmap.finding.routed.v1\")");
    EXPECT_ERR("{'outputs': {'webhooks': [{'url': 'https://sink/', 'secret': 's', 'name': 'a "
               "b'}]}," SRC_NONE "}",
               "outputs.webhooks[0].name: \"a b\" must be 1..64 characters of A-Z a-z 0-9 . _ - :");
    EXPECT_ERR("{'outputs': {'webhooks': [{'url': 'https://a/', 'secret': 's', 'name': 'x'},"
               "  {'url': 'https://b/', 'secret': 's', 'name': 'x'}]}, " SRC_NONE "}",
               "outputs.webhooks[1]: sink name \"x\" is used twice (give each a distinct "
               "\"name\")");
    EXPECT_ERR("{'outputs': {'webhooks': [{'url': 'https://a/', 'secret': 's', "
               "'timeout_ms': 10000, 'claim_idle_ms': 15000}]}, " SRC_NONE "}",
               "outputs.webhooks[0].claim_idle_ms: must be at least twice timeout_ms");
    EXPECT_ERR("{'outputs': {'webhooks': [{'url': 'http://127.0.0.1:9/', 'secret': 's', "
               "'ca_file': 'x.pem'}]}, " SRC_NONE "}",
               "outputs.webhooks[0].ca_file: needs an https:// url");
    EXPECT_ERR("{'outputs': {'webhooks': [{'url': 'https://a/', 'secret': 's', "
               "'backoff_initial_ms': 10, 'backoff_max_ms': 5}]}, " SRC_NONE "}",
               "outputs.webhooks[0].backoff_max_ms: must be at least backoff_initial_ms");
    EXPECT_ERR("{'outputs': {'stream_groups': ['ok', 'not ok']}, " SRC_NONE "}",
               "outputs.stream_groups[1]: must be a group name of 1..128 characters of A-Z a-z "
               "0-9 . _ - :");

    dm_config *c =
        load_ok("{'outputs': {'stream_groups': ['siem'], 'webhooks': ["
                "  {'url': 'http://127.0.0.1:9/hook', 'secret': 'k'},"
                "  {'url': 'https://sink.example.com/', 'secret': 'k2', 'name': 'soc',"
                "   'types': ['dev.digestmap.mapping.unmatched.v1'],"
                "   'max_attempts': 3, 'timeout_ms': 500, 'claim_idle_ms': 1000}]}, " SRC_NONE "}");
    assert_int_equal(c->outputs.nstream_groups, 1);
    assert_string_equal(c->outputs.stream_groups[0], "siem");
    assert_int_equal(c->outputs.trim_interval_ms, 1000);
    assert_int_equal(c->outputs.nwebhooks, 2);
    const dm_sink_conf *w = &c->outputs.webhooks[0];
    /* The default name is stable: it names the consumer group across restarts. */
    assert_int_equal(strlen(w->name), 17);
    assert_memory_equal(w->name, "sink-", 5);
    assert_int_equal(w->ntypes, 0);
    assert_int_equal(w->max_attempts, 8);
    assert_int_equal(w->timeout_ms, 10000);
    assert_int_equal(w->max_inflight, 16);
    assert_int_equal(w->claim_idle_ms, 60000);
    assert_int_equal(w->secret_len, 1);
    w = &c->outputs.webhooks[1];
    assert_string_equal(w->name, "soc");
    assert_int_equal(w->ntypes, 1);
    assert_string_equal(w->types[0], "dev.digestmap.mapping.unmatched.v1");
    assert_int_equal(w->max_attempts, 3);
    assert_int_equal(w->claim_idle_ms, 1000);
    dm_config_free(c);
}

static void test_api(void **state)
{
    (void)state;
    EXPECT_ERR("{'api': {}, " SRC_NONE "}",
               "api: \"auth\" is required; use [{\"type\": \"none\"}] to accept unauthenticated "
               "requests");
    EXPECT_ERR("{'api': {'auth': []}, " SRC_NONE "}",
               "api.auth: must be a non-empty array; use [{\"type\": \"none\"}] to accept "
               "unauthenticated requests");
    EXPECT_ERR("{'api': true, " SRC_NONE "}", "api: must be an object");
    dm_config *c = load_ok("{'api': {'auth': [{'type': 'none'}]}, " SRC_NONE "}");
    assert_true(c->api_configured);
    assert_int_equal(c->api_auth.n, 1);
    assert_int_equal(c->api_auth.v[0].type, DM_AUTH_NONE);
    assert_int_equal(c->api_max_stream_clients, 64);
    dm_config_free(c);
    EXPECT_ERR("{'api': {'max_stream_clients': -1, 'auth': [{'type': 'none'}]}, " SRC_NONE "}",
               "api.max_stream_clients: must be an integer between 0 and 10000");
}

/*---- Documents and files ----------------------------------------------------------------*/

static void test_json_errors(void **state)
{
    (void)state;
    EXPECT_ERR("{'workers': 2,",
               "invalid JSON at line 1, column 14: string or '}' expected near end of file");
    EXPECT_ERR("[]", "the configuration must be a JSON object");
    EXPECT_ERR("{'workers': 2, 'workers': 3, " SRC_NONE "}",
               "invalid JSON at line 1, column 24: duplicate object key near '\"workers\"'");
    /* An error buffer of size 0 (or NULL) is allowed: only the code is returned. */
    dm_config *c = NULL;
    assert_int_equal(dm_config_load_buffer("[]", 2, NULL, &c, NULL, 0), DM_EINVAL);
    assert_null(c);
    /* A small buffer truncates the message, NUL-terminated. */
    char small[8];
    assert_int_equal(dm_config_load_buffer("{}", 2, NULL, &c, small, sizeof(small)), DM_EINVAL);
    assert_string_equal(small, "\"source");
}

static void test_load_file(void **state)
{
    (void)state;
    char err[512], path[256], msg[512];
    dm_config *c = (dm_config *)1;

    assert_int_equal(dm_config_load_file("/nonexistent/digestmap.json", &c, err, sizeof(err)),
                     DM_EIO);
    assert_null(c);
    assert_string_equal(err, "cannot read \"/nonexistent/digestmap.json\": No such file or "
                             "directory");

    /* Relative secret files are resolved against the config file's directory. */
    const char *cfg = q("{'sources': [{'type': 'acr', 'auth': [{'type': 'header', 'name': 'A',"
                        " 'value_file': 'sub/rel.txt'}]}]}");
    write_file("cfg.json", cfg, strlen(cfg));
    snprintf(path, sizeof(path), "%s/cfg.json", tmpdir);
    assert_int_equal(dm_config_load_file(path, &c, err, sizeof(err)), DM_OK);
    assert_secret(&c->sources[0].auth.v[0], "relative-secret");
    dm_config_free(c);

    cfg = q("{'sources': [{'type': 'acr',"
            " 'auth': [{'type': 'header', 'name': 'A', 'value_file': 'rel.txt'}]}]}");
    write_file("cfg.json", cfg, strlen(cfg));
    assert_int_equal(dm_config_load_file(path, &c, err, sizeof(err)), DM_EIO);
    snprintf(msg, sizeof(msg),
             "sources[0].auth[0].value_file: cannot read \"%s/rel.txt\": No such file or "
             "directory",
             tmpdir);
    assert_string_equal(err, msg);

    dm_config_free(NULL);
}

/*---- DM_CONFIG_SECRETS_OPTIONAL (the client's mode) -------------------------------------*/

static int try_load_opt(const char *json, const char *base, dm_config **out, char *err, size_t n)
{
    const char *j = q(json);
    return dm_config_load_buffer_opts(j, strlen(j), base, DM_CONFIG_SECRETS_OPTIONAL, out, err, n);
}

/* Same as EXPECT_ERR_AT, in the optional mode. */
#define EXPECT_OPT_ERR_AT(json, base, code, msg)                                     \
    do {                                                                             \
        char e_[512] = "";                                                           \
        dm_config *c_ = (dm_config *)1;                                              \
        assert_int_equal(try_load_opt((json), (base), &c_, e_, sizeof(e_)), (code)); \
        assert_null(c_);                                                             \
        assert_string_equal(e_, (msg));                                              \
    } while (0)

static void test_optional_secrets(void **state)
{
    (void)state;
    char json[2048], msg[512], err[512];
    setenv("DM_TEST_SET", "Bearer set", 1);
    setenv("DM_TEST_EMPTY", "", 1);
    unsetenv("DM_TEST_UNSET");

    /* Every kind of secret, unresolved: env unset, env empty, file missing, file a directory. */
    snprintf(json, sizeof(json),
             "{'redis': {'url': 'redis://127.0.0.1', 'password_env': 'DM_TEST_UNSET'},"
             " 'sources': [{'type': 'build', 'auth': ["
             "   {'type': 'hmac-sha256', 'secret_env': 'DM_TEST_EMPTY'},"
             "   {'type': 'header', 'name': 'X-T', 'value_file': 'nope.txt'},"
             "   {'type': 'header', 'name': 'X-U', 'value_env': 'DM_TEST_SET'}]}],"
             " 'api': {'auth': [{'type': 'header', 'name': 'Authorization',"
             "                   'value_file': 'sub'}]},"
             " 'outputs': {'webhooks': [{'url': 'http://127.0.0.1:9/',"
             "                           'secret_env': 'DM_TEST_UNSET'}]}}");
    const char *strict_first = "redis.password_env: environment variable \"DM_TEST_UNSET\" is "
                               "not set or empty";
    /* The daemon's loaders are unchanged: the first unresolved secret fails the load. */
    EXPECT_ERR_AT(json, tmpdir, DM_EINVAL, strict_first);
    dm_config *c = (dm_config *)1;
    const char *j = q(json);
    assert_int_equal(dm_config_load_buffer_opts(j, strlen(j), tmpdir, 0, &c, err, sizeof(err)),
                     DM_EINVAL);
    assert_null(c);
    assert_string_equal(err, strict_first);

    c = NULL;
    assert_int_equal(try_load_opt(json, tmpdir, &c, err, sizeof(err)), DM_OK);
    assert_non_null(c);
    assert_null(c->redis.password);
    assert_string_equal(c->redis.password_missing, strict_first);
    /* The rest of the configuration is loaded as usual. */
    assert_string_equal(c->redis.host, "127.0.0.1");

    const dm_auth_entry *a = c->sources[0].auth.v;
    assert_int_equal(c->sources[0].auth.n, 3);
    assert_int_equal(a[0].type, DM_AUTH_HMAC);
    assert_null(a[0].secret);
    assert_int_equal(a[0].secret_len, 0);
    assert_string_equal(a[0].name, "X-Digestmap-Signature");
    assert_string_equal(a[0].secret_missing, "sources[0].auth[0].secret_env: environment "
                                             "variable \"DM_TEST_EMPTY\" is not set or empty");
    assert_null(a[1].secret);
    assert_int_equal(a[1].secret_len, 0);
    assert_string_equal(a[1].name, "X-T");
    snprintf(msg, sizeof(msg),
             "sources[0].auth[1].value_file: cannot read \"%s/nope.txt\": No such file or "
             "directory",
             tmpdir);
    assert_string_equal(a[1].secret_missing, msg);
    /* A resolved secret has no message. */
    assert_secret(&a[2], "Bearer set");
    assert_null(a[2].secret_missing);

    assert_null(c->api_auth.v[0].secret);
    snprintf(msg, sizeof(msg), "api.auth[0].value_file: cannot read \"%s/sub\": Is a directory",
             tmpdir);
    assert_string_equal(c->api_auth.v[0].secret_missing, msg);

    assert_int_equal(c->outputs.nwebhooks, 1);
    assert_null(c->outputs.webhooks[0].secret);
    assert_int_equal(c->outputs.webhooks[0].secret_len, 0);
    assert_string_equal(c->outputs.webhooks[0].secret_missing,
                        "outputs.webhooks[0].secret_env: environment variable \"DM_TEST_UNSET\" "
                        "is not set or empty");
    dm_config_free(c);

    /* Everything resolved: the optional mode gives what the strict one gives. */
    c = NULL;
    assert_int_equal(try_load_opt("{'redis': {'password_env': 'DM_TEST_SET'}, "
                                  "'outputs': {'webhooks': [{'url': 'https://a/',"
                                  " 'secret_env': 'DM_TEST_SET'}]}, " SRC_NONE "}",
                                  NULL, &c, err, sizeof(err)),
                     DM_OK);
    assert_string_equal(c->redis.password, "Bearer set");
    assert_null(c->redis.password_missing);
    assert_int_equal(c->outputs.webhooks[0].secret_len, strlen("Bearer set"));
    assert_null(c->outputs.webhooks[0].secret_missing);
    dm_config_free(c);

    /* What is not an unresolvable secret stays an error: the shape of a secret ... */
    EXPECT_OPT_ERR_AT(SRC_AUTH("{'type': 'header', 'name': 'A'}"), NULL, DM_EINVAL,
                      "sources[0].auth[0]: one of \"value\", \"value_env\" or \"value_file\" is "
                      "required");
    EXPECT_OPT_ERR_AT(SRC_AUTH("{'type': 'hmac-sha256', 'secret_env': 'DM_TEST_UNSET', "
                               "'secret': 'x'}"),
                      NULL, DM_EINVAL,
                      "sources[0].auth[0]: give only one of \"secret\", \"secret_env\" or "
                      "\"secret_file\"");
    EXPECT_OPT_ERR_AT(SRC_AUTH("{'type': 'hmac-sha256', 'secret_env': 'DM_TEST_UNSET', "
                               "'secert': 'x'}"),
                      NULL, DM_EINVAL, "sources[0].auth[0]: unknown key \"secert\"");
    /* ... a password given twice, even when the second one is unresolved ... */
    EXPECT_OPT_ERR_AT(REDIS("'url': 'redis://:a@127.0.0.1', 'password_env': 'DM_TEST_UNSET'"), NULL,
                      DM_EINVAL,
                      "redis: give the password once: the url has one, and so has \"password\", "
                      "\"password_env\" or \"password_file\"");
    /* ... a secret file that was read and is wrong ... */
    snprintf(msg, sizeof(msg), "sources[0].auth[0].secret_file: \"%s/empty.txt\" is empty", tmpdir);
    EXPECT_OPT_ERR_AT(SRC_AUTH("{'type': 'hmac-sha256', 'secret_file': 'empty.txt'}"), tmpdir,
                      DM_EINVAL, msg);
    snprintf(msg, sizeof(msg),
             "sources[0].auth[0].secret_file: \"%s/big.txt\" is larger than 65536 bytes", tmpdir);
    EXPECT_OPT_ERR_AT(SRC_AUTH("{'type': 'hmac-sha256', 'secret_file': 'big.txt'}"), tmpdir,
                      DM_EINVAL, msg);
    /* ... and the files that are not secrets: the OIDC keys and the sink's trust anchors. */
    EXPECT_OPT_ERR_AT(
        OIDC_HEAD "'jwks_file': 'no-such-file.json'" OIDC_TAIL, "/nonexistent", DM_EIO,
        "sources[0].auth[0].jwks_file: cannot read \"/nonexistent/no-such-file.json\": "
        "No such file or directory");
    EXPECT_OPT_ERR_AT("{'outputs': {'webhooks': [{'url': 'https://a/', 'secret_env': "
                      "'DM_TEST_UNSET', 'ca_file': 'no-ca.pem'}]}, " SRC_NONE "}",
                      "/nonexistent", DM_EIO,
                      "outputs.webhooks[0].ca_file: cannot read \"/nonexistent/no-ca.pem\": No "
                      "such file or directory");

    /* From a file: relative secret files are looked up beside it, as in the strict mode. */
    const char *cfg = q("{'api': {'auth': [{'type': 'header', 'name': 'A', 'value_file':"
                        " 'rel.txt'}, {'type': 'header', 'name': 'B', 'value_file': "
                        "'sub/rel.txt'}]}, " SRC_NONE "}");
    write_file("cfg.json", cfg, strlen(cfg));
    char path[256];
    snprintf(path, sizeof(path), "%s/cfg.json", tmpdir);
    c = (dm_config *)1;
    snprintf(msg, sizeof(msg),
             "api.auth[0].value_file: cannot read \"%s/rel.txt\": No such file or directory",
             tmpdir);
    assert_int_equal(dm_config_load_file(path, &c, err, sizeof(err)), DM_EIO);
    assert_null(c);
    assert_string_equal(err, msg);
    assert_int_equal(dm_config_load_file_opts(path, 0, &c, err, sizeof(err)), DM_EIO);
    assert_string_equal(err, msg);
    assert_int_equal(
        dm_config_load_file_opts(path, DM_CONFIG_SECRETS_OPTIONAL, &c, err, sizeof(err)), DM_OK);
    assert_null(c->api_auth.v[0].secret);
    assert_string_equal(c->api_auth.v[0].secret_missing, msg);
    assert_secret(&c->api_auth.v[1], "relative-secret");
    dm_config_free(c);
    /* The file itself must still be readable. */
    assert_int_equal(dm_config_load_file_opts("/nonexistent/digestmap.json",
                                              DM_CONFIG_SECRETS_OPTIONAL, &c, err, sizeof(err)),
                     DM_EIO);
    assert_null(c);

    unsetenv("DM_TEST_SET");
    unsetenv("DM_TEST_EMPTY");
}

static void test_shipped_configs(void **state)
{
    (void)state;
    char err[512] = "";
    dm_config *c = NULL;

    int rc = dm_config_load_file(CONFIGS_DIR "/dev.json", &c, err, sizeof(err));
    if (rc != DM_OK)
        fail_msg("configs/dev.json: %s", err);
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 8080);
    assert_int_equal(c->workers, 2);
    assert_string_equal(c->data_dir, "var");
    assert_null(c->redis.url);
    assert_string_equal(c->redis.unix_path, "var/redis.sock");
    assert_int_equal(c->nsources, 4);
    assert_int_equal(c->sources[2].type, DM_SRC_K8S);
    assert_string_equal(c->sources[2].path, "/v1/workloads");
    assert_secret(&c->sources[2].auth.v[0], "Bearer dev-k8s-token");
    assert_int_equal(c->sources[3].type, DM_SRC_SCAN);
    assert_string_equal(c->sources[3].path, "/v1/findings");
    assert_secret(&c->sources[3].auth.v[0], "Bearer dev-scan-token");
    assert_int_equal(c->sources[0].type, DM_SRC_ACR);
    assert_string_equal(c->sources[0].path, "/v1/registry/acr");
    assert_int_equal(c->sources[0].auth.n, 1);
    assert_int_equal(c->sources[0].auth.v[0].type, DM_AUTH_HEADER);
    assert_string_equal(c->sources[0].auth.v[0].name, "Authorization");
    assert_secret(&c->sources[0].auth.v[0], "Bearer dev-acr-token");
    assert_int_equal(c->sources[1].type, DM_SRC_BUILD);
    assert_string_equal(c->sources[1].path, "/v1/builds");
    assert_int_equal(c->sources[1].auth.n, 2);
    assert_secret(&c->sources[1].auth.v[0], "Bearer dev-ci-token");
    assert_int_equal(c->sources[1].auth.v[1].type, DM_AUTH_HMAC);
    assert_string_equal(c->sources[1].auth.v[1].name, "X-Digestmap-Signature");
    assert_secret(&c->sources[1].auth.v[1], "dev-ci-secret");
    assert_true(c->api_configured);
    assert_secret(&c->api_auth.v[0], "Bearer dev-api-token");
    dm_config_free(c);

    /* The example needs its environment; without it, it names the first missing variable. */
    unsetenv("DIGESTMAP_REDIS_PASSWORD");
    assert_int_equal(
        dm_config_load_file(CONFIGS_DIR "/digestmap.example.json", &c, err, sizeof(err)),
        DM_EINVAL);
    assert_string_equal(err, "redis.password_env: environment variable "
                             "\"DIGESTMAP_REDIS_PASSWORD\" is not set or empty");
    setenv("DIGESTMAP_REDIS_PASSWORD", "redis-pw", 1);
    setenv("DIGESTMAP_ACR_CONTOSO_TOKEN", "Bearer contoso", 1);
    setenv("DIGESTMAP_ACR_FABRIKAM_TOKEN", "Bearer fabrikam", 1);
    setenv("DIGESTMAP_CI_HMAC_SECRET", "ci-secret", 1);
    setenv("DIGESTMAP_API_TOKEN", "Bearer api", 1);
    setenv("DIGESTMAP_SINK_SOC_SECRET", "sink-secret", 1);
    rc = dm_config_load_file(CONFIGS_DIR "/digestmap.example.json", &c, err, sizeof(err));
    if (rc != DM_OK)
        fail_msg("configs/digestmap.example.json: %s", err);
    assert_string_equal(c->listen_host, "0.0.0.0");
    assert_string_equal(c->redis.host, "10.0.12.5");
    assert_int_equal(c->redis.port, 6379);
    assert_string_equal(c->redis.password, "redis-pw");
    assert_int_equal(c->redis.shards, 16);
    assert_int_equal(c->nsources, 3);
    assert_string_equal(c->sources[0].path, "/v1/registry/acr/contoso");
    assert_secret(&c->sources[0].auth.v[0], "Bearer contoso");
    assert_string_equal(c->sources[1].path, "/v1/registry/acr/fabrikam");
    assert_secret(&c->sources[1].auth.v[0], "Bearer fabrikam");
    assert_int_equal(c->sources[2].auth.v[0].type, DM_AUTH_HMAC);
    assert_secret(&c->sources[2].auth.v[0], "ci-secret");
    assert_secret(&c->api_auth.v[0], "Bearer api");
    assert_int_equal(c->outputs.nwebhooks, 1);
    assert_string_equal(c->outputs.webhooks[0].name, "soc");
    assert_int_equal(c->outputs.webhooks[0].secret_len, strlen("sink-secret"));
    assert_int_equal(c->outputs.nstream_groups, 1);
    dm_config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_unsupported),
        cmocka_unit_test(test_oidc_entry),
        cmocka_unit_test(test_oidc_jwks_url),
        cmocka_unit_test(test_k8s_keys),
        cmocka_unit_test(test_sources_errors),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_auth_entries),
        cmocka_unit_test(test_env_secrets),
        cmocka_unit_test(test_file_secrets),
        cmocka_unit_test(test_redis_urls),
        cmocka_unit_test(test_redis_cluster),
        cmocka_unit_test(test_redis_password),
        cmocka_unit_test(test_redis_other),
        cmocka_unit_test(test_correlation),
        cmocka_unit_test(test_limits_outputs),
        cmocka_unit_test(test_api),
        cmocka_unit_test(test_findings_keys),
        cmocka_unit_test(test_sns_entry),
        cmocka_unit_test(test_webhooks),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_shipped_configs),
        cmocka_unit_test(test_optional_secrets),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
