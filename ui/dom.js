// dom.js - building elements. Data only ever goes in as text (text nodes, textContent,
// attribute values): nothing the API answers is parsed as markup. Links are the page's own
// (#/...) or http(s) URLs; anything else (javascript:, data:, …) is not made a link.

// The URL as an http(s) link target, or null.
export function httpUrl(s) {
  if (typeof s !== 'string' || s === '') return null;
  let u;
  try {
    u = new URL(s);
  } catch {
    return null;
  }
  return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
}

function append(el, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(el, c);
  } else if (child instanceof Node) {
    el.appendChild(child);
  } else {
    el.appendChild(document.createTextNode(String(child)));
  }
}

// h('a', {class: 'x', href: '#/image/…', onclick: fn}, 'text', childNode, [more])
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'href') {
      const href = String(v);
      if (href.startsWith('#')) el.setAttribute('href', href);
      else if (httpUrl(href)) el.setAttribute('href', httpUrl(href));
    } else if (k.startsWith('on') || k === 'style' || k === 'srcdoc' || k === 'src') {
      throw new Error('h: refusing attribute ' + k);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

// An outside link (run, repository): a link only for http(s), else the text alone.
export function outLink(url, text, cls) {
  const href = httpUrl(url);
  if (!href) return h('span', {class: cls}, text);
  return h('a', {class: cls, href, rel: 'noopener noreferrer'}, text);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

// A definition list from [label, value, class] rows; rows without a value are left out.
export function fields(rows) {
  const dl = h('dl', {class: 'fields'});
  for (const [label, value, cls] of rows) {
    if (value === null || value === undefined || value === '') continue;
    dl.append(h('dt', null, label), h('dd', {class: cls}, value));
  }
  return dl;
}
