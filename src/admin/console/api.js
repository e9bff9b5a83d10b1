// The admin API as the console uses it, and how it tells the operator what happened.

import { $, el } from './dom.js';

export const TOKEN_KEY = 'hookgate.admin-token';

/** Set by app.js: what a refused token and a finished action lead to. */
export const hooks = { signOut: () => {}, refresh: () => {} };

export const MESSAGES = {
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

export function message(err) {
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

export class ApiError extends Error {
  constructor(status, code) {
    super(code);
    this.status = status;
    this.code = code;
  }
}

export const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

export async function call(method, path, bearer) {
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
    hooks.signOut('The gateway no longer accepts this token (was it changed by a reload?). Sign in again.');
    throw new ApiError(401, 'unauthorized');
  }
  if (!resp.ok) throw new ApiError(resp.status, (body && body.error) || 'http_' + resp.status);
  return body;
}

export const get = (path) => call('GET', path);

// ---- toasts and confirmations ---------------------------------------------------------

export function toast(text, kind) {
  const t = el('div', { class: 'toast ' + kind, role: kind === 'error' ? 'alert' : null }, text,
    el('button', { type: 'button', class: 'quiet close', 'aria-label': 'Dismiss',
      onclick: () => t.remove() }, '×'));
  $('toasts').append(t);
  // A few at a time: older ones go first, so the page under them stays readable.
  while ($('toasts').children.length > 3) $('toasts').firstElementChild.remove();
  setTimeout(() => t.remove(), kind === 'error' ? 15000 : 6000);
}

export function confirmDialog(title, text, okLabel) {
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
export async function act(button, what, fn, done) {
  button.disabled = true;
  try {
    const answer = await fn();
    toast(done(answer), 'ok');
    if (what.after) what.after();
  } catch (e) {
    if (e.code !== 'unauthorized') toast(what.label + ' failed: ' + message(e), 'error');
  } finally {
    button.disabled = false;
    hooks.refresh();
  }
}
