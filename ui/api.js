// api.js - the query API (README.md "Query API") with the token the user typed. The token
// lives in sessionStorage: this tab only, gone when it closes, never in a URL or a cookie.

const KEY = 'digestmap.api-token';

export function getToken() {
  try {
    return sessionStorage.getItem(KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(t) {
  sessionStorage.setItem(KEY, t);
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

// A header value carries visible ASCII only.
export function tokenValid(t) {
  return /^[\x21-\x7e]{1,4096}$/.test(t);
}

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// The daemon's root as this page sees it: /ui/ is beside /v1/, behind a proxy's prefix too.
function apiBase() {
  return location.pathname.replace(/ui\/[^/]*$/, '');
}

// GET an API path ("v1/images/…") with query @p params; the parsed JSON answer, or an
// ApiError carrying the status and the API's {"error"} text (and the body, for 404s that
// still answer a document).
export async function apiGet(path, params) {
  const url = new URL(apiBase() + path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
  }
  const headers = {Accept: 'application/json'};
  const token = getToken();
  if (token) headers.Authorization = 'Bearer ' + token;
  let res;
  try {
    res = await fetch(url, {headers, cache: 'no-store', credentials: 'omit', redirect: 'error'});
  } catch (e) {
    throw new ApiError(0, `the daemon did not answer (${e.message})`, null);
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    const text = body && typeof body.error === 'string' ? body.error : res.statusText;
    throw new ApiError(res.status, text, body);
  }
  return body;
}
