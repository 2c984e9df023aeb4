/* dm_hhead.c - the parts of an outgoing request's head that need no connection (dm_hhead.h). */
#include "dm_common.h"
#include "dm_hhead.h"

#include <string.h>
#include <strings.h>

/* The methods a caller may name. */
int dm_hhead_method(const char *m, enum evhttp_cmd_type *out)
{
    static const struct {
        const char *name;
        enum evhttp_cmd_type type;
    } methods[] = {
        {"GET", EVHTTP_REQ_GET},       {"POST", EVHTTP_REQ_POST},   {"PUT", EVHTTP_REQ_PUT},
        {"DELETE", EVHTTP_REQ_DELETE}, {"PATCH", EVHTTP_REQ_PATCH}, {"HEAD", EVHTTP_REQ_HEAD},
    };
    for (size_t i = 0; m && i < DM_ARRAY_LEN(methods); i++) {
        if (strcmp(m, methods[i].name) == 0) {
            *out = methods[i].type;
            return DM_OK;
        }
    }
    return DM_EINVAL;
}

/* @p list (a comma-separated header value) holds the token @p tok (case-insensitive). */
bool dm_hhead_has_token(const char *list, const char *tok)
{
    size_t n = strlen(tok);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == n && strncasecmp(p, tok, n) == 0)
            return true;
        p = e;
    }
    return false;
}

/* A caller's header goes out only without any CR or LF, in its name or its value: libevent
 * would let a line break followed by a space or a tab through (obsolete folding), and "x\n\r\n "
 * would then end the head early and smuggle a request onto a kept-alive connection (all header
 * lines are one evhttp header here, after Content-Length). Nor the framing headers this file
 * writes itself (Host, Content-Length, Connection, Transfer-Encoding): a second copy would make
 * the request's framing ambiguous. A header refused was left out of the request, and still is. */
bool dm_hhead_header_ok(const char *name, const char *value)
{
    static const char *const own[] = {"Host", "Content-Length", "Connection", "Transfer-Encoding"};
    if (strpbrk(name, "\r\n") || strpbrk(value, "\r\n"))
        return false;
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strcasecmp(name, own[i]) == 0)
            return false;
    return true;
}

/* Content-Length is sent for a body, and as 0 for a POST, PUT or PATCH without one (evhttp
 * itself adds it for POST and PUT only, and not when the request names it). */
bool dm_hhead_sends_length(size_t body_len, enum evhttp_cmd_type method)
{
    return body_len || method == EVHTTP_REQ_POST || method == EVHTTP_REQ_PUT ||
           method == EVHTTP_REQ_PATCH;
}
