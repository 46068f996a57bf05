// tabrelay's service worker: one WebSocket to the gateway, kept alive and
// reconnected; snapshots of the active tab out, commands in, one result each.
//
// Survival rules of a Manifest V3 service worker (Chrome 116+):
// - a WebSocket that exchanges a message at least every 30 s keeps the worker
//   alive, hence a one-way `keepalive` whenever nothing else went out for 20 s
//   (keepAliveDue in lib/wire.js; a pong-answered `ping` only after 2 minutes
//   without a frame from the gateway, every message being billed);
// - while the gateway is unreachable, every reconnection attempt calls an
//   extension API (the status write), which resets the idle timer; if the
//   worker is stopped anyway, the 30 s watchdog alarm starts it again and the
//   top-level code below reconnects;
// - state that must outlive the worker (command ids already run, the snapshot
//   sequence, the status shown in the popup) lives in chrome.storage.

import { CommandError, MUTATING, createCommands, inject, showsLocalFile } from './lib/commands.js';
import { captureDocument } from './lib/page.js';
import {
  DEFAULT_COMMAND_TIMEOUT,
  KEEPALIVE_TICK_MS,
  backoffDelay,
  earlyReconnectDelay,
  errorMessage,
  jwtClaims,
  keepAliveDue,
  keepaliveMessage,
  pingMessage,
  resultMessages,
  snapshotMessages,
  socketUrl,
} from './lib/wire.js';

/** Connections that lived this long reset the backoff. */
const HEALTHY_AFTER_MS = 10_000;
/** Automatic snapshots (load, navigation, DOM changes) at most this often. */
const SNAPSHOT_GAP_MS = 1_000;
/** Outgoing message pacing: the gateway rate-limits each connection (50
 * messages/s by default); a large snapshot's parts must not trip it. When it
 * does anyway (`rate_limited`), the refused message is sent again after a
 * pause and the rate halves, then recovers by 1 message/s every second. */
const SEND_RATE_MAX = 20;
const SEND_RATE_MIN = 2;
const SEND_BURST = 5;
const RATE_LIMITED_PAUSE_MS = 1_100; // the gateway counts in 1 s windows
/** Sent messages kept to resend when the gateway refuses them. */
const RESEND_WINDOW_MS = 30_000;
/** Command ids remembered to refuse a second run (SQS delivers at least once). */
const REMEMBERED_IDS = 2_000;
/** Results waiting for a connection are kept this long. */
const OUTBOX_TTL_MS = 120_000;
const WATCHDOG_ALARM = 'tabrelay-watchdog';

// ---------------------------------------------------------------- state ---

let config = { url: '', token: '', allowScript: false, allowFileUrls: false };
let socket = null;
let attempt = 0;
let reconnectTimer = null;
let pingTimer = null;
// A planned reconnect before API Gateway's 2-hour cut (earlyReconnectDelay):
// the next socket opens first (`nextSocket` until then), and only then does it
// replace the current one (make before break: the gateway closes a browser's
// older connection as the newer one connects, without an offline presence).
let renewTimer = null;
let nextSocket = null;
let retiring = null; // the replaced socket, whose last frames are still read
let openedAt = 0;
let lastFrameAt = 0;
let lastSentAt = 0; // the last message sent (or a keepalive queued)
let pingSentAt = null; // the last liveness ping; a frame received after it answers it
let seq = 0;
let lastSent = null; // {url, title, html} of the newest snapshot sent
const seenIds = new Set();
const seenOrder = [];
let status = { state: 'connecting', reason: '', since: Date.now(), snapshots: 0, commands: 0 };

// ------------------------------------------------------------ start-up ---

const ready = start().catch((e) => {
  setStatus({ state: 'error', reason: `start-up failed: ${e.message}`, nextAttemptAt: null });
});

async function start() {
  const stored = await chrome.storage.session.get(['seenIds', 'status']);
  for (const id of stored.seenIds || []) remember(id);
  if (stored.status) status = { ...stored.status, state: 'connecting', reason: 'service worker started', since: Date.now() };
  const { seq: savedSeq = 0 } = await chrome.storage.local.get('seq');
  seq = savedSeq;
  if (!(await chrome.alarms.get(WATCHDOG_ALARM))) {
    chrome.alarms.create(WATCHDOG_ALARM, { periodInMinutes: 0.5 });
  }
  await loadConfig();
  connect();
}

/** config.json in the extension folder (automation), overridden field by
 * field by what the options page saved in chrome.storage.local. */
async function loadConfig() {
  let file = {};
  try {
    const response = await fetch(chrome.runtime.getURL('config.json'));
    if (response.ok) file = await response.json();
  } catch {
    // No config.json: configured through the options page only.
  }
  const { options = {} } = await chrome.storage.local.get('options');
  config = {
    url: options.url || file.url || '',
    token: options.token || file.token || '',
    allowScript: typeof options.allowScript === 'boolean' ? options.allowScript : !!file.allowScript,
    allowFileUrls: typeof options.allowFileUrls === 'boolean' ? options.allowFileUrls : !!file.allowFileUrls,
  };
}

// ---------------------------------------------------------- connection ---

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  if (socket || nextSocket) return;
  const ws = openSocket();
  if (!ws) return;
  socket = ws;
  setStatus({ state: attempt ? 'reconnecting' : 'connecting', nextAttemptAt: null, ...identity() });
}

/** A new socket with its handlers, or null (the status says why). */
function openSocket() {
  if (!config.url || !config.token) {
    setStatus({ state: 'error', reason: 'not configured: set the gateway URL and token in the options', nextAttemptAt: null });
    return null;
  }
  const claims = jwtClaims(config.token);
  if (claims && typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now()) {
    setStatus({ state: 'error', reason: `token expired at ${new Date(claims.exp * 1000).toISOString()}`, nextAttemptAt: null });
    return null;
  }
  let ws;
  try {
    ws = new WebSocket(socketUrl(config.url, config.token));
  } catch (e) {
    setStatus({ state: 'error', reason: `bad gateway URL: ${e.message}`, nextAttemptAt: null });
    return null;
  }
  ws.onopen = () => {
    if (ws === nextSocket) {
      nextSocket = null;
      replaceSocket(ws);
      return;
    }
    if (socket !== ws) return;
    onOpen(ws);
  };
  ws.onmessage = (event) => {
    if (socket !== ws && retiring !== ws) return;
    lastFrameAt = Date.now();
    onFrame(event.data);
  };
  ws.onclose = (event) => {
    if (retiring === ws) retiring = null;
    if (ws === nextSocket) {
      // The planned reconnect failed: keep the current socket until the
      // gateway's cut (then reconnect with backoff), or back off now if the
      // current one is already gone.
      nextSocket = null;
      if (!socket) dropSocket(`planned reconnect failed (${event.code})`);
      return;
    }
    if (socket !== ws) return;
    if (nextSocket) {
      // Closed while the next socket's handshake is under way (the gateway
      // superseded it): the next one takes over when it opens.
      release();
      return;
    }
    const detail = event.reason ? `${event.code} ${event.reason}` : `${event.code}`;
    // A refused handshake (401/403) and an unreachable host look the same to
    // a page: 1006 with no reason. Say both.
    const why = openedAt
      ? `connection closed (${detail})`
      : `could not connect (${detail}${event.code === 1006 ? ': gateway unreachable, or it refused the token' : ''})`;
    dropSocket(why);
  };
  // onerror carries no detail and is always followed by onclose.
  return ws;
}

function onOpen(ws) {
  openedAt = lastFrameAt = lastSentAt = Date.now();
  pingSentAt = null;
  setStatus({ state: 'connected', reason: '', since: openedAt, nextAttemptAt: null });
  pingTimer = setInterval(keepAlive, KEEPALIVE_TICK_MS);
  renewTimer = setTimeout(() => renew(ws), earlyReconnectDelay());
  flushOutbox();
  requestSnapshot(true);
}

/** Reconnect on purpose before the gateway's 2-hour cut, without backoff:
 * open the next socket; it replaces this one once open. */
function renew(ws) {
  if (socket !== ws || nextSocket) return;
  nextSocket = openSocket();
}

/** The next socket of a planned reconnect is open: close the old one (1000)
 * and carry on with the new one as after any reconnection. */
function replaceSocket(ws) {
  const old = socket;
  release();
  attempt = 0; // the old connection lived long: the backoff starts over
  if (old && old.readyState <= WebSocket.OPEN) {
    retiring = old;
    old.close(1000, 'planned reconnect before the 2-hour limit');
  }
  socket = ws;
  onOpen(ws);
}

/** Forget the current socket's timers and unsent snapshot parts. */
function release() {
  socket = null;
  clearInterval(pingTimer);
  pingTimer = null;
  clearTimeout(renewTimer);
  renewTimer = null;
  bulk.length = 0;
  recent.clear();
}

function identity() {
  const claims = jwtClaims(config.token) || {};
  let gateway = '';
  try {
    const u = new URL(config.url);
    gateway = `${u.host}${u.pathname}`;
  } catch {
    gateway = config.url;
  }
  return {
    gateway,
    clientId: claims.client_id || '',
    tenant: claims.tenant || '',
    tokenExpiresAt: typeof claims.exp === 'number' ? claims.exp * 1000 : null,
  };
}

function dropSocket(reason) {
  const ws = socket;
  release();
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, 'reconnecting');
  if (openedAt && Date.now() - openedAt >= HEALTHY_AFTER_MS) attempt = 0;
  openedAt = 0;
  const delay = backoffDelay(attempt++);
  setStatus({ state: 'reconnecting', reason, nextAttemptAt: Date.now() + delay });
  reconnectTimer = setTimeout(connect, delay);
}

/** Every KEEPALIVE_TICK_MS: a keepalive when nothing went out for 20 s, a
 * ping when nothing came in for 2 minutes, a reconnect when that ping got no
 * frame at all back (half-open TCP: the socket is dead though the browser has
 * not noticed). A busy socket sends nothing extra. */
function keepAlive() {
  const now = Date.now();
  const due = keepAliveDue({ now, lastSentAt, lastFrameAt, pingSentAt });
  if (due === 'dead') {
    dropSocket('no answer from the gateway (ping unanswered)');
    return;
  }
  if (due === 'ping') {
    pingSentAt = lastSentAt = now;
    send(pingMessage(), true);
  } else if (due === 'keepalive') {
    lastSentAt = now; // queued: the next tick must not queue another
    send(keepaliveMessage(), true);
  } else {
    return;
  }
  setStatus({ heartbeatAt: now });
}

function isOpen() {
  return !!socket && socket.readyState === WebSocket.OPEN;
}

// ------------------------------------------------------ paced sending ---

// Each queued message is {text, key, lane}; key (the message's id) lets a
// rate_limited error find it again.
const urgent = []; // results, pings and keepalives: ahead of snapshot parts
const bulk = []; // snapshot parts
const recent = new Map(); // key -> {items, at}: recently sent, for resending
let tokens = SEND_BURST;
let refilledAt = Date.now();
let sendRate = SEND_RATE_MAX;
let pausedUntil = 0;
let pumpTimer = null;

function send(text, isUrgent = false, key = null) {
  const lane = isUrgent ? urgent : bulk;
  lane.push({ text, key, lane });
  pump();
}

function pump() {
  if (pumpTimer || !isOpen()) return;
  const now = Date.now();
  const elapsed = (now - refilledAt) / 1000;
  sendRate = Math.min(SEND_RATE_MAX, sendRate + elapsed);
  tokens = Math.min(SEND_BURST, tokens + elapsed * sendRate);
  refilledAt = now;
  while (now >= pausedUntil && tokens >= 1 && (urgent.length || bulk.length)) {
    const item = urgent.length ? urgent.shift() : bulk.shift();
    socket.send(item.text);
    lastSentAt = now;
    tokens -= 1;
    if (item.key) rememberSent(item, now);
  }
  if (urgent.length || bulk.length) {
    const wait = Math.max(pausedUntil - now, ((1 - tokens) / sendRate) * 1000);
    pumpTimer = setTimeout(() => {
      pumpTimer = null;
      pump();
    }, Math.ceil(wait));
  }
}

function rememberSent(item, now) {
  const entry = recent.get(item.key);
  if (entry && now - entry.at < RESEND_WINDOW_MS) entry.items.push(item);
  else {
    recent.delete(item.key);
    recent.set(item.key, { items: [item], at: now });
  }
  for (const [key, old] of recent) {
    if (now - old.at < RESEND_WINDOW_MS && recent.size <= 1000) break;
    recent.delete(key);
  }
}

/** The gateway refused message `key` for its rate: slow down, pause past the
 * gateway's counting window, and send it again first in its lane. */
function onRateLimited(key) {
  sendRate = Math.max(SEND_RATE_MIN, sendRate / 2);
  pausedUntil = Date.now() + RATE_LIMITED_PAUSE_MS;
  const entry = key ? recent.get(key) : null;
  if (entry) {
    recent.delete(key);
    for (const item of [...entry.items].reverse()) item.lane.unshift(item);
  }
  clearTimeout(pumpTimer);
  pumpTimer = null;
  pump();
}

// -------------------------------------------------------------- frames ---

function onFrame(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return; // Not JSON: nothing a browser is sent in protocol v1.
  }
  if (!message || typeof message !== 'object') return;
  if (message.action === 'command') {
    onCommand(message);
  } else if (message.action === 'error') {
    if (message.code === 'rate_limited') onRateLimited(message.id);
    setStatus({ lastError: `${message.code}: ${message.message}`, lastErrorAt: Date.now() });
  }
  // pong and anything else: the frame itself proved the socket alive.
}

// ------------------------------------------------------------ commands ---

const commands = createCommands({
  activeTab,
  snapshotNow: () => takeSnapshot(true),
  allowScript: () => config.allowScript,
  allowFileUrls: () => config.allowFileUrls,
});

function remember(id) {
  if (seenIds.has(id)) return;
  seenIds.add(id);
  seenOrder.push(id);
  while (seenOrder.length > REMEMBERED_IDS) seenIds.delete(seenOrder.shift());
}

async function onCommand(message) {
  await ready;
  const { id, name } = message;
  if (typeof id !== 'string' || !id) return;
  if (seenIds.has(id)) {
    // A redelivery: the first delivery was (or is being) answered; running it
    // again could click twice. The gateway answers its issuer once.
    console.warn('tabrelay: command', id, 'already run; ignoring the redelivery');
    return;
  }
  remember(id);
  await chrome.storage.session.set({ seenIds: seenOrder });
  const timeoutMs = Math.max(1, Number(message.timeout) || DEFAULT_COMMAND_TIMEOUT) * 1000;
  // Answer a little before the gateway's own deadline, so the issuer gets our
  // precise error instead of a generic timeout.
  const deadline = Date.now() + Math.max(500, timeoutMs - 500);
  const args = message.args && typeof message.args === 'object' ? message.args : {};
  let replies;
  let ok = false;
  try {
    const handler = Object.hasOwn(commands, name) ? commands[name] : null;
    if (!handler) throw new CommandError('unknown_command', `unknown command ${JSON.stringify(name)}`);
    const value = await withDeadline((async () => handler(args, deadline))(), deadline, name);
    replies = resultMessages(id, value);
    ok = true;
  } catch (e) {
    const code = e instanceof CommandError ? e.code : 'internal';
    replies = [errorMessage(id, code, e && e.message ? e.message : String(e))];
  }
  reply(id, replies);
  setStatus({ commands: (status.commands || 0) + 1, lastCommand: { name: String(name), ok, at: Date.now() } });
  if (MUTATING.has(name)) requestSnapshot(false);
}

function withDeadline(promise, deadline, name) {
  let timer;
  const expiry = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new CommandError('timeout', `${name} did not finish in time`)),
      Math.max(0, deadline - Date.now()),
    );
  });
  return Promise.race([promise, expiry]).finally(() => clearTimeout(timer));
}

// Results produced while disconnected wait (briefly) for the next connection.
const outbox = [];

/** Send the messages of command `id`'s result (every part shares the id, so
 * a refusal of one resends them all; the receiver ignores parts it has). */
function reply(id, messages) {
  if (isOpen()) {
    for (const m of messages) send(m, true, id);
  } else {
    outbox.push({ id, messages, at: Date.now() });
  }
}

function flushOutbox() {
  const now = Date.now();
  while (outbox.length) {
    const { id, messages, at } = outbox.shift();
    if (now - at <= OUTBOX_TTL_MS) for (const m of messages) send(m, true, id);
  }
}

// ----------------------------------------------------------- snapshots ---

async function activeTab() {
  const [focused] = await chrome.tabs.query({ active: true, lastFocusedWindow: true });
  if (focused) return focused;
  const [any] = await chrome.tabs.query({ active: true });
  if (!any) throw new CommandError('no_tab', 'no active tab');
  return any;
}

let snapshotBusy = false;
let snapshotWanted = false;
let snapshotTimer = null;
let lastSnapshotAt = 0;

/** Ask for an automatic snapshot: coalesced and at most one per
 * SNAPSHOT_GAP_MS; `fresh` sends even when the page did not change. */
function requestSnapshot(fresh) {
  if (!isOpen()) return;
  if (fresh) lastSent = null;
  snapshotWanted = true;
  runSnapshots();
}

function runSnapshots() {
  if (snapshotBusy || snapshotTimer || !snapshotWanted) return;
  const wait = lastSnapshotAt + SNAPSHOT_GAP_MS - Date.now();
  if (wait > 0) {
    snapshotTimer = setTimeout(() => {
      snapshotTimer = null;
      runSnapshots();
    }, wait);
    return;
  }
  snapshotWanted = false;
  snapshotBusy = true;
  takeSnapshot(false)
    .catch((e) => console.debug('tabrelay: no snapshot:', e.message))
    .finally(() => {
      snapshotBusy = false;
      lastSnapshotAt = Date.now();
      runSnapshots();
    });
}

let snapshotChain = Promise.resolve();

/** Capture the active tab and send it; `force` sends even an unchanged page.
 * Resolves with what was sent (the `snapshot` command's value).
 *
 * Captures run one at a time, in call order (automatic ones, the `snapshot`
 * command and the popup alike). Run concurrently, a capture started before a
 * click could finish after one started after it and take the higher seq: the
 * consumer then keeps the older page and drops the newer one as stale. */
function takeSnapshot(force) {
  const run = snapshotChain.then(() => captureAndSend(force));
  snapshotChain = run.catch(() => {});
  return run;
}

async function captureAndSend(force) {
  await ready;
  if (!isOpen()) throw new CommandError('offline', 'not connected to the gateway');
  const tab = await activeTab();
  // A local file is never sent unless the user opted in (allowFileUrls):
  // checked before capturing, and on the document actually captured.
  const fileRefused = () =>
    new CommandError('url_not_allowed', 'the active tab shows a local file, and file: pages are off (allowFileUrls)');
  if (!config.allowFileUrls && (showsLocalFile(tab.url) || showsLocalFile(tab.pendingUrl))) throw fileRefused();
  const page = await inject(tab.id, captureDocument, []);
  if (!config.allowFileUrls && showsLocalFile(page.url)) throw fileRefused();
  if (!force && lastSent && lastSent.url === page.url && lastSent.title === page.title && lastSent.html === page.html) {
    return null;
  }
  // seq grows across worker restarts: persisted, and never behind the clock
  // (a write lost in a restart cannot make it go backwards).
  seq = Math.max(seq + 1, Date.now());
  chrome.storage.local.set({ seq });
  const sid = `${seq.toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
  const { messages, bytes } = await snapshotMessages({ sid, seq, url: page.url, title: page.title, html: page.html });
  for (const m of messages) send(m.text, false, m.id);
  lastSent = page;
  const summary = { sid, seq, url: page.url, title: page.title, parts: messages.length, bytes };
  setStatus({ snapshots: (status.snapshots || 0) + 1, lastSnapshot: { ...summary, at: Date.now() } });
  return summary;
}

// -------------------------------------------------------------- status ---

const BADGE = {
  connected: { text: 'on', color: '#1e8e3e' },
  connecting: { text: '…', color: '#f9ab00' },
  reconnecting: { text: '…', color: '#f9ab00' },
  error: { text: 'err', color: '#d93025' },
};

/** The status the badge and popup show. Written on every change, so the
 * popup never shows a state the worker is not in. */
function setStatus(patch) {
  const before = status.state;
  status = { ...status, ...patch, updatedAt: Date.now() };
  if (patch.state && patch.state !== before && !('since' in patch)) status.since = Date.now();
  chrome.storage.session.set({ status }).catch(() => {});
  const badge = BADGE[status.state] || BADGE.error;
  chrome.action.setBadgeText({ text: badge.text }).catch(() => {});
  chrome.action.setBadgeBackgroundColor({ color: badge.color }).catch(() => {});
  const title = status.reason ? `tabrelay: ${status.state} (${status.reason})` : `tabrelay: ${status.state}`;
  chrome.action.setTitle({ title }).catch(() => {});
}

// -------------------------------------------------------------- events ---

chrome.alarms.onAlarm.addListener(async (alarm) => {
  if (alarm.name !== WATCHDOG_ALARM) return;
  await ready;
  if (!socket && !nextSocket && !reconnectTimer) connect();
});

chrome.tabs.onActivated.addListener(() => requestSnapshot(false));
chrome.tabs.onUpdated.addListener((tabId, change, tab) => {
  // url: history.pushState navigations of single-page apps never "complete".
  if (tab.active && (change.status === 'complete' || change.url !== undefined || change.title !== undefined)) {
    requestSnapshot(false);
  }
});
chrome.windows.onFocusChanged.addListener(() => requestSnapshot(false));

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (!message || typeof message.type !== 'string') return false;
  if (message.type === 'tabrelay:changed') {
    if (sender.tab && sender.tab.active) requestSnapshot(false);
    return false;
  }
  (async () => {
    await ready;
    if (message.type === 'tabrelay:snapshot') {
      return takeSnapshot(true);
    }
    if (message.type === 'tabrelay:reconnect') {
      await loadConfig();
      restart('reconnect requested');
      return null;
    }
    return status; // 'tabrelay:hello' and anything else: the current status
  })().then(
    (value) => sendResponse({ ok: true, value }),
    (e) => sendResponse({ ok: false, error: e.message }),
  );
  return true; // answered asynchronously
});

chrome.storage.onChanged.addListener(async (changes, area) => {
  if (area !== 'local' || !changes.options) return;
  await ready;
  await loadConfig();
  restart('configuration changed');
});

/** Close the current socket (if any) and connect again at once. */
function restart(why) {
  const ws = socket;
  const next = nextSocket;
  nextSocket = null;
  if (next) next.close(1000, why);
  release();
  openedAt = 0;
  attempt = 0;
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, why);
  connect();
}
