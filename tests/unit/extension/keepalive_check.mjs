// Runs the extension's keep-alive schedule (lib/wire.js keepAliveDue, asked
// every KEEPALIVE_TICK_MS as background.js does) on a fake clock, and prints
// what a socket sends on its own as JSON for test_keepalive_js.py to check.
import { pathToFileURL } from 'node:url';

const [wirePath] = process.argv.slice(2);
const wire = await import(pathToFileURL(wirePath).href);

/** Ten minutes of one socket: the page sends a message every `sendsEveryMs`
 * (null: never), the gateway answers pings unless told not to. Returns
 * [[time, 'keepalive' | 'ping' | 'dead' | 'page'], ...]. */
function run({ sendsEveryMs = null, answerPings = true, untilMs = 600_000 } = {}) {
  let lastSentAt = 0;
  let lastFrameAt = 0;
  let pingSentAt = null;
  const out = [];
  for (let now = 0; now <= untilMs; now += 1000) {
    if (sendsEveryMs !== null && now > 0 && now % sendsEveryMs === 0) {
      lastSentAt = now;
      out.push([now, 'page']);
    }
    if (now === 0 || now % wire.KEEPALIVE_TICK_MS !== 0) continue;
    const due = wire.keepAliveDue({ now, lastSentAt, lastFrameAt, pingSentAt });
    if (due === 'dead') {
      out.push([now, 'dead']);
      break;
    }
    if (due === 'ping') {
      pingSentAt = lastSentAt = now;
      out.push([now, 'ping']);
      if (answerPings) lastFrameAt = now + 1; // the pong, a moment later
    } else if (due === 'keepalive') {
      lastSentAt = now;
      out.push([now, 'keepalive']);
    }
  }
  return out;
}

process.stdout.write(
  JSON.stringify({
    constants: {
      KEEPALIVE_AFTER_MS: wire.KEEPALIVE_AFTER_MS,
      PING_AFTER_MS: wire.PING_AFTER_MS,
      PING_TIMEOUT_MS: wire.PING_TIMEOUT_MS,
      KEEPALIVE_TICK_MS: wire.KEEPALIVE_TICK_MS,
    },
    messages: { keepalive: wire.keepaliveMessage(), ping: wire.pingMessage() },
    idle: run(),
    busy: run({ sendsEveryMs: 10_000 }),
    unanswered: run({ answerPings: false }),
  }),
);
