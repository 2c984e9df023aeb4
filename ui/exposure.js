// exposure.js - the exposure view (#/exposure?exposure=…&min_severity=…): GET /v1/exposure as
// a table of (workload, image) rows, sortable by severity and by exposure, each row linking
// to its image view. "all" asks the API for each level and shows them together, level by level
// (internet, then node, then cluster). `limit` in the address sets the page size.
import {apiGet, nextPage} from './api.js';
import {h} from './dom.js';
import {EXPOSURES, SEVERITIES, bySeverity, exposureRank, pageSize, shortCommit, shortDigest,
        workloadKey} from './format.js';
import {exposureBadge, severityCounts} from './image.js';

const PAGE = 100;

function rowsOf(answer) {
  const rows = [];
  for (const w of answer.workloads || []) {
    for (const img of w.images || []) rows.push({w, img});
  }
  return rows;
}

function builtBy(img) {
  const maps = img.mappings || [];
  if (maps.length === 0) {
    return h('span', {class: 'unmatched'}, 'no build known');
  }
  const b = maps[0].build || {};
  return h('span', {class: 'built-by'},
    h('span', {class: 'build-repo'}, b.repository || '?'),
    ' @ ', h('span', {class: 'build-commit mono', title: b.commit || ''}, shortCommit(b.commit)),
    ' by ', h('span', {class: 'build-actor'}, b.actor || '?'),
    maps.length > 1 ? h('span', {class: 'more-builds'}, ` (+${maps.length - 1} more)`) : null);
}

function where(img) {
  const m = (img.mappings || [])[0];
  if (!m || !m.image) return null;
  const tags = (m.image.tags || []).join(', ');
  return h('span', {class: 'sub'}, `${m.image.registry}/${m.image.repository}${tags ? ':' + tags : ''}`);
}

function row({w, img}) {
  const key = workloadKey(w);
  return h('tr', {dataset: {workload: key, digest: img.digest, exposure: w.exposure}},
    h('th', {scope: 'row'},
      h('span', {class: 'wl-name'}, `${w.kind} ${w.name}`),
      h('span', {class: 'sub'}, `${w.cluster} / ${w.namespace}`)),
    h('td', null, exposureBadge(w.exposure)),
    h('td', null, h('a', {class: 'mono image-link', href: `#/image/${img.digest}`,
                          'aria-label': `image ${img.digest} of ${key}`}, shortDigest(img.digest)),
      where(img)),
    h('td', null, severityCounts((img.findings || {}).summary, true)),
    h('td', null, builtBy(img)));
}

const SORTS = {
  severity: (a, b) => bySeverity(a.img.findings && a.img.findings.summary, b.img.findings && b.img.findings.summary),
  exposure: (a, b) => exposureRank(a.w.exposure) - exposureRank(b.w.exposure),
};

function select(id, label, name, options, value) {
  return [h('label', {for: id}, label),
    h('select', {id, name}, options.map(([v, text]) => h('option', {value: v, selected: v === value}, text)))];
}

export async function exposureView(ctx, params) {
  const level = ['all', ...EXPOSURES].includes(params.get('exposure')) ? params.get('exposure') : 'all';
  const minSev = SEVERITIES.includes(params.get('min_severity')) ? params.get('min_severity') : 'high';
  const limit = pageSize(params.get('limit'), PAGE);
  ctx.title('Exposure');
  const view = ctx.view;
  const form = h('form', {class: 'filters', id: 'exposure-filters', method: 'post'},
    select('exposure-level', 'Exposure', 'exposure',
      [['all', 'all levels'], ['internet', 'internet'], ['node', 'node'], ['cluster', 'cluster']], level),
    select('exposure-min', 'Findings at or above', 'min_severity',
      SEVERITIES.map((s) => [s, s === 'unknown' ? 'any severity' : s]), minSev),
    h('button', {type: 'submit'}, 'Show'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({exposure: form.elements.exposure.value,
                                   min_severity: form.elements.min_severity.value});
    if (params.get('limit')) q.set('limit', String(limit));
    ctx.go(`#/exposure?${q}`);
  });
  view.append(h('h1', null, 'Exposed workloads running vulnerable images'), form);

  const levels = level === 'all' ? EXPOSURES : [level];
  // Per level: where its walk stands (gone once the level is exhausted), and its rows so far.
  const cursors = new Map(levels.map((l) => [l, {cursor: null}]));
  const byLevel = new Map(levels.map((l) => [l, []]));
  let rows = [];
  let sort = null; // {key, dir}: dir 1 ascending, -1 descending

  const tbody = h('tbody');
  const headers = {};
  const sortButton = (key, label) => {
    const th = h('th', {scope: 'col', class: 'sortable', dataset: {sort: key}});
    const btn = h('button', {type: 'button', class: 'sort', id: `sort-${key}`,
                             onclick: () => {
                               // Most severe / most exposed first, then the other way round.
                               const dir = sort && sort.key === key ? -sort.dir : -1;
                               sort = {key, dir};
                               draw();
                             }},
      label, h('span', {class: 'sort-mark', 'aria-hidden': 'true'}, '↕'));
    th.append(btn);
    headers[key] = th;
    return th;
  };
  const status = h('p', {class: 'result-count', role: 'status', id: 'exposure-count'});
  const table = h('table', {class: 'exposure', id: 'exposure-table'},
    h('caption', null, `Workloads at ${level === 'all' ? 'every exposure level' : `exposure "${level}"`}`,
      ` with images that have findings at or above ${minSev}. Sort by a column's button.`),
    h('thead', null, h('tr', null,
      h('th', {scope: 'col'}, 'Workload'),
      sortButton('exposure', 'Exposure'),
      h('th', {scope: 'col'}, 'Image'),
      sortButton('severity', 'Findings'),
      h('th', {scope: 'col'}, 'Built by'))),
    tbody);
  const more = h('button', {type: 'button', class: 'more', id: 'more-workloads', hidden: true,
                            onclick: () => load(false)},
    'More workloads');
  view.append(status, table, more);

  function draw() {
    const shown = rows.map((r, i) => ({r, i}));
    if (sort) {
      const cmp = SORTS[sort.key];
      // Descending means "most first"; ties keep the API's order.
      shown.sort((a, b) => (sort.dir < 0 ? cmp(a.r, b.r) : -cmp(a.r, b.r)) || a.i - b.i);
    }
    tbody.replaceChildren(...shown.map(({r}) => row(r)));
    for (const [key, th] of Object.entries(headers)) {
      if (sort && sort.key === key) th.setAttribute('aria-sort', sort.dir < 0 ? 'descending' : 'ascending');
      else th.removeAttribute('aria-sort');
      th.querySelector('.sort-mark').textContent = sort && sort.key === key ? (sort.dir < 0 ? '▼' : '▲') : '↕';
    }
    const workloads = new Set(rows.map((r) => workloadKey(r.w))).size;
    if (rows.length) {
      status.textContent = `${rows.length} image${rows.length === 1 ? '' : 's'} in ${workloads} workload(s)` +
        `${cursors.size ? ' so far' : ''}.`;
    } else if (cursors.size) {
      status.textContent = 'None found so far: the API looked through part of its index without an exposed ' +
        'workload running an image with findings at or above this severity. More workloads looks further.';
    } else {
      status.textContent = 'No exposed workload runs an image with findings at or above this severity.';
    }
  }

  // The first page of each level (an error fails the view), or the next ones (an error is shown
  // above the table; the rows already fetched, this round's too, stay and are drawn, and the
  // button can be pressed again). Empty pages that still carry a cursor are followed (nextPage).
  async function load(first) {
    more.disabled = true;
    for (const l of levels) {
      const at = cursors.get(l);
      if (!at) continue;
      const page = nextPage((cursor) => apiGet('v1/exposure', {exposure: l, min_severity: minSev, limit, cursor}),
                            at, (answer) => answer.workloads);
      const answer = first ? await page : await ctx.guard(page);
      if (!answer) break;
      byLevel.get(l).push(...rowsOf(answer));
      if (answer.next_cursor) at.cursor = answer.next_cursor;
      else cursors.delete(l);
    }
    // Level by level, each in the API's order, however many rounds brought them.
    rows = levels.flatMap((l) => byLevel.get(l));
    more.disabled = false;
    more.hidden = cursors.size === 0;
    draw();
  }

  await load(true);
}
