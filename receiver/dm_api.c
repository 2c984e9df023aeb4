#include "dm_common.h"
#include "dm_api.h"
#include "dm_http.h"
#include "dm_ingest.h"
#include "dm_log.h"
#include "dm_metrics.h"

#include <sys/queue.h> /* TAILQ_FOREACH over evkeyvalq */

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTE_NAME "/v1/mappings"

/*---------------------------------------------------------------- parameters ---*/

enum {
    P_REPOSITORY,
    P_RUN,
    P_REGISTRY,
    P_IMAGE_REPOSITORY,
    P_LIMIT,
    P_CURSOR,
    P_COUNT
};
static const char *const PARAMS[P_COUNT] = {"repository",       "run",   "registry",
                                            "image_repository", "limit", "cursor"};

/* Append @p s to the list of unknown names in @p buf, printable ASCII only (the answer is
 * JSON, and a name straight from the URI need not be UTF-8). */
static void append_name(char *buf, size_t size, const char *s)
{
    size_t n = strlen(buf);
    if (n && n + 2 < size) {
        memcpy(buf + n, ", ", 3);
        n += 2;
    }
    for (size_t i = 0; s[i] && i < 40 && n + 1 < size; i++)
        buf[n++] = (s[i] > 0x20 && s[i] < 0x7f) ? s[i] : '?';
    buf[n] = '\0';
}

/* Names are echoed in the JSON answer and compared with what park.lua indexed (UTF-8 from a
 * JSON event): jansson refuses a string that is not valid UTF-8. */
static bool is_utf8(const char *s)
{
    json_t *j = json_string(s);
    bool ok = j != NULL;
    json_decref(j);
    return ok;
}

/* The index name: "<a>" or "<a>/<b>"; -1 when longer than DM_QUERY_MAX_NAME. */
static int set_name(dm_mappings_query *q, const char *a, const char *b)
{
    size_t alen = strlen(a), blen = b ? strlen(b) : 0;
    size_t need = alen + (b ? 1 + blen : 0);
    if (need > DM_QUERY_MAX_NAME)
        return -1;
    memcpy(q->name, a, alen);
    if (b) {
        q->name[alen] = '/';
        memcpy(q->name + alen + 1, b, blen);
    }
    q->name[need] = '\0';
    return 0;
}

int dm_api_parse_mappings(const char *query, dm_mappings_query *q, dm_error *err)
{
    memset(q, 0, sizeof *q);
    q->limit = DM_QUERY_DEFAULT_LIMIT;
    /* evhttp decodes "%00" into a NUL that would silently cut the value short. */
    if (query && (strstr(query, "%00") != NULL))
        return dm_error_set(err, "", "parameters must not contain NUL bytes (%%00)");
    struct evkeyvalq kv;
    TAILQ_INIT(&kv);
    if (query && evhttp_parse_query_str(query, &kv) != 0) {
        evhttp_clear_headers(&kv);
        return dm_error_set(err, "",
                            "malformed query string: every parameter must be "
                            "name=value, separated by &");
    }
    const char *val[P_COUNT] = {NULL};
    char unknown[160] = "";
    int rc = DM_OK;
    struct evkeyval *e;
    TAILQ_FOREACH(e, &kv, next)
    {
        size_t i = 0;
        while (i < P_COUNT && strcmp(e->key, PARAMS[i]) != 0) /* names are case-sensitive */
            i++;
        if (i == P_COUNT) {
            append_name(unknown, sizeof unknown, e->key);
            continue;
        }
        if (val[i]) {
            rc = dm_error_set(err, PARAMS[i], "given more than once");
            goto done;
        }
        if (e->value[0] == '\0') {
            rc = dm_error_set(err, PARAMS[i], "must not be empty");
            goto done;
        }
        val[i] = e->value;
    }
    if (unknown[0]) {
        rc = dm_error_set(err, "",
                          "unknown parameter(s): %s (known: repository, run, registry, "
                          "image_repository, limit, cursor)",
                          unknown);
        goto done;
    }

    if (val[P_REGISTRY] && !val[P_IMAGE_REPOSITORY]) {
        rc = dm_error_set(err, "image_repository", "is required with registry");
        goto done;
    }
    if (val[P_IMAGE_REPOSITORY] && !val[P_REGISTRY]) {
        rc = dm_error_set(err, "registry", "is required with image_repository");
        goto done;
    }
    int questions = (val[P_REPOSITORY] != NULL) + (val[P_RUN] != NULL) + (val[P_REGISTRY] != NULL);
    if (questions == 0) {
        rc = dm_error_set(err, "",
                          "one of repository=<code repository>, run=<provider>/<run id>, "
                          "or registry=<host>&image_repository=<path> is required");
        goto done;
    }
    if (questions > 1) {
        rc = dm_error_set(err, "",
                          "ambiguous: give only one of repository, run, or registry "
                          "with image_repository");
        goto done;
    }

    static const int names[] = {P_REPOSITORY, P_RUN, P_REGISTRY, P_IMAGE_REPOSITORY};
    for (size_t i = 0; i < DM_ARRAY_LEN(names); i++) {
        if (val[names[i]] && !is_utf8(val[names[i]])) {
            rc = dm_error_set(err, PARAMS[names[i]], "must be UTF-8");
            goto done;
        }
    }

    const char *too_long = NULL;
    if (val[P_REPOSITORY]) {
        q->kind = DM_INDEX_REPOSITORY;
        if (set_name(q, val[P_REPOSITORY], NULL) != 0)
            too_long = "repository";
    } else if (val[P_RUN]) {
        const char *run = val[P_RUN], *slash = strchr(run, '/');
        /* Run keys are "<provider>/<run id>" and a run id never holds '/' (dm_build). */
        if (!slash || slash == run || slash[1] == '\0' || strchr(slash + 1, '/')) {
            rc = dm_error_set(err, "run", "must be <provider>/<run id>, e.g. github/9876543210");
            goto done;
        }
        q->kind = DM_INDEX_RUN;
        if (set_name(q, run, NULL) != 0)
            too_long = "run";
    } else {
        if (strchr(val[P_REGISTRY], '/')) {
            rc = dm_error_set(err, "registry",
                              "must be a registry host without '/', e.g. contoso.azurecr.io; "
                              "the path goes in image_repository");
            goto done;
        }
        q->kind = DM_INDEX_IMAGE;
        if (set_name(q, val[P_REGISTRY], val[P_IMAGE_REPOSITORY]) != 0)
            too_long = "image_repository";
    }
    if (too_long) {
        rc = dm_error_set(err, too_long, "longer than %d bytes", DM_QUERY_MAX_NAME);
        goto done;
    }

    if (val[P_LIMIT]) {
        const char *s = val[P_LIMIT];
        size_t n = strspn(s, "0123456789");
        long v = (n == strlen(s) && n <= 3) ? strtol(s, NULL, 10) : -1;
        if (v < 1 || v > DM_QUERY_MAX_LIMIT) {
            rc = dm_error_set(err, "limit", "must be an integer from 1 to %d", DM_QUERY_MAX_LIMIT);
            goto done;
        }
        q->limit = (unsigned)v;
    }
    if (val[P_CURSOR] && !dm_query_cursor_decode(val[P_CURSOR], strlen(val[P_CURSOR]), q->after)) {
        rc = dm_error_set(err, "cursor", "not a next_cursor returned by this API");
        goto done;
    }
done:
    evhttp_clear_headers(&kv);
    return rc;
}

/*---------------------------------------------------------------- request ---*/

typedef struct api_req {
    dm_worker *w;
    struct evhttp_request *req;
} api_req;

static void on_mappings(int err, int status, char *body, void *arg)
{
    api_req *a = arg;
    if (err != DM_OK)
        dm_http_unavailable(a->req, DM_ROUTE_MAPPINGS, ROUTE_NAME, err);
    else
        dm_http_json(a->req, DM_ROUTE_MAPPINGS, status, body);
    free(body);
    dm_worker_end(a->w);
    free(a);
}

void dm_api_mappings(dm_worker *w, struct evhttp_request *req)
{
    if (!dm_ingest_api_auth(w, req, DM_ROUTE_MAPPINGS, ROUTE_NAME))
        return;
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    dm_mappings_query q;
    dm_error err = {0};
    if (dm_api_parse_mappings(query, &q, &err) != DM_OK) {
        char peer[64], field[80], reason[240];
        dm_metrics_inc(DM_M_INVALID);
        dm_info("request refused", "status=400 route=" ROUTE_NAME " field=%s reason=%s peer=%s",
                dm_log_quote(err.field, strlen(err.field), field, sizeof field),
                dm_log_quote(err.text, strlen(err.text), reason, sizeof reason),
                dm_http_peer(req, peer));
        if (err.field[0])
            dm_http_error(req, DM_ROUTE_MAPPINGS, 400, "%s: %s", err.field, err.text);
        else
            dm_http_error(req, DM_ROUTE_MAPPINGS, 400, "%s", err.text);
        return;
    }
    if (!dm_worker_begin(w)) {
        dm_http_unavailable(req, DM_ROUTE_MAPPINGS, ROUTE_NAME, DM_EBUSY);
        return;
    }
    api_req *a = dm_xmalloc(sizeof *a);
    a->w = w;
    a->req = req;
    int rc = dm_query_mappings(dm_worker_redis(w), &dm_worker_app(w)->join, &q, on_mappings, a);
    if (rc != DM_OK) {
        free(a);
        dm_http_unavailable(req, DM_ROUTE_MAPPINGS, ROUTE_NAME, rc);
        dm_worker_end(w);
    }
}
