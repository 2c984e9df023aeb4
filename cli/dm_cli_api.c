/* dm_cli_api.c - the commands that talk to digestmapd's HTTP API: "query" (GET
 * /v1/images/<digest>) and "send-build" (POST a build event, signed like a CI step would).
 * The exchange uses the daemon's own HTTP client (dm_hclient: a deadline for the whole
 * exchange, a response size cap, certificate and name verification) on a private event_base
 * dispatched until the answer arrives, and the signature the daemon checks (dm_sign). */
#include "dm_common.h"
#include "dm_cli_api.h"
#include "dm_cli_conf.h"
#include "dm_hclient.h"
#include "dm_sign.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DM_VERSION
#define DM_VERSION "0.0.0"
#endif

#define SIGNATURE_HEADER "X-Digestmap-Signature"
/* One exchange, connect to last byte. */
#define HTTP_TIMEOUT_MS  30000
/* Largest answer accepted: far beyond any digest's record. */
#define HTTP_MAX_BODY    (16u * 1024 * 1024)

/*--------------------------------------------------------------------------- HTTP ---*/

/** One HTTP answer. */
typedef struct answer {
    int status;
    char *body; /* NUL-terminated (owned) */
    size_t len;
} answer;

typedef struct exchange {
    struct event_base *base;
    answer *ans;
    bool done;
    char error[DM_HCLIENT_ERRLEN];
} exchange;

static void on_answer(const dm_hclient_response *res, void *arg)
{
    exchange *x = arg;
    x->done = true;
    if (res->error) {
        /* A status with an error is a cut-short answer: a failure all the same. */
        snprintf(x->error, sizeof x->error, "%s", res->error);
    } else {
        x->ans->status = res->status;
        x->ans->body = dm_xmalloc(res->body_len + 1);
        if (res->body_len)
            memcpy(x->ans->body, res->body, res->body_len);
        x->ans->body[res->body_len] = '\0';
        x->ans->len = res->body_len;
    }
    event_base_loopbreak(x->base);
}

/*
 * Send one request to c->url + @p path (already URI-encoded) with @p headers and, for POST,
 * @p body of @p len bytes (Content-Type: application/json), and wait for the answer (any
 * status). Returns DM_OK with @p ans filled (free with answer_free), or DM_EIO with @p err
 * filled ("<url>: <reason>").
 */
static int http_exchange(const dm_cli *c, const char *method, const char *path,
                         const dm_hclient_header *headers, size_t nheaders, const char *body,
                         size_t len, answer *ans, char *err, size_t errlen)
{
    memset(ans, 0, sizeof *ans);
    char why[DM_HCLIENT_ERRLEN + 64] = "";
    struct event_base *base = event_base_new();
    if (!base) {
        snprintf(err, errlen, "cannot create an event base");
        return DM_EIO;
    }
    dm_hclient *hc = dm_hclient_new(base, why, sizeof why);
    if (!hc) {
        snprintf(err, errlen, "%s", why);
        event_base_free(base);
        return DM_EIO;
    }
    size_t un = strlen(c->url) + strlen(path) + 1;
    char *url = dm_xmalloc(un);
    snprintf(url, un, "%s%s", c->url, path);

    dm_hclient_header *h = dm_xcalloc(nheaders + 3, sizeof *h);
    size_t nh = 0;
    h[nh++] = (dm_hclient_header){"User-Agent", "digestmap/" DM_VERSION};
    h[nh++] = (dm_hclient_header){"Accept", "application/json"};
    if (body)
        h[nh++] = (dm_hclient_header){"Content-Type", "application/json"};
    for (size_t i = 0; i < nheaders; i++)
        h[nh++] = headers[i];
    dm_hclient_request_opts o = {.method = method,
                                 .url = url,
                                 .headers = h,
                                 .nheaders = nh,
                                 .body = body,
                                 .body_len = len,
                                 .timeout_ms = HTTP_TIMEOUT_MS,
                                 .max_body = HTTP_MAX_BODY,
                                 .ca_file = c->cacert};
    exchange x = {.base = base, .ans = ans};
    int rc = DM_EIO;
    if (!dm_hclient_request(hc, &o, on_answer, &x, why, sizeof why)) {
        snprintf(err, errlen, "%s: %s", c->url, why);
    } else {
        /* The request's deadline guarantees the callback; the loop ends there. */
        while (!x.done && event_base_dispatch(base) == 0)
            ;
        if (!x.done)
            snprintf(err, errlen, "%s: the event loop stopped before an answer", c->url);
        else if (x.error[0])
            snprintf(err, errlen, "%s: %s", c->url, x.error);
        else
            rc = DM_OK;
    }
    dm_hclient_free(hc);
    event_base_free(base);
    free(h);
    free(url);
    if (rc != DM_OK) {
        free(ans->body);
        memset(ans, 0, sizeof *ans);
    }
    return rc;
}

static void answer_free(answer *ans)
{
    free(ans->body);
    memset(ans, 0, sizeof *ans);
}

/*
 * Print an answer body on @p out (NULL: print nothing): JSON pretty-printed by jansson,
 * anything else as it is. Copies the "error" member of a JSON answer into @p why (empty if
 * there is none). Returns false when writing to @p out failed (errno set).
 */
static bool print_answer(FILE *out, const answer *ans, char *why, size_t whylen)
{
    bool ok = true;
    if (whylen)
        why[0] = '\0';
    json_error_t jerr;
    json_t *j = ans->len ? json_loadb(ans->body, ans->len, 0, &jerr) : NULL;
    if (!out) {
        /* only the error member is wanted */
    } else if (j) {
        ok = json_dumpf(j, out, JSON_INDENT(2)) == 0 && fputc('\n', out) != EOF;
    } else if (ans->len) {
        ok = fwrite(ans->body, 1, ans->len, out) == ans->len &&
             (ans->body[ans->len - 1] == '\n' || fputc('\n', out) != EOF);
    }
    if (j) {
        const char *e = json_string_value(json_object_get(j, "error"));
        if (e && whylen)
            snprintf(why, whylen, "%s", e);
        json_decref(j);
    }
    if (out && (fflush(out) != 0 || ferror(out)))
        ok = false;
    return ok;
}

/* The exit code for a failed write of the answer. */
static int write_failed(const char *what)
{
    return dm_cli_fail("%s: cannot write to stdout: %s", what,
                       errno ? strerror(errno) : "write error");
}

/* dm_cli_resolve_for() for the commands that need the API's URL. */
static int resolve_http(const char *command, const dm_cli_flags *f, dm_cli *c)
{
    int rc = dm_cli_resolve_for(command, f, c);
    if (rc == DM_CLI_OK && !c->url) {
        dm_cli_dispose(c);
        return dm_cli_usage_error(command, "%s listens on port 0 (any free port): give --url",
                                  f->config);
    }
    return rc;
}

/* Report a non-success answer on stderr: status and the "error" member (or a short body). */
static int report_status(const char *what, const answer *ans, const char *why)
{
    if (*why)
        return dm_cli_fail("%s: HTTP %d: %s", what, ans->status, why);
    if (ans->len && ans->len < 300 && !memchr(ans->body, '\n', ans->len - 1))
        return dm_cli_fail("%s: HTTP %d: %s", what, ans->status, ans->body);
    return dm_cli_fail("%s: HTTP %d", what, ans->status);
}

/*---------------------------------------------------------------------------- query ---*/

static const char usage_query[] =
    "usage: digestmap [GLOBAL OPTIONS] query DIGEST\n"
    "\n"
    "Asks digestmapd what it knows about DIGEST (GET /v1/images/DIGEST, with the API token)\n"
    "and prints the answer, pretty-printed: the confirmed mappings, the pending registry and\n"
    "build events, and deletes.\n"
    "\n"
    "Exit status: 0 when found (200); 1 when unknown (404, the answer is printed too) or on\n"
    "any other answer or failure (status and error on stderr).\n";

int dm_cli_cmd_query(dm_cli_flags *f, int argc, char **argv)
{
    static const struct option opts[] = {DM_CLI_GLOBAL_OPTIONS, {NULL, 0, NULL, 0}};
    int ret;
    optind = 0;
    opterr = 0;
    while ((ret = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (ret == 'h' || ret == DM_OPT_HELP) {
            fputs(usage_query, stdout);
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
    if (!c.token && c.token_missing) {
        /* Asking without the credential the configuration names would only earn a 401. */
        rc = dm_cli_fail("%s", c.token_missing);
        fputs("digestmap: query needs the API credential: set it, or give --token\n", stderr);
        dm_cli_dispose(&c);
        return rc;
    }
    char *enc = evhttp_uriencode(digest, -1, 0);
    size_t n = strlen(enc) + sizeof "/v1/images/";
    char *path = dm_xmalloc(n);
    snprintf(path, n, "/v1/images/%s", enc);
    free(enc);

    dm_hclient_header hdr[1];
    size_t nh = 0;
    if (c.token)
        hdr[nh++] = (dm_hclient_header){c.token_header, c.token};
    answer ans;
    char err[768], why[512], what[160];
    snprintf(what, sizeof what, "query %.100s", digest);
    if (http_exchange(&c, "GET", path, hdr, nh, NULL, 0, &ans, err, sizeof err) != DM_OK) {
        rc = dm_cli_fail("%s: %s", what, err);
    } else if (ans.status == 200) {
        errno = 0;
        rc = print_answer(stdout, &ans, why, sizeof why) ? DM_CLI_OK : write_failed(what);
    } else if (ans.status == 404) {
        /* Unknown is an answer, not a failure of the exchange: print it, but exit 1 so
         * scripts can tell. */
        errno = 0;
        if (!print_answer(stdout, &ans, why, sizeof why))
            write_failed(what);
        fprintf(stderr, "digestmap: %s: not found (HTTP 404)\n", what);
        rc = DM_CLI_FAIL;
    } else {
        print_answer(NULL, &ans, why, sizeof why);
        rc = report_status(what, &ans, why);
        if (ans.status == 401 && !c.token)
            fputs("digestmap: no API credential: give --token \"Bearer …\" or --config with "
                  "api.auth\n",
                  stderr);
    }
    answer_free(&ans);
    free(path);
    dm_cli_dispose(&c);
    return rc;
}

/*----------------------------------------------------------------------- send-build ---*/

static const char usage_send_build[] =
    "usage: digestmap [GLOBAL OPTIONS] send-build --image NAME --digest DIGEST [OPTIONS]\n"
    "\n"
    "Posts a build event for one image (the body of POST /v1/builds) and prints the answer.\n"
    "\n"
    "  --image NAME          registry/repository, e.g. contoso.azurecr.io/team/api\n"
    "  --digest DIGEST       sha256:<64 hex digits> of the image or index\n"
    "  --tag T               a tag (repeatable)\n"
    "  --manifest DIGEST     a platform manifest of the index (repeatable)\n"
    "  --provider P          github, azure-devops, gitlab or generic (default generic)\n"
    "  --run-id ID           the run's id (needed unless an OIDC token is sent)\n"
    "  --run-attempt N       the run's attempt (the daemon's default: 1)\n"
    "  --repository R        code repository, e.g. acme/api\n"
    "  --commit SHA  --ref REF  --workflow W  --actor A  --run-url URL\n"
    "  --built-at RFC3339    build time (default: the arrival time at digestmapd)\n"
    "  --path PATH           route (default: the configuration's build source, else\n"
    "                        /v1/builds)\n"
    "  --secret S            HMAC-SHA256 key of the signature (not with --token)\n"
    "  --secret-env VAR      the same, read from the environment variable VAR\n"
    "  --signature-header H  header of the signature (default: the configuration's, else\n"
    "                        X-Digestmap-Signature)\n"
    "\n"
    "Credentials, the first that applies: --secret / --secret-env (header H: sha256=<hex\n"
    "HMAC-SHA256(secret, body)>); --token (sent as Authorization, e.g. \"Bearer <OIDC token>\");\n"
    "the configuration's build source: its hmac-sha256 entry, else its header entry.\n"
    "A \"run\" object is sent when any of --provider, --run-id, --run-attempt, --repository,\n"
    "--commit, --ref, --workflow, --actor or --run-url is given.\n"
    "\n"
    "Exit status: 0 on a 2xx answer, 1 otherwise (status and error on stderr).\n";

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

/* The members of the body's "run" object (README.md, "Build events"), in the order they are
 * written; index = option - OPT_PROVIDER. */
static const char *const run_keys[] = {"provider",   "run_id", "run_attempt",
                                       "repository", "commit", "ref",
                                       "workflow",   "actor",  "run_url"};

typedef struct build_args {
    const char *image, *digest, *built_at, *path, *secret, *secret_env, *sig_header;
    const char *run[DM_ARRAY_LEN(run_keys)];
    json_t *tags, *manifests;
} build_args;

/* The body of POST /v1/builds (README.md, "Build events") for one image. */
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

static bool valid_utf8(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

/* What the options must say together. */
static int check_build_args(const dm_cli_flags *f, const build_args *a)
{
    if (!a->image)
        return dm_cli_usage_error("send-build", "--image NAME is required");
    if (!a->digest)
        return dm_cli_usage_error("send-build", "--digest DIGEST is required");
    if (a->secret && a->secret_env)
        return dm_cli_usage_error("send-build", "give --secret or --secret-env, not both");
    if ((a->secret || a->secret_env) && f->token)
        return dm_cli_usage_error("send-build", "give --secret/--secret-env or --token, not "
                                                "both (one credential is sent)");
    if (a->path && a->path[0] != '/')
        return dm_cli_usage_error("send-build", "--path must start with \"/\"");
    return DM_CLI_OK;
}

/* Parse send-build's options into @p a. Returns DM_CLI_OK, -1 after --help, or the exit code
 * of a usage error. */
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
            fputs(usage_send_build, stdout);
            return -1;
        }
        if (dm_cli_global_option(f, ret, optarg))
            continue;
        if (ret >= OPT_IMAGE && !valid_utf8(optarg))
            return dm_cli_usage_error("send-build", "--%s: not valid UTF-8", opts[idx].name);
        switch (ret) {
        case OPT_IMAGE:
            a->image = optarg;
            break;
        case OPT_DIGEST:
            a->digest = optarg;
            break;
        case OPT_TAG:
            json_array_append_new(a->tags, json_string(optarg));
            break;
        case OPT_MANIFEST:
            json_array_append_new(a->manifests, json_string(optarg));
            break;
        case OPT_BUILT_AT:
            a->built_at = optarg;
            break;
        case OPT_PATH:
            a->path = optarg;
            break;
        case OPT_SECRET:
            a->secret = optarg;
            break;
        case OPT_SECRET_ENV:
            a->secret_env = optarg;
            break;
        case OPT_SIG_HEADER:
            a->sig_header = optarg;
            break;
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
    return check_build_args(f, a);
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

/* The credential a build event is sent with: an HMAC key (the body's signature goes in
 * sig_header), or a header of its own in hdr. */
typedef struct build_cred {
    const unsigned char *key; /* borrowed (from secret_copy or the configuration), or NULL */
    size_t keylen;
    const char *sig_header; /* NULL: SIGNATURE_HEADER */
    dm_hclient_header hdr[2];
    size_t nh;
    char *secret_copy; /* owned; wiped by cred_dispose */
} build_cred;

static void cred_dispose(build_cred *cr)
{
    if (cr->secret_copy) {
        OPENSSL_cleanse(cr->secret_copy, strlen(cr->secret_copy));
        free(cr->secret_copy);
    }
    memset(cr, 0, sizeof *cr);
}

/* --secret / --secret-env. */
static int cred_from_flags(const build_args *a, build_cred *cr)
{
    const char *s = a->secret;
    if (a->secret_env && !(s = getenv(a->secret_env)))
        return dm_cli_fail("send-build: --secret-env: environment variable %s is not set",
                           a->secret_env);
    if (!*s)
        return dm_cli_fail("send-build: the HMAC secret is empty");
    cr->secret_copy = dm_xstrdup(s);
    cr->key = (const unsigned char *)cr->secret_copy;
    cr->keylen = strlen(cr->secret_copy);
    return DM_CLI_OK;
}

/* The configuration's build source @p src: its hmac-sha256 entry, else its header entry.
 * The daemon accepts any entry of the list: skip those whose secret is unresolved here, and
 * name the first of them when none is left. */
static int cred_from_source(const dm_cli_flags *f, const dm_source_conf *src, build_cred *cr)
{
    const dm_auth_entry *hmac = NULL, *header = NULL, *missing = NULL;
    for (size_t i = 0; i < src->auth.n; i++) {
        const dm_auth_entry *e = &src->auth.v[i];
        if (e->type != DM_AUTH_HMAC && e->type != DM_AUTH_HEADER)
            continue;
        if (!e->secret) {
            /* an hmac entry is preferred, as when both are resolved */
            if (!missing || (missing->type != DM_AUTH_HMAC && e->type == DM_AUTH_HMAC))
                missing = e;
        } else if (e->type == DM_AUTH_HMAC && !hmac) {
            hmac = e;
        } else if (e->type == DM_AUTH_HEADER && !header) {
            header = e;
        }
    }
    if (!hmac && !header && missing) {
        int rc = dm_cli_fail("%s: %s", f->config, missing->secret_missing);
        fputs("digestmap: send-build needs the build source's credential: set it, or give "
              "--secret, --secret-env or --token\n",
              stderr);
        return rc;
    }
    if (hmac) {
        cr->key = hmac->secret;
        cr->keylen = hmac->secret_len;
        if (!cr->sig_header)
            cr->sig_header = hmac->name;
    } else if (header) {
        cr->secret_copy = dm_xstrndup((const char *)header->secret, header->secret_len);
        cr->hdr[cr->nh++] = (dm_hclient_header){header->name, cr->secret_copy};
    }
    return DM_CLI_OK;
}

/* No credential was found: say where one could come from. */
static int no_credentials(const dm_cli_flags *f, const dm_cli *c, const build_args *a,
                          const dm_source_conf *src)
{
    if (src)
        return dm_cli_fail("send-build: the configuration's build source %s has no hmac-sha256 "
                           "or header entry: give --secret, --secret-env or --token",
                           src->path);
    if (!c->conf)
        return dm_cli_fail("send-build: no credentials: give --secret, --secret-env, --token, "
                           "or --config with a build source");
    if (a->path)
        return dm_cli_fail("send-build: no credentials: %s has no build source at %s; give "
                           "--secret, --secret-env or --token",
                           f->config, a->path);
    return dm_cli_fail("send-build: no credentials: %s has no build source; give "
                       "--secret, --secret-env or --token",
                       f->config);
}

/* Credentials: explicit flags first, then the configuration's build source @p src. */
static int choose_credentials(const dm_cli_flags *f, const dm_cli *c, const build_args *a,
                              const dm_source_conf *src, build_cred *cr)
{
    int rc = DM_CLI_OK;
    cr->sig_header = a->sig_header;
    if (a->secret || a->secret_env)
        rc = cred_from_flags(a, cr);
    else if (f->token)
        cr->hdr[cr->nh++] = (dm_hclient_header){"Authorization", f->token};
    else if (src)
        rc = cred_from_source(f, src, cr);
    if (rc == DM_CLI_OK && !cr->key && cr->nh == 0)
        rc = no_credentials(f, c, a, src);
    return rc;
}

/* Build the body, sign it when @p cr has a key, post it to @p path and print the answer. */
static int post_build(const dm_cli *c, const char *path, const build_args *a, build_cred *cr)
{
    size_t len = 0;
    char *body = build_body(a, &len);
    char sig[DM_SIGN_LEN];
    if (cr->key) {
        dm_sign_body(cr->key, cr->keylen, body, len, sig);
        cr->hdr[cr->nh++] =
            (dm_hclient_header){cr->sig_header ? cr->sig_header : SIGNATURE_HEADER, sig};
    }

    int rc;
    answer ans;
    char err[768], why[512];
    char what[300];
    snprintf(what, sizeof what, "send-build: POST %.200s", path);
    if (http_exchange(c, "POST", path, cr->hdr, cr->nh, body, len, &ans, err, sizeof err) !=
        DM_OK) {
        rc = dm_cli_fail("%s: %s", what, err);
    } else {
        if (ans.status >= 200 && ans.status < 300) {
            errno = 0;
            rc = print_answer(stdout, &ans, why, sizeof why) ? DM_CLI_OK : write_failed(what);
        } else {
            print_answer(NULL, &ans, why, sizeof why);
            rc = report_status(what, &ans, why);
        }
        answer_free(&ans);
    }
    free(body);
    return rc;
}

/* Everything after the arguments were parsed. */
static int send_build(dm_cli_flags *f, const build_args *a)
{
    dm_cli c;
    int rc = resolve_http("send-build", f, &c);
    if (rc != DM_CLI_OK)
        return rc;
    const dm_source_conf *src = build_source(c.conf, a->path);
    const char *path = a->path ? a->path : src ? src->path : "/v1/builds";
    build_cred cr = {0};
    rc = choose_credentials(f, &c, a, src, &cr);
    if (rc == DM_CLI_OK)
        rc = post_build(&c, path, a, &cr);
    cred_dispose(&cr);
    dm_cli_dispose(&c);
    return rc;
}

int dm_cli_cmd_send_build(dm_cli_flags *f, int argc, char **argv)
{
    build_args a = {.tags = json_array(), .manifests = json_array()};
    int rc = parse_build_args(f, argc, argv, &a);
    if (rc < 0)
        rc = DM_CLI_OK; /* --help */
    else if (rc == DM_CLI_OK)
        rc = send_build(f, &a);
    json_decref(a.tags);
    json_decref(a.manifests);
    return rc;
}
