#!/usr/bin/env python3
"""explore.py URL ARTIFACTS_DIR WORKDIR - walk the explorer page as a user would, in headless
Chromium (cdp.py), and print what it saw as one JSON document for test_ui.sh to assert on.

Environment: DM_WAIT (seconds any wait may take, reached only when something is wrong),
D_API, D_NODE, D_DBG, D_EVIL, D_MIR (the digests seed.sh posted), UI_RUN_URL, CHROMIUM (default
chromium).
Exit 0 with the observations, 1 with the reason on stderr (and what was seen so far).
"""
import json
import os
import shutil
import sys

from cdp import Browser, CdpError

url, artifacts, work = sys.argv[1:4]
wait = float(os.environ.get("DM_WAIT", "60"))
chromium = shutil.which(os.environ.get("CHROMIUM", "chromium"))
if not chromium:
    sys.exit("explore.py: chromium is missing (scripts/deps.sh test installs it)")
os.makedirs(artifacts, exist_ok=True)
seen = {}


def js_list(selector, expr="e.textContent.trim()"):
    return f"[...document.querySelectorAll({json.dumps(selector)})].map((e) => {expr})"


def rendering(b):
    """The number of the view's latest rendering (app.js counts them in #view[data-render])."""
    return b.eval("Number(document.getElementById('view') && document.getElementById('view').dataset.render || 0)")


def settled(b, after, name, what):
    """Wait until a rendering later than `after` of the view `name` has finished (ready or
    error), and return its state: what is read next is of that rendering, never of the one
    before it (a hash set but not yet routed, a view cleared but not yet filled)."""
    return b.wait_for(f"(() => {{ const v = document.getElementById('view'); return Number(v.dataset.render) > {after}"
                      f" && v.dataset.view === {json.dumps(name)} && v.dataset.state !== 'loading' && v.dataset.state;"
                      f" }})()", what)


def search(b, kind, text, name, what):
    """Search as a user: pick the kind, type the text, press Enter; the state of the view it
    leads to."""
    n = rendering(b)
    b.eval(f"(() => {{ const s = document.getElementById('search-kind'); s.value = {json.dumps(kind)}; "
           f"s.dispatchEvent(new Event('change')); return true; }})()")
    b.type_into("#search-text", text)
    b.enter()
    return settled(b, n, name, what)


def rows(b):
    return b.eval(js_list("#exposure-table tbody tr", "e.dataset.workload"))


def aria_sort(b):
    return b.eval("Object.fromEntries([...document.querySelectorAll('#exposure-table th[data-sort]')]"
                  ".map((th) => [th.dataset.sort, th.getAttribute('aria-sort') || 'none']))")


def press_sort(b, key):
    """Sort with the keyboard: focus the header's button, press Enter, and wait until that
    header's aria-sort changed (every press changes it; the rows are drawn in the same step)."""
    before = aria_sort(b).get(key)
    b.eval(f"document.getElementById('sort-{key}').focus()")
    b.enter()
    b.wait_for(f"(document.querySelector('#exposure-table th[data-sort={key}]').getAttribute('aria-sort') || 'none')"
               f" !== {json.dumps(before)}", f"the table sorted by {key}")


def go(b, hash_, name, what):
    """Open a view by its address; the state of the rendering that follows."""
    n = rendering(b)
    b.eval(f"location.hash = {json.dumps(hash_)}; true")
    return settled(b, n, name, what)


def block(b, *patterns):
    """Fail the page's requests to URLs matching the patterns (none: every request passes)."""
    b.send("Network.setBlockedURLs", {"urls": list(patterns)})


def click_more(b, button):
    """Press a "More" button and wait until its request is over: the button enabled again or
    gone (the last page). Every page version both disables and then re-enables or removes it."""
    b.eval(f"document.getElementById({json.dumps(button)}).click()")
    b.wait_for(f"(() => {{ const m = document.getElementById({json.dumps(button)}); return !m || !m.disabled; }})()",
               f"the end of {button}'s request")


def fail_more(b, button):
    """Press a "More" button while its requests are blocked, and wait for the error it shows
    (a new #error: the one already there is marked first)."""
    b.eval("(() => { const e = document.getElementById('error'); if (e) e.dataset.old = '1'; "
           f"document.getElementById({json.dumps(button)}).click(); return true; }})()")
    b.wait_for("document.querySelector('#error:not([data-old])')", f"the error of a failed {button}")
    return b.eval(f"(() => {{ const m = document.getElementById({json.dumps(button)}); "
                  "return m ? (m.disabled ? 'disabled' : m.hidden ? 'hidden' : 'enabled') : 'gone'; })()")


def errors(b):
    return b.eval("document.querySelectorAll('[id=error]').length")


def builds(b):
    return b.eval(js_list(".col.builds .build-run",
                          "({tag: e.tagName, href: e.getAttribute('href'), text: e.textContent})"))


def walk(b):
    d_api, d_node, d_dbg, d_evil = (os.environ[k] for k in ("D_API", "D_NODE", "D_DBG", "D_EVIL"))
    d_mir = os.environ["D_MIR"]
    b.open_page()

    # 0. Before the modules run (app.js blocked: as if it failed or had not run yet): the
    # controls are disabled, and a native submit puts nothing into a URL.
    block(b, "*/ui/app.js")
    b.navigate(url)
    b.wait_for("document.readyState === 'complete' && document.getElementById('token-form')",
               "the page without its script")
    seen["preboot_controls"] = b.eval(js_list("form input, form select, form button",
                                              "(e.name ? 'named ' : '') + (e.disabled ? 'disabled' : 'enabled')"))
    b.type_into("#token-input", "api-token")
    b.enter()
    # However it was submitted, the form leads to a new document: wait for that one.
    b.eval("window.dmOld = true; document.getElementById('token-form').submit(); true")
    b.wait_for("!window.dmOld && document.readyState === 'complete'", "the native submit's answer")
    seen["preboot_answer"] = b.eval("location.pathname + location.search + ' ' + document.body.textContent.trim()")
    block(b)
    seen["preboot_console"], b.console = b.console, []
    b.navigate(url)
    settled(b, 0, "home", "the start view")
    seen["title"] = b.eval("document.title")

    # 1. No token yet: the API's 401 is shown as such.
    seen["no_token_state"] = search(b, "digest", d_api, "image", "the image view without a token")
    seen["no_token_error"] = b.eval("document.getElementById('error') && document.getElementById('error').textContent")
    seen["no_token_focus"] = b.eval("document.activeElement && document.activeElement.id")

    # 2. The token, typed and submitted with Enter: the same view again, now with data.
    n = rendering(b)
    b.type_into("#token-input", "api-token")
    b.enter()
    seen["image_state"] = settled(b, n, "image", "the image view")
    seen["token_in_storage"] = b.eval("sessionStorage.getItem('digestmap.api-token')")
    seen["token_input_after"] = b.eval("document.getElementById('token-input').value")
    seen["hash_image"] = b.eval("location.hash")
    seen["image_digest"] = b.eval("document.getElementById('image-digest').textContent")
    seen["locations"] = b.eval(js_list(".col.image .loc-name"))
    seen["tags"] = b.eval(js_list(".col.image .loc-tags"))
    seen["build_repos"] = b.eval(js_list(".col.builds .build-repo"))
    seen["build_commits"] = b.eval(js_list(".col.builds .build-commit"))
    seen["build_actors"] = b.eval(js_list(".col.builds .build-actor"))
    seen["build_runs"] = builds(b)
    seen["build_identity"] = b.eval(js_list(".col.builds .badge.asserted, .col.builds .badge.verified"))
    seen["severity"] = b.eval("Object.fromEntries([...document.querySelectorAll('.findings .sev-counts li')]"
                              ".map((li) => [li.dataset.sev, Number(li.querySelector('.n').textContent)]))")
    seen["worst"] = b.eval(js_list(".findings table.worst tbody tr", "e.children[1].textContent"))
    seen["workloads"] = b.eval(js_list(".col.workloads .workload",
                                       "e.dataset.workload + ' ' + e.querySelector('[data-exposure]').textContent"))
    b.screenshot(os.path.join(artifacts, "ui-image.png"))

    # 2b. An address with a malformed escape: an error on the page, not a blank one.
    seen["bad_escape_state"] = go(b, "#/image/%E0", "image", "an image address with a bad escape")
    seen["bad_escape_error"] = b.eval("document.getElementById('error').textContent")

    # 3. Data that looks like markup or a script URL stays text.
    seen["evil_state"] = search(b, "digest", d_evil, "image", "the hostile build")
    seen["evil_actors"] = b.eval(js_list(".col.builds .build-actor"))
    seen["evil_runs"] = builds(b)
    seen["injected_elements"] = b.eval("document.querySelectorAll('#pwned, #view img').length")

    # 4. A push no build has claimed: pending.
    seen["pending_state"] = search(b, "digest", d_node, "image", "the pending image")
    seen["pending_digest"] = b.eval("document.getElementById('image-digest').textContent")
    seen["pending_badges"] = b.eval(js_list(".col.image .card.pending .badge"))
    seen["pending_location"] = b.eval(js_list(".col.image .card.pending .loc-name"))
    seen["pending_builds"] = b.eval("document.querySelector('.col.builds').textContent")

    # 5. The exposure view, from the navigation link (keyboard: focus it, press Enter).
    n = rendering(b)
    b.eval("document.getElementById('nav-exposure').focus()")
    b.enter()
    seen["exposure_state"] = settled(b, n, "exposure", "the exposure view")
    seen["hash_exposure"] = b.eval("location.hash")
    seen["rows_api"] = rows(b)
    seen["aria_api"] = aria_sort(b)
    press_sort(b, "severity")
    seen["rows_severity"] = rows(b)
    seen["aria_severity"] = aria_sort(b)
    b.screenshot(os.path.join(artifacts, "ui-exposure.png"))
    press_sort(b, "exposure")
    seen["rows_exposure"] = rows(b)
    seen["aria_exposure"] = aria_sort(b)
    press_sort(b, "exposure")
    seen["rows_exposure_asc"] = rows(b)
    seen["aria_exposure_asc"] = aria_sort(b)
    seen["row_cells"] = b.eval(js_list("#exposure-table tbody tr",
                                       "e.dataset.workload + ' | ' + e.querySelector('[data-exposure]').textContent"
                                       " + ' | ' + e.querySelector('.sev-counts').getAttribute('aria-label')"
                                       " + ' | ' + e.children[4].textContent"))
    seen["row_links"] = b.eval(js_list("#exposure-table tbody tr .image-link", "e.getAttribute('href')"))

    # 6. A row's link opens its image view.
    n = rendering(b)
    b.eval(f"document.querySelector('#exposure-table tr[data-digest={json.dumps(d_dbg)}] .image-link').click()")
    seen["row_image_state"] = settled(b, n, "image", "the row's image")
    seen["row_image_digest"] = b.eval("document.getElementById('image-digest').textContent")
    seen["row_image_actor"] = b.eval(js_list(".col.builds .build-actor"))

    # 6b. The exposure table a row at a time (limit=1, findings at or above low): a "More" whose
    # round fails at the cluster level keeps and draws what the internet level brought, level
    # by level; the button works again, and a second failure replaces the first error.
    seen["paged_state"] = go(b, "#/exposure?exposure=all&min_severity=low&limit=1", "exposure",
                             "the exposure view a row at a time")
    seen["paged_rows"] = rows(b)
    block(b, "*exposure=cluster*cursor=*")
    seen["paged_more_failed"] = fail_more(b, "more-workloads")
    seen["paged_rows_failed"] = rows(b)
    seen["paged_more_failed2"] = fail_more(b, "more-workloads")
    seen["paged_rows_failed2"] = rows(b)
    seen["paged_errors"] = errors(b)
    block(b)

    # 7. The other searches: a run by its URL, a code repository, a registry repository.
    seen["run_state"] = search(b, "run", os.environ["UI_RUN_URL"], "search", "the run's mappings")
    seen["run_hash"] = b.eval("location.hash")
    seen["run_digests"] = b.eval(js_list("table.mappings tbody tr", "e.dataset.digest"))
    seen["repo_state"] = search(b, "repository", "acme/tools", "search", "the repository's mappings")
    seen["repo_digests"] = b.eval(js_list("table.mappings tbody tr", "e.dataset.digest"))
    seen["registry_state"] = search(b, "image", "contoso.azurecr.io/tools/debug:1.4.0", "search",
                                    "the registry repository's mappings")
    seen["registry_hash"] = b.eval("location.hash")
    seen["registry_digests"] = b.eval(js_list("table.mappings tbody tr", "e.dataset.digest"))

    # 8. A run whose index starts with more mappings gone than the page follows (10 empty
    # pages): "so far", and More looks further.
    seen["far_state"] = search(b, "run", "github/77", "search", "run 77's mappings")
    seen["far_status"] = b.eval("document.getElementById('mappings-status').textContent")
    seen["far_rows"] = b.eval(js_list("table.mappings tbody tr", "e.dataset.digest"))
    click_more(b, "more-mappings")
    seen["far_rows_more"] = b.eval(js_list("table.mappings tbody tr", "e.dataset.digest"))
    seen["far_more"] = b.eval("document.getElementById('more-mappings').hidden")

    # 9. Mappings a row at a time: a failed More can be pressed again.
    seen["mpaged_state"] = go(b, "#/search?repository=acme%2Fapi&limit=1", "search", "acme/api a row at a time")
    seen["mpaged_rows"] = b.eval("document.querySelectorAll('table.mappings tbody tr').length")
    block(b, "*cursor=*")
    seen["mpaged_more_failed"] = fail_more(b, "more-mappings")
    block(b)
    click_more(b, "more-mappings")
    seen["mpaged_rows_more"] = b.eval("document.querySelectorAll('table.mappings tbody tr').length")

    # 10. An image a mapping and 2 findings at a time: its delete; failed Mores that work
    # again; later pages that add a build's other location to its card and to the Image column.
    seen["mir_state"] = go(b, f"#/image/{d_mir}?limit=1&findings_limit=2", "image", "D_MIR a row at a time")
    seen["mir_deleted"] = b.eval(js_list(".col.image .card.deleted .loc-name"))
    seen["mir_deleted_note"] = b.eval(js_list(".col.image .card.deleted .note"))
    block(b, "*cursor=*")
    seen["mir_builds_failed"] = fail_more(b, "more-builds")
    seen["mir_findings_failed"] = fail_more(b, "more-findings")
    seen["mir_errors"] = errors(b)
    block(b)
    for _ in range(5):
        if not b.eval("!!document.getElementById('more-builds')"):
            break
        click_more(b, "more-builds")
    seen["mir_runs"] = b.eval(js_list(".col.builds .card.build", "e.dataset.run"))
    seen["mir_build_count"] = b.eval("document.querySelector('.col.builds h2 .count').textContent")
    seen["mir_locations"] = b.eval(js_list(".col.image .loc-name"))
    seen["mir_pushed_to"] = b.eval(js_list(".col.builds .card.build dt",
                                           "e.textContent === 'Pushed to' ? e.nextElementSibling.textContent : null"))
    click_more(b, "more-findings")
    seen["mir_findings"] = b.eval("document.querySelectorAll('.findings table.worst tbody tr').length")

    # Nothing of the token outside the tab's sessionStorage.
    seen["local_storage"] = b.eval("localStorage.length")
    seen["cookie"] = b.eval("document.cookie")


b = Browser(chromium, work, wait)
rc = 0
try:
    walk(b)
except (CdpError, OSError, KeyError) as e:
    print(f"explore.py: {e}", file=sys.stderr)
    try:
        print("explore.py: the view then: " + str(b.eval("location.hash + ' ' + document.getElementById('view')"
                                                      ".outerHTML.slice(0, 2000)")), file=sys.stderr)
    except (CdpError, OSError):
        pass
    rc = 1
finally:
    seen["requests"] = b.requests
    seen["console_errors"] = b.console
    b.close()
print(json.dumps(seen, indent=1))
sys.exit(rc)
