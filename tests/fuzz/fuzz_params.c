/* fuzz_params.c - libFuzzer target for the parsers of untrusted text on the consuming side:
 * the GET /v1/mappings query string (with its cursor), the event stream's Last-Event-ID and
 * start position, and a sink's Retry-After answer. Any bytes give a result or a precise refusal, never a crash or a
 * leak, and what is accepted is well-formed:
 *   - a parsed mappings query has a known kind, a non-empty name, 1 <= limit <= max, and a
 *     cursor member that encodes back to a cursor decoding to the same member;
 *   - parsed stream ids format back to text that parses to the same ids;
 *   - a start position is refused with a reason, or names where it starts;
 *   - a Retry-After delay is never negative.
 * The first input byte picks the number of shards for the ids (1..8). */
#include "dm_common.h"
#include "dm_api.h"
#include "dm_hclient.h"
#include "dm_query.h"
#include "dm_sse_text.h"
#include "dm_keys.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SHARDS 8

static void check_mappings(const char *text)
{
    dm_mappings_query q;
    dm_error err = {0};
    if (dm_api_parse_mappings(text, &q, &err) != DM_OK)
        return;
    if (q.kind != DM_INDEX_REPOSITORY && q.kind != DM_INDEX_RUN && q.kind != DM_INDEX_IMAGE)
        __builtin_trap();
    if (!q.name[0] || strlen(q.name) > DM_QUERY_MAX_NAME)
        __builtin_trap();
    if (q.limit < 1 || q.limit > DM_QUERY_MAX_LIMIT)
        __builtin_trap();
    if (q.after[0]) {
        if (strlen(q.after) != DM_INDEX_MEMBER_LEN)
            __builtin_trap();
        char cur[DM_CURSOR_LEN + 1], back[DM_INDEX_MEMBER_LEN + 1];
        dm_query_cursor_encode(q.after, cur);
        if (!dm_query_cursor_decode(cur, strlen(cur), back) || strcmp(back, q.after) != 0)
            __builtin_trap();
    }
}

static void check_cursor(const char *text, size_t len)
{
    char member[DM_INDEX_MEMBER_LEN + 1], cur[DM_CURSOR_LEN + 1];
    if (!dm_query_cursor_decode(text, len, member))
        return;
    dm_query_cursor_encode(member, cur);
    if (strlen(cur) != len || memcmp(cur, text, len) != 0)
        __builtin_trap(); /* only what encode produces is accepted */
}

static void check_ids(const char *text, size_t len, size_t nshards)
{
    dm_sse_id ids[MAX_SHARDS], again[MAX_SHARDS];
    char err[128], buf[MAX_SHARDS * (DM_SSE_ID_MAX + 1) + 1];
    if (dm_sse_parse_ids(text, len, nshards, ids, err, sizeof err) != DM_OK) {
        if (!err[0])
            __builtin_trap(); /* a refusal says why */
        return;
    }
    size_t n = dm_sse_format_ids(ids, nshards, buf, sizeof buf);
    if (dm_sse_parse_ids(buf, n, nshards, again, err, sizeof err) != DM_OK ||
        memcmp(ids, again, nshards * sizeof *ids) != 0)
        __builtin_trap();
}

static void check_start(const char *text, size_t nshards)
{
    dm_sse_id pos[MAX_SHARDS];
    dm_sse_start st;
    char err[320] = "";
    /* The same text as query string and as Last-Event-ID header. */
    if (dm_sse_parse_start(text, NULL, nshards, &st, pos, err, sizeof err) != DM_OK) {
        if (!err[0])
            __builtin_trap();
    } else if (!st.text[0] || st.from > DM_SSE_FROM_ID) {
        __builtin_trap();
    }
    err[0] = '\0';
    if (dm_sse_parse_start(NULL, text, nshards, &st, pos, err, sizeof err) != DM_OK) {
        if (!err[0])
            __builtin_trap();
    } else if (!st.text[0]) {
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t nshards = (size_t)(data[0] % MAX_SHARDS) + 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    char *s = dm_xmalloc(len + 1); /* the parsers of C strings see the text up to a NUL */
    memcpy(s, text, len);
    s[len] = '\0';

    check_mappings(s);
    check_cursor(text, len);
    check_ids(text, len, nshards);
    check_start(s, nshards);
    int64_t delay = 0;
    if (dm_hclient_retry_after_ms(s, 1700000000000LL, &delay) == DM_OK && delay < 0)
        __builtin_trap();
    free(s);
    return 0;
}
