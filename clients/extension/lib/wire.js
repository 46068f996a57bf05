// Wire protocol v1, the browser's side: framing, compression, parts, backoff.
//
// Pure functions only (no chrome.* and no sockets), so the service worker's
// I/O code stays thin. The authoritative definition of every message and limit
// is the Python module tabrelay.wire (clients/python/tabrelay/wire.py); this file
// must produce exactly those shapes. tests/unit/test_wire_js.py runs it under
// Node against the wire fixtures and checks every exported constant below
// against the Python one it mirrors.

/** API Gateway closes a connection with 1009 when one frame exceeds 32 KB.
 * A browser WebSocket sends each message as one frame, so every message we
 * send stays within this many UTF-8 bytes (a margin under 32,768). */
export const MESSAGE_BUDGET = 30000;

/** The wire's upper bound on parts of one snapshot or result (wire.MAX_PARTS). */
export const MAX_PARTS = 10000;

/** Longest snapshot url, title and result error text, in characters (UTF-16
 * code units here, never more code points): wire.MAX_URL_CHARS, ... */
export const MAX_URL_CHARS = 8192;
export const MAX_TITLE_CHARS = 1024;
export const MAX_ERROR_CHARS = 4096;

/** A command's timeout when the delivery carries none, in seconds. */
export const DEFAULT_COMMAND_TIMEOUT = 30;

const encoder = new TextEncoder();

/** UTF-8 size of a string in bytes. */
export function byteLength(text) {
  return encoder.encode(text).length;
}

/** gzip(UTF-8 text) with the platform's CompressionStream. */
export async function gzip(text) {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Standard base64 of bytes (btoa wants a binary string; build it in chunks
 * so large snapshots do not overflow the argument limit of fromCharCode). */
export function base64(bytes) {
  let binary = '';
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + chunk));
  }
  return btoa(binary);
}

/**
 * The snapshot messages for one page state, each at most `budget` bytes:
 * a list of {id, text}.
 *
 * `data` of part i is slice i of base64(gzip(html)); the receiver joins the
 * slices in order, decodes base64 and decompresses. Throws when the page is
 * too large for MAX_PARTS parts.
 */
export async function snapshotMessages({ sid, seq, url, title, html }, budget = MESSAGE_BUDGET) {
  const text = base64(await gzip(html));
  const head = {
    action: 'snapshot',
    sid,
    seq,
    url: clip(url || '', MAX_URL_CHARS),
    title: clip(title || '', MAX_TITLE_CHARS),
    enc: 'gzip',
  };
  // Measure the envelope with the widest part numbers the wire allows, so the
  // real messages can only be smaller.
  const overhead = byteLength(
    JSON.stringify({ ...head, id: partId(sid, MAX_PARTS), data: '', part: MAX_PARTS, parts: MAX_PARTS }),
  );
  const room = budget - overhead;
  if (room < 1024) throw new Error('url and title leave no room for data in one frame');
  const parts = Math.max(1, Math.ceil(text.length / room));
  if (parts > MAX_PARTS) throw new Error(`page too large: ${parts} parts (at most ${MAX_PARTS})`);
  const out = [];
  for (let part = 0; part < parts; part++) {
    // base64 is ASCII and never escaped by JSON: one character is one byte.
    const data = text.slice(part * room, (part + 1) * room);
    out.push({ id: partId(sid, part), text: JSON.stringify({ ...head, id: partId(sid, part), data, part, parts }) });
  }
  return { messages: out, bytes: text.length };
}

/** Each part carries its own id, so a gateway error (rate_limited) names the
 * one part it refused and only that part is sent again. */
function partId(sid, part) {
  return `${sid}.${part}`;
}

/**
 * The result messages answering command `id` with `value`.
 *
 * One message when it fits; otherwise the JSON text of the value is cut into
 * string slices (never inside a surrogate pair), each carried as the `value`
 * of one part, as the Result docstring of the wire definition says.
 */
export function resultMessages(id, value, budget = MESSAGE_BUDGET) {
  const whole = JSON.stringify({ action: 'result', id, ok: true, value: value ?? null });
  if (byteLength(whole) <= budget) return [whole];
  const text = JSON.stringify(value);
  const overhead = byteLength(
    JSON.stringify({ action: 'result', id, ok: true, value: '', part: MAX_PARTS, parts: MAX_PARTS }),
  );
  const room = budget - overhead;
  const slices = [];
  let pos = 0;
  while (pos < text.length) {
    let end = Math.min(text.length, pos + room);
    for (;;) {
      if (end < text.length && end - pos > 1 && isHighSurrogate(text.charCodeAt(end - 1))) end -= 1;
      // JSON.stringify adds the two quotes; escapes and multi-byte characters
      // make a slice larger than its length, so shrink (in proportion, and
      // always by at least one character, never to nothing) until it fits.
      const size = byteLength(JSON.stringify(text.slice(pos, end))) - 2;
      if (size <= room) break;
      const shrunk = pos + Math.floor(((end - pos) * room) / size);
      end = Math.max(pos + 1, Math.min(end - 1, shrunk));
    }
    slices.push(text.slice(pos, end));
    pos = end;
  }
  if (slices.length > MAX_PARTS) throw new Error(`result too large: ${slices.length} parts`);
  return slices.map((slice, part) =>
    JSON.stringify({ action: 'result', id, ok: true, value: slice, part, parts: slices.length }),
  );
}

/** The one message answering command `id` with an error `code`. */
export function errorMessage(id, code, error) {
  return JSON.stringify({ action: 'result', id, ok: false, error: clip(String(error), MAX_ERROR_CHARS), code });
}

/** Delay before reconnection attempt `attempt` (0-based), in ms: uniform in
 * [0, min(cap, base * 2^attempt)] ("full jitter", AWS Architecture Blog
 * "Exponential Backoff And Jitter"), so a fleet of browsers dropped together
 * (a gateway blip) spreads its reconnections over the whole window instead of
 * coming back in lockstep. */
export function backoffDelay(attempt, { base = 500, cap = 15000, random = Math.random } = {}) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.round(random() * ceiling);
}

/** API Gateway closes every WebSocket connection after 2 hours. Each
 * connection, once open, reconnects on purpose (no backoff) at a moment drawn
 * uniformly in [EARLY_RECONNECT_FROM_MS, EARLY_RECONNECT_TO_MS] after it
 * opened: 100 to 110 minutes, i.e. 10 to 20 minutes before the cut, so a fleet
 * that connected together is not cut together. The same window as the Python
 * client's `early_reconnect` (tabrelay.core.DEFAULT_EARLY_RECONNECT). */
export const EARLY_RECONNECT_FROM_MS = 6000000;
export const EARLY_RECONNECT_TO_MS = 6600000;

/** How long after a connection opened to reconnect on purpose, in ms. */
export function earlyReconnectDelay({ from = EARLY_RECONNECT_FROM_MS, to = EARLY_RECONNECT_TO_MS, random = Math.random } = {}) {
  return Math.round(from + random() * (to - from));
}

/** Keep-alive, the same schedule as the Python client's browser role
 * (tabrelay.core.BROWSER_KEEPALIVE). API Gateway closes a connection idle for
 * 10 minutes and bills every message, a ping and its pong alike; a Manifest V3
 * service worker stays alive only while its WebSocket exchanges a message at
 * least every 30 s. So: a one-way `keepalive` (API Gateway answers it with
 * nothing and calls no Lambda) when nothing else went out for
 * KEEPALIVE_AFTER_MS; a `ping` (answered `pong`) only when nothing came in for
 * PING_AFTER_MS; and the socket is dead when nothing at all came in
 * PING_TIMEOUT_MS after that ping (noticed within 140 s of the last frame,
 * plus one tick). */
export const KEEPALIVE_AFTER_MS = 20000;
export const PING_AFTER_MS = 120000;
export const PING_TIMEOUT_MS = 20000;
/** How often the service worker asks keepAliveDue: a keepalive goes out 20 to
 * 25 s after the last message, inside the service worker's 30 s. */
export const KEEPALIVE_TICK_MS = 5000;

/** The one-way keep-alive and the liveness ping, as sent. */
export function keepaliveMessage() {
  return JSON.stringify({ action: 'keepalive' });
}

export function pingMessage() {
  return JSON.stringify({ action: 'ping' });
}

/** What the keep-alive needs now: 'dead', 'ping', 'keepalive' or null.
 * Times in ms: `lastSentAt` the last message sent, `lastFrameAt` the last one
 * received, `pingSentAt` the last ping (null if none); any frame received after
 * a ping answers it. A ping counts as sent: it keeps the connection alive too,
 * so a keepalive that is due goes as the ping when that would be due before the
 * next keepalive anyway. */
export function keepAliveDue(
  { now, lastSentAt, lastFrameAt, pingSentAt = null },
  { keepaliveAfter = KEEPALIVE_AFTER_MS, pingAfter = PING_AFTER_MS, pingTimeout = PING_TIMEOUT_MS } = {},
) {
  const waiting = pingSentAt !== null && lastFrameAt < pingSentAt;
  if (waiting && now - pingSentAt >= pingTimeout) return 'dead';
  if (!waiting && now - lastFrameAt >= pingAfter) return 'ping';
  if (now - lastSentAt >= keepaliveAfter) {
    // A ping due before the next keepalive anyway goes now instead: one message, not two.
    return !waiting && lastFrameAt + pingAfter < now + keepaliveAfter ? 'ping' : 'keepalive';
  }
  return null;
}

/** The claims of a JWT, without verifying it (for display and expiry checks);
 * null when the token is not a JWT. */
export function jwtClaims(token) {
  try {
    const payload = token.split('.')[1];
    const b64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** `url` with the token in the query string (browsers cannot set headers). */
export function socketUrl(url, token) {
  const u = new URL(url);
  u.searchParams.set('token', token);
  return u.toString();
}

function clip(text, max) {
  if (text.length <= max) return text;
  let end = max;
  if (isHighSurrogate(text.charCodeAt(end - 1))) end -= 1;
  return text.slice(0, end);
}

function isHighSurrogate(code) {
  return code >= 0xd800 && code <= 0xdbff;
}
