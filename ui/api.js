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

// How many pages one step follows while they come back empty (nextPage).
export const FOLLOW_EMPTY = 10;

// The next page that has items. The API examines a bounded number of index entries per call
// (README.md "Query API"), so a page may be empty and still carry a next_cursor: that is not
// the end. ask(cursor) fetches a page, items(answer) its list. Follows at most FOLLOW_EMPTY
// pages from at.cursor, moving at.cursor past each empty one (a failed request then resumes
// there, not from the start); returns the last answer, which is empty with a next_cursor when
// the cap was reached. The caller moves at.cursor to the answer's next_cursor.
export async function nextPage(ask, at, items) {
  for (let n = 1; ; n++) {
    const answer = await ask(at.cursor);
    if ((items(answer) || []).length || !answer.next_cursor || n >= FOLLOW_EMPTY) return answer;
    at.cursor = answer.next_cursor;
  }
}
