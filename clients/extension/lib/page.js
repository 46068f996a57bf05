// Functions injected into the page with chrome.scripting.executeScript.
//
// Chrome serializes each function's source, so every function here must be
// self-contained: no imports, no references to anything outside its body.
// They never throw: they return {ok: true, value} or {ok: false, code, error},
// because an exception inside an injected function does not reliably reach
// the caller with its message.

/** The page as HTML, with the live state of form fields written into the copy
 * (typed text lives in properties, which outerHTML does not show). Password
 * fields keep their original markup: their values never leave the page. */
export function captureDocument() {
  const root = document.documentElement;
  const copy = root.cloneNode(true);
  const live = root.querySelectorAll('input, textarea, select');
  const dead = copy.querySelectorAll('input, textarea, select');
  for (let i = 0; i < live.length && i < dead.length; i++) {
    const from = live[i];
    const to = dead[i];
    if (from.tagName === 'INPUT') {
      const type = (from.type || '').toLowerCase();
      if (type === 'password' || type === 'file') continue;
      if (type === 'checkbox' || type === 'radio') {
        to.toggleAttribute('checked', from.checked);
      } else {
        to.setAttribute('value', from.value);
      }
    } else if (from.tagName === 'TEXTAREA') {
      to.textContent = from.value;
    } else if (from.tagName === 'SELECT') {
      const options = to.querySelectorAll('option');
      Array.from(from.options).forEach((option, k) => {
        if (options[k]) options[k].toggleAttribute('selected', option.selected);
      });
    }
  }
  return { html: copy.outerHTML, url: location.href, title: document.title };
}

/**
 * Run one element command in the page: op is one of click, type, fill,
 * press_key, scroll, hover, select_option, wait_for.
 */
export async function pageOp(op, args, remainingMs) {
  const fail = (code, error) => ({ ok: false, code, error });
  const done = (value) => ({ ok: true, value: value ?? null });
  const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();

  const visible = (el) =>
    typeof el.checkVisibility === 'function'
      ? el.checkVisibility({ visibilityProperty: true })
      : el.getClientRects().length > 0;

  const labelOf = (el) => {
    if (el.tagName === 'INPUT') {
      const type = (el.type || '').toLowerCase();
      if (['button', 'submit', 'reset'].includes(type)) return norm(el.value);
    }
    return norm(el.innerText || el.textContent) || norm(el.getAttribute('aria-label'));
  };

  // Visible text: the deepest visible element whose text equals `text`
  // (whitespace-normalized), else the deepest that contains it (ignoring
  // case); then its nearest clickable ancestor, if any.
  const byText = (text) => {
    const want = norm(text);
    const lower = want.toLowerCase();
    let exact = null;
    let partial = null;
    const all = document.body ? document.body.querySelectorAll('*') : [];
    for (const el of all) {
      if (['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE'].includes(el.tagName)) continue;
      const label = labelOf(el);
      if (!label || label.length > want.length * 4 + 200) continue;
      if (label === want) {
        if (visible(el)) exact = el; // later in document order = deeper
      } else if (!exact && label.toLowerCase().includes(lower) && visible(el)) {
        partial = el;
      }
    }
    const el = exact || partial;
    if (!el) return null;
    return el.closest('a, button, [role=button], label, summary, input, select, textarea') || el;
  };

  const describe = (target) => (target.selector ? `selector ${JSON.stringify(target.selector)}` : `text ${JSON.stringify(target.text)}`);

  const find = (target) => {
    if (typeof target.selector === 'string' && target.selector) {
      try {
        return { el: document.querySelector(target.selector) };
      } catch (e) {
        return { error: fail('bad_request', `invalid selector ${JSON.stringify(target.selector)}: ${e.message}`) };
      }
    }
    if (typeof target.text === 'string' && target.text) return { el: byText(target.text) };
    return { error: fail('bad_request', `${op} needs "selector" or "text"`) };
  };

  const need = (target) => {
    const { el, error } = find(target);
    if (error) return { error };
    if (!el) return { error: fail('element_not_found', `no element matches ${describe(target)}`) };
    return { el };
  };

  const point = (el) => {
    el.scrollIntoView({ block: 'center', inline: 'center' });
    const r = el.getBoundingClientRect();
    return { clientX: r.left + r.width / 2, clientY: r.top + r.height / 2 };
  };

  const mouse = (el, type, at) =>
    el.dispatchEvent(
      new (type.startsWith('pointer') ? PointerEvent : MouseEvent)(type, {
        bubbles: !['mouseenter', 'pointerenter'].includes(type),
        cancelable: true,
        composed: true,
        view: window,
        button: 0,
        ...at,
      }),
    );

  const key = (el, type, k) =>
    el.dispatchEvent(
      new KeyboardEvent(type, {
        key: k,
        code: k.length === 1 ? (/[a-z]/i.test(k) ? `Key${k.toUpperCase()}` : /\d/.test(k) ? `Digit${k}` : '') : k,
        bubbles: true,
        cancelable: true,
        composed: true,
      }),
    );

  const editable = (el) =>
    (el.tagName === 'INPUT' && !['checkbox', 'radio', 'button', 'submit', 'reset', 'file', 'image'].includes((el.type || '').toLowerCase())) ||
    el.tagName === 'TEXTAREA';

  // Set a field's value through the prototype's setter, so frameworks that
  // track the property (React's value tracker) see the change.
  const setValue = (el, value) => {
    const proto = el.tagName === 'TEXTAREA' ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
    Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, value);
  };

  const insertText = (el, text) => {
    for (const ch of text) {
      const go = key(el, 'keydown', ch);
      key(el, 'keypress', ch);
      if (go) {
        if (editable(el)) {
          setValue(el, el.value + ch);
          el.dispatchEvent(new InputEvent('input', { bubbles: true, composed: true, inputType: 'insertText', data: ch }));
        } else {
          document.execCommand('insertText', false, ch);
        }
      }
      key(el, 'keyup', ch);
    }
  };

  const target = { selector: args.selector, text: args.text };

  switch (op) {
    case 'click': {
      const { el, error } = need(target);
      if (error) return error;
      if (el.disabled) return fail('element_disabled', `the element matching ${describe(target)} is disabled`);
      const at = point(el);
      mouse(el, 'pointerdown', at);
      mouse(el, 'mousedown', at);
      if (typeof el.focus === 'function') el.focus();
      mouse(el, 'pointerup', at);
      mouse(el, 'mouseup', at);
      el.click();
      return done({ tag: el.tagName.toLowerCase(), text: labelOf(el).slice(0, 200) });
    }
    case 'hover': {
      const { el, error } = need(target);
      if (error) return error;
      const at = point(el);
      for (const type of ['pointerover', 'pointerenter', 'mouseover', 'mouseenter', 'pointermove', 'mousemove']) mouse(el, type, at);
      return done({ tag: el.tagName.toLowerCase() });
    }
    case 'type':
    case 'fill': {
      // The text to enter is "text" (or "value"); the field is always named by selector.
      const text = args.text ?? args.value;
      const fieldTarget = { selector: args.selector };
      if (typeof text !== 'string') return fail('bad_request', `${op} needs "text" (a string)`);
      if (!args.selector) return fail('bad_request', `${op} needs "selector"`);
      const { el, error } = need(fieldTarget);
      if (error) return error;
      if (!editable(el) && !el.isContentEditable) return fail('element_not_editable', `the element matching ${describe(fieldTarget)} does not take text`);
      if (el.disabled || el.readOnly) return fail('element_disabled', `the element matching ${describe(fieldTarget)} is disabled or read-only`);
      el.scrollIntoView({ block: 'center' });
      el.focus();
      if (op === 'fill' || args.clear) {
        if (editable(el)) setValue(el, '');
        else el.textContent = '';
      }
      if (op === 'fill' && editable(el)) {
        setValue(el, text);
        el.dispatchEvent(new InputEvent('input', { bubbles: true, composed: true, inputType: 'insertText', data: text }));
      } else {
        insertText(el, text);
      }
      el.dispatchEvent(new Event('change', { bubbles: true }));
      return done({ value: editable(el) ? el.value : el.textContent });
    }
    case 'press_key': {
      const k = args.key;
      if (typeof k !== 'string' || !k) return fail('bad_request', 'press_key needs "key" (e.g. "Enter", "a")');
      let el = document.activeElement || document.body;
      if (args.selector) {
        const found = need({ selector: args.selector });
        if (found.error) return found.error;
        el = found.el;
        if (typeof el.focus === 'function') el.focus();
      }
      if (k.length === 1) {
        insertText(el, k);
        return done({ key: k });
      }
      const go = key(el, 'keydown', k);
      if (k === 'Enter') key(el, 'keypress', k);
      if (go) {
        // Synthetic key events have no default action; perform the common ones.
        if (k === 'Enter') {
          if (el.tagName === 'INPUT' && el.form) el.form.requestSubmit();
          else if (['A', 'BUTTON'].includes(el.tagName)) el.click();
        } else if (k === 'Backspace' && editable(el)) {
          setValue(el, el.value.slice(0, -1));
          el.dispatchEvent(new InputEvent('input', { bubbles: true, inputType: 'deleteContentBackward' }));
        } else if (k === 'Tab') {
          const focusable = Array.from(document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')).filter(
            (f) => !f.disabled && f.tabIndex >= 0 && visible(f),
          );
          const next = focusable[(focusable.indexOf(el) + 1) % Math.max(1, focusable.length)];
          if (next) next.focus();
        }
      }
      key(el, 'keyup', k);
      return done({ key: k });
    }
    case 'scroll': {
      if (args.selector || args.text) {
        const { el, error } = need(target);
        if (error) return error;
        el.scrollIntoView({ block: 'center' });
      } else if (args.to === 'top') {
        window.scrollTo(0, 0);
      } else if (args.to === 'bottom') {
        window.scrollTo(0, document.documentElement.scrollHeight);
      } else {
        const x = Number(args.x ?? 0);
        const y = Number(args.y ?? args.amount ?? 0);
        if (!Number.isFinite(x) || !Number.isFinite(y)) return fail('bad_request', 'scroll needs numbers "x"/"y", "to", or "selector"');
        window.scrollBy(x, y);
      }
      return done({ x: window.scrollX, y: window.scrollY });
    }
    case 'select_option': {
      const { el, error } = need({ selector: args.selector });
      if (error) return error;
      if (el.tagName !== 'SELECT') return fail('bad_request', `the element matching ${describe({ selector: args.selector })} is not a <select>`);
      const wanted = args.values ?? [args.value ?? args.label ?? args.index];
      if (!Array.isArray(wanted) || wanted.some((w) => w === undefined)) return fail('bad_request', 'select_option needs "value", "label", "index" or "values"');
      const chosen = [];
      for (const w of wanted) {
        const option = Array.from(el.options).find((o, i) => (typeof w === 'number' ? i === w : o.value === String(w) || norm(o.label) === norm(String(w))));
        if (!option) return fail('element_not_found', `no option ${JSON.stringify(w)} in ${JSON.stringify(args.selector)}`);
        chosen.push(option);
      }
      for (const option of el.options) option.selected = el.multiple ? chosen.includes(option) : option === chosen[0];
      el.dispatchEvent(new Event('input', { bubbles: true }));
      el.dispatchEvent(new Event('change', { bubbles: true }));
      return done({ values: chosen.map((o) => o.value) });
    }
    case 'wait_for': {
      const state = args.state || 'visible';
      if (!['visible', 'attached', 'hidden', 'detached'].includes(state)) return fail('bad_request', `unknown state ${JSON.stringify(state)}`);
      const check = () => {
        const { el, error } = find(target);
        if (error) return error;
        const shown = !!el && visible(el);
        const met = state === 'attached' ? !!el : state === 'detached' ? !el : state === 'hidden' ? !shown : shown;
        return met ? done({ state }) : null;
      };
      const first = check();
      if (first) return first;
      // Wait on DOM mutations; the slow interval catches visibility changes
      // made by style sheets, which mutate nothing.
      return await new Promise((resolve) => {
        const finish = (r) => {
          observer.disconnect();
          clearInterval(every);
          clearTimeout(limit);
          resolve(r);
        };
        const poke = () => {
          const r = check();
          if (r) finish(r);
        };
        const observer = new MutationObserver(poke);
        observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
        const every = setInterval(poke, 250);
        const limit = setTimeout(() => finish(fail('timeout', `${describe(target)} not ${state} in time`)), Math.max(0, remainingMs));
      });
    }
    default:
      return fail('unknown_command', `unknown page operation ${JSON.stringify(op)}`);
  }
}

/** Evaluate `source` in the page's own world (only when configured on). */
export async function evaluateInPage(source) {
  try {
    // Indirect eval: global scope, the page's CSP applies.
    const value = await (0, eval)(source);
    try {
      return { ok: true, value: value === undefined ? null : JSON.parse(JSON.stringify(value)) };
    } catch {
      return { ok: true, value: String(value) };
    }
  } catch (e) {
    return { ok: false, code: 'script_error', error: String(e && e.stack ? e.stack : e) };
  }
}
