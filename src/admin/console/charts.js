// The Charts page: the gateway's own counters (GET /admin/timeseries) as small inline SVG charts.

import { get } from './api.js';
import { age, el } from './dom.js';

const SERIES_COLORS = 8;

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

/** Per-second rates between samples of the running totals `pick(sample)` (a name → total map). */
function rates(samples, pick) {
  const names = new Set();
  samples.forEach((s) => Object.keys(pick(s) || {}).forEach((n) => names.add(n)));
  const series = {};
  for (const n of names) {
    series[n] = samples.slice(1).map((s, i) => {
      const prev = (pick(samples[i]) || {})[n] || 0;
      const dt = Math.max((s.at_ms - samples[i].at_ms) / 1000, 0.001);
      return Math.max(((pick(s) || {})[n] || 0) - prev, 0) / dt;
    });
  }
  return series;
}

function levels(samples, pick) {
  const names = new Set();
  samples.forEach((s) => Object.keys(pick(s) || {}).forEach((n) => names.add(n)));
  const series = {};
  for (const n of names) series[n] = samples.map((s) => (pick(s) || {})[n] || 0);
  return series;
}

function chart(title, series, unit) {
  const names = Object.keys(series).sort();
  const w = 300, h = 80;
  const max = Math.max(1e-9, ...names.flatMap((n) => series[n]));
  const plot = svg('svg', { viewBox: '0 0 ' + w + ' ' + h, preserveAspectRatio: 'none', class: 'plot', role: 'img' });
  const label = svg('title', {});
  label.textContent = title;
  plot.append(label, svg('line', { x1: 0, y1: h - 0.5, x2: w, y2: h - 0.5, class: 'axis' }));
  names.forEach((n, i) => {
    // One rate is a flat line, not an invisible dot.
    const v = series[n].length === 1 ? [series[n][0], series[n][0]] : series[n];
    const step = v.length > 1 ? w / (v.length - 1) : w;
    const points = v.map((y, j) => (j * step).toFixed(1) + ',' + (h - 2 - (y / max) * (h - 6)).toFixed(1)).join(' ');
    plot.append(svg('polyline', { points, class: 'line s' + (i % SERIES_COLORS) }));
  });
  const last = (n) => { const v = series[n]; return v.length ? v[v.length - 1] : 0; };
  return el('figure', { class: 'chart' },
    el('figcaption', {}, title, el('span', { class: 'small' }, ' · peak ' + fmt(max === 1e-9 ? 0 : max) + unit)),
    plot,
    names.length === 0 ? el('p', { class: 'small' }, 'Nothing yet.') : el('ul', { class: 'legend' },
      names.map((n, i) => el('li', {}, el('span', { class: 'swatch s' + (i % SERIES_COLORS) }), n, ' ',
        el('span', { class: 'small' }, fmt(last(n)) + unit)))));
}

const fmt = (x) => (x >= 10 || x === 0 ? Math.round(x) : x.toFixed(2)).toString();

export async function chartsView() {
  const ts = await get('/admin/timeseries');
  const samples = ts.samples;
  const routes = [...new Set(samples.flatMap((s) => Object.keys(s.requests)))].sort();
  const span = samples.length ? (samples[samples.length - 1].at_ms - samples[0].at_ms) / 1000 : 0;
  return () => [
    el('h1', {}, 'Charts'),
    el('p', { class: 'small' }, 'Sampled every ' + ts.interval_s + ' s from the gateway\'s own counters, over the last ' +
      age(span) + ' (10 min are kept).'),
    samples.length < 2 ? el('p', { class: 'empty' }, 'Collecting samples…') : null,
    el('div', { class: 'charts' },
      chart('Queue depth per lane', levels(samples, (s) => s.queue_depth), ' events'),
      routes.map((r) => [
        chart('Requests by reason · ' + r, rates(samples, (s) => s.requests[r]), '/s'),
        chart('Deliveries by outcome · ' + r, rates(samples, (s) => s.deliveries[r]), '/s'),
      ])),
  ];
}
