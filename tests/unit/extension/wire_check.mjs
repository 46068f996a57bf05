// Runs the extension's lib/wire.js under Node and prints, as one JSON object, its
// exported constants and the frames it builds from the wire fixtures and from
// edge cases. tests/unit/extension/test_wire_js.py decodes every frame with the
// Python tabrelay.wire and compares each constant with the Python one.
//
// Usage: node wire_check.mjs <path of wire.js> <tests/fixtures/wire directory>

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [wirePath, fixtures] = process.argv.slice(2);
const wire = await import(pathToFileURL(wirePath).href);

const constants = Object.fromEntries(
  Object.entries(wire).filter(([name, value]) => /^[A-Z][A-Z0-9_]*$/.test(name) && typeof value !== 'function'),
);

function inbound(name) {
  return JSON.parse(readFileSync(join(fixtures, 'inbound', name), 'utf8'));
}

async function snapshotFrames(page) {
  const { messages } = await wire.snapshotMessages(page);
  return messages.map((m) => m.text);
}

// Deterministic text that gzip cannot shrink much: the page needs many parts.
function noise(length) {
  let state = 12345;
  let out = '';
  while (out.length < length) {
    state = (state * 1103515245 + 12345) % 2147483648;
    out += String.fromCharCode(33 + (state % 90));
  }
  return out;
}

const cases = [];
// Every fixture of a message the extension builds, built by the extension.
for (const name of readdirSync(join(fixtures, 'inbound')).sort()) {
  const frame = inbound(name);
  if (frame.action === 'result' && frame.parts === 1) {
    const frames = frame.ok
      ? wire.resultMessages(frame.id, frame.value)
      : [wire.errorMessage(frame.id, frame.code, frame.error)];
    cases.push({ name: `fixture ${name}`, kind: 'result', fixture: frame, frames });
  } else if (frame.action === 'snapshot' && frame.enc === 'none') {
    const page = { sid: frame.sid, seq: frame.seq, url: frame.url, title: frame.title, html: frame.data };
    cases.push({ name: `fixture ${name}`, kind: 'snapshot', fixture: frame, html: frame.data, frames: await snapshotFrames(page) });
  }
}

// Edge cases at and over the limits.
const long = 'x'.repeat(100_000);
cases.push({
  name: 'an error text longer than the limit',
  kind: 'clipped_error',
  frames: [wire.errorMessage('k-long', 'internal', long)],
});
cases.push({
  name: 'a url and title longer than the limits',
  kind: 'clipped_page',
  html: '<p>hi</p>',
  frames: await snapshotFrames({ sid: 's-long', seq: 1, url: long, title: long, html: '<p>hi</p>' }),
});
const big = noise(300_000);
cases.push({
  name: 'a page of many parts',
  kind: 'snapshot',
  fixture: { sid: 's-big', seq: 7, url: 'https://example.com/big', title: 'Big' },
  html: big,
  frames: await snapshotFrames({ sid: 's-big', seq: 7, url: 'https://example.com/big', title: 'Big', html: big }),
});
const value = { png: noise(100_000), text: 'é😀"\\'.repeat(10_000) };
cases.push({ name: 'a result of many parts', kind: 'parts', value, frames: wire.resultMessages('k-big', value) });

process.stdout.write(JSON.stringify({ constants, cases }));
