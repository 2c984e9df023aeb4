// image.js - the image view (#/image/<digest>): the chain workloads → image → builds, and the
// findings, from GET /v1/images/<digest>.
import {ApiError, apiGet} from './api.js';
import {fields, h, outLink} from './dom.js';
import {DIGEST_RE, SEVERITIES, buildKey, count, pageSize, providerName, shortCommit, shortDigest,
        summaryText, when, workloadKey} from './format.js';

// The worst findings first, then more per "More findings" (docs/ui.md).
const FINDINGS_FIRST = 10;
const FINDINGS_MORE = 50;

export function exposureBadge(level) {
  return h('span', {class: `badge exp exp-${level}`, dataset: {exposure: level}}, level);
}

export function severityCounts(summary, compact) {
  const ul = h('ul', {class: compact ? 'sev-counts compact' : 'sev-counts',
                      'aria-label': `findings: ${summaryText(summary)}`});
  for (const s of SEVERITIES) {
    const n = count(summary, s);
    ul.append(h('li', {class: `sev sev-${s}${n ? '' : ' zero'}`, dataset: {sev: s}},
                h('span', {class: 'n'}, n), h('span', {class: 'label'}, compact ? s[0].toUpperCase() : s)));
  }
  return ul;
}

function identityBadge(b) {
  return b.verified
    ? h('span', {class: 'badge verified', title: `identity proven by an OIDC token of ${b.issuer || 'its issuer'}`},
        'verified')
    : h('span', {class: 'badge asserted',
                 title: 'identity as the request body said, under a shared secret: not proven by a token'},
        'asserted');
}

export function runLabel(b) {
  const attempt = b.run_attempt && b.run_attempt !== '1' ? ` (attempt ${b.run_attempt})` : '';
  return `run ${b.run_id}${attempt}`;
}

// A build's card: where it ran (run link), what it built from, who ran it.
function buildCard(b, extra) {
  const code = b.repository || b.commit
    ? [outLink(b.repository_url, b.repository || '?', 'build-repo'),
       b.commit ? [' @ ', h('span', {class: 'build-commit mono', title: b.commit}, shortCommit(b.commit))] : null,
       b.ref ? h('span', {class: 'ref'}, ` ${b.ref}`) : null]
    : null;
  return h('article', {class: 'card build' + (extra.pending ? ' pending' : ''),
                       dataset: {run: buildKey(b)}},
    h('header', null,
      h('span', {class: 'provider'}, providerName(b.provider)),
      ' ',
      outLink(b.run_url, runLabel(b), 'build-run'),
      ' ',
      identityBadge(b),
      extra.pending ? h('span', {class: 'badge state-pending'}, 'pending') : null),
    fields([
      ['Code', code],
      ['Actor', b.actor, 'build-actor'],
      ['Workflow', b.workflow],
      ['Built', when(extra.built_at || b.built_at)],
      ['Pushed to', extra.locations && extra.locations.length > 1 ? extra.locations.join(', ') : null],
    ]),
    extra.note ? h('p', {class: 'note'}, extra.note) : null);
}

function locationCard(loc) {
  const tags = loc.tags.length ? loc.tags.join(', ') : '(untagged)';
  return h('article', {class: 'card location' + (loc.state ? ` ${loc.state}` : '')},
    h('header', null,
      h('span', {class: 'loc-name'}, `${loc.registry}/${loc.repository}`),
      loc.state ? h('span', {class: `badge state-${loc.state}`}, loc.state) : null),
    fields([
      ['Tags', tags, 'loc-tags'],
      ['Pushed', when(loc.pushed_at)],
      ['Source', loc.source],
    ]),
    loc.note ? h('p', {class: 'note'}, loc.note) : null);
}

function workloadCard(w, digest) {
  const others = (w.images || []).filter((d) => d !== digest);
  return h('article', {class: 'card workload', dataset: {workload: workloadKey(w)}},
    h('header', null,
      h('span', {class: 'wl-name'}, `${w.kind} ${w.name}`), ' ', exposureBadge(w.exposure)),
    fields([
      ['Namespace', w.namespace],
      ['Cluster', w.cluster],
      ['Also runs', others.length ? others.map((d, i) => [i ? ', ' : '', h('a', {href: `#/image/${d}`}, shortDigest(d))]) : null],
    ]));
}

// What the mappings say, over every page of them: each registry location (tags merged) and
// each build (one card for a build pushed to several locations: one mapping each).
function newChain() {
  return {locs: new Map(), builds: new Map(), mappings: 0};
}

function addMappings(chain, mappings) {
  for (const m of mappings || []) {
    chain.mappings++;
    const i = m.image || {};
    const where = `${i.registry}/${i.repository}`;
    const loc = chain.locs.get(where) || {registry: i.registry, repository: i.repository, tags: [],
                                          pushed_at: i.pushed_at, source: i.source};
    for (const t of i.tags || []) if (!loc.tags.includes(t)) loc.tags.push(t);
    chain.locs.set(where, loc);
    const b = m.build || {};
    const key = buildKey(b);
    const entry = chain.builds.get(key) || {b, locations: [], note: null};
    if (!entry.locations.includes(where)) entry.locations.push(where);
    if (m.relation === 'platform-manifest' && m.index) entry.note = `Platform manifest of index ${m.index}.`;
    chain.builds.set(key, entry);
  }
}

// The Image column's cards: the confirmed locations, then pushes still waiting for their
// build, then deletes (stored as {"digest", "image": {registry, repository, source, event_id,
// deleted_at}}).
function locationCards(chain, doc) {
  const out = [...chain.locs.values()];
  for (const p of (doc.pending && doc.pending.registry) || []) {
    if (p.matched) continue;
    out.push({registry: p.registry, repository: p.repository, tags: p.tags || [], pushed_at: p.pushed_at,
              source: p.source, state: 'pending',
              note: `Pushed, no build yet: reported unmatched if none arrives by ${when(p.expires_at)}.`});
  }
  for (const d of doc.deleted || []) {
    const i = d.image || {};
    out.push({registry: i.registry, repository: i.repository, tags: [], source: i.source, state: 'deleted',
              note: `Deleted ${when(i.deleted_at)}.`});
  }
  return out.map(locationCard);
}

// The Builds column's cards: the confirmed builds, then builds not yet seen in a registry.
function buildCards(chain, doc) {
  const cards = [...chain.builds.values()].map((e) => buildCard(e.b, {locations: e.locations, note: e.note}));
  for (const p of (doc.pending && doc.pending.build) || []) {
    if (p.matched) continue;
    cards.push(buildCard(p.build || {}, {pending: true, built_at: p.built_at,
      note: `Built, not yet seen in a registry: reported unmatched if no push arrives by ${when(p.expires_at)}.`}));
  }
  return cards;
}

function column(title, cls, cards, empty) {
  return fill(h('section', {class: `col ${cls}`, 'aria-label': title}), title, cards, empty);
}

// (Re)draw a column: its title with the count, then its cards (or what it says without any),
// then @p after (a More button).
function fill(col, title, cards, empty, after) {
  col.replaceChildren(h('h2', null, title, h('span', {class: 'count'}, String(cards.length))),
    ...(cards.length ? cards : [h('p', {class: 'empty'}, empty)]), ...(after ? [after] : []));
  return col;
}

function arrow(label) {
  return h('div', {class: 'arrow', 'aria-hidden': 'true'}, h('span', null, label), h('span', {class: 'head'}, '→'));
}

function findingRow(f) {
  return h('tr', {dataset: {sev: f.severity}},
    h('td', null, h('span', {class: `badge sev-${f.severity}`}, f.severity)),
    h('td', {class: 'mono'}, f.id),
    h('td', null, f.package),
    h('td', {class: 'mono'}, f.installed || ''),
    h('td', {class: 'mono'}, f.fixed || '—'),
    h('td', null, f.status || ''),
    h('td', null, f.scanner || ''));
}

// @p perMore: findings per "More findings".
function findingsSection(ctx, digest, findings, perMore) {
  const summary = findings.summary || {};
  const scanners = Object.entries(summary.by_scanner || {});
  const sec = h('section', {class: 'findings', 'aria-labelledby': 'findings-title'},
    h('h2', {id: 'findings-title'}, 'Findings'),
    severityCounts(summary, false),
    scanners.length
      ? h('p', {class: 'scanners'}, 'By scanner: ',
          scanners.map(([name, s], i) => [i ? '; ' : '', h('strong', null, name), `: ${summaryText(s)}`]))
      : null);
  if (!findings.items || findings.items.length === 0) {
    sec.append(h('p', {class: 'empty'}, 'No scanner has reported findings for this digest.'));
    return sec;
  }
  const tbody = h('tbody', null, findings.items.map(findingRow));
  sec.append(h('table', {class: 'worst'},
    h('caption', null, 'Worst findings, most severe first'),
    h('thead', null, h('tr', null, ['Severity', 'ID', 'Package', 'Installed', 'Fixed in', 'Status', 'Scanner']
      .map((t) => h('th', {scope: 'col'}, t)))),
    tbody));
  let cursor = findings.next_cursor;
  if (cursor) {
    const button = h('button', {type: 'button', class: 'more', id: 'more-findings', onclick: async () => {
      button.disabled = true;
      const next = await ctx.guard(apiGet(`v1/images/${digest}`, {limit: 1, findings_limit: perMore, findings_cursor: cursor}));
      button.disabled = false; // a failed request may be tried again
      if (!next) return;
      for (const f of (next.findings && next.findings.items) || []) tbody.append(findingRow(f));
      cursor = next.findings && next.findings.next_cursor;
      if (!cursor) button.remove();
    }}, 'More findings');
    sec.append(button);
  }
  return sec;
}

// @p params: the address's limit (mappings per page, the API's default 100) and findings_limit
// (the worst FINDINGS_FIRST findings first, then FINDINGS_MORE per "More findings").
export async function imageView(ctx, digest, params) {
  ctx.title(`Image ${shortDigest(digest)}`);
  if (!DIGEST_RE.test(digest)) {
    ctx.fail('A digest is sha256: followed by 64 lowercase hex digits.');
    return;
  }
  const limit = pageSize(params && params.get('limit'), null);
  const findingsFirst = pageSize(params && params.get('findings_limit'), FINDINGS_FIRST);
  const findingsMore = pageSize(params && params.get('findings_limit'), FINDINGS_MORE);
  let doc;
  try {
    doc = await apiGet(`v1/images/${digest}`, {limit, findings_limit: findingsFirst});
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404 && e.body && e.body.digest)) throw e;
    doc = e.body;
  }
  if (!ctx.current()) return;
  const view = ctx.view;
  view.append(h('h1', null, 'Image ', h('span', {class: 'mono', id: 'image-digest'}, digest)));
  if (doc.error) {
    view.append(h('p', {class: 'notice', role: 'status'},
      'Nothing is known about this digest: no push, build, finding or workload names it ',
      '(or all of them have expired).'));
    return;
  }
  const chain = newChain();
  addMappings(chain, doc.mappings);
  const wl = (doc.workloads || []).map((w) => workloadCard(w, digest));
  const noBuild = () => {
    if (chain.mappings > 0) return null;
    return locationCards(chain, doc).some((c) => c.classList.contains('pending'))
      ? 'No build yet: the push is pending, waiting for the pipeline that built it.'
      : 'No build known: no pipeline has claimed this digest (unmatched).';
  };
  const imageCol = column('Image', 'image', locationCards(chain, doc), 'Not seen in a registry.');
  const buildsCol = column('Builds', 'builds', buildCards(chain, doc), noBuild());
  view.append(h('div', {class: 'chain'},
    column('Workloads', 'workloads', wl, 'No cluster reports a workload running this digest.'),
    arrow('runs'),
    imageCol,
    arrow('built by'),
    buildsCol));
  if (doc.workloads_truncated) {
    view.append(h('p', {class: 'note'}, `${doc.workloads_total} workloads run this digest; the first 100 are shown.`));
  }
  let cursor = doc.next_cursor;
  if (cursor) {
    // A later page adds its registry locations and builds to what the earlier ones said: a
    // build met again (another location of it) keeps its one card.
    const more = h('button', {type: 'button', class: 'more', id: 'more-builds', onclick: async () => {
      more.disabled = true;
      const next = await ctx.guard(apiGet(`v1/images/${digest}`, {limit, cursor, findings_limit: 1}));
      more.disabled = false; // a failed request may be tried again
      if (!next) return;
      addMappings(chain, next.mappings);
      cursor = next.next_cursor;
      fill(imageCol, 'Image', locationCards(chain, doc), 'Not seen in a registry.');
      fill(buildsCol, 'Builds', buildCards(chain, doc), noBuild(), cursor ? more : null);
    }}, 'More builds');
    buildsCol.append(more);
  }
  view.append(findingsSection(ctx, digest, doc.findings || {summary: {}, items: []}, findingsMore));
}
