/* dm_hhead.h - the parts of an outgoing request's head that need no connection: the method,
 * which caller headers may go out, when Content-Length is sent, and a token in a header list.
 * Internal to net/ (dm_hclient.c); pure functions, nothing kept. */
#ifndef DM_NET_DM_HHEAD_H
#define DM_NET_DM_HHEAD_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/http.h>

/** @p m ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD") as libevent's type; DM_EINVAL for
 *  any other (or NULL). */
int dm_hhead_method(const char *m, enum evhttp_cmd_type *out);

/** @p list (a comma-separated header value) holds the token @p tok (case-insensitive). */
bool dm_hhead_has_token(const char *list, const char *tok);

/** A caller's header may go out: no CR or LF in its name or value, and not one of the framing
 *  headers the client writes itself (Host, Content-Length, Connection, Transfer-Encoding). */
bool dm_hhead_header_ok(const char *name, const char *value);

/** Content-Length is sent for a body of @p body_len bytes, and as 0 for a POST, PUT or PATCH
 *  without one. */
bool dm_hhead_sends_length(size_t body_len, enum evhttp_cmd_type method);

#endif
