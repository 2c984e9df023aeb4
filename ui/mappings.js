// mappings.js - search results (#/search?repository=… | run=… | registry=…&image_repository=…):
// GET /v1/mappings, newest first, each mapping linking to its image view.
import {apiGet} from './api.js';
import {h, outLink} from './dom.js';
import {providerName, shortCommit, shortDigest, when} from './format.js';
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
  const title = describe(params);
  ctx.title(title);
  const first = await apiGet('v1/mappings', {...query, limit: PAGE});
  if (!ctx.current()) return;
  const tbody = h('tbody', null, first.mappings.map(row));
  const view = ctx.view;
  view.append(h('h1', null, title));
  if (first.mappings.length === 0) {
    view.append(h('p', {class: 'notice', role: 'status'},
      'No confirmed mapping matches. Pushes still waiting for their build are not indexed here: ',
      'search their digest to see them pending.'));
    return;
  }
  view.append(h('table', {class: 'mappings'},
    h('caption', null, 'Confirmed mappings, newest first'),
    h('thead', null, h('tr', null, ['Image', 'Registry repository', 'Run', 'Code', 'Actor', 'Identity', 'Confirmed']
      .map((t) => h('th', {scope: 'col'}, t)))),
    tbody));
  let cursor = first.next_cursor;
  if (cursor) {
    const more = h('button', {type: 'button', class: 'more', onclick: async () => {
      more.disabled = true;
      const next = await ctx.guard(apiGet('v1/mappings', {...query, limit: PAGE, cursor}));
      if (!next) return;
      for (const m of next.mappings) tbody.append(row(m));
      cursor = next.next_cursor;
      more.disabled = false;
      if (!cursor) more.remove();
    }}, 'More mappings');
    view.append(more);
  }
}
