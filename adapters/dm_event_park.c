/* dm_event_park.c - see dm_event_park.h. */
#include "dm_event_park.h"

#include <stdlib.h>
#include <string.h>

/* A growing text buffer; allocation failure is fatal (dm_xrealloc). */
typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void reserve(text *t, size_t more)
{
    if (t->len + more <= t->cap)
        return;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + more)
        cap *= 2;
    t->p = dm_xrealloc(t->p, cap);
    t->cap = cap;
}

static void put(text *t, const char *s, size_t n)
{
    if (n == 0)
        return; /* t->p may still be NULL, and memcpy wants pointers even for no bytes */
    reserve(t, n);
    memcpy(t->p + t->len, s, n);
    t->len += n;
}

static void puts_(text *t, const char *s)
{
    put(t, s, strlen(s));
}

/* Whether @p s (@p n bytes) is well-formed UTF-8 (no overlong forms, surrogates or code points
 * above U+10FFFF), as jansson requires of every string it decodes. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        unsigned cp = c & (0xff >> (len + 1));
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* @p s (@p n bytes) as a JSON string, escaped as Redis's cjson escapes (lua/lib.lua jstr): '"'
 * and '\\', \b \t \n \f \r, other control characters and DEL as \u00xx in lower case, '/'
 * and non-ASCII bytes as they are. Not valid UTF-8: its non-ASCII bytes become '?'. */
static void put_str(text *t, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    bool ascii_only = !utf8_valid((const unsigned char *)s, n);
    reserve(t, n + 2);
    t->p[t->len++] = '"';
    size_t run = 0; /* bytes at s[i - run, i) to copy as they are */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        /* The common byte first, in one test: exactly the bytes none of the cases below take. */
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f && (c < 0x80 || !ascii_only)) {
            run++;
            continue;
        }
        const char *esc = NULL;
        char u[6];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\b')
            esc = "\\b";
        else if (c == '\t')
            esc = "\\t";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\f')
            esc = "\\f";
        else if (c == '\r')
            esc = "\\r";
        else if (c < 0x20 || c == 0x7f)
            esc = u;
        else if (c >= 0x80 && ascii_only)
            esc = "?";
        if (!esc) {
            run++;
            continue;
        }
        put(t, s + i - run, run);
        run = 0;
        if (esc == u) {
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            put(t, u, 6);
        } else {
            puts_(t, esc);
        }
    }
    put(t, s + n - run, run);
    put(t, "\"", 1);
}

/* ,"key":<JSON string of s> (the comma unless the member is the text's first since @p from). */
static void member(text *t, size_t from, const char *key, const char *s)
{
    if (t->len > from)
        put(t, ",", 1);
    put(t, "\"", 1);
    puts_(t, key);
    put(t, "\":", 2);
    put_str(t, s, strlen(s));
}

static void opt_member(text *t, size_t from, const char *key, const char *s)
{
    if (s)
        member(t, from, key, s);
}

/* ,"key":[<strings>] */
static void array_member(text *t, const char *key, char *const *list, size_t n)
{
    put(t, ",\"", 2);
    puts_(t, key);
    put(t, "\":[", 3);
    for (size_t i = 0; i < n; i++) {
        if (i)
            put(t, ",", 1);
        put_str(t, list[i] ? list[i] : "", list[i] ? strlen(list[i]) : 0);
    }
    put(t, "]", 1);
}

/* The tags of @p ev to store: the last @p max_tags (the most recently added). */
static void tags_member(text *t, const dm_event *ev, size_t max_tags)
{
    size_t n = ev->ntags < max_tags ? ev->ntags : max_tags;
    if (n > 0)
        array_member(t, "g", ev->tags + (ev->ntags - n), n);
}

/* The record's media type codes (lua/lib.lua media_type reads them back). */
static const char *media_code(const char *mt)
{
    static const char *const codes[][2] = {
        {"oi", "application/vnd.oci.image.index.v1+json"},
        {"om", "application/vnd.oci.image.manifest.v1+json"},
        {"dl", "application/vnd.docker.distribution.manifest.list.v2+json"},
        {"dm", "application/vnd.docker.distribution.manifest.v2+json"},
    };
    for (size_t i = 0; i < DM_ARRAY_LEN(codes); i++) {
        if (strcmp(mt, codes[i][1]) == 0)
            return codes[i][0];
    }
    return mt;
}

/* The record's "build" object as member text, before built_at (provider … actor: @p head) and
 * after it (verified, issuer, verified_fields: @p tail), in the record's key order (README.md
 * "Output records"; lua/lib.lua enc_build writes the same for an identity decoded in Lua). */
static void build_record(const dm_build_info *b, text *head, text *tail)
{
    opt_member(head, 0, "provider", b->provider);
    opt_member(head, 0, "repository", b->repository);
    opt_member(head, 0, "repository_url", b->repository_url);
    opt_member(head, 0, "workflow", b->workflow);
    opt_member(head, 0, "workflow_ref", b->workflow_ref);
    opt_member(head, 0, "run_id", b->run_id);
    opt_member(head, 0, "run_attempt", b->run_attempt);
    opt_member(head, 0, "run_url", b->run_url);
    opt_member(head, 0, "commit", b->commit);
    opt_member(head, 0, "ref", b->ref);
    opt_member(head, 0, "actor", b->actor);
    puts_(tail, b->verified ? "\"verified\":true" : "\"verified\":false");
    opt_member(tail, 0, "issuer", b->issuer);
    if (b->nverified_fields > 0)
        array_member(tail, "verified_fields", b->verified_fields, b->nverified_fields);
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

void dm_event_park_args(const dm_event *ev, size_t max_tags, dm_park_args *out)
{
    memset(out, 0, sizeof *out);
    text t = {0};
    /* Bounded copies: source is a fixed array that a hand-built event might not have
     * terminated. */
    char source[sizeof ev->source + 1];
    memcpy(source, ev->source, sizeof ev->source);
    source[sizeof ev->source] = '\0';
    size_t members;
    if (ev->side != DM_SIDE_BUILD) {
        out->kind[0] = ev->action == DM_ACTION_DELETE ? 'd' : 'p';
        puts_(&t, or_empty(ev->registry));
        put(&t, "/", 1);
        puts_(&t, or_empty(ev->repository));
        out->field_len = t.len;
        put(&t, "", 1);
        members = t.len;
        member(&t, members, "s", source);
        member(&t, members, "e", or_empty(ev->event_id));
        if (ev->media_type)
            member(&t, members, "m", media_code(ev->media_type));
        tags_member(&t, ev, max_tags);
    } else {
        const dm_build_info *b = &ev->build;
        out->kind[0] = 'b';
        puts_(&t, or_empty(b->provider));
        put(&t, "/", 1);
        puts_(&t, or_empty(b->run_id));
        put(&t, "/", 1);
        puts_(&t, or_empty(b->run_attempt));
        out->field_len = t.len;
        put(&t, "", 1);
        members = t.len;
        text head = {0}, tail = {0};
        build_record(b, &head, &tail);
        put(&t, "\"f\":", 4);
        put_str(&t, head.p ? head.p : "", head.len);
        put(&t, ",\"v\":", 5);
        put_str(&t, tail.p, tail.len);
        free(head.p);
        free(tail.p);
        if (b->repository && b->repository[0])
            member(&t, members, "xr", b->repository);
        if (ev->relation == DM_REL_PLATFORM_MANIFEST) {
            char index[DM_DIGEST_BUFLEN + 1];
            memcpy(index, ev->index_digest, DM_DIGEST_BUFLEN);
            index[DM_DIGEST_BUFLEN] = '\0';
            puts_(&t, ",\"r\":\"p\"");
            member(&t, members, "i", index);
        }
        opt_member(&t, members, "n", ev->name);
        tags_member(&t, ev, max_tags);
    }
    out->members_len = t.len - members;
    put(&t, "", 1);
    out->buf = t.p;
    out->field = t.p;
    out->members = t.p + members;
}

void dm_park_args_dispose(dm_park_args *a)
{
    if (!a)
        return;
    free(a->buf);
    memset(a, 0, sizeof *a);
}
