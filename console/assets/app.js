// doorbridge web console: renders the bridge's view from server-sent events.
'use strict';
const $ = (id) => document.getElementById(id);
let csrf = '', canAct = false, auditSeq = -1, lastSeen = 0, es = null, view = null, livenessTimer = 0, loopDown = false;
const codes = {}; // door id -> its code input, kept across renders

function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const k of kids) if (k != null) e.append(k);
  return e;
}
function row(dl, k, v, cls) { dl.append(el('dt', {textContent: k}), el('dd', {textContent: v, className: cls || ''})); }

async function api(path, body) {
  const opt = body === undefined ? {} : {method: 'POST', headers: {'X-CSRF-Token': csrf}, body};
  const r = await fetch(path, opt);
  let j = {};
  try { j = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error(j.error || r.statusText);
  return j;
}

function say(text, ok) {
  const m = $('msg');
  m.textContent = text; m.className = 'banner ' + (ok ? 'ok' : 'bad'); m.hidden = false;
}

async function init() {
  let s;
  try { s = await api('/console/api/session'); } catch (e) { say('Cannot reach the bridge: ' + e.message); return; }
  document.title = $('title').textContent = 'doorbridge · ' + s.title;
  csrf = s.csrf || ''; canAct = s.act;
  $('logout').hidden = !s.act;
  $('login').hidden = !s.login;
  if (s.view) start(); else $('main').hidden = true;
}

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    await api('/console/api/login', new URLSearchParams(new FormData(ev.target)));
    ev.target.reset(); $('msg').hidden = true;
    if (es) { es.close(); es = null; }
    init();
  } catch (e) { say('Login refused: ' + e.message); }
});
$('logout').addEventListener('click', async () => {
  try { await api('/console/api/logout', ''); } catch (e) { /* gone anyway */ }
  location.reload();
});
$('filter').addEventListener('change', loadEvents);

function start() {
  $('main').hidden = false;
  if (es) return;
  // The first view by a plain request: the stream may take a moment to open.
  api('/console/api/view').then((v) => { if (!view) render({view: v, audit_seq: -2}); }, () => {});
  follow();
  if (!livenessTimer) livenessTimer = setInterval(liveness, 500);
}

// follow opens the stream. The bridge ends it after a while, saying "bye":
// it is reopened at once, still live. Any other end or a refusal makes the
// page "not live" at once, and it reopens by itself.
function follow() {
  const me = es = new EventSource('/console/api/stream');
  me.addEventListener('state', (m) => { lastSeen = Date.now(); liveness(); render(JSON.parse(m.data)); });
  me.addEventListener('ping', () => { lastSeen = Date.now(); });
  me.addEventListener('bye', () => { me.close(); if (es === me) follow(); });
  me.onerror = () => {
    if (es !== me) return;
    lastSeen = 0; liveness();
    const closed = me.readyState === EventSource.CLOSED; // refused (too many pages, a 5xx): no retry by itself
    // The bridge may be there and the session gone (expired, logged out, or the bridge restarted).
    api('/console/api/session').then((s) => {
      if (es !== me) return;
      if (s.view) { if (closed) reopen(); return; }
      me.close(); es = null; csrf = ''; canAct = false;
      $('main').hidden = true; $('login').hidden = false; $('logout').hidden = true;
    }, () => { if (closed && es === me) reopen(); });
  };
}

function reopen() {
  es.close();
  es = null;
  setTimeout(() => { if (!es) follow(); }, 2000);
}

// liveness greys the page out when its stream is lost, and when the
// bridge answers but its control loop does not (the cards would show a
// state nobody is keeping).
function liveness() {
  const streaming = Date.now() - lastSeen < 3500;
  const ok = streaming && !loopDown;
  $('lost').hidden = ok;
  $('lost').textContent = streaming
    ? 'Not live: the bridge answers, but its control loop does not. What you see is its last known state.'
    : 'Not live: this page lost the bridge. What you see may be out of date; it reconnects by itself.';
  document.body.classList.toggle('lost', !ok);
  $('live').textContent = ok ? 'live' : streaming ? 'loop not answering' : 'not live';
  $('live').className = 'pill ' + (ok ? 'ok' : 'bad');
}

function render(u) {
  loopDown = !!u.error;
  liveness();
  if (u.error) {
    $('hazards').textContent = 'The bridge answers, but its control loop does not: ' + u.error;
    $('hazards').hidden = false;
    return;
  }
  view = u.view;
  const hz = view.hazards;
  $('hazards').hidden = hz.length === 0;
  $('hazards').textContent = 'Active hazards: ' + hz.join(', ') +
    (view.relock_in > 0 ? ' — cleared; doors relock in ' + Math.ceil(view.relock_in) + ' s' : '');
  renderDoors(view.doors);
  renderBridge(view);
  const f = $('filter');
  if (f.options.length === 1) for (const d of view.doors) f.append(el('option', {value: d.id, textContent: d.name || d.id}));
  if (u.audit_seq !== auditSeq) { auditSeq = u.audit_seq; loadEvents(); }
}

const modes = {fail_safe: 'fail safe (maglock: released by every hazard)', fail_secure: 'fail secure (strike: stays locked on hazards)'};

function renderDoors(doors) {
  const focused = document.activeElement;
  $('doors').replaceChildren(...doors.map(doorCard));
  if (focused && focused !== document.activeElement && document.contains(focused)) focused.focus();
}

function doorCard(d) {
  const c = el('article', {className: 'card', id: 'door-' + d.id});
  c.dataset.state = d.state;
  c.append(el('h3', {textContent: d.name || d.id}), el('div', {className: 'state ' + d.state, textContent: d.state}));
  const why = 'why: ' + d.cause + (d.hazards.length ? ' (hazards: ' + d.hazards.join(', ') + ')' : '');
  c.append(el('div', {className: 'why', textContent: why}));
  const dl = el('dl');
  row(dl, 'Fail mode', modes[d.fail_mode] || d.fail_mode);
  row(dl, 'Lock power', d.power === 'unknown' ? 'unknown (relay not responding)' : d.power, d.power === 'unknown' ? 'bad' : '');
  if (d.contact) row(dl, 'Contact', d.contact);
  if (d.fault) row(dl, 'Fault', d.fault, 'bad');
  if (d.last_event) row(dl, 'Last event', when(d.last_event.time) + ' ' + describe(d.last_event));
  if (d.locked_out > 0) row(dl, 'Codes', 'locked out for ' + Math.ceil(d.locked_out) + ' s', 'bad');
  c.append(dl);
  if (canAct) c.append(doorActions(d));
  return c;
}

function doorActions(d) {
  const box = el('div', {className: 'actions'});
  if (d.has_code) {
    if (!codes[d.id]) codes[d.id] = el('input', {type: 'password', inputMode: 'numeric', autocomplete: 'off', placeholder: 'code', size: 8, name: 'code-' + d.id});
    box.append(codes[d.id]);
  }
  for (const req of ['LOCK', 'UNLOCK', 'OPEN']) {
    const refusal = d.refusals && d.refusals[req];
    if (refusal) {
      box.append(el('div', {className: 'why', textContent: refusal}));
      continue;
    }
    box.append(el('button', {textContent: req, name: req, onclick: () => {
      const code = req !== 'LOCK' && codes[d.id] ? codes[d.id].value : '';
      if (codes[d.id]) codes[d.id].value = '';
      act({kind: 'door', door: d.id, request: req, code});
    }}));
  }
  return box;
}

function renderBridge(v) {
  const c = $('bridge');
  const dl = el('dl');
  const link = {healthy: 'healthy', starting: 'starting: not yet connected', no_heartbeat: 'connected, heartbeat not coming back', down: 'down'}[v.link] || v.link;
  row(dl, 'Broker link', link, v.link === 'healthy' ? 'ok' : 'bad');
  for (const a of v.alarms || []) {
    const more = (n) => n ? ', and ' + n + ' more' : '';
    const srcs = (Object.entries(a.sources).map(([t, s]) => t + ': ' + s).join(', ') || 'no source has reported') + more(a.sources_more);
    const avail = Object.entries(a.availability || {}).map(([t, s]) => t + ': ' + s).join(', ') + more(a.availability_more);
    row(dl, 'Alarm ' + a.topic, (a.active ? 'ALARM — ' + (a.why || '') : 'clear') + ' [' + srcs + ']' + (avail ? ' [' + avail + ']' : '') +
      (a.supervision ? ' — not supervised: ' + a.supervision : ''), a.active || a.supervision ? 'bad' : 'ok');
  }
  row(dl, 'Fire release latch', v.latched ? 'latched: doors stay released until reset' : 'not latched', v.latched ? 'bad' : 'ok');
  row(dl, 'Power', (v.power || []).map((p) => p.name + ': ' + p.state).join(', ') || 'no power source configured');
  row(dl, 'Lockdown', v.lockdown ? 'on' : 'off', v.lockdown ? 'warn' : '');
  if (v.relock_in > 0) row(dl, 'Relock in', Math.ceil(v.relock_in) + ' s');
  row(dl, 'Release drill', (v.drill_overdue ? 'overdue — ' : '') + (v.last_drill ? 'last ' + when(v.last_drill) : 'none recorded'), v.drill_overdue ? 'warn' : '');
  const acts = el('div', {className: 'actions'});
  if (canAct) {
    if (v.latched) acts.append(v.reset_refusal ? el('div', {className: 'why', textContent: 'Reset not offered: ' + v.reset_refusal}) : button('Reset fire release', {kind: 'reset'}));
    const ld = v.lockdown ? ['End lockdown', 'OFF', v.lockdown_off_refusal] : ['Start lockdown', 'ON', v.lockdown_on_refusal];
    acts.append(ld[2] ? el('div', {className: 'why', textContent: ld[0] + ' not offered (' + ld[2] + ')'}) : button(ld[0], {kind: 'lockdown', request: ld[1]}));
    if (v.drill_topic && v.drill_refusal) acts.append(el('div', {className: 'why', textContent: 'Drill not offered: ' + v.drill_refusal}));
    else if (v.drill_topic) acts.append(drillPassword(), button('Start drill (alarm on ' + v.drill_topic + ')', {kind: 'drill', request: 'ON'}), el('div', {className: 'why', textContent: 'A drill releases every fail-safe door: type the console password again. It is ended where alarms are cleared (doorbridge alarm off), never here: the console cannot tell it from a real alarm.'}));
  }
  c.replaceChildren(dl, acts);
}

// drillPassword is the console password typed again for a drill, kept
// across renders like the door codes.
let drillPw = null;
function drillPassword() {
  if (!drillPw) drillPw = el('input', {type: 'password', autocomplete: 'current-password', placeholder: 'console password', name: 'drill-password', size: 14});
  return drillPw;
}

function button(text, action) { return el('button', {textContent: text, onclick: () => act(action)}); }

async function act(a) {
  if (a.kind === 'drill' && a.request === 'ON') {
    if (!confirm('Start a release drill? The fire alarm path releases every fail-safe door.')) return;
    a = Object.assign({password: drillPw ? drillPw.value : ''}, a);
    if (drillPw) drillPw.value = '';
  }
  try {
    const r = await api('/console/api/action', JSON.stringify(a));
    say(r.message, r.ok);
  } catch (e) { say('Refused: ' + e.message, false); }
}

async function loadEvents() {
  const door = $('filter').value;
  try {
    const evs = await api('/console/api/events?door=' + encodeURIComponent(door));
    $('events').replaceChildren(...evs.map((e) => el('li', {}, el('time', {textContent: when(e.time)}), describe(e))));
  } catch (e) { /* the stream says whether the bridge is there */ }
}

function when(t) {
  const d = new Date(t), now = new Date();
  const hms = d.toLocaleTimeString([], {hour12: false});
  return d.toDateString() === now.toDateString() ? hms : d.toLocaleDateString() + ' ' + hms;
}

function describe(e) {
  const from = e.origin ? ' — from ' + e.origin.replace(/^mqtt:/, '') : '';
  switch (e.kind) {
    case 'relay': return e.door + ' ' + e.outcome + ' (lock power ' + (e.energized ? 'on' : 'off') + ', ' + e.cause + ')' + from;
    case 'hazard': return 'hazard ' + e.hazard + ' ' + e.outcome + from;
    case 'command': return e.door + ': ' + (e.outcome === 'rejected' ? 'command refused: ' + e.detail : (e.detail || '') + ' accepted') + from;
    case 'latch': return 'fire release latch ' + (e.outcome === 'ON' ? 'set' : 'cleared') + ': ' + e.detail;
    case 'reset': return e.detail || 'reset ' + e.outcome;
    case 'drill': return 'release drill: every fail-safe door released; ' + e.detail;
    case 'console': return 'console: ' + [e.door, e.detail, e.outcome].filter(Boolean).join(' ') + ' — from ' + e.origin.replace(/^console:/, '');
    default: return [e.kind, e.door, e.outcome, e.detail].filter(Boolean).join(' ') + from;
  }
}

init();
