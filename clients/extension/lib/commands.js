// The automation commands a consumer can send, run against the active tab.
//
// Each command resolves with a JSON value or rejects with a CommandError whose
// `code` goes on the wire (element_not_found, timeout, navigation_failed, ...).
// The service worker guarantees at most one run per command id and exactly
// one answer; this module only knows how to do each thing.

import { evaluateInPage, pageOp } from './page.js';

export class CommandError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** Commands that change the page: a snapshot follows each of them. */
export const MUTATING = new Set([
  'navigate', 'back', 'forward', 'reload', 'click', 'type', 'fill', 'press_key', 'scroll', 'hover', 'select_option', 'evaluate',
]);

/** Whether `url` shows a local file (also through view-source:). Such pages
 * are never read (no command, snapshot or screenshot) unless the user opted
 * in with allowFileUrls: any consumer of the tenant would get the file. */
export function showsLocalFile(url) {
  return /^\s*(view-source:\s*)?file:/i.test(String(url || ''));
}

function isUrl(text) {
  try {
    new URL(text); // eslint-disable-line no-new
    return true;
  } catch {
    return false;
  }
}

/** Why `navigate` must not open `url` (a message), or null when it may:
 * http(s) and about:blank always; file: only with allowFileUrls; every other
 * scheme (javascript:, data:, chrome:, view-source:, blob:, ...) never. */
export function navigationRefusal(url, allowFileUrls) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return null; // not a URL at all: bad_request, decided by the caller
  }
  const scheme = parsed.protocol.toLowerCase();
  if (scheme === 'http:' || scheme === 'https:' || parsed.href === 'about:blank') return null;
  if (scheme === 'file:') {
    return allowFileUrls
      ? null
      : 'file: URLs are off: turn on "Allow file:// pages" in the options (allowFileUrls in config.json)';
  }
  return `navigate opens only http:, https: and about:blank (file: when allowed), not ${scheme}`;
}

/**
 * The command table. `env` supplies:
 *   activeTab(): Promise<chrome.tabs.Tab>   the tab commands act on
 *   snapshotNow(): Promise<object>          capture and send a snapshot now
 *   allowScript(): boolean                  whether `evaluate` is switched on
 *   allowFileUrls(): boolean                whether file: pages may be opened and read
 * Each handler is (args, deadline) => Promise<value>; deadline is epoch ms.
 */
export function createCommands(env) {
  // Read from the document itself: the tab object can lag behind a
  // navigation that just completed (pages restored from the back/forward cache).
  const tabInfo = async (tabId) => {
    const [first] = await chrome.scripting
      .executeScript({ target: { tabId }, func: () => ({ url: location.href, title: document.title }) })
      .catch(() => []);
    if (first && first.result) return first.result;
    const tab = await chrome.tabs.get(tabId);
    return { url: tab.url || '', title: tab.title || '' };
  };

  /** Refuse to read a tab that shows a local file the user did not allow. */
  const refuseLocal = (tab) => {
    if (!env.allowFileUrls() && (showsLocalFile(tab.url) || showsLocalFile(tab.pendingUrl))) {
      throw new CommandError('url_not_allowed', 'the active tab shows a local file, and file: pages are off (allowFileUrls)');
    }
  };

  /** The same check on the tab as it is now (after a call that took time). */
  const guard = async (tabId) => {
    if (!env.allowFileUrls()) refuseLocal(await chrome.tabs.get(tabId));
  };

  /** The active tab, when it may be read (no extra API call: the command's
   * page operation follows at once, in the order commands arrived). */
  const readableTab = async () => {
    const tab = await env.activeTab();
    refuseLocal(tab);
    return tab;
  };

  const navigation = async (args, deadline, start) => {
    const tab = await env.activeTab();
    await waitForNavigation(tab.id, deadline, () => start(tab));
    await guard(tab.id); // back/forward may land on a local file
    return tabInfo(tab.id);
  };

  const inPage = async (op, args, deadline) => {
    const tab = await readableTab();
    const result = await inject(tab.id, pageOp, [op, args, deadline - Date.now()]);
    await guard(tab.id); // the tab may have changed under the call
    if (!result.ok) throw new CommandError(result.code, result.error);
    return result.value;
  };

  return {
    navigate: (args, deadline) => {
      const url = args.url;
      if (typeof url !== 'string' || !isUrl(url)) {
        throw new CommandError('bad_request', 'navigate needs "url", an absolute http: or https: URL');
      }
      const refusal = navigationRefusal(url, env.allowFileUrls());
      if (refusal) throw new CommandError('url_not_allowed', refusal);
      return navigation(args, deadline, (tab) => chrome.tabs.update(tab.id, { url }));
    },
    back: (args, deadline) => navigation(args, deadline, (tab) => history(tab, -1)),
    forward: (args, deadline) => navigation(args, deadline, (tab) => history(tab, 1)),
    reload: (args, deadline) =>
      navigation(args, deadline, (tab) => chrome.tabs.reload(tab.id, { bypassCache: !!args.bypass_cache })),
    click: (args, deadline) => inPage('click', args, deadline),
    type: (args, deadline) => inPage('type', args, deadline),
    fill: (args, deadline) => inPage('fill', args, deadline),
    press_key: (args, deadline) => inPage('press_key', args, deadline),
    scroll: (args, deadline) => inPage('scroll', args, deadline),
    hover: (args, deadline) => inPage('hover', args, deadline),
    select_option: (args, deadline) => inPage('select_option', args, deadline),
    wait_for: (args, deadline) => waitFor({ ...env, activeTab: readableTab }, args, deadline),
    snapshot: () => env.snapshotNow(),
    screenshot: async () => {
      const tab = await readableTab();
      const url = await chrome.tabs.captureVisibleTab(tab.windowId, { format: 'png' });
      return { mime: 'image/png', data: url.slice(url.indexOf(',') + 1), url: tab.url || '' };
    },
    evaluate: async (args) => {
      if (!env.allowScript()) {
        throw new CommandError('forbidden', 'evaluate is switched off; turn on "Allow page scripts" in the options');
      }
      if (typeof args.expression !== 'string') throw new CommandError('bad_request', 'evaluate needs "expression"');
      const tab = await readableTab();
      const result = await inject(tab.id, evaluateInPage, [args.expression], 'MAIN');
      await guard(tab.id);
      if (!result.ok) throw new CommandError(result.code, result.error);
      return result.value;
    },
  };
}

/** Go `delta` entries through the tab's history. From inside the page (as
 * the page's own history.go would): Chrome's back button skips entries that
 * were left without a user gesture, which every automated navigation is, so
 * chrome.tabs.goBack would find "no previous page". Pages that cannot be
 * scripted (chrome:// and error pages) fall back to the tab API. */
async function history(tab, delta) {
  const length = await chrome.scripting
    .executeScript({ target: { tabId: tab.id }, func: (d) => (window.history.go(d), window.history.length), args: [delta] })
    .catch(() => null);
  if (length) return;
  await (delta < 0 ? chrome.tabs.goBack(tab.id) : chrome.tabs.goForward(tab.id));
}

/** Run `func(...args)` in the tab's top frame and return what it returned. */
export async function inject(tabId, func, args, world = 'ISOLATED') {
  let results;
  try {
    results = await chrome.scripting.executeScript({ target: { tabId }, func, args, world });
  } catch (e) {
    throw new CommandError('not_scriptable', `cannot run in this page: ${e.message}`);
  }
  const first = results && results[0];
  if (!first) throw new CommandError('not_scriptable', 'the page returned nothing (is it still loading?)');
  if (first.error) throw new CommandError('internal', String(first.error.message || first.error));
  return first.result;
}

/** Resolve when the tab's top frame finishes the navigation `start` begins;
 * reject with navigation_failed when it fails, timeout at the deadline. */
export function waitForNavigation(tabId, deadline, start) {
  return new Promise((resolve, reject) => {
    const nav = chrome.webNavigation;
    const mine = (d) => d.tabId === tabId && d.frameId === 0;
    // Only a load committed after we started counts: the previous page's own
    // onCompleted can arrive late (its load event waited on something).
    let committed = false;
    const onCommitted = (d) => {
      if (mine(d)) committed = true;
    };
    const onCompleted = (d) => mine(d) && committed && finish(resolve);
    // History and fragment navigations within one document never "complete".
    const onSameDocument = (d) => mine(d) && finish(resolve);
    const onError = (d) => {
      // ERR_ABORTED: this navigation was replaced by a newer one; wait for that.
      if (!mine(d) || d.error === 'net::ERR_ABORTED') return;
      finish(() => reject(new CommandError('navigation_failed', `${d.error} loading ${d.url}`)));
    };
    const timer = setTimeout(
      () => finish(() => reject(new CommandError('timeout', 'the page did not finish loading in time'))),
      Math.max(0, deadline - Date.now()),
    );
    let over = false;
    function finish(then) {
      if (over) return;
      over = true;
      clearTimeout(timer);
      nav.onCommitted.removeListener(onCommitted);
      nav.onCompleted.removeListener(onCompleted);
      nav.onHistoryStateUpdated.removeListener(onSameDocument);
      nav.onReferenceFragmentUpdated.removeListener(onSameDocument);
      nav.onErrorOccurred.removeListener(onError);
      then();
    }
    nav.onCommitted.addListener(onCommitted);
    nav.onCompleted.addListener(onCompleted);
    nav.onHistoryStateUpdated.addListener(onSameDocument);
    nav.onReferenceFragmentUpdated.addListener(onSameDocument);
    nav.onErrorOccurred.addListener(onError);
    Promise.resolve()
      .then(start)
      .catch((e) => finish(() => reject(new CommandError('navigation_failed', e.message))));
  });
}

/** wait_for survives navigations: when the page goes away under the wait,
 * wait again in the next document until the deadline. */
async function waitFor(env, args, deadline) {
  if (!args.selector && !args.text) throw new CommandError('bad_request', 'wait_for needs "selector" or "text"');
  for (;;) {
    const tab = await env.activeTab();
    let result;
    try {
      result = await inject(tab.id, pageOp, ['wait_for', args, deadline - Date.now()]);
    } catch (e) {
      if (Date.now() >= deadline) throw new CommandError('timeout', 'the page did not settle in time');
      // The document changed under us; wait for the next one to load (bounded).
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    if (result.ok) return result.value;
    throw new CommandError(result.code, result.error);
  }
}
