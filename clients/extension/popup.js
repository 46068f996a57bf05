// The popup shows the service worker's status as the worker last wrote it,
// and wakes the worker first (a message starts a stopped worker, whose
// start-up rewrites the status), so what it shows is never a stale "connected".

const $ = (id) => document.getElementById(id);
let status = null;

const STATE_TEXT = {
  connected: 'Connected',
  connecting: 'Connecting…',
  reconnecting: 'Reconnecting',
  error: 'Error',
};

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}

function render() {
  if (!status) return;
  const state = status.state || 'error';
  $('dot').className = `dot ${state}`;
  let text = STATE_TEXT[state] || state;
  if (state === 'connected' && status.since) text += ` (since ${ago(status.since).replace(' ago', '')})`;
  if (state === 'reconnecting' && status.nextAttemptAt) {
    const s = Math.max(0, Math.ceil((status.nextAttemptAt - Date.now()) / 1000));
    text += s > 0 ? ` – next attempt in ${s} s` : ' – trying now';
  }
  $('state').textContent = text;
  $('reason').textContent = status.reason || status.lastError || '';
  $('gateway').textContent = status.gateway || '–';
  $('client').textContent = status.clientId || '–';
  $('tenant').textContent = status.tenant || '–';
  $('expires').textContent = status.tokenExpiresAt ? new Date(status.tokenExpiresAt).toLocaleString() : '–';
  const snap = status.lastSnapshot;
  $('snapshot').textContent = snap
    ? `${ago(snap.at)} · ${snap.parts} part${snap.parts === 1 ? '' : 's'} · ${snap.title || snap.url}`
    : '–';
  $('snapshot').title = snap ? snap.url : '';
  const last = status.lastCommand;
  $('commands').textContent = `${status.commands || 0}${last ? ` · last: ${last.name} ${last.ok ? 'ok' : 'failed'}` : ''}`;
}

async function ask(type) {
  const answer = await chrome.runtime.sendMessage({ type });
  if (answer && !answer.ok) $('reason').textContent = answer.error;
  return answer;
}

chrome.storage.onChanged.addListener((changes, area) => {
  if (area === 'session' && changes.status) {
    status = changes.status.newValue;
    render();
  }
});

$('send-snapshot').addEventListener('click', () => ask('tabrelay:snapshot'));
$('reconnect').addEventListener('click', () => ask('tabrelay:reconnect'));
$('options').addEventListener('click', () => chrome.runtime.openOptionsPage());

const hello = await ask('tabrelay:hello');
if (hello && hello.ok) status = hello.value;
render();
document.body.dataset.ready = 'true';
setInterval(render, 1000); // countdowns and "ago" texts
