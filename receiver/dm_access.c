#include "dm_common.h"
#include "dm_access.h"
#include "dm_http.h"
#include "dm_jwt.h"
#include "dm_log.h"
#include "dm_metrics.h"
#include "dm_oidc.h"
#include "dm_time.h"

#include <event2/http.h>
#include <string.h>

static const char *find_header(void *ctx, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(ctx), name);
}

bool dm_access_verify(dm_req *req, size_t route, const char *route_name, const dm_trust *trust,
                      const dm_auth_list *auth, dm_auth_outcome *out)
{
    if (req->authed) {
        *out = req->auth;
        req->authed = false;
        return true;
    }
    dm_auth_verify(trust, auth, dm_head_lookup, &req->head, (const unsigned char *)req->body,
                   req->len, dm_now_ms() / 1000, out);
    if (out->result == DM_AUTH_OK)
        return true;
    char error[300];
    int status = dm_access_refusal(out, route_name, req->peer, false, error, sizeof error);
    dm_req_error(req, route, status, "%s", error); /* a 503 gets Retry-After */
    dm_auth_outcome_dispose(out);
    return false;
}

int dm_access_refusal(const dm_auth_outcome *out, const char *route_name, const char *peer,
                      bool before_body, char *error, size_t errlen)
{
    int status = out->result == DM_AUTH_FORBIDDEN     ? 403
                 : out->result == DM_AUTH_UNAVAILABLE ? 503
                                                      : 401;
    /* 503: not a failed authentication, the sender retries and will pass (or fail) then. */
    if (status != 503)
        dm_metrics_inc(DM_M_AUTH_FAILED);
    /* Everything but the status and the route comes from the request (the kid, the SNS
     * detail) or is quoted like it, so no sender can end the line or forge a key. */
    char reason[160], kid[DM_JWT_KID_BUFLEN * 4 + 8], claim[160], detail[320];
    dm_warn("request refused", "status=%d route=%s reason=%s kid=%s claim=%s detail=%s peer=%s%s",
            status, route_name, dm_log_quote_str(out->reason, reason, sizeof reason),
            dm_log_quote_str(out->kid, kid, sizeof kid),
            dm_log_quote_str(out->forbidden_claim, claim, sizeof claim),
            dm_log_quote_str(out->detail, detail, sizeof detail), peer,
            before_body ? " before_body=true" : "");
    if (out->result == DM_AUTH_FORBIDDEN) {
        /* A list or object claim gets the precise reason; a value that is not allowed keeps
         * the documented short answer. */
        const char *p = out->forbidden_problem;
        bool shape =
            p && (strcmp(p, DM_OIDC_CLAIM_ARRAY) == 0 || strcmp(p, DM_OIDC_CLAIM_OBJECT) == 0);
        snprintf(error, errlen, "token not allowed: claim %s%s%s", out->forbidden_claim,
                 shape ? " " : "", shape ? p : "");
    } else if (out->result == DM_AUTH_UNAVAILABLE) {
        snprintf(error, errlen, "signing certificate not available yet; retry later");
    } else {
        snprintf(error, errlen, "%s",
                 out->result == DM_AUTH_MISSING ? "missing credentials" : "bad credentials");
    }
    return status;
}

bool dm_access_api(const dm_config *conf, const dm_trust *trust, struct evhttp_request *req,
                   size_t route, const char *route_name)
{
    if (!conf->api_configured) {
        dm_metrics_inc(DM_M_AUTH_FAILED);
        dm_warn("request refused", "status=401 route=%s reason=\"no api.auth configured\"",
                route_name);
        dm_http_error(req, route, 401, "query API disabled: configure api.auth");
        return false;
    }
    dm_auth_outcome out;
    dm_auth_verify(trust, &conf->api_auth, find_header, req, NULL, 0, dm_now_ms() / 1000, &out);
    if (out.result == DM_AUTH_OK) {
        dm_auth_outcome_dispose(&out);
        return true;
    }
    char peer[64], error[300];
    int status =
        dm_access_refusal(&out, route_name, dm_http_peer(req, peer), false, error, sizeof error);
    dm_http_error(req, route, status, "%s", error); /* a 503 gets Retry-After */
    dm_auth_outcome_dispose(&out);
    return false;
}
