#include "dm_common.h"
#include "dm_ui.h"
#include "dm_http.h"
#include "dm_log.h"
#include "dm_metrics.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

const char dm_ui_bare[] = "";

const dm_ui_file *dm_ui_find(const char *rest)
{
    const char *name = rest[0] ? rest : "index.html";
    for (size_t i = 0; i < dm_ui_nfiles; i++) {
        if (strcmp(name, dm_ui_files[i].name) == 0)
            return &dm_ui_files[i];
    }
    return NULL;
}

const char *dm_ui_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < DM_ARRAY_LEN(types); i++) {
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    }
    return NULL;
}

/* The page runs nothing but its own files, loads nothing from elsewhere, is never framed, and
 * leaks no URL in a Referer. */
void dm_ui_headers(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Security-Policy", DM_UI_CSP);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    evhttp_add_header(h, "Cross-Origin-Opener-Policy", "same-origin");
}

void dm_ui_serve(dm_worker *w, struct evhttp_request *req, const dm_route_match *m)
{
    (void)w;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    dm_ui_headers(req);
    if (m->rest == dm_ui_bare) {
        /* "/ui": the page's relative links (app.js, v1/…) need the slash. A relative Location,
         * so that behind a proxy's prefix (/digestmap/ui) it stays under that prefix. */
        evhttp_add_header(out, "Location", "ui/");
        dm_metrics_request(m->id, 301);
        evhttp_send_reply(req, 301, "Moved Permanently", NULL);
        return;
    }
    const dm_ui_file *f = dm_ui_find(m->rest);
    const char *ctype = f ? dm_ui_content_type(f->name) : NULL;
    if (!ctype) {
        char peer[64], qname[160];
        dm_info("request refused", "status=404 route=%s file=%s reason=\"no such file\" peer=%s",
                m->name, dm_log_quote(m->rest, strlen(m->rest), qname, sizeof qname),
                dm_http_peer(req, peer));
        dm_http_error(req, m->id, 404, "no such file");
        return;
    }
    /* The files change only with the binary: a browser keeps them and asks again each time
     * (no-cache), and the ETag spares it the bytes while they are the same. */
    evhttp_add_header(out, "Cache-Control", "no-cache");
    evhttp_add_header(out, "ETag", f->etag);
    const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
    if (inm && (strstr(inm, f->etag) || strcmp(inm, "*") == 0)) {
        dm_metrics_request(m->id, 304);
        evhttp_send_reply(req, 304, "Not Modified", NULL);
        return;
    }
    evhttp_add_header(out, "Content-Type", ctype);
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort(); /* out of memory */
    /* The bytes are static: reference them rather than copy. */
    evbuffer_add_reference(b, f->data, f->len, NULL, NULL);
    dm_http_send(req, m->id, 200, b); /* a HEAD: the length, no body */
    evbuffer_free(b);
}
