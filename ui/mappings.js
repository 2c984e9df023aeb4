// mappings.js - search results (#/search?repository=… | run=… | registry=…&image_repository=…):
// GET /v1/mappings, newest first, each mapping linking to its image view. `limit` in the address
// sets the page size.
import {FOLLOW_EMPTY, apiGet, nextPage} from './api.js';
import {h, outLink} from './dom.js';
import {pageSize, providerName, shortCommit, shortDigest, when} from './format.js';
import {runLabel} from './image.js';

const PAGE = 50;

export function describe(params) {
  if (params.get('repository')) return `Images built from code repository ${params.get('repository')}`;
  if (params.get('run')) return `Images built by run ${params.get('run')}`;
  return `Images pushed to ${params.get('registry')}/${params.get('image_repository')}`;
}

function row(m) {
  const i = m.image || {};
  const b = m.build || {};
  return h('tr', {dataset: {digest: m.digest}},
    h('td', null, h('a', {class: 'mono image-link', href: `#/image/${m.digest}`}, shortDigest(m.digest)),
      m.relation === 'platform-manifest' ? h('span', {class: 'sub'}, 'platform manifest') : null),
    h('td', null, `${i.registry}/${i.repository}`,
      h('span', {class: 'sub'}, (i.tags || []).length ? i.tags.join(', ') : '(untagged)')),
    h('td', null, h('span', {class: 'provider'}, providerName(b.provider)), ' ',
      outLink(b.run_url, runLabel(b), 'build-run')),
    h('td', null, h('span', {class: 'build-repo'}, b.repository || '?'), ' @ ',
      h('span', {class: 'build-commit mono', title: b.commit || ''}, shortCommit(b.commit))),
    h('td', {class: 'build-actor'}, b.actor || ''),
    h('td', null, h('span', {class: b.verified ? 'badge verified' : 'badge asserted'},
      b.verified ? 'verified' : 'asserted')),
    h('td', null, when(m.confirmed_at || i.pushed_at)));
}

export async function mappingsView(ctx, params) {
  const query = {};
  for (const k of ['repository', 'run', 'registry', 'image_repository']) {
    if (params.get(k)) query[k] = params.get(k);
  }
  const limit = pageSize(params.get('limit'), PAGE);
  const title = describe(params);
  ctx.title(title);
  const at = {cursor: null};
  const ask = (cursor) => apiGet('v1/mappings', {...query, limit, cursor});
  const items = (answer) => answer.mappings;
  const first = await nextPage(ask, at, items);
  if (!ctx.current()) return;
  const view = ctx.view;
  const tbody = h('tbody');
  const table = h('table', {class: 'mappings', hidden: true},
    h('caption', null, 'Confirmed mappings, newest first'),
    h('thead', null, h('tr', null, ['Image', 'Registry repository', 'Run', 'Code', 'Actor', 'Identity', 'Confirmed']
      .map((t) => h('th', {scope: 'col'}, t)))),
    tbody);
  const status = h('p', {class: 'notice', role: 'status', id: 'mappings-status'});
  const more = h('button', {type: 'button', class: 'more', id: 'more-mappings', onclick: async () => {
    more.disabled = true;
    const next = await ctx.guard(nextPage(ask, at, items));
    more.disabled = false; // a failed request may be tried again
    if (next) show(next);
  }}, 'More mappings');
  view.append(h('h1', null, title), status, table, more);

  function show(answer) {
    for (const m of answer.mappings) tbody.append(row(m));
    at.cursor = answer.next_cursor || null;
    const none = tbody.rows.length === 0;
    table.hidden = none;
    more.hidden = !at.cursor;
    status.hidden = !none;
    if (!none) status.textContent = '';
    else if (at.cursor) {
      status.textContent = 'No confirmed mapping found so far: the API looked through part of its index ' +
        `(${FOLLOW_EMPTY} pages) without one. More mappings looks further.`;
    } else {
      status.textContent = 'No confirmed mapping matches. Pushes still waiting for their build are not ' +
        'indexed here: search their digest to see them pending.';
    }
  }
  show(first);
}
