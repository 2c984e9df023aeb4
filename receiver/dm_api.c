#include "dm_common.h"
#include "dm_api.h"
#include "dm_access.h"
#include "dm_http.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_sse.h"
#include "dm_keys.h"

#include <sys/queue.h> /* TAILQ_FOREACH over evkeyvalq */

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Sort the parameters of @p kv by name into @p val (borrowed from @p kv), by their index in
 * @p names (@p n of them): every name known, none repeated, no value empty. */
static int collect_params(struct evkeyvalq *kv, const char *const *names, size_t n,
                          const char **val, dm_error *err)
{
    char unknown[160] = "";
    struct evkeyval *e;
    TAILQ_FOREACH(e, kv, next)
    {
        size_t i = 0;
        while (i < n && strcmp(e->key, names[i]) != 0) /* names are case-sensitive */
            i++;
        if (i == n) {
            append_name(unknown, sizeof unknown, e->key);
            continue;
        }
        if (val[i])
            return dm_error_set(err, names[i], "given more than once");
        if (e->value[0] == '\0')
            return dm_error_set(err, names[i], "must not be empty");
        val[i] = e->value;
    }
    if (unknown[0]) {
        char known[160] = "";
        for (size_t i = 0; i < n; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     names[i]);
        return dm_error_set(err, "", "unknown parameter(s): %s (known: %s)", unknown, known);
    }
    return DM_OK;
}

/* Split query string @p query (NULL: none) into @p kv (the caller clears it). */
static int split_query(const char *query, struct evkeyvalq *kv, dm_error *err)
{
    /* evhttp decodes "%00" into a NUL that would silently cut the value short. */
    if (query && (strstr(query, "%00") != NULL))
        return dm_error_set(err, "", "parameters must not contain NUL bytes (%%00)");
    if (query && evhttp_parse_query_str(query, kv) != 0)
        return dm_error_set(err, "",
                            "malformed query string: every parameter must be "
                            "name=value, separated by &");
    return DM_OK;
}

/* A limit parameter's value (parameter @p name): 1..@p max. */
static int parse_limit_named(const char *name, const char *s, unsigned max, unsigned *out,
                             dm_error *err)
{
    size_t n = strspn(s, "0123456789");
    long v = (n == strlen(s) && n <= 3) ? strtol(s, NULL, 10) : -1;
    if (v < 1 || v > (long)max)
        return dm_error_set(err, name, "must be an integer from 1 to %u", max);
    *out = (unsigned)v;
    return DM_OK;
}

static int parse_limit(const char *s, unsigned max, unsigned *out, dm_error *err)
{
    return parse_limit_named("limit", s, max, out, err);
}

/* Exactly one question is asked, and its names are UTF-8. */
static int check_question(const char *const val[P_COUNT], dm_error *err)
{
    if (val[P_REGISTRY] && !val[P_IMAGE_REPOSITORY])
        return dm_error_set(err, "image_repository", "is required with registry");
    if (val[P_IMAGE_REPOSITORY] && !val[P_REGISTRY])
        return dm_error_set(err, "registry", "is required with image_repository");
    int questions = (val[P_REPOSITORY] != NULL) + (val[P_RUN] != NULL) + (val[P_REGISTRY] != NULL);
    if (questions == 0)
        return dm_error_set(err, "",
                            "one of repository=<code repository>, run=<provider>/<run id>, "
                            "or registry=<host>&image_repository=<path> is required");
    if (questions > 1)
        return dm_error_set(err, "",
                            "ambiguous: give only one of repository, run, or registry "
                            "with image_repository");
    static const int names[] = {P_REPOSITORY, P_RUN, P_REGISTRY, P_IMAGE_REPOSITORY};
    for (size_t i = 0; i < DM_ARRAY_LEN(names); i++) {
        if (val[names[i]] && !is_utf8(val[names[i]]))
            return dm_error_set(err, PARAMS[names[i]], "must be UTF-8");
    }
    return DM_OK;
}

/* The index and the name in it that the (checked) question asks for. */
static int set_question(dm_mappings_query *q, const char *const val[P_COUNT], dm_error *err)
{
    const char *too_long = NULL;
    if (val[P_REPOSITORY]) {
        q->kind = DM_INDEX_REPOSITORY;
        if (set_name(q, val[P_REPOSITORY], NULL) != 0)
            too_long = "repository";
    } else if (val[P_RUN]) {
        const char *run = val[P_RUN], *slash = strchr(run, '/');
        /* Run keys are "<provider>/<run id>" and a run id never holds '/' (dm_build). */
        if (!slash || slash == run || slash[1] == '\0' || strchr(slash + 1, '/'))
            return dm_error_set(err, "run", "must be <provider>/<run id>, e.g. github/9876543210");
        q->kind = DM_INDEX_RUN;
        if (set_name(q, run, NULL) != 0)
            too_long = "run";
    } else {
        if (strchr(val[P_REGISTRY], '/'))
            return dm_error_set(err, "registry",
                                "must be a registry host without '/', e.g. contoso.azurecr.io; "
                                "the path goes in image_repository");
        q->kind = DM_INDEX_IMAGE;
        if (set_name(q, val[P_REGISTRY], val[P_IMAGE_REPOSITORY]) != 0)
            too_long = "image_repository";
    }
    if (too_long)
        return dm_error_set(err, too_long, "longer than %d bytes", DM_QUERY_MAX_NAME);
    return DM_OK;
}

/* The page: limit (or the default) and where the previous page ended. */
static int set_page(dm_mappings_query *q, const char *const val[P_COUNT], dm_error *err)
{
    if (val[P_LIMIT] && parse_limit(val[P_LIMIT], DM_QUERY_MAX_LIMIT, &q->limit, err) != DM_OK)
        return DM_EINVAL;
    if (val[P_CURSOR] && !dm_query_cursor_decode(val[P_CURSOR], strlen(val[P_CURSOR]), q->after))
        return dm_error_set(err, "cursor", "not a next_cursor returned by this API");
    return DM_OK;
}

int dm_api_parse_mappings(const char *query, dm_mappings_query *q, dm_error *err)
{
    memset(q, 0, sizeof *q);
    q->limit = DM_QUERY_DEFAULT_LIMIT;
    struct evkeyvalq kv;
    TAILQ_INIT(&kv);
    const char *val[P_COUNT] = {NULL};
    int rc = split_query(query, &kv, err);
    if (rc == DM_OK)
        rc = collect_params(&kv, PARAMS, P_COUNT, val, err);
    if (rc == DM_OK)
        rc = check_question(val, err);
    if (rc == DM_OK)
        rc = set_question(q, val, err);
    if (rc == DM_OK)
        rc = set_page(q, val, err);
    evhttp_clear_headers(&kv);
    return rc;
}

int dm_api_parse_image(const char *query, dm_image_query *q, dm_error *err)
{
    static const char *const names[] = {"limit", "cursor", "findings_limit", "findings_cursor"};
    q->limit = DM_IMAGE_DEFAULT_LIMIT;
    q->after[0] = '\0';
    q->findings_limit = DM_IMAGE_DEFAULT_LIMIT;
    q->findings_after[0] = '\0';
    struct evkeyvalq kv;
    TAILQ_INIT(&kv);
    const char *val[4] = {NULL, NULL, NULL, NULL};
    size_t n;
    int rc = split_query(query, &kv, err);
    if (rc == DM_OK)
        rc = collect_params(&kv, names, 4, val, err);
    if (rc == DM_OK && val[0])
        rc = parse_limit(val[0], DM_IMAGE_MAX_LIMIT, &q->limit, err);
    if (rc == DM_OK && val[1] && !dm_query_image_cursor_decode(val[1], strlen(val[1]), q->after))
        rc = dm_error_set(err, "cursor", "not a next_cursor returned by this API");
    if (rc == DM_OK && val[2])
        rc = parse_limit_named("findings_limit", val[2], DM_IMAGE_MAX_LIMIT, &q->findings_limit,
                               err);
    if (rc == DM_OK && val[3] &&
        !(dm_cursor_decode(val[3], strlen(val[3]), q->findings_after, DM_FINDINGS_KEY_MAX, &n) &&
          dm_query_findings_key_valid(q->findings_after, n))) {
        q->findings_after[0] = '\0';
        rc =
            dm_error_set(err, "findings_cursor", "not a findings.next_cursor returned by this API");
    }
    evhttp_clear_headers(&kv);
    return rc;
}

/* @p s is one of @p n @p names: its index, or -1. */
static int one_of(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0)
            return i;
    }
    return -1;
}

int dm_api_parse_exposure(const char *query, dm_exposure_query *q, dm_error *err)
{
    static const char *const names[] = {"exposure", "min_severity", "limit", "cursor"};
    static const char *const levels[] = {"internet", "node", "cluster"};
    static const char *const severities[] = {"critical", "high", "medium", "low", "unknown"};
    memset(q, 0, sizeof *q);
    q->exposure = "internet";
    q->min_severity = "high";
    q->min_rank = 1;
    q->limit = DM_EXPOSURE_DEFAULT_LIMIT;
    struct evkeyvalq kv;
    TAILQ_INIT(&kv);
    const char *val[4] = {NULL, NULL, NULL, NULL};
    size_t n;
    int i, rc = split_query(query, &kv, err);
    if (rc == DM_OK)
        rc = collect_params(&kv, names, 4, val, err);
    if (rc == DM_OK && val[0]) {
        if ((i = one_of(val[0], levels, 3)) < 0)
            rc = dm_error_set(err, "exposure", "must be internet, node or cluster");
        else
            q->exposure = levels[i];
    }
    if (rc == DM_OK && val[1]) {
        if ((i = one_of(val[1], severities, 5)) < 0)
            rc =
                dm_error_set(err, "min_severity", "must be critical, high, medium, low or unknown");
        else
            q->min_severity = severities[i], q->min_rank = i;
    }
    if (rc == DM_OK && val[2])
        rc = parse_limit(val[2], DM_EXPOSURE_MAX_LIMIT, &q->limit, err);
    if (rc == DM_OK && val[3] &&
        !(dm_cursor_decode(val[3], strlen(val[3]), q->after, DM_WORKLOAD_KEY_MAX, &n) &&
          dm_exposure_key_valid(q->after, n))) {
        q->after[0] = '\0';
        rc = dm_error_set(err, "cursor", "not a next_cursor returned by this API");
    }
    evhttp_clear_headers(&kv);
    return rc;
}

/*---------------------------------------------------------------- requests ---*/

/* One query waiting for Redis: owns the right to answer the request once. */
typedef struct api_req {
    dm_worker *w;
    struct evhttp_request *req;
    size_t route;
    const char *route_name; /**< the route table's, static */
} api_req;

static void on_answer(int err, int status, char *body, void *arg)
{
    api_req *a = arg;
    if (err != DM_OK)
        dm_http_unavailable(a->req, a->route, a->route_name, err);
    else
        dm_http_json(a->req, a->route, status, body);
    free(body);
    dm_worker_end(a->w);
    free(a);
}

/* Admit a query (NULL: answered 503, the in-flight cap is reached). */
static api_req *api_req_new(dm_worker *w, struct evhttp_request *req, const dm_route_match *m)
{
    if (!dm_worker_begin(w)) {
        dm_http_unavailable(req, m->id, m->name, DM_EBUSY);
        return NULL;
    }
    api_req *a = dm_xmalloc(sizeof *a);
    a->w = w;
    a->req = req;
    a->route = m->id;
    a->route_name = m->name;
    return a;
}

/* @p rc is what submitting @p a's query to Redis returned: on failure nothing will call
 * on_answer, so answer here. */
static void api_req_submitted(api_req *a, int rc)
{
    if (rc == DM_OK)
        return;
    dm_worker *w = a->w;
    dm_http_unavailable(a->req, a->route, a->route_name, rc);
    free(a);
    dm_worker_end(w);
}

/* 400 for query parameters @p err refused: a log line with the (escaped) reason, a counter. */
static void refuse_params(struct evhttp_request *req, const dm_route_match *m, const dm_error *err)
{
    char peer[64], field[80], reason[240];
    dm_metrics_inc(DM_M_INVALID);
    dm_info("request refused", "status=400 route=%s field=%s reason=%s peer=%s", m->name,
            dm_log_quote(err->field, strlen(err->field), field, sizeof field),
            dm_log_quote(err->text, strlen(err->text), reason, sizeof reason),
            dm_http_peer(req, peer));
    if (err->field[0])
        dm_http_error(req, m->id, 400, "%s: %s", err->field, err->text);
    else
        dm_http_error(req, m->id, 400, "%s", err->text);
}

void dm_api_image(dm_worker *w, struct evhttp_request *req, const dm_route_match *m)
{
    size_t dlen = 0;
    char *decoded = evhttp_uridecode(m->rest, 0, &dlen);
    /* A decoded NUL ("%00") would cut the digest short: refuse it as malformed. */
    const char *digest = decoded && strlen(decoded) == dlen ? decoded : "";
    const dm_app *app = dm_worker_app(w);
    if (!dm_access_api(app->conf, app->trust, req, m->id, m->name)) {
        free(decoded);
        return;
    }
    if (!dm_digest_valid(digest, strlen(digest))) {
        dm_metrics_inc(DM_M_INVALID);
        dm_info("request refused", "status=400 route=%s reason=\"bad digest\"", m->name);
        dm_http_error(req, m->id, 400,
                      "digest: must be sha256: followed by 64 lowercase hex digits");
        free(decoded);
        return;
    }
    dm_image_query q;
    dm_error err = {0};
    snprintf(q.digest, sizeof q.digest, "%s", digest);
    free(decoded);
    if (dm_api_parse_image(evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req)), &q, &err) !=
        DM_OK) {
        refuse_params(req, m, &err);
        return;
    }
    api_req *a = api_req_new(w, req, m);
    if (a)
        api_req_submitted(a, dm_query_image(dm_worker_redis(w), &app->join, &q, on_answer, a));
}

void dm_api_mappings(dm_worker *w, struct evhttp_request *req, const dm_route_match *m)
{
    if (!dm_access_api(dm_worker_app(w)->conf, dm_worker_app(w)->trust, req, m->id, m->name))
        return;
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    dm_mappings_query q;
    dm_error err = {0};
    if (dm_api_parse_mappings(query, &q, &err) != DM_OK) {
        refuse_params(req, m, &err);
        return;
    }
    api_req *a = api_req_new(w, req, m);
    if (a)
        api_req_submitted(
            a, dm_query_mappings(dm_worker_redis(w), &dm_worker_app(w)->join, &q, on_answer, a));
}

void dm_api_exposure(dm_worker *w, struct evhttp_request *req, const dm_route_match *m)
{
    if (!dm_access_api(dm_worker_app(w)->conf, dm_worker_app(w)->trust, req, m->id, m->name))
        return;
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    dm_exposure_query q;
    dm_error err = {0};
    if (dm_api_parse_exposure(query, &q, &err) != DM_OK) {
        refuse_params(req, m, &err);
        return;
    }
    api_req *a = api_req_new(w, req, m);
    if (a)
        api_req_submitted(
            a, dm_query_exposure(dm_worker_redis(w), &dm_worker_app(w)->join, &q, on_answer, a));
}

void dm_api_events(dm_worker *w, struct evhttp_request *req, const dm_route_match *m)
{
    if (!dm_access_api(dm_worker_app(w)->conf, dm_worker_app(w)->trust, req, m->id, m->name))
        return;
    dm_sse_serve(dm_worker_sse(w), req, m->id, m->name);
}
