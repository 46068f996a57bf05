// Tells the service worker that the page changed, so it can take a snapshot.
// Debounced: one message after 300 ms of quiet, and at least one every 2 s
// while the page keeps changing. The worker rate-limits on top of this.
(() => {
  if (globalThis.__tabrelayWatching) return;
  globalThis.__tabrelayWatching = true;
  const QUIET_MS = 300;
  const MAX_WAIT_MS = 2000;
  let timer = null;
  let firstAt = 0;
  const notify = () => {
    timer = null;
    firstAt = 0;
    try {
      chrome.runtime.sendMessage({ type: 'tabrelay:changed' }).catch(() => {});
    } catch {
      // The extension was reloaded or removed: this page's script is orphaned.
    }
  };
  const poke = () => {
    const now = Date.now();
    if (!firstAt) firstAt = now;
    clearTimeout(timer);
    timer = setTimeout(notify, Math.max(0, Math.min(QUIET_MS, firstAt + MAX_WAIT_MS - now)));
  };
  new MutationObserver(poke).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
  // Typed text changes properties, not the DOM: watch the events as well.
  addEventListener('input', poke, true);
  addEventListener('change', poke, true);
})();
