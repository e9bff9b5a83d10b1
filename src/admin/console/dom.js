// DOM building for the console: every string becomes a text node or an attribute set by
// setAttribute, never HTML, so nothing a sender wrote can turn into markup.

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    e.append(kid instanceof Node ? kid : String(kid));
  }
  return e;
}

export const link = (parts, ...kids) => {
  const href = '#/' + parts.map(encodeURIComponent).join('/');
  return el('a', { href, 'data-key': 'link:' + href }, ...kids);
};

export function table(cls, headings, rows, empty) {
  if (rows.length === 0) return el('p', { class: 'empty ' + cls }, empty);
  return el('div', { class: 'scroll' },
    el('table', { class: cls },
      el('thead', {}, el('tr', {}, headings.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, rows)));
}

export function badge(state) {
  return el('span', { class: 'badge state state-' + state }, state);
}

// ---- formatting -----------------------------------------------------------------------

export function age(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.round(seconds);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

export function clock(rfc3339) {
  if (!rfc3339) return '—';
  const d = new Date(rfc3339);
  if (isNaN(d)) return rfc3339;
  // Today's times need no date; at 3 a.m. the date is what tells yesterday apart.
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}
