#include "dm_common.h"
#include "dm_spool.h"
#include "dm_event.h"

#include <stdlib.h>
#include <string.h>

char *dm_spool_encode(const dm_spool_record *r, size_t *len)
{
    json_error_t jerr;
    json_t *ev = json_loadb(r->event, r->event_len, 0, &jerr);
    if (!json_is_object(ev)) {
        json_decref(ev);
        return NULL;
    }
    json_t *o = json_object();
    json_object_set_new(o, "at", json_integer(r->arrival_ms));
    if (r->jti_key && r->request_id) {
        json_object_set_new(o, "jti", json_string(r->jti_key));
        json_object_set_new(o, "rid", json_string(r->request_id));
        json_object_set_new(o, "pxat", json_integer(r->jti_pxat));
    }
    json_object_set_new(o, "ev", ev);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        return NULL;
    size_t n = strlen(text);
    char *line = dm_xmalloc(n + 2);
    memcpy(line, text, n);
    line[n] = '\n';
    line[n + 1] = '\0';
    free(text);
    *len = n + 1;
    return line;
}

int dm_spool_decode(const char *line, size_t len, dm_spool_record *out, json_t **doc)
{
    json_error_t jerr;
    memset(out, 0, sizeof *out);
    *doc = NULL;
    json_t *o = json_loadb(line, len, 0, &jerr);
    json_t *at = json_object_get(o, "at"), *ev = json_object_get(o, "ev");
    const char *digest = json_string_value(json_object_get(ev, "digest"));
    if (!json_is_integer(at) || !json_is_object(ev) || !digest ||
        !dm_digest_valid(digest, strlen(digest))) {
        json_decref(o);
        return DM_EINVAL;
    }
    const char *jti = json_string_value(json_object_get(o, "jti"));
    const char *rid = json_string_value(json_object_get(o, "rid"));
    json_t *pxat = json_object_get(o, "pxat");
    if (jti && (!rid || !json_is_integer(pxat) || strlen(jti) >= 160)) {
        json_decref(o);
        return DM_EINVAL;
    }
    out->event = json_dumps(ev, JSON_COMPACT);
    if (!out->event) {
        json_decref(o);
        return DM_EINVAL;
    }
    out->event_len = strlen(out->event);
    out->arrival_ms = json_integer_value(at);
    out->jti_key = jti;
    out->request_id = jti ? rid : NULL;
    out->jti_pxat = jti ? json_integer_value(pxat) : 0;
    *doc = o;
    return DM_OK;
}
