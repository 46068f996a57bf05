// Runs the reconnection schedule of the extension's lib/wire.js (backoffDelay,
// earlyReconnectDelay) with fixed and seeded draws, and prints what it gives
// as JSON for tests/unit/extension/test_reconnect_js.py to check.
import { pathToFileURL } from 'node:url';

const [wirePath] = process.argv.slice(2);
const wire = await import(pathToFileURL(wirePath).href);

/** A small deterministic generator (mulberry32): one per simulated browser. */
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const fixed = (value) => () => value;
const draws = [0, 0.25, 0.5, 0.999];
const attempts = [0, 1, 2, 3, 4, 5, 10, 40];

process.stdout.write(
  JSON.stringify({
    // delays[draw][attempt] with the default base and cap
    backoff: draws.map((d) => attempts.map((n) => wire.backoffDelay(n, { random: fixed(d) }))),
    attempts,
    draws,
    // the first delay after a drop of 1,000 browsers, each with its own generator
    storm: Array.from({ length: 1000 }, (_, i) => wire.backoffDelay(0, { random: seeded(i + 1) })),
    early: draws.map((d) => wire.earlyReconnectDelay({ random: fixed(d) })),
    earlyFleet: Array.from({ length: 200 }, (_, i) => wire.earlyReconnectDelay({ random: seeded(i + 1) })),
    earlyCustom: wire.earlyReconnectDelay({ from: 50, to: 100, random: fixed(0.5) }),
  }),
);
