// The hookgate console (docs/console.md). Plain JS, no framework, no build step.
// Every string that comes from the gateway (and so maybe from a sender) reaches the page as a
// text node or an attribute set by setAttribute: never as HTML. The Content-Security-Policy the
// gateway sends forbids inline script, so even a missed escape could not run anything.
'use strict';

(() => {
  const TOKEN_KEY = 'hookgate.admin-token';
  const POLL_MS = 1500;
  const SERIES_COLORS = 8;

  const MESSAGES = {
    unreachable: 'The gateway did not answer. Is it running, and is this its admin address?',
    unauthorized: 'The gateway refused the token.',
    no_such_route: 'No such route (did a reload remove it?).',
    no_such_dead_event: 'That dead letter is gone: it was replayed or purged already.',
    no_such_upstream: 'No such upstream on this route.',
    route_removed: 'A reload removed this route: its dead letters can be purged, not replayed.',
    queue_unavailable: 'Storage is unavailable right now; nothing was changed. Try again shortly.',
    route_required: 'The call needs a route.',
    not_found: 'The gateway does not know this call (is it an older version?).',
  };

  const $ = (id) => document.getElementById(id);
  let pollTimer = null;
  let lastRendered = '';
  let generation = 0;

  // ---- DOM helpers: text only ------------------------------------------------------------

  function el(tag, attrs, ...kids) {
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

  const link = (parts, ...kids) => {
    const href = '#/' + parts.map(encodeURIComponent).join('/');
    return el('a', { href, 'data-key': 'link:' + href }, ...kids);
  };

  function table(cls, headings, rows, empty) {
    if (rows.length === 0) return el('p', { class: 'empty ' + cls }, empty);
    return el('div', { class: 'scroll' },
      el('table', { class: cls },
        el('thead', {}, el('tr', {}, headings.map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, rows)));
  }

  function badge(state) {
    return el('span', { class: 'badge state state-' + state }, state);
  }

  // ---- formatting -----------------------------------------------------------------------

  function age(seconds) {
    if (seconds === null || seconds === undefined) return '—';
    const s = Math.round(seconds);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  function clock(rfc3339) {
    if (!rfc3339) return '—';
    const d = new Date(rfc3339);
    if (isNaN(d)) return rfc3339;
    // Today's times need no date; at 3 a.m. the date is what tells yesterday apart.
    return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function message(err) {
    if (err && err.code && err.code.startsWith('test_refused:')) {
      return 'the route answered ' + err.status + ' ' + err.code.slice('test_refused:'.length) +
        ', as it would answer a sender.';
    }
    if (err && err.code) {
      const known = MESSAGES[err.code];
      const status = err.status ? ' (HTTP ' + err.status + ', ' + err.code + ')' : '';
      return (known || 'The gateway answered ' + err.code + '.') + status;
    }
    return String(err);
  }

  // ---- the API --------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code) {
      super(code);
      this.status = status;
      this.code = code;
    }
  }

  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

  async function call(method, path, bearer) {
    let resp;
    try {
      resp = await fetch(path, {
        method,
        cache: 'no-store',
        headers: { Authorization: 'Bearer ' + (bearer === undefined ? token() : bearer) },
      });
    } catch (_) {
      throw new ApiError(0, 'unreachable');
    }
    let body = null;
    try { body = await resp.json(); } catch (_) { body = null; }
    if (resp.status === 401) {
      signOut('The gateway no longer accepts this token (was it changed by a reload?). Sign in again.');
      throw new ApiError(401, 'unauthorized');
    }
    if (!resp.ok) throw new ApiError(resp.status, (body && body.error) || 'http_' + resp.status);
    return body;
  }

  const get = (path) => call('GET', path);

  // ---- toasts and confirmations ---------------------------------------------------------

  function toast(text, kind) {
    const t = el('div', { class: 'toast ' + kind, role: kind === 'error' ? 'alert' : null }, text,
      el('button', { type: 'button', class: 'quiet close', 'aria-label': 'Dismiss',
        onclick: () => t.remove() }, '×'));
    $('toasts').append(t);
    // A few at a time: older ones go first, so the page under them stays readable.
    while ($('toasts').children.length > 3) $('toasts').firstElementChild.remove();
    setTimeout(() => t.remove(), kind === 'error' ? 15000 : 6000);
  }

  function confirmDialog(title, text, okLabel) {
    const d = $('confirm');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = okLabel;
    d.returnValue = '';
    return new Promise((resolve) => {
      d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
      d.showModal();
      $('confirm-cancel').focus();
    });
  }

  /** Runs an action from `button`, says how it went, and refreshes the view. */
  async function act(button, what, fn, done) {
    button.disabled = true;
    try {
      const answer = await fn();
      toast(done(answer), 'ok');
      if (what.after) what.after();
    } catch (e) {
      if (e.code !== 'unauthorized') toast(what.label + ' failed: ' + message(e), 'error');
    } finally {
      button.disabled = false;
      refreshNow();
    }
  }

  // ---- routes overview and lanes --------------------------------------------------------

  function laneState(l) {
    if (l.removed) return 'removed';
    if (l.state === 'suspended') return 'suspended';
    if (l.ordering && l.ordering.blocked_keys > 0) return 'blocked';
    return l.state || 'ok';
  }

  function orderingCell(l) {
    const o = l.ordering;
    if (!o) return null;
    return el('div', { class: 'small' },
      'blocked keys ' + (o.blocked_keys || 0) + ' · waiting keys ' + (o.waiting_keys || 0));
  }

  function resumeButton(route, l) {
    if (laneState(l) !== 'suspended') return null;
    const parts = ['upstreams', route].concat(l.upstream ? [l.upstream] : []).concat(['resume']);
    const path = '/admin/' + parts.map(encodeURIComponent).join('/');
    const b = el('button', { type: 'button', class: 'resume', 'data-key': 'resume:' + l.lane,
      onclick: () => act(b, { label: 'Resume' }, () => call('POST', path),
        () => 'Resumed ' + l.lane + ': deliveries go out again.') }, 'Resume');
    return b;
  }

  function lanesTable(route) {
    const rows = route.upstreams.map((l) => el('tr', { 'data-lane': l.lane },
      el('td', {}, l.upstream || '(single upstream)'),
      el('td', {}, badge(laneState(l)), orderingCell(l)),
      el('td', { class: 'num depth' }, l.queue_depth),
      el('td', { class: 'num' }, age(l.oldest_event_age_s)),
      el('td', { class: 'num' }, l.consecutive_failures),
      el('td', {}, resumeButton(route.route, l))));
    return table('lanes', ['Upstream', 'State', 'Queued', 'Oldest', 'Failures in a row', ''],
      rows, 'No lanes.');
  }

  function counters(c) {
    const keys = ['accepted', 'duplicate', 'refused', 'unavailable', 'delivered', 'retried', 'dead'];
    const reasons = Object.entries(c.reasons || {}).filter(([r]) => r !== 'accepted' && r !== 'duplicate');
    return [
      el('dl', { class: 'counters' },
        keys.map((k) => el('div', { class: 'counter c-' + k }, el('dt', {}, k), el('dd', {}, c[k] || 0)))),
      reasons.length === 0 ? null : el('p', { class: 'small reasons' }, 'Refused by reason: ',
        reasons.map(([r, n], i) => [i ? ' · ' : '', el('code', {}, r), ' ' + n])),
    ];
  }

  function sendTestButton(route) {
    const path = '/admin/routes/' + encodeURIComponent(route) + '/send-test';
    const b = el('button', { type: 'button', class: 'send-test', 'data-key': 'send-test:' + route,
      onclick: () => act(b, { label: 'Send test' }, () => call('POST', path), (r) => {
        if (r.status === 200) return 'Test event ' + r.id + ' accepted on ' + route + '.';
        const why = r.answer && r.answer.error ? r.answer.error : 'HTTP ' + r.status;
        throw new ApiError(r.status, 'test_refused:' + why);
      }) }, 'Send test event');
    return b;
  }

  function routeCard(route) {
    const states = route.upstreams.map(laneState);
    const worst = ['suspended', 'blocked'].find((s) => states.includes(s)) || (route.removed ? 'removed' : 'ok');
    return el('section', { class: 'card route', 'data-route': route.route },
      el('div', { class: 'card-head' },
        el('h2', {}, link(['route', route.route], route.route)), badge(worst),
        el('span', { class: 'spacer' }), sendTestButton(route.route),
        link(['route', route.route], 'Dead letters & deliveries →')),
      counters(route.counters || {}),
      lanesTable(route));
  }

  async function overview() {
    const data = await get('/admin/routes');
    return () => [
      el('h1', {}, 'Routes'),
      data.routes.length === 0 ? el('p', { class: 'empty' }, 'No routes configured.') : null,
      data.routes.map(routeCard),
    ];
  }

  // ---- one route: dead letters and recent deliveries ------------------------------------

  function dlqPath(route, id, suffix) {
    const parts = ['dlq', route].concat(id ? [id] : []).concat(suffix ? [suffix] : []);
    return '/admin/' + parts.map(encodeURIComponent).join('/');
  }

  function replayButton(route, id, after) {
    const label = id ? 'Replay' : 'Replay all';
    const b = el('button', { type: 'button', class: id ? 'replay' : 'replay-all',
      'data-key': 'replay:' + (id || '*'),
      onclick: () => act(b, { label, after }, () => call('POST', dlqPath(route, id, 'replay')),
        (r) => 'Replayed ' + r.replayed + (r.replayed === 1 ? ' event' : ' events') +
          ': back on the queue with the same id.') }, label);
    return b;
  }

  function purgeButton(route, id, after) {
    const label = id ? 'Purge' : 'Purge all';
    const b = el('button', { type: 'button', class: 'danger ' + (id ? 'purge' : 'purge-all'),
      'data-key': 'purge:' + (id || '*'),
      onclick: async () => {
        const text = id
          ? 'Dead letter ' + id + ' of route ' + route + ' will be deleted for good.'
          : 'Every dead letter of route ' + route + ' will be deleted for good.';
        if (!(await confirmDialog(label + '?', text, label))) return;
        act(b, { label, after }, () => call('DELETE', dlqPath(route, id)),
          (r) => 'Purged ' + r.purged + (r.purged === 1 ? ' event.' : ' events.'));
      } }, label);
    return b;
  }

  function deadRows(route, dead) {
    return dead.map((d) => el('tr', { 'data-id': d.id },
      el('td', {}, link(['dlq', route, d.id], el('code', {}, d.id))),
      el('td', {}, d.upstream || '—'),
      el('td', { class: 'num' }, d.attempts),
      el('td', { class: 'num' }, d.last_status === null ? '—' : d.last_status),
      el('td', { class: 'err' }, el('code', {}, d.last_error_kind || ''), ' ', d.last_error || ''),
      el('td', {}, clock(d.died_at)),
      el('td', { class: 'row-actions' }, replayButton(route, d.id), purgeButton(route, d.id))));
  }

  function answerCell(a, i) {
    if (!a.answer) return el('td', {}, '—');
    return el('td', {}, el('details', { 'data-key': 'answer:' + a.id + ':' + a.attempt + ':' + i },
      el('summary', {}, a.answer.length + ' bytes'), el('pre', { class: 'answer' }, a.answer)));
  }

  function deliveryRows(deliveries) {
    return deliveries.map((a, i) => el('tr', { class: a.kind ? 'failed' : 'delivered' },
      el('td', {}, clock(a.at)),
      el('td', {}, el('code', {}, a.id)),
      el('td', {}, a.upstream || '—'),
      el('td', { class: 'num' }, a.attempt),
      el('td', { class: 'num status' }, a.status === null ? '—' : a.status),
      el('td', { class: 'num' }, a.latency_ms + ' ms'),
      el('td', { class: 'err' }, a.kind ? [el('code', {}, a.kind), ' ', a.fault ? '(' + a.fault + ') ' : '', a.error || ''] : 'delivered'),
      answerCell(a, i)));
  }

  async function routeView(name) {
    const q = '?route=' + encodeURIComponent(name);
    const [routes, dlq, deliveries] = await Promise.all([
      get('/admin/routes'), get('/admin/dlq' + q), get('/admin/deliveries' + q + '&limit=50')]);
    const route = routes.routes.find((r) => r.route === name);
    if (!route) throw new ApiError(404, 'no_such_route');
    const dead = dlq.dead;
    return () => [
      el('p', { class: 'crumbs' }, link([], '← Routes')),
      el('div', { class: 'title' }, el('h1', {}, 'Route ', el('code', {}, name)), sendTestButton(name)),
      el('section', { class: 'card' }, el('h2', {}, 'Upstreams'), lanesTable(route)),
      el('section', { class: 'card' },
        el('div', { class: 'card-head' }, el('h2', {}, 'Dead letters ', el('span', { class: 'count', id: 'dead-count' }, dead.length)),
          el('span', { class: 'spacer' }),
          dead.length ? [replayButton(name), purgeButton(name)] : null),
        table('dead', ['Event', 'Upstream', 'Attempts', 'Last status', 'Last error', 'Died', ''],
          deadRows(name, dead), 'No dead letters. Events that exhaust their retries land here.')),
      el('section', { class: 'card' },
        el('h2', {}, 'Recent deliveries'),
        table('deliveries', ['At', 'Event', 'Upstream', 'Attempt', 'Status', 'Latency', 'Outcome', 'Answer'],
          deliveryRows(deliveries.deliveries), 'No delivery attempts yet.')),
    ];
  }

  // ---- one dead letter ------------------------------------------------------------------

  function prettyBody(d) {
    if (!d.body_truncated && d.body_utf8) {
      try { return { text: JSON.stringify(JSON.parse(d.body), null, 2), json: true }; } catch (_) { /* not JSON */ }
    }
    return { text: d.body, json: false };
  }

  function bodyNotes(d, shown) {
    return el('p', { class: 'small' }, d.body_bytes + ' bytes',
      shown.json ? ' · JSON, pretty-printed' : '',
      d.body_truncated ? ' · only the first 64 KiB are shown' : '',
      d.body_utf8 ? '' : ' · not UTF-8: invalid bytes are shown as �');
  }

  function headerRows(headers) {
    return headers.map((h) => el('tr', {},
      el('th', { scope: 'row' }, el('code', {}, h.name)),
      el('td', {}, h.masked ? el('span', { class: 'masked' }, '*** (hidden: may be a secret)') : el('code', {}, h.value))));
  }

  function attemptRows(attempts) {
    return attempts.map((a, i) => el('tr', { class: a.kind ? 'failed' : 'delivered' },
      el('td', { class: 'num' }, a.attempt),
      el('td', {}, clock(a.at)),
      el('td', { class: 'num status' }, a.status === null ? '—' : a.status),
      el('td', { class: 'num' }, a.latency_ms + ' ms'),
      el('td', { class: 'err' }, a.kind ? [el('code', {}, a.kind), ' ', a.error || ''] : 'delivered'),
      answerCell(a, i)));
  }

  async function deadView(route, id) {
    const d = await get(dlqPath(route, id));
    const back = () => { location.hash = '#/route/' + encodeURIComponent(route); };
    const shown = prettyBody(d);
    return () => [
      el('p', { class: 'crumbs' }, link([], 'Routes'), ' / ', link(['route', route], route), ' / dead letter'),
      el('div', { class: 'title' }, el('h1', {}, 'Dead letter ', el('code', { id: 'event-id' }, d.id)),
        el('span', { class: 'spacer' }), replayButton(route, d.id, back), purgeButton(route, d.id, back)),
      el('dl', { class: 'facts' },
        [['Route', d.route], ['Upstream', d.upstream || '(single upstream)'], ['Event type', d.event_type || '—'],
          ['Received', clock(d.received_at)], ['Died', clock(d.died_at)], ['Attempts', d.attempts],
          ['Last error', (d.last_error_kind || '') + ' ' + (d.last_error || '')]]
          .map(([k, v]) => el('div', {}, el('dt', {}, k), el('dd', {}, v)))),
      el('section', { class: 'card' }, el('h2', {}, 'Attempts'),
        table('attempts', ['#', 'At', 'Status', 'Latency', 'Outcome', 'Answer'], attemptRows(d.attempts_detail || []), 'No attempts recorded.')),
      el('section', { class: 'card' }, el('h2', {}, 'Headers'),
        el('p', { class: 'small' }, 'Headers whose name suggests a credential or a signature are hidden.'),
        table('headers', ['Name', 'Value'], headerRows(d.headers || []), 'No headers stored.')),
      el('section', { class: 'card' }, el('h2', {}, 'Body'), bodyNotes(d, shown),
        el('pre', { class: 'body', id: 'event-body', tabindex: 0 }, shown.text)),
    ];
  }

  // ---- charts ---------------------------------------------------------------------------

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

  async function chartsView() {
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

  // ---- routing, polling, rendering ------------------------------------------------------

  function currentView() {
    const parts = location.hash.replace(/^#\/?/, '').split('/').filter((p) => p !== '').map(decodeURIComponent);
    if (parts[0] === 'route' && parts.length === 2) return { load: () => routeView(parts[1]), poll: true };
    if (parts[0] === 'dlq' && parts.length === 3) return { load: () => deadView(parts[1], parts[2]), poll: false };
    if (parts[0] === 'charts') return { load: chartsView, poll: true };
    return { load: overview, poll: true };
  }

  /** Replaces the view, keeping the focused control and open details where they were. */
  function render(nodes) {
    const focused = document.activeElement && document.activeElement.getAttribute('data-key');
    const open = [...document.querySelectorAll('#view details[open]')].map((d) => d.getAttribute('data-key'));
    const view = $('view');
    view.replaceChildren(...[nodes].flat(Infinity).filter((n) => n));
    for (const key of open) {
      const d = [...view.querySelectorAll('details')].find((x) => x.getAttribute('data-key') === key);
      if (d) d.open = true;
    }
    if (focused) {
      const f = [...view.querySelectorAll('[data-key]')].find((x) => x.getAttribute('data-key') === focused);
      if (f) f.focus();
    }
  }

  function setLive(text, kind) {
    const live = $('live');
    live.textContent = text;
    live.className = 'live ' + kind;
  }

  async function refresh(mine) {
    const view = currentView();
    try {
      const draw = await view.load();
      if (mine !== generation) return;
      const nodes = draw();
      const probe = el('div', {}, nodes);
      if (probe.outerHTML !== lastRendered) {
        lastRendered = probe.outerHTML;
        render(nodes);
      }
      setLive('live · ' + new Date().toLocaleTimeString(), 'ok');
    } catch (e) {
      if (mine !== generation || e.code === 'unauthorized') return;
      if (e.code === 'unreachable') setLive('gateway unreachable — retrying', 'warn');
      else render(el('section', { class: 'card error-card', role: 'alert' }, el('h1', {}, 'Could not load this page'),
        el('p', {}, message(e)), el('p', {}, link([], '← Back to routes'))));
    }
    if (mine === generation && view.poll) pollTimer = setTimeout(() => refresh(mine), POLL_MS);
  }

  function refreshNow() {
    clearTimeout(pollTimer);
    generation += 1;
    refresh(generation);
  }

  function navigate() {
    lastRendered = '';
    refreshNow();
    $('main').focus({ preventScroll: true });
  }

  // ---- signing in and out ---------------------------------------------------------------

  function showLogin(error) {
    clearTimeout(pollTimer);
    generation += 1;
    $('view').replaceChildren();
    $('nav').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = error || '';
    setLive('', '');
    $('token').focus();
  }

  function signOut(why) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(why);
  }

  function signedIn() {
    $('login').hidden = true;
    $('nav').hidden = false;
    $('logout').hidden = false;
    navigate();
  }

  /** Asks `/admin/session`, which answers 200 either way, so a wrong token logs no error. */
  async function signIn(candidate) {
    let answer;
    try {
      const resp = await fetch('/admin/session', { cache: 'no-store', headers: { Authorization: 'Bearer ' + candidate } });
      answer = await resp.json();
    } catch (_) {
      return showLogin(MESSAGES.unreachable);
    }
    if (!answer.authorized) return showLogin('That token was refused. Check admin.token in the gateway\'s config.');
    sessionStorage.setItem(TOKEN_KEY, candidate);
    signedIn();
  }

  function start() {
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const candidate = $('token').value.trim();
      $('token').value = '';
      signIn(candidate);
    });
    $('logout').addEventListener('click', () => signOut('Signed out.'));
    window.addEventListener('hashchange', () => { if (token()) navigate(); });
    if (token()) signIn(token());
    else showLogin('');
  }

  start();
})();
