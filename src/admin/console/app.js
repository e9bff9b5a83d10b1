// The hookgate console (docs/console.md): plain JS modules, no framework, no build step.
// Every string that comes from the gateway (and so maybe from a sender) reaches the page as a
// text node or an attribute set by setAttribute: never as HTML. The Content-Security-Policy the
// gateway sends forbids inline script, so even a missed escape could not run anything.
// This file: routing, polling, rendering, signing in and out.

import { MESSAGES, TOKEN_KEY, hooks, message, token } from './api.js';
import { $, el, link } from './dom.js';
import { chartsView } from './charts.js';
import { deadView, overview, routeView } from './pages.js';

const POLL_MS = 1500;
let pollTimer = null;
let lastRendered = '';
let generation = 0;

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

hooks.signOut = signOut;
hooks.refresh = refreshNow;
start();
