// app.js - the explorer page (docs/ui.md): the token, the search form and the hash routes
//   #/                              start
//   #/image/sha256:<hex>[?limit=…&findings_limit=…]                 the chain of one image (image.js)
//   #/search?repository=… | run=… | registry=…&image_repository=…   mappings (mappings.js)
//   #/exposure?exposure=…&min_severity=…                            the exposure table (exposure.js)
// (limit=… sets a view's page size.)
// Views are links: the hash is the whole state, so a view can be bookmarked and shared
// (without the token, which stays in this tab's sessionStorage).
import {ApiError, forgetToken, getToken, setToken, tokenValid} from './api.js';
import {clear, h, httpUrl} from './dom.js';
import {DIGEST_RE} from './format.js';
import {exposureView} from './exposure.js';
import {imageView} from './image.js';
import {mappingsView} from './mappings.js';

const $ = (id) => document.getElementById(id);

const HINTS = {
  digest: ['sha256:…', 'The image digest: sha256: and 64 hex digits (a name@sha256:… reference works too).'],
  repository: ['acme/api', 'The code repository as the build events name it (e.g. acme/api), or its URL.'],
  run: ['github/9876543210', 'provider/run id (github, gitlab, azure-devops, generic), or the run\'s URL.'],
  image: ['contoso.azurecr.io/team/api', 'Registry host and repository path (a :tag or @digest is ignored).'],
};

// A CI run's URL as provider/run id: GitHub Actions, GitLab pipelines, Azure Pipelines.
function runFromUrl(href) {
  const u = new URL(href);
  let m = /\/actions\/runs\/(\d+)/.exec(u.pathname);
  if (m) return `github/${m[1]}`;
  m = /\/-\/pipelines\/(\d+)/.exec(u.pathname);
  if (m) return `gitlab/${m[1]}`;
  const id = u.searchParams.get('buildId');
  if (id && /^\d+$/.test(id)) return `azure-devops/${id}`;
  return null;
}

// The route a search asks for: {hash} or {error}.
export function searchRoute(kind, text) {
  const t = text.trim();
  if (!t) return {error: 'Type what to search for.'};
  if (kind === 'digest') {
    let d = t.includes('@') ? t.slice(t.lastIndexOf('@') + 1) : t;
    if (/^[0-9a-f]{64}$/.test(d)) d = 'sha256:' + d;
    if (!DIGEST_RE.test(d)) return {error: 'A digest is sha256: followed by 64 lowercase hex digits.'};
    return {hash: `#/image/${d}`};
  }
  if (kind === 'repository') {
    let repo = t;
    if (httpUrl(t)) repo = new URL(t).pathname.replace(/^\/+|\/+$/g, '').replace(/\.git$/, '');
    return repo ? {hash: `#/search?${new URLSearchParams({repository: repo})}`} : {error: 'No repository in that URL.'};
  }
  if (kind === 'run') {
    let run = null;
    if (/^(github|gitlab|azure-devops|generic)\/[^/\s]+$/.test(t)) run = t;
    else if (httpUrl(t)) run = runFromUrl(t);
    if (!run) return {error: 'A run is provider/run id, e.g. github/9876543210, or the URL of a GitHub Actions run, a GitLab pipeline or an Azure Pipelines build.'};
    return {hash: `#/search?${new URLSearchParams({run})}`};
  }
  const ref = t.replace(/^[a-z]+:\/\//, '').replace(/@.*$/, '').replace(/:[^/]*$/, '');
  const slash = ref.indexOf('/');
  if (slash <= 0 || slash === ref.length - 1) return {error: 'A registry repository is host/path, e.g. contoso.azurecr.io/team/api.'};
  return {hash: `#/search?${new URLSearchParams({registry: ref.slice(0, slash), image_repository: ref.slice(slash + 1)})}`};
}

function parseHash() {
  const raw = (location.hash || '#/').slice(1);
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  return {path: path || '/', params: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1))};
}

function showTokenState() {
  $('token-state').textContent = getToken() ? 'Token set for this tab.' : 'No token yet.';
}

// An error as the page shows it: what the API said, and what to do about it.
function errorBox(e) {
  if (!(e instanceof ApiError)) {
    return h('div', {class: 'error', role: 'alert', id: 'error'}, h('strong', null, 'The page failed: '), String(e && e.message || e));
  }
  const said = [h('strong', null, e.status ? `The API answered ${e.status}: ` : 'No answer: '), `“${e.message}”. `];
  let advice = '';
  if (e.status === 401) {
    advice = getToken()
      ? 'The token was refused. Enter the token of the daemon\'s api.auth above. A daemon without api.auth answers 401 to every query: configure api.auth (configs/README.md).'
      : 'The query API needs a token: enter the token of the daemon\'s api.auth above.';
  } else if (e.status === 403) {
    advice = 'The token is valid but api.auth does not allow it.';
  } else if (e.status === 503 || e.status === 0) {
    advice = 'The daemon or its storage is unavailable: retry in a moment.';
  }
  return h('div', {class: 'error', role: 'alert', id: 'error', dataset: {status: String(e.status)}}, said, advice);
}

// The view's error, replacing the one it showed before: one #error at a time.
function showError(view, box, first) {
  const old = view.querySelector('#error');
  if (old) old.remove();
  if (first) view.prepend(box);
  else view.append(box);
}

let generation = 0;
let focusMain = false;

async function render() {
  const gen = ++generation;
  const view = $('view');
  clear(view);
  const {path, params} = parseHash();
  let name = 'home';
  let run = homeView;
  const image = /^\/image\/(.+)$/.exec(path);
  if (image) {
    name = 'image';
    let digest = null;
    try {
      digest = decodeURIComponent(image[1]);
    } catch {
      // a malformed escape (#/image/%E0): said on the page, not an unhandled rejection
    }
    if (digest === null) {
      run = (ctx) => ctx.fail(`Not a digest: “${image[1]}” is not valid percent-encoding.`);
    } else {
      run = (ctx) => imageView(ctx, digest, params);
      syncSearch('digest', digest);
    }
  } else if (path === '/search') {
    name = 'search';
    run = (ctx) => mappingsView(ctx, params);
    if (params.get('repository')) syncSearch('repository', params.get('repository'));
    else if (params.get('run')) syncSearch('run', params.get('run'));
    else if (params.get('registry')) syncSearch('image', `${params.get('registry')}/${params.get('image_repository') || ''}`);
  } else if (path === '/exposure') {
    name = 'exposure';
    run = (ctx) => exposureView(ctx, params);
  } else if (path !== '/') {
    name = 'unknown';
    run = (ctx) => ctx.fail(`No such view: ${path}`);
  }
  for (const [id, on] of [['nav-search', name !== 'exposure'], ['nav-exposure', name === 'exposure']]) {
    if (on) $(id).setAttribute('aria-current', 'page');
    else $(id).removeAttribute('aria-current');
  }
  view.dataset.view = name;
  view.dataset.render = String(gen); // which rendering the state below is of
  view.dataset.state = 'loading';
  view.setAttribute('aria-busy', 'true');
  $('busy').hidden = false;
  const ctx = {
    view,
    current: () => gen === generation,
    title: (t) => { document.title = `${t} · digestmap explorer`; },
    go: (hash) => { if (location.hash === hash) render(); else location.hash = hash; },
    fail: (text) => {
      showError(view, h('div', {class: 'error', role: 'alert', id: 'error'}, text));
      view.dataset.state = 'error';
    },
    // A later request of the view (a "more" button): its answer, or null with the error shown
    // (in place of an earlier one).
    guard: async (p) => {
      try {
        return await p;
      } catch (e) {
        if (gen === generation) showError(view, errorBox(e), true);
        return null;
      }
    },
  };
  try {
    await run(ctx);
    if (gen !== generation) return;
    if (view.dataset.state === 'loading') view.dataset.state = 'ready';
  } catch (e) {
    if (gen !== generation) return;
    showError(view, errorBox(e));
    view.dataset.state = 'error';
    if (e instanceof ApiError && e.status === 401) {
      focusMain = false;
      $('token-input').focus();
    }
  } finally {
    if (gen === generation) {
      view.removeAttribute('aria-busy');
      $('busy').hidden = true;
    }
  }
  if (focusMain && gen === generation) {
    focusMain = false;
    $('main').focus({preventScroll: true});
  }
}

function homeView(ctx) {
  ctx.title('Search');
  ctx.view.append(
    h('h1', null, 'From code to cloud, by image digest'),
    h('p', null, 'Search above for an image digest, a code repository, a CI run or a registry repository, ',
      'or open the ', h('a', {href: '#/exposure'}, 'exposure view'),
      ': the workloads exposed to the internet, to nodes or in the cluster that run images with findings, ',
      'and the builds those images came from.'),
    getToken() ? null : h('p', {class: 'notice'}, 'Enter the API token (the daemon\'s api.auth) first: it is kept in this tab only.'));
}

function syncSearch(kind, value) {
  $('search-kind').value = kind;
  $('search-text').value = value;
  showHint();
}

function showHint() {
  const [placeholder, hint] = HINTS[$('search-kind').value] || HINTS.digest;
  $('search-text').placeholder = placeholder;
  $('search-hint').textContent = hint;
  $('search-hint').classList.remove('invalid');
}

function boot() {
  // index.html ships the forms disabled: before this runs (or if it never does) nothing can be
  // typed into them or submitted natively.
  for (const form of [$('token-form'), $('search-form')]) {
    for (const el of form.elements) el.disabled = false;
  }
  showTokenState();
  showHint();
  // The skip link moves the focus; as a plain #main link it would be taken for a route.
  document.querySelector('.skip').addEventListener('click', (ev) => {
    ev.preventDefault();
    $('main').focus();
  });
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('token-input').value.trim().replace(/^Bearer\s+/i, '');
    if (!tokenValid(t)) {
      $('token-state').textContent = 'A token is visible ASCII characters, without spaces.';
      return;
    }
    setToken(t);
    $('token-input').value = '';
    showTokenState();
    focusMain = true;
    render();
  });
  $('token-forget').addEventListener('click', () => {
    forgetToken();
    showTokenState();
    render();
  });
  $('search-kind').addEventListener('change', showHint);
  $('search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const r = searchRoute($('search-kind').value, $('search-text').value);
    if (r.error) {
      $('search-hint').textContent = r.error;
      $('search-hint').classList.add('invalid');
      $('search-text').setAttribute('aria-invalid', 'true');
      return;
    }
    $('search-text').removeAttribute('aria-invalid');
    focusMain = true;
    if (location.hash === r.hash) render();
    else location.hash = r.hash;
  });
  window.addEventListener('hashchange', render);
  render();
}

boot();
