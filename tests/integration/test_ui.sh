#!/usr/bin/env bash
# The explorer page (docs/ui.md): the static files and their headers over HTTP, then the page
# itself in headless Chromium (tests/integration/ui/explore.py) against the real daemon with
# seeded pushes, builds, findings and a cluster snapshot (ui/seed.sh): the token, a digest
# search and its chain (repository, short commit, actor, run link, severity counts, a workload's
# exposure), a pending push, the exposure table sorted by severity and by exposure, a row's
# link, the other searches; no request leaves 127.0.0.1; screenshots (1280x800) are kept in
# $DM_ARTIFACTS (the build folder's artifacts/) as ui-image.png and ui-exposure.png. And what
# must hold whatever the data: the token in no URL (not even before app.js runs), pages the API
# answers empty with a cursor followed, deletes shown, failed "More" requests that can be
# retried and keep their rows, later pages of an image merged into its columns, a malformed
# address said as such, and HEAD answers that keep a kept-alive connection in step.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ui/seed.sh"
command -v chromium >/dev/null || die "chromium is missing: scripts/deps.sh test installs it"
ART=${DM_ARTIFACTS:-$T/artifacts}
CSP="default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

# Chromium runs in a process group of its own (explore.py writes its pid); its crash handlers
# leave that group, and are found by their database under $T.
kill_chromium() {
    local p c
    if [ -s "$T/chromium.pid" ]; then kill -KILL -- "-$(cat "$T/chromium.pid")" 2>/dev/null || true; fi
    for p in /proc/[0-9]*; do
        c=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
        if [[ "$c" == *chrome_crashpad_handler*"--database=$T/chromium-home"* ]]; then
            kill -KILL "${p#/proc/}" 2>/dev/null || true
        fi
    done
    return 0
}
at_exit kill_chromium

start_redis
start_daemon "$(ui_config)"
ui_seed

# --- The files over HTTP ------------------------------------------------------------------
hdr() { grep -i "^$1:" <<<"$HEADERS" | head -n 1 | cut -d' ' -f2- | tr -d '\r'; }
request GET /ui/
check "GET /ui/ without a token: 200" 200 "$STATUS"
check "its Content-Security-Policy" "$CSP" "$(hdr Content-Security-Policy)"
check "X-Content-Type-Options" nosniff "$(hdr X-Content-Type-Options)"
check "Referrer-Policy" no-referrer "$(hdr Referrer-Policy)"
check "X-Frame-Options" DENY "$(hdr X-Frame-Options)"
check "Content-Type of index.html" "text/html; charset=utf-8" "$(hdr Content-Type)"
check "Cache-Control" no-cache "$(hdr Cache-Control)"
check_match "the page is index.html, loading its module" '<script type="module" src="app.js"></script>' "$BODY"
etag=$(hdr ETag)
check_match "an ETag" '^"[0-9a-f]{16}"$' "$etag"
request GET /ui/ -H "If-None-Match: $etag"
check "the same ETag again: 304" 304 "$STATUS"
request GET /ui/app.js
check "app.js: 200" 200 "$STATUS"
check "app.js is JavaScript" "text/javascript; charset=utf-8" "$(hdr Content-Type)"
check "app.js carries the CSP" "$CSP" "$(hdr Content-Security-Policy)"
len=$(curl -s "http://127.0.0.1:$PORT/ui/app.css" | wc -c)
head_out=$(curl -s -I "http://127.0.0.1:$PORT/ui/app.css" | tr -d '\r')
check "HEAD: the length of the GET" "$len" "$(sed -n 's/^Content-Length: //p' <<<"$head_out")"
check "HEAD: text/css" "text/css; charset=utf-8" "$(sed -n 's/^Content-Type: //p' <<<"$head_out")"
request GET /ui/nope.js
check "an unknown file: 404" "404 {\"error\":\"no such file\"}" "$STATUS $BODY"
check "the 404 carries the CSP too" "$CSP" "$(hdr Content-Security-Policy)"
check_match "the 404 is logged" 'status=404 route=/ui file="nope.js"' "$(await_log 'route=/ui file="nope.js"')"
request GET /ui/../configs/dev.json --path-as-is
check "a path out of ui/: 404" 404 "$STATUS"
request GET /ui/%2e%2e/README.md
check "an encoded path out of ui/: 404" 404 "$STATUS"
request GET /ui/app.js/
check "a file name with more after it: 404" 404 "$STATUS"
request POST /ui/ --data-binary x
check "POST: 405, GET allowed" "405 GET" "$STATUS $(hdr Allow)"
check "a POST refused before its body: nosniff" nosniff "$(hdr X-Content-Type-Options)"
request POST /ui/
check "POST without a body (a form with no named control): 405 with the page's CSP" "405 GET $CSP" \
    "$STATUS $(hdr Allow) $(hdr Content-Security-Policy)"
request GET /ui
check "/ui without its slash: 301 to ui/ (relative: a proxy's prefix stays)" "301 ui/" "$STATUS $(hdr Location)"
check "with the page's CSP" "$CSP" "$(hdr Content-Security-Policy)"
check "followed, it is the page" 200 "$(curl -s -L -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/ui")"
request GET /ui/ -H 'If-None-Match: *'
check "If-None-Match: * 304" 304 "$STATUS"
# HEAD of any answer (the files, errors of every route) gives the GET's Content-Length and no
# body, so the next answer on the same connection (keep-alive) parses.
keepalive=$(python3 - "$PORT" "$DM_WAIT" <<'PY' 2>&1
import re, socket, sys
# A raw socket: a client library would hide stray bytes (http.client drops whatever its HEAD
# answer's buffer read past the headers).
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=float(sys.argv[2]))
buf = b""
def answer(head):
    """The next answer on the connection: (bytes before it, status, Content-Length, body); the
    answer to a HEAD has no body whatever its Content-Length says."""
    global buf
    while True:
        i = buf.find(b"HTTP/1.1 ")
        j = buf.find(b"\r\n\r\n", max(i, 0))
        if i >= 0 and j >= 0:
            lines = buf[i:j].decode()
            m = re.search(r"(?im)^content-length: *(\d+)", lines)
            n = 0 if head or not m else int(m.group(1))
            if len(buf) >= j + 4 + n:
                stray, body, buf = buf[:i], buf[j + 4:j + 4 + n], buf[j + 4 + n:]
                return stray, lines.split()[1], m and m.group(1), body
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit("the daemon closed the connection")
        buf += chunk
out = []
for path in ("/ui/nope", "/ui/app.css", "/nope", "/healthz", "/v1/exposure", "/ui/"):
    sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    _, hstatus, hlen, _ = answer(True)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    stray, gstatus, _, body = answer(False)
    out.append(f"{path} {hstatus}/{gstatus} {'=' if hlen == str(len(body)) else '!='}"
               + (f" after {stray[:30]!r}" if stray else ""))
print(", ".join(out))
PY
)
check "HEAD then GET on one connection" \
    "/ui/nope 404/404 =, /ui/app.css 200/200 =, /nope 404/404 =, /healthz 200/200 =, /v1/exposure 401/401 =, /ui/ 200/200 =" \
    "$keepalive"
check_match "counted per route" '^[1-9][0-9]*$' "$(metric 'digestmap_requests_total{route="/ui",status="200"}')"

# --- The page in Chromium -----------------------------------------------------------------
export D_API D_NODE D_DBG D_EVIL D_MIR UI_RUN_URL DM_WAIT
mkdir -p "$ART"
rm -f "$ART/ui-image.png" "$ART/ui-exposure.png"
python3 -B "$(dirname "$0")/ui/explore.py" "http://127.0.0.1:$PORT/ui/" "$ART" "$T" >"$T/seen.json" \
    2>"$T/explore.err" || { cat "$T/explore.err" >&2; tail -n 20 "$T/chromium.log" >&2; fail "the walk through the page stopped"; }
s() { jq -c "$1" "$T/seen.json"; }
check "cdp.py removed Chromium's pidfile once it reaped it (no later kill of a reused pid)" no \
    "$([ -e "$T/chromium.pid" ] && echo yes || echo no)"
# Before app.js ran: nothing to type into or submit, and a native submit carries nothing.
check "before the modules run, every control is disabled and has no name" \
    '["disabled","disabled","disabled","disabled","disabled","disabled"]' "$(s .preboot_controls)"
check "a native submit of the token form: a POST to /ui/, refused" \
    '"/ui/ {\"error\":\"method not allowed; use GET\"}"' "$(s .preboot_answer)"

# Before the token: the API's 401, said on the page, and the token field focused.
check "without a token: the image view fails" '"error"' "$(s .no_token_state)"
check_match "the page says the API answered 401" 'The API answered 401: .missing credentials.' "$(s .no_token_error)"
check "the token field has the focus" '"token-input"' "$(s .no_token_focus)"
# With the token: the chain of D_API.
check "with the token: the image view" '"ready"' "$(s .image_state)"
check "the token is kept in sessionStorage" '"api-token"' "$(s .token_in_storage)"
check "the token field is emptied" '""' "$(s .token_input_after)"
check "a linkable view" "\"#/image/$D_API\"" "$(s .hash_image)"
check "the image: registry repository" '["contoso.azurecr.io/team/api"]' "$(s .locations)"
check "the image: tags" '["1.4.0"]' "$(s .tags)"
check "the builds: code repository" '["acme/api","acme/api"]' "$(s .build_repos)"
check "the builds: short commit" '["3e1c0d9","3e1c0d9"]' "$(s .build_commits)"
check "the builds: actor" '["mona","mona"]' "$(s .build_actors)"
# (in the API's order of the digest's edges: by edge id, fixed by the edge's identity)
check "the run links: <a> to each attempt's run URL" \
    "[{\"tag\":\"A\",\"href\":\"$UI_RUN_URL\",\"text\":\"run 4242\"},{\"tag\":\"A\",\"href\":\"${UI_RUN_URL%/1}/2\",\"text\":\"run 4242 (attempt 2)\"}]" \
    "$(s .build_runs)"
check "the builds: asserted (header auth), not verified" '["asserted","asserted"]' "$(s .build_identity)"
check "the hostile build's image view" '"ready"' "$(s .evil_state)"
check "markup in an actor is shown as text" '["<img src=x id=pwned>"]' "$(s .evil_actors)"
check "a javascript: run URL is no link" '[{"tag":"SPAN","href":null,"text":"run 666"}]' "$(s .evil_runs)"
check "no element made from data" 0 "$(s .injected_elements)"
check "an address with a bad escape: an error, not a blank page" "\"error\"" "$(s .bad_escape_state)"
check_match "which says so" 'Not a digest: .%E0. is not valid percent-encoding' "$(s .bad_escape_error)"
check "severity counts" '{"critical":1,"high":2,"medium":1,"low":2,"unknown":0}' "$(s .severity)"
check "the worst findings, most severe first" \
    '["CVE-2023-45853","CVE-2024-45296","CVE-2024-45590","CVE-2024-6119","CVE-2024-47764","CVE-2024-9143"]' "$(s .worst)"
check "the workload and its exposure" '["prod-weu/shop/Deployment/api internet"]' "$(s .workloads)"
# A push without a build.
check "a pushed, unbuilt digest" '"ready"' "$(s .pending_state)"
check "its image view" "\"$D_NODE\"" "$(s .pending_digest)"
check "its push is shown pending" '["pending"]' "$(s .pending_badges)"
check "where it was pushed" '["contoso.azurecr.io/platform/node-exporter"]' "$(s .pending_location)"
check_match "and no build yet" 'No build yet: the push is pending' "$(s .pending_builds)"
# The exposure table, in the API's order (levels internet, node, cluster), then sorted.
api='"prod-weu/shop/Deployment/api","prod-weu/monitoring/DaemonSet/node-exporter","prod-weu/default/Pod/debug-shell"'
check "the exposure view" '"ready"' "$(s .exposure_state)"
check "the exposure view is linkable" '"#/exposure"' "$(s .hash_exposure)"
check "rows: the API's order" "[$api]" "$(s .rows_api)"
check "unsorted: no aria-sort" '{"exposure":"none","severity":"none"}' "$(s .aria_api)"
check "sorted by severity: 2 critical, then 1 critical, then 1 high" \
    '["prod-weu/monitoring/DaemonSet/node-exporter","prod-weu/shop/Deployment/api","prod-weu/default/Pod/debug-shell"]' \
    "$(s .rows_severity)"
check "aria-sort on severity" '{"exposure":"none","severity":"descending"}' "$(s .aria_severity)"
check "sorted by exposure: internet, node, cluster" "[$api]" "$(s .rows_exposure)"
check "aria-sort on exposure" '{"exposure":"descending","severity":"none"}' "$(s .aria_exposure)"
check "exposure again: the other way round" \
    '["prod-weu/default/Pod/debug-shell","prod-weu/monitoring/DaemonSet/node-exporter","prod-weu/shop/Deployment/api"]' \
    "$(s .rows_exposure_asc)"
check "aria-sort ascending" '{"exposure":"ascending","severity":"none"}' "$(s .aria_exposure_asc)"
check "the rows: workload, exposure, findings, newest build (none known for the unbuilt push)" \
    '["prod-weu/default/Pod/debug-shell | cluster | findings: 1 high | acme/tools @ 0123456 by hubot","prod-weu/monitoring/DaemonSet/node-exporter | node | findings: 2 critical | no build known","prod-weu/shop/Deployment/api | internet | findings: 1 critical, 2 high, 1 medium, 2 low | acme/api @ 3e1c0d9 by mona (+1 more)"]' \
    "$(s .row_cells)"
check "each row links to its image view" "[\"#/image/$D_DBG\",\"#/image/$D_NODE\",\"#/image/$D_API\"]" "$(s .row_links)"
check "a row's link opens its image view" "\"ready\" \"$D_DBG\"" "$(s .row_image_state) $(s .row_image_digest)"
check "the image of that row: its build's actor" '["hubot"]' "$(s .row_image_actor)"
# The other searches.
check "a run, by its URL" '"ready" "#/search?run=github%2F4242"' "$(s .run_state) $(s .run_hash)"
check "the run's images (both attempts)" "[\"$D_API\",\"$D_API\"]" "$(s .run_digests)"
check "a code repository's images, after a first page the API answered empty with a cursor" \
    "\"ready\" [\"$D_DBG\"] 2" \
    "$(s .repo_state) $(s .repo_digests) $(s '[.requests[] | select(test("/v1/mappings\\?repository=acme%2Ftools&"))] | length')"
check "a registry repository, its tag dropped" \
    '"#/search?registry=contoso.azurecr.io&image_repository=tools%2Fdebug"' "$(s .registry_hash)"
check "a registry repository's images" "\"ready\" [\"$D_DBG\"]" "$(s .registry_state) $(s .registry_digests)"
# Exposure "cluster" starts with 900 clean workloads (seed.sh): its first page is empty with a
# cursor, and the second one holds debug-shell (in the rows above).
check "the empty first page of exposure cluster was followed" 2 \
    "$(s '[.requests[] | select(test("/v1/exposure\\?exposure=cluster&min_severity=high&limit=100"))] | length')"
# A row at a time (limit=1, min_severity=low): the first page of each level, then a More whose
# round fails at the cluster level (twice).
low='"a-clean/low/Pod/low-1","a-clean/low/Pod/low-2"'
node='"prod-weu/monitoring/DaemonSet/node-exporter"'
dbg='"prod-weu/default/Pod/debug-shell"'
check "a row at a time: a row of each level" "\"ready\" [\"a-clean/low/Pod/low-1\",$node,$dbg]" \
    "$(s .paged_state) $(s .paged_rows)"
check "a failed More: the button works again" '"enabled"' "$(s .paged_more_failed)"
check "the row its round brought is drawn, with its level (internet first)" "[$low,$node,$dbg]" \
    "$(s .paged_rows_failed)"
check "again: the next internet row, in its place" "[$low,\"prod-weu/shop/Deployment/api\",$node,$dbg]" \
    "$(s .paged_rows_failed2)"
check "one error shown, not one per failure" 1 "$(s .paged_errors)"
# Mappings: more gone than 10 pages hold, then More; a row at a time with a failed More.
check "run 77: none found so far, and a More" \
    '"No confirmed mapping found so far: the API looked through part of its index (10 pages) without one. More mappings looks further." []' \
    "$(s .far_status) $(s .far_rows)"
check "More looks further and finds it, and the walk ends" "[\"$D_DBG\"] true" "$(s .far_rows_more) $(s .far_more)"
check "10 pages, then one more" 11 "$(s '[.requests[] | select(test("/v1/mappings\\?run=github%2F77&"))] | length')"
check "acme/api a row at a time" '"ready" 1' "$(s .mpaged_state) $(s .mpaged_rows)"
check "a failed More mappings: the button works again" '"enabled" 2' "$(s .mpaged_more_failed) $(s .mpaged_rows_more)"
# D_MIR a mapping and 2 findings at a time.
check "a delete: where, and when" '"ready" ["contoso.azurecr.io/old/mir"]' "$(s .mir_state) $(s .mir_deleted)"
check_match "its note" '^\["Deleted [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} UTC\."\]$' "$(s .mir_deleted_note)"
check "failed More builds and More findings work again, one error shown" '"enabled" "enabled" 1' \
    "$(s .mir_builds_failed) $(s .mir_findings_failed) $(s .mir_errors)"
check "every page of mappings: one card per build" '["github/88/1","github/88/2"] "2"' \
    "$(s '.mir_runs | sort') $(s .mir_build_count)"
check "and every location in the Image column" \
    '["contoso.azurecr.io/mirror/mir","contoso.azurecr.io/old/mir","contoso.azurecr.io/team/mir"]' \
    "$(s '.mir_locations | sort')"
check "each build, its two locations on two pages: both on its card" \
    '[["contoso.azurecr.io/mirror/mir","contoso.azurecr.io/team/mir"],["contoso.azurecr.io/mirror/mir","contoso.azurecr.io/team/mir"]]' \
    "$(s '[.mir_pushed_to[] | select(.) | split(", ") | sort]')"
check "More findings: 2 more" 4 "$(s .mir_findings)"
# The token: typed, kept in sessionStorage, sent in a header; never in a URL, localStorage or a cookie.
check "no URL the page requested carries the token" "[]" "$(s '[.requests[] | select(contains("api-token"))]')"
check "localStorage is empty, no cookie" '0 ""' "$(s .local_storage) $(s .cookie)"
# Nothing but the daemon: every request on 127.0.0.1, no CSP violation, no script error.
check_match "requests were recorded" '^[1-9][0-9]+$' "$(s '.requests | length')"
check "every request went to 127.0.0.1:$PORT" "[]" \
    "$(jq -c --arg p "http://127.0.0.1:$PORT/" '[.requests[] | select(startswith($p) | not)]' "$T/seen.json")"
check "the page asked the API" true "$(s '[.requests[] | select(test("/v1/exposure\\?exposure=node"))] | length > 0')"
# (Chromium asks for /favicon.ico by itself for the JSON document of step 0's native submit, at
# a moment of its own: the page's icon is favicon.svg.)
check "no console error but the 401 asked for, the requests the test blocked and /favicon.ico" "[]" \
    "$(s '[.console_errors[] | select(test("status of 401 \\(Unauthorized\\) http://127.0.0.1:[0-9]+/v1/images/|net::ERR_BLOCKED_BY_CLIENT|/favicon.ico$") | not)]')"
# The screenshots: PNGs of 1280x800.
png_size() { python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); print("%dx%d" % struct.unpack(">II", d[16:24]) if d[:8]==b"\x89PNG\r\n\x1a\n" else "not a png")' "$1" 2>/dev/null || echo missing; }
check "screenshot of the image view ($ART/ui-image.png)" 1280x800 "$(png_size "$ART/ui-image.png")"
check "screenshot of the exposure view ($ART/ui-exposure.png)" 1280x800 "$(png_size "$ART/ui-exposure.png")"

# --- Without api.auth: the page is served, the API refuses everyone --------------------------
start_daemon2 "$(ui_config | jq 'del(.api)')"
check "no api.auth: /ui/ still 200" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT2/ui/")"
r=$(curl -s -w '\n%{http_code}' -H 'Authorization: Bearer api-token' "http://127.0.0.1:$PORT2/v1/exposure")
check "no api.auth: the API answers 401 (the page shows its text)" \
    '{"error":"query API disabled: configure api.auth"} 401' "$(head -n 1 <<<"$r") $(tail -n 1 <<<"$r")"
stop_daemon2
kill_chromium
finish
