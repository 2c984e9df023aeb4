/* dm_cli_api.c - the commands that talk to digestmapd's HTTP API: "query" (GET
 * /v1/images/<digest>) and "send-build" (POST a build event, signed like a CI step would). */
#include "dm_common.h"
#include "dm_cli.h"

#include <event2/http.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIGNATURE_HEADER "X-Digestmap-Signature"

/* Resolve the settings; prints and returns the exit code on failure, DM_CLI_OK otherwise. */
static int resolve(const char *command, const dm_cli_flags *f, dm_cli *c)
{
    char err[768];
    int rc = dm_cli_resolve(f, c, err, sizeof err);
    if (rc == DM_OK)
        return DM_CLI_OK;
    dm_cli_dispose(c);
    if (rc == DM_EINVAL)
        return dm_cli_usage_error(command, "%s", err);
    return dm_cli_fail("%s", err);
}

/* resolve() for the commands that need the API's URL. */
static int resolve_http(const char *command, const dm_cli_flags *f, dm_cli *c)
{
    int rc = resolve(command, f, c);
    if (rc == DM_CLI_OK && !c->url) {
        dm_cli_dispose(c);
        return dm_cli_usage_error(command, "%s listens on port 0 (any free port): give --url",
                                  f->config);
    }
    return rc;
}

/* Report a non-success answer on stderr: status, reason phrase and the "error" member. */
static int report_status(const char *what, const dm_cli_http_answer *ans, const char *why)
{
    if (*why)
        return dm_cli_fail("%s: HTTP %d: %s", what, ans->status, why);
    if (ans->len && ans->len < 300 && !memchr(ans->body, '\n', ans->len - 1))
        return dm_cli_fail("%s: HTTP %d %s: %s", what, ans->status,
                           ans->reason ? ans->reason : "", ans->body);
    return dm_cli_fail("%s: HTTP %d %s", what, ans->status, ans->reason ? ans->reason : "");
}

/*---------------------------------------------------------------------------- query ---*/

int dm_cli_cmd_query(dm_cli_flags *f, int argc, char **argv)
{
    static const struct option opts[] = {DM_CLI_GLOBAL_OPTIONS, {NULL, 0, NULL, 0}};
    int ret;
    optind = 0;
    opterr = 0;
    while ((ret = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (ret == 'h' || ret == DM_OPT_HELP) {
            fputs(dm_cli_usage_query, stdout);
            return DM_CLI_OK;
        }
        if (!dm_cli_global_option(f, ret, optarg))
            return dm_cli_bad_option("query", ret, argv);
    }
    if (argc - optind != 1)
        return dm_cli_usage_error("query", argc - optind == 0 ? "a DIGEST is required"
                                                              : "exactly one DIGEST is expected");
    const char *digest = argv[optind];

    dm_cli c;
    int rc = resolve_http("query", f, &c);
    if (rc != DM_CLI_OK)
        return rc;
    char *enc = evhttp_uriencode(digest, -1, 0);
    size_t n = strlen(enc) + sizeof "/v1/images/";
    char *path = dm_xmalloc(n);
    snprintf(path, n, "/v1/images/%s", enc);
    free(enc);

    dm_cli_header hdr[1];
    size_t nh = 0;
    if (c.token)
        hdr[nh++] = (dm_cli_header){c.token_header, c.token};
    dm_cli_http_answer ans;
    char err[768], why[512];
    if (dm_cli_http(&c, "GET", path, hdr, nh, NULL, 0, &ans, err, sizeof err) != DM_OK) {
        rc = dm_cli_fail("query %s: %s", digest, err);
    } else if (ans.status == 200) {
        dm_cli_print_answer(stdout, &ans, why, sizeof why);
        rc = DM_CLI_OK;
    } else if (ans.status == 404) {
        /* Unknown is an answer, not a failure of the exchange: print it, but exit 1 so
         * scripts can tell. */
        dm_cli_print_answer(stdout, &ans, why, sizeof why);
        fprintf(stderr, "digestmap: query %s: not found (HTTP 404)\n", digest);
        rc = DM_CLI_FAIL;
    } else {
        dm_cli_print_answer(NULL, &ans, why, sizeof why);
        char what[160];
        snprintf(what, sizeof what, "query %.100s", digest);
        rc = report_status(what, &ans, why);
        if (ans.status == 401 && !c.token)
            fputs("digestmap: no API credential: give --token \"Bearer …\" or --config with "
                  "api.auth\n", stderr);
    }
    dm_cli_http_answer_free(&ans);
    free(path);
    dm_cli_dispose(&c);
    return rc;
}

/*----------------------------------------------------------------------- send-build ---*/

enum {
    OPT_IMAGE = DM_OPT_FIRST_COMMAND_OPTION,
    OPT_DIGEST,
    OPT_TAG,
    OPT_MANIFEST,
    OPT_PROVIDER,
    OPT_RUN_ID,
    OPT_RUN_ATTEMPT,
    OPT_REPOSITORY,
    OPT_COMMIT,
    OPT_REF,
    OPT_WORKFLOW,
    OPT_ACTOR,
    OPT_RUN_URL,
    OPT_BUILT_AT,
    OPT_PATH,
    OPT_SECRET,
    OPT_SECRET_ENV,
    OPT_SIG_HEADER,
};

/* Run members, in the order of DESIGN §6.3; index = option - OPT_PROVIDER. */
static const char *const run_keys[] = {"provider", "run_id", "run_attempt", "repository",
                                       "commit", "ref", "workflow", "actor", "run_url"};

typedef struct build_args {
    const char *image, *digest, *built_at, *path, *secret, *secret_env, *sig_header;
    const char *run[DM_ARRAY_LEN(run_keys)];
    json_t *tags, *manifests;
} build_args;

/* The §6.3 body for one image. */
static char *build_body(const build_args *a, size_t *len)
{
    json_t *img = json_object();
    json_object_set_new(img, "name", json_string(a->image));
    json_object_set_new(img, "digest", json_string(a->digest));
    if (json_array_size(a->tags))
        json_object_set(img, "tags", a->tags);
    if (json_array_size(a->manifests))
        json_object_set(img, "manifests", a->manifests);
    json_t *root = json_object();
    json_t *images = json_array();
    json_array_append_new(images, img);
    json_object_set_new(root, "images", images);
    if (a->built_at)
        json_object_set_new(root, "built_at", json_string(a->built_at));
    bool any_run = false;
    for (size_t i = 0; i < DM_ARRAY_LEN(run_keys); i++)
        any_run |= a->run[i] != NULL;
    if (any_run) {
        json_t *run = json_object();
        for (size_t i = 0; i < DM_ARRAY_LEN(run_keys); i++) {
            const char *v = a->run[i] ? a->run[i] : i == 0 ? "generic" : NULL;
            if (v)
                json_object_set_new(run, run_keys[i], json_string(v));
        }
        json_object_set_new(root, "run", run);
    }
    char *body = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!body)
        abort(); /* jansson only fails on allocation (strings were checked as UTF-8) */
    *len = strlen(body);
    return body;
}

/* "sha256=<lowercase hex HMAC-SHA256(key, body)>" into @p out. */
static bool sign(const unsigned char *key, size_t keylen, const char *body, size_t len,
                 char out[7 + 2 * 32 + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    size_t hexlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)body, len, mac, &maclen) ||
        maclen != 32 || OPENSSL_buf2hexstr_ex(hex, sizeof hex, &hexlen, mac, maclen, '\0') != 1)
        return false;
    for (char *p = hex; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    memcpy(out, "sha256=", 7);
    memcpy(out + 7, hex, 2 * 32 + 1);
    OPENSSL_cleanse(mac, sizeof mac);
    return true;
}

static bool valid_utf8(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

static int parse_build_args(dm_cli_flags *f, int argc, char **argv, build_args *a)
{
    static const struct option opts[] = {
        DM_CLI_GLOBAL_OPTIONS,
        {"image", required_argument, NULL, OPT_IMAGE},
        {"digest", required_argument, NULL, OPT_DIGEST},
        {"tag", required_argument, NULL, OPT_TAG},
        {"manifest", required_argument, NULL, OPT_MANIFEST},
        {"provider", required_argument, NULL, OPT_PROVIDER},
        {"run-id", required_argument, NULL, OPT_RUN_ID},
        {"run-attempt", required_argument, NULL, OPT_RUN_ATTEMPT},
        {"repository", required_argument, NULL, OPT_REPOSITORY},
        {"commit", required_argument, NULL, OPT_COMMIT},
        {"ref", required_argument, NULL, OPT_REF},
        {"workflow", required_argument, NULL, OPT_WORKFLOW},
        {"actor", required_argument, NULL, OPT_ACTOR},
        {"run-url", required_argument, NULL, OPT_RUN_URL},
        {"built-at", required_argument, NULL, OPT_BUILT_AT},
        {"path", required_argument, NULL, OPT_PATH},
        {"secret", required_argument, NULL, OPT_SECRET},
        {"secret-env", required_argument, NULL, OPT_SECRET_ENV},
        {"signature-header", required_argument, NULL, OPT_SIG_HEADER},
        {NULL, 0, NULL, 0},
    };
    int ret, idx = 0;
    optind = 0;
    opterr = 0;
    while ((ret = getopt_long(argc, argv, ":h", opts, &idx)) != -1) {
        if (ret == 'h' || ret == DM_OPT_HELP) {
            fputs(dm_cli_usage_send_build, stdout);
            return -1;
        }
        if (dm_cli_global_option(f, ret, optarg))
            continue;
        if (ret >= OPT_IMAGE && !valid_utf8(optarg))
            return dm_cli_usage_error("send-build", "--%s: not valid UTF-8", opts[idx].name);
        switch (ret) {
        case OPT_IMAGE: a->image = optarg; break;
        case OPT_DIGEST: a->digest = optarg; break;
        case OPT_TAG: json_array_append_new(a->tags, json_string(optarg)); break;
        case OPT_MANIFEST: json_array_append_new(a->manifests, json_string(optarg)); break;
        case OPT_BUILT_AT: a->built_at = optarg; break;
        case OPT_PATH: a->path = optarg; break;
        case OPT_SECRET: a->secret = optarg; break;
        case OPT_SECRET_ENV: a->secret_env = optarg; break;
        case OPT_SIG_HEADER: a->sig_header = optarg; break;
        default:
            if (ret >= OPT_PROVIDER && ret <= OPT_RUN_URL) {
                a->run[ret - OPT_PROVIDER] = optarg;
                break;
            }
            return dm_cli_bad_option("send-build", ret, argv);
        }
    }
    if (optind < argc)
        return dm_cli_usage_error("send-build", "unexpected argument \"%s\"", argv[optind]);
    if (!a->image)
        return dm_cli_usage_error("send-build", "--image NAME is required");
    if (!a->digest)
        return dm_cli_usage_error("send-build", "--digest DIGEST is required");
    if (a->secret && a->secret_env)
        return dm_cli_usage_error("send-build", "give --secret or --secret-env, not both");
    if (a->path && a->path[0] != '/')
        return dm_cli_usage_error("send-build", "--path must start with \"/\"");
    return DM_CLI_OK;
}

/* The configuration's build source for @p path (or the first one when @p path is NULL). */
static const dm_source_conf *build_source(const dm_config *conf, const char *path)
{
    for (size_t i = 0; conf && i < conf->nsources; i++) {
        const dm_source_conf *s = &conf->sources[i];
        if (s->type == DM_SRC_BUILD && (!path || strcmp(s->path, path) == 0))
            return s;
    }
    return NULL;
}

int dm_cli_cmd_send_build(dm_cli_flags *f, int argc, char **argv)
{
    build_args a = {.tags = json_array(), .manifests = json_array()};
    int rc = parse_build_args(f, argc, argv, &a);
    if (rc != DM_CLI_OK) {
        json_decref(a.tags);
        json_decref(a.manifests);
        return rc < 0 ? DM_CLI_OK : rc;
    }
    dm_cli c;
    if ((rc = resolve_http("send-build", f, &c)) != DM_CLI_OK) {
        json_decref(a.tags);
        json_decref(a.manifests);
        return rc;
    }

    const dm_source_conf *src = build_source(c.conf, a.path);
    const char *path = a.path ? a.path : src ? src->path : "/v1/builds";

    /* Credentials: explicit flags first, then the configuration's build source. */
    const unsigned char *key = NULL;
    size_t keylen = 0;
    const char *sig_header = a.sig_header;
    dm_cli_header hdr[2];
    size_t nh = 0;
    char *secret_copy = NULL;
    if (a.secret || a.secret_env) {
        const char *s = a.secret;
        if (a.secret_env && !(s = getenv(a.secret_env))) {
            rc = dm_cli_fail("send-build: --secret-env: environment variable %s is not set",
                             a.secret_env);
            goto out;
        }
        if (!*s) {
            rc = dm_cli_fail("send-build: the HMAC secret is empty");
            goto out;
        }
        secret_copy = dm_xstrdup(s);
        key = (const unsigned char *)secret_copy;
        keylen = strlen(secret_copy);
    } else if (f->token) {
        hdr[nh++] = (dm_cli_header){"Authorization", f->token};
    } else if (src) {
        const dm_auth_entry *hmac = NULL, *header = NULL;
        for (size_t i = 0; i < src->auth.n; i++) {
            const dm_auth_entry *e = &src->auth.v[i];
            if (e->type == DM_AUTH_HMAC && !hmac)
                hmac = e;
            else if (e->type == DM_AUTH_HEADER && !header)
                header = e;
        }
        if (hmac) {
            key = hmac->secret;
            keylen = hmac->secret_len;
            if (!sig_header)
                sig_header = hmac->name;
        } else if (header) {
            secret_copy = dm_xstrndup((const char *)header->secret, header->secret_len);
            hdr[nh++] = (dm_cli_header){header->name, secret_copy};
        }
    }
    if (!key && nh == 0 && src) {
        rc = dm_cli_fail("send-build: the configuration's build source %s has no hmac-sha256 "
                         "or header entry: give --secret, --secret-env or --token",
                         src->path);
        goto out;
    }
    if (!key && nh == 0) {
        rc = dm_cli_fail("send-build: no credentials: give --secret, --secret-env, --token, "
                         "or --config with a build source");
        goto out;
    }

    size_t len = 0;
    char *body = build_body(&a, &len);
    char sig[7 + 2 * 32 + 1];
    if (key) {
        if (!sign(key, keylen, body, len, sig)) {
            free(body);
            rc = dm_cli_fail("send-build: cannot compute the HMAC-SHA256 signature");
            goto out;
        }
        hdr[nh++] = (dm_cli_header){sig_header ? sig_header : SIGNATURE_HEADER, sig};
    }

    dm_cli_http_answer ans;
    char err[768], why[512];
    char what[300];
    snprintf(what, sizeof what, "send-build: POST %.200s", path);
    if (dm_cli_http(&c, "POST", path, hdr, nh, body, len, &ans, err, sizeof err) != DM_OK) {
        rc = dm_cli_fail("%s: %s", what, err);
    } else {
        if (ans.status >= 200 && ans.status < 300) {
            dm_cli_print_answer(stdout, &ans, why, sizeof why);
            rc = DM_CLI_OK;
        } else {
            dm_cli_print_answer(NULL, &ans, why, sizeof why);
            rc = report_status(what, &ans, why);
        }
        dm_cli_http_answer_free(&ans);
    }
    free(body);
out:
    if (secret_copy) {
        OPENSSL_cleanse(secret_copy, strlen(secret_copy));
        free(secret_copy);
    }
    json_decref(a.tags);
    json_decref(a.manifests);
    dm_cli_dispose(&c);
    return rc;
}
