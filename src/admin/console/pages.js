// The console's pages about routes: the overview, one route (dead letters, recent deliveries)
// and one dead letter (attempts, headers, body).

import { ApiError, act, call, confirmDialog, get } from './api.js';
import { age, badge, clock, el, link, table } from './dom.js';

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

export async function overview() {
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

export async function routeView(name) {
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

export async function deadView(route, id) {
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
