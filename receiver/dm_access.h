/* dm_access.h - who may use a route: the credentials of a request checked against a list of
 * auth entries (dm_auth.h), and a refusal answered, logged and counted.
 *
 * Sources check their own "auth" list (with the body, for HMAC); the query API (/v1/images,
 * /v1/mappings, /v1/events/stream) checks "api.auth".
 */
#ifndef DM_RECEIVER_DM_ACCESS_H
#define DM_RECEIVER_DM_ACCESS_H

#include "dm_auth.h"
#include "dm_req.h"
#include "dm_trust.h"

struct evhttp_request;

/**
 * Check @p req (headers, and its body for HMAC) against @p auth, whose keys and certificates
 * @p trust holds; a request the head check authenticated for good (req->authed) is not checked
 * again: its outcome is taken over. Returns true when it may proceed: @p out then holds what
 * the credentials proved, and the caller disposes it (dm_auth_outcome_dispose). Otherwise the
 * request has been answered 401, 403 or 503 (an SNS certificate still being fetched), logged
 * with @p route_name and counted, and @p out holds nothing.
 */
bool dm_access_verify(dm_req *req, size_t route, const char *route_name, const dm_trust *trust,
                      const dm_auth_list *auth, dm_auth_outcome *out);

/**
 * The refusal of @p out (not DM_AUTH_OK) on @p route_name, for the handlers above and for the
 * connection layer's check of a head before its body: logs "request refused" (every value from
 * the request quoted; " before_body=true" when @p before_body), counts an authentication
 * failure (not for 503), writes the answer's error text into @p error and returns the status:
 * 401, 403, or 503 while an SNS certificate is being fetched.
 */
int dm_access_refusal(const dm_auth_outcome *out, const char *route_name, const char *peer,
                      bool before_body, char *error, size_t errlen);

/**
 * Authenticate a request to a query route (api.auth; 401 to everyone when "api" is not
 * configured). Returns true when it may proceed; otherwise it has been answered (401, 403 or
 * 503), logged with @p route_name and counted.
 */
bool dm_access_api(const dm_config *conf, const dm_trust *trust, struct evhttp_request *req,
                   size_t route, const char *route_name);

#endif
