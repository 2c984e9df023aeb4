// format.js - how values are shown and compared: severities, exposure levels, digests, commits.

export const SEVERITIES = ['critical', 'high', 'medium', 'low', 'unknown'];
export const EXPOSURES = ['internet', 'node', 'cluster']; // most exposed first

export const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

export function shortDigest(d) {
  return typeof d === 'string' && d.startsWith('sha256:') ? d.slice(0, 19) + '…' : String(d);
}

// Git's short form for a full commit id; anything else as it is.
export function shortCommit(c) {
  if (typeof c !== 'string') return '';
  return /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(c) ? c.slice(0, 7) : c;
}

// "2026-12-07T01:23:18.123Z" as "2026-12-07 01:23:18 UTC".
export function when(iso) {
  if (typeof iso !== 'string') return '';
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?Z$/.exec(iso);
  return m ? `${m[1]} ${m[2]} UTC` : iso;
}

export function count(summary, sev) {
  const n = summary && Number(summary[sev]);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

// Most severe first: compare the counts of critical, then high, and so on.
export function bySeverity(a, b) {
  for (const s of SEVERITIES) {
    const d = count(b, s) - count(a, s);
    if (d) return d;
  }
  return 0;
}

export function exposureRank(level) {
  const i = EXPOSURES.indexOf(level);
  return i < 0 ? EXPOSURES.length : i;
}

// "1 critical, 2 high" (the non-zero counts), or "none".
export function summaryText(summary) {
  const parts = SEVERITIES.filter((s) => count(summary, s)).map((s) => `${count(summary, s)} ${s}`);
  return parts.length ? parts.join(', ') : 'none';
}

const PROVIDERS = {'github': 'GitHub Actions', 'gitlab': 'GitLab CI', 'azure-devops': 'Azure Pipelines',
                   'generic': 'CI'};

export function providerName(p) {
  return PROVIDERS[p] || String(p || 'CI');
}

export function buildKey(b) {
  return `${b.provider}/${b.run_id}/${b.run_attempt}`;
}

export function workloadKey(w) {
  return `${w.cluster}/${w.namespace}/${w.kind}/${w.name}`;
}

// A page size from the address (#/…?limit=…): 1..500 (the API's bounds), else the default.
export function pageSize(text, fallback) {
  const n = Number(text);
  return text && Number.isInteger(n) && n >= 1 && n <= 500 ? n : fallback;
}
