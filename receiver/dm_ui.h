/* dm_ui.h - the explorer page (docs/ui.md): GET /ui/ and /ui/<file> answer the static files of
 * ui/, built into the binary by ui/embed.cmake (dm_ui_files below, generated into the build
 * folder). Route handler (dm_routes.h).
 *
 * The files need no credentials: they hold no data. The page asks for the API token and sends
 * it to the query API, which api.auth guards as for any client. Every answer of the route
 * carries the page's security headers (a Content-Security-Policy that allows nothing but this
 * origin, nosniff, no referrer, no framing). A name is looked up in the fixed table only:
 * nothing of the request reaches the file system.
 */
#ifndef DM_RECEIVER_DM_UI_H
#define DM_RECEIVER_DM_UI_H

#include "dm_worker.h"

/** One embedded file; the table and its strings are static, read-only. */
typedef struct dm_ui_file {
    const char *name;          /**< e.g. "app.js": the path after /ui/ */
    const unsigned char *data; /**< its bytes */
    size_t len;
    const char *etag; /**< "\"<16 hex of its SHA-256>\"", the ETag header's value */
} dm_ui_file;

/** The generated table (ui/embed.cmake), sorted by name. */
extern const dm_ui_file dm_ui_files[];
extern const size_t dm_ui_nfiles;

/** The Content-Security-Policy of every /ui/ answer. */
#define DM_UI_CSP "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/** The file for the path after /ui/ (@p rest, still percent-encoded: "" is index.html), or
 *  NULL when the table has no file of exactly that name. */
const dm_ui_file *dm_ui_find(const char *rest);

/** The Content-Type of @p name by its extension (html, css, js, svg), or NULL. */
const char *dm_ui_content_type(const char *name);

/** The route's @c rest for the path "/ui" without its slash (compared by address: dm_routes.c
 *  points m->rest at it), which dm_ui_serve redirects to "ui/". */
extern const char dm_ui_bare[];

/** Add the page's security headers (the CSP above, nosniff, no referrer, no framing, COOP) to
 *  the answer of @p req: every answer of the route carries them, the 404 and 405 included. */
void dm_ui_headers(struct evhttp_request *req);

/** GET (or HEAD) /ui/<file>: 200 with the file, 304 when If-None-Match names its ETag (or is
 *  "*"), 404 (JSON, logged and counted) for any other name; "/ui" (rest dm_ui_bare): 301 to
 *  "ui/". */
void dm_ui_serve(dm_worker *w, struct evhttp_request *req, const dm_route_match *m);

#endif
