#include "dm_common.h"
#include "dm_sse_text.h"
#include "dm_log.h"

#include <sys/queue.h> /* TAILQ_FOREACH over evkeyvalq */

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <string.h>

/*---------------------------------------------------------------- ids ---*/

int dm_sse_parse_id(const char *s, size_t n, dm_sse_id *out)
{
    const char *dash = memchr(s, '-', n);
    if (!dash)
        return DM_EINVAL;
    uint64_t v[2] = {0, 0};
    const char *part[2] = {s, dash + 1};
    size_t plen[2] = {(size_t)(dash - s), n - (size_t)(dash - s) - 1};
    for (int k = 0; k < 2; k++) {
        if (plen[k] == 0 || plen[k] > 20)
            return DM_EINVAL;
        for (size_t i = 0; i < plen[k]; i++) {
            unsigned d = (unsigned char)part[k][i] - '0';
            if (d > 9 || v[k] > (UINT64_MAX - d) / 10)
                return DM_EINVAL;
            v[k] = v[k] * 10 + d;
        }
    }
    out->ms = v[0];
    out->seq = v[1];
    return DM_OK;
}

int dm_sse_parse_ids(const char *s, size_t n, size_t nshards, dm_sse_id *out, char *err,
                     size_t errlen)
{
    size_t i = 0, start = 0;
    for (size_t k = 0; k <= n; k++) {
        if (k < n && s[k] != ',')
            continue;
        if (i == nshards) {
            snprintf(err, errlen, "more than %zu id%s: with redis.shards = %zu the id is %s",
                     nshards, nshards == 1 ? "" : "s", nshards,
                     nshards == 1 ? "<ms>-<seq>"
                                  : "a comma-separated list of <ms>-<seq>, one "
                                    "per shard");
            return DM_EINVAL;
        }
        if (dm_sse_parse_id(s + start, k - start, &out[i]) != DM_OK) {
            snprintf(err, errlen,
                     "id number %zu is not <ms>-<seq> (two decimal numbers, at most "
                     "20 digits each, joined by a dash)",
                     i + 1);
            return DM_EINVAL;
        }
        i++;
        start = k + 1;
    }
    if (i != nshards) {
        snprintf(err, errlen,
                 "%zu id%s given, %zu expected (one <ms>-<seq> per shard, "
                 "comma-separated)",
                 i, i == 1 ? "" : "s", nshards);
        return DM_EINVAL;
    }
    return DM_OK;
}

size_t dm_sse_format_ids(const dm_sse_id *ids, size_t n, char *buf, size_t size)
{
    size_t len = 0;
    if (size)
        buf[0] = '\0';
    for (size_t i = 0; i < n && len < size; i++) {
        int w = snprintf(buf + len, size - len, "%s%llu-%llu", i ? "," : "",
                         (unsigned long long)ids[i].ms, (unsigned long long)ids[i].seq);
        if (w < 0 || (size_t)w >= size - len)
            return len; /* truncated: the caller sized buf too small */
        len += (size_t)w;
    }
    return len;
}

/*---------------------------------------------------------------- start position ---*/

/* Printable ASCII copy of @p s for an error answer or a log line. */
static void printable(const char *s, char *buf, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; s[i] && n + 1 < size; i++)
        buf[n++] = (s[i] > 0x20 && s[i] < 0x7f) ? s[i] : '?';
    buf[n] = '\0';
}

/* The parameters last_event_id (into @p qid) and from (into @p qfrom), borrowed from @p kv;
 * any other, or one given twice, is refused. */
static int collect_params(struct evkeyvalq *kv, const char **qid, const char **qfrom, char *err,
                          size_t errlen)
{
    struct evkeyval *e;
    TAILQ_FOREACH(e, kv, next)
    {
        const char **slot = strcmp(e->key, "last_event_id") == 0 ? qid
                            : strcmp(e->key, "from") == 0        ? qfrom
                                                                 : NULL;
        char name[48];
        printable(e->key, name, sizeof name);
        if (!slot) {
            snprintf(err, errlen, "unknown parameter %s (known: last_event_id, from)", name);
            return DM_EINVAL;
        }
        if (*slot) {
            snprintf(err, errlen, "%s: given more than once", name);
            return DM_EINVAL;
        }
        *slot = e->value;
    }
    return DM_OK;
}

/* The start position from the (checked) parameters and the header. */
static int choose_start(const char *qid, const char *qfrom, const char *header, size_t nshards,
                        dm_sse_start *out, dm_sse_id *pos, char *err, size_t errlen)
{
    if (qfrom && strcmp(qfrom, "start") != 0) {
        snprintf(err, errlen, "from: must be \"start\" (or leave it out for new records only)");
        return DM_EINVAL;
    }
    const char *id = header && *header ? header : qid && *qid ? qid : NULL;
    const char *what = header && *header ? "Last-Event-ID" : "last_event_id";
    if (id) {
        char why[200];
        if (dm_sse_parse_ids(id, strlen(id), nshards, pos, why, sizeof why) != DM_OK) {
            snprintf(err, errlen, "%s: %s", what, why);
            return DM_EINVAL;
        }
        out->from = DM_SSE_FROM_ID;
        char q[64];
        snprintf(out->text, sizeof out->text, "%s", dm_log_quote(id, strlen(id), q, sizeof q));
    } else if (qfrom) {
        out->from = DM_SSE_FROM_START;
        snprintf(out->text, sizeof out->text, "start");
    } else {
        out->from = DM_SSE_FROM_NEW;
        snprintf(out->text, sizeof out->text, "new");
    }
    return DM_OK;
}

int dm_sse_parse_start(const char *query, const char *header, size_t nshards, dm_sse_start *out,
                       dm_sse_id *pos, char *err, size_t errlen)
{
    out->from = DM_SSE_FROM_NEW;
    out->text[0] = '\0';
    if (query && strstr(query, "%00")) {
        snprintf(err, errlen, "parameters must not contain NUL bytes (%%00)");
        return DM_EINVAL;
    }
    struct evkeyvalq kv;
    TAILQ_INIT(&kv);
    if (query && evhttp_parse_query_str(query, &kv) != 0) {
        evhttp_clear_headers(&kv);
        snprintf(err, errlen,
                 "malformed query string: every parameter must be name=value, separated by &");
        return DM_EINVAL;
    }
    const char *qid = NULL, *qfrom = NULL;
    int rc = collect_params(&kv, &qid, &qfrom, err, errlen);
    if (rc == DM_OK)
        rc = choose_start(qid, qfrom, header, nshards, out, pos, err, errlen);
    evhttp_clear_headers(&kv);
    return rc;
}

/*---------------------------------------------------------------- events ---*/

void dm_sse_format_event(struct evbuffer *out, const char *id, const char *type, size_t tlen,
                         const char *data, size_t dlen)
{
    evbuffer_add_printf(out, "id: %s\n", id);
    if (tlen && !memchr(type, '\n', tlen) && !memchr(type, '\r', tlen)) {
        evbuffer_add(out, "event: ", 7);
        evbuffer_add(out, type, tlen);
        evbuffer_add(out, "\n", 1);
    }
    /* Every line terminator of the SSE grammar ends a data line; the client joins the data
     * lines back with LF, so a document with line breaks arrives whole (CRLF/CR as LF). */
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < dlen && data[j] != '\n' && data[j] != '\r')
            j++;
        evbuffer_add(out, "data: ", 6);
        evbuffer_add(out, data + i, j - i);
        evbuffer_add(out, "\n", 1);
        if (j >= dlen)
            break;
        if (data[j] == '\r' && j + 1 < dlen && data[j + 1] == '\n')
            j++;
        i = j + 1;
    }
    evbuffer_add(out, "\n", 1);
}
