"""A compact, readable view of a page's HTML for a language model (standard library only).

:func:`page_view` turns a snapshot's HTML into plain text lines in document
order:

* headings as ``#``/``##``/... lines and visible text, whitespace condensed;
* every link, button, input, select and textarea as one bracketed line with a
  CSS selector that the ``click``, ``type`` and ``fill`` commands accept
  (``document.querySelector`` finds exactly that element), e.g.
  ``[button #btn] Press me`` or ``[input input[name="q"] type=search value="shoes"]``;
* form values where the HTML carries them (``value``, ``checked``, the selected
  option, a textarea's text). The extension writes live form state into the
  snapshot, so these are what the user sees; password values are never shown.

Selectors, in order of preference: ``#id`` (when the id is unique), a unique
attribute selector (``tag[name="..."]`` and a few other stable attributes), a
child path from the nearest ancestor with a unique id, else a child path from
``html``; paths use ``:nth-of-type`` only where siblings share a tag.

Scripts, styles, templates, ``<head>``, hidden inputs and elements marked
``hidden``/``aria-hidden="true"``/``display:none`` are left out. The view is
at most :data:`VIEW_MAX_CHARS` characters (a line at the end says when it was
cut); on typical pages it is about a tenth of the HTML (``make bench`` measures
it on the bench's generated pages).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser

__all__ = ["VIEW_MAX_CHARS", "VIEW_MIN_CHARS", "VIEW_RATIO", "page_view"]

#: Upper bound of the view's length in characters.
VIEW_MAX_CHARS = 40_000
#: Text is shortened to keep the view within this share of the HTML's length...
VIEW_RATIO = 0.12
#: ...unless the view is this short anyway.
VIEW_MIN_CHARS = 4_000
_MIN_TEXT = 12  # a text line shortened below this says nothing: it is left out

_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
_SKIP = frozenset(
    ["script", "style", "noscript", "template", "head", "svg", "canvas", "iframe", "object"]
)
_INTERACTIVE = frozenset(("a", "button", "input", "select", "textarea"))
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Block elements end a line of text; inline ones (span, b, ...) do not.
_BLOCK = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "header",
        "hr",
        "html",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "td",
        "th",
        "ul",
        "br",
        "label",
        "option",
    ]
)
# Attributes whose value, when unique in the page, makes a stable selector.
_ATTR_KEYS = ("name", "data-testid", "data-test", "aria-label", "placeholder", "title")
# Elements a start tag of the same kind implicitly closes (enough for real pages).
_AUTO_CLOSE = {"p": {"p"}, "li": {"li"}, "option": {"option"}, "tr": {"tr"}, "td": {"td", "th"}}
_AUTO_CLOSE["th"] = _AUTO_CLOSE["td"]
_SPACE = re.compile(r"\s+")
_CSS_IDENT = re.compile(r"^-?[A-Za-z_][A-Za-z0-9_-]*$")
_MAX_LABEL = 80
_MAX_VALUE = 200
_MAX_HREF = 24  # longer ones (tracking parameters) cost more than they tell


@dataclass(eq=False)
class _Node:
    tag: str
    attrs: dict[str, str]
    parent: _Node | None
    children: list[_Node | str] = field(default_factory=list)
    hidden: bool = False

    def elements(self) -> list[_Node]:
        return [c for c in self.children if isinstance(c, _Node)]


class _TreeBuilder(HTMLParser):
    """A forgiving HTML tree: closes what end tags imply, inserts ``tbody`` as browsers do."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("#document", {}, None)
        self.stack: list[_Node] = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        closes = _AUTO_CLOSE.get(tag)
        if closes and self.stack[-1].tag in closes:
            self.stack.pop()
        parent = self.stack[-1]
        if tag == "tr" and parent.tag == "table":
            # The DOM (which the extension's selectors run against) puts rows in a tbody.
            body = _Node("tbody", {}, parent, hidden=parent.hidden)
            parent.children.append(body)
            self.stack.append(body)
            parent = body
        values = {k.lower(): (v or "") for k, v in attrs}
        node = _Node(tag, values, parent, hidden=parent.hidden or _is_hidden(tag, values))
        parent.children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and self.stack[-1].tag == tag:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def _is_hidden(tag: str, attrs: dict[str, str]) -> bool:
    if "hidden" in attrs or attrs.get("aria-hidden", "").lower() == "true":
        return True
    if tag == "input" and attrs.get("type", "").lower() == "hidden":
        return True
    style = attrs.get("style", "").replace(" ", "").lower()
    return "display:none" in style or "visibility:hidden" in style


def _condense(text: str, limit: int) -> str:
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Selectors:
    """Unique selectors for elements of one parsed document."""

    def __init__(self, root: _Node) -> None:
        self.ids: Counter[str] = Counter()
        self.attrs: Counter[tuple[str, str, str]] = Counter()
        stack = [root]
        while stack:
            node = stack.pop()
            for child in node.elements():
                stack.append(child)
                if child.attrs.get("id"):
                    self.ids[child.attrs["id"]] += 1
                for key in _ATTR_KEYS:
                    if child.attrs.get(key):
                        self.attrs[(child.tag, key, child.attrs[key])] += 1

    def _id(self, node: _Node) -> str | None:
        value = node.attrs.get("id", "")
        if value and self.ids[value] == 1:
            return "#" + value if _CSS_IDENT.match(value) else f"[id={_quote(value)}]"
        return None

    def for_node(self, node: _Node) -> str:
        own = self._id(node)
        if own:
            return own
        for key in _ATTR_KEYS:
            value = node.attrs.get(key, "")
            if value and len(value) <= 80 and self.attrs[(node.tag, key, value)] == 1:
                return f"{node.tag}[{key}={_quote(value)}]"
        steps: list[str] = []
        current: _Node | None = node
        while current is not None and current.parent is not None:
            anchor = self._id(current) if current is not node else None
            if anchor:
                steps.append(anchor)
                break
            parent = current.parent
            same = [c for c in parent.elements() if c.tag == current.tag]
            step = current.tag
            if len(same) > 1:
                step += f":nth-of-type({same.index(current) + 1})"
            steps.append(step)
            current = parent if parent.parent is not None else None
        return ">".join(reversed(steps))


class _Writer:
    def __init__(self, selectors: _Selectors) -> None:
        self.selectors = selectors
        # (line, is_text): text lines are what the size budget shortens.
        self.lines: list[tuple[str, bool]] = []
        self.text: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append((line, False))

    def flush(self) -> None:
        line = _SPACE.sub(" ", "".join(self.text)).strip()
        self.text.clear()
        if line and (not self.lines or self.lines[-1] != (line, True)):
            self.lines.append((line, True))

    def walk(self, node: _Node) -> None:
        for child in node.children:
            if isinstance(child, str):
                self.text.append(child)
                continue
            if child.hidden or child.tag in _SKIP:
                continue
            if child.tag in _INTERACTIVE:
                self.flush()
                self.add(self.control(child))
                continue
            if child.tag in _HEADINGS:
                self.flush()
                label = _condense(_text_of(child), _MAX_LABEL)
                if label:
                    self.add("#" * _HEADINGS[child.tag] + " " + label)
                continue
            block = child.tag in _BLOCK
            if block:
                self.flush()
            self.walk(child)
            if block:
                self.flush()
            else:
                self.text.append(" " if child.tag in ("td", "th") else "")

    def control(self, node: _Node) -> str:
        selector = self.selectors.for_node(node)
        a = node.attrs
        parts = [node.tag, selector]
        describe = _DESCRIBE.get(node.tag)
        label = describe(node, parts) if describe is not None else ""
        if "disabled" in a:
            parts.append("disabled")
        line = "[" + " ".join(parts) + "]"
        return line + (" " + _condense(label, _MAX_LABEL * 2) if label else "")


# How each kind of control is described: each adds its details to ``parts``
# and returns its label.


def _describe_link(node: _Node, parts: list[str]) -> str:
    href = node.attrs.get("href", "")
    if href and len(href) <= _MAX_HREF:
        parts.append("-> " + href)
    return _describe_button(node, parts)


def _describe_button(node: _Node, parts: list[str]) -> str:
    label = _condense(_text_of(node), _MAX_LABEL) or node.attrs.get("aria-label", "")
    return label or _condense(_alt_of(node), _MAX_LABEL)


def _describe_input(node: _Node, parts: list[str]) -> str:
    a = node.attrs
    kind = a.get("type", "text").lower() or "text"
    parts.append(f"type={kind}")
    if kind in ("checkbox", "radio"):
        parts.append("checked" if "checked" in a else "unchecked")
        if a.get("value"):
            parts.append(f"value={_quote(_condense(a['value'], _MAX_VALUE))}")
    elif kind != "password" and "value" in a:
        parts.append(f"value={_quote(_condense(a['value'], _MAX_VALUE))}")
    return a.get("aria-label") or a.get("placeholder") or a.get("name", "")


def _describe_textarea(node: _Node, parts: list[str]) -> str:
    a = node.attrs
    parts.append(f"value={_quote(_condense(_text_of(node), _MAX_VALUE))}")
    return a.get("aria-label") or a.get("placeholder") or a.get("name", "")


def _describe_select(node: _Node, parts: list[str]) -> str:
    a = node.attrs
    options = _options(node)
    chosen = [o for o in options if "selected" in o.attrs] or options[:1]
    if chosen:
        parts.append(f"value={_quote(_option_value(chosen[0]))}")
    shown = [_option_value(o) for o in options[:20]]
    if len(options) > 20:
        shown.append(f"... {len(options) - 20} more")
    label = a.get("aria-label") or a.get("name", "")
    return (label + " " if label else "") + "options: " + ", ".join(shown)


_DESCRIBE: dict[str, Callable[[_Node, list[str]], str]] = {
    "a": _describe_link,
    "button": _describe_button,
    "input": _describe_input,
    "textarea": _describe_textarea,
    "select": _describe_select,
}


def _text_of(node: _Node) -> str:
    out: list[str] = []
    stack: list[_Node | str] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif item is node or not (item.hidden or item.tag in _SKIP):
            stack.extend(reversed(item.children))
            if item.tag in _BLOCK:
                out.append(" ")
    return "".join(out)


def _alt_of(node: _Node) -> str:
    """The alt texts of the images in ``node`` (the label of an image-only link or button)."""
    out: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if item.tag == "img" and item.attrs.get("alt"):
            out.append(item.attrs["alt"])
        stack.extend(reversed(item.elements()))
    return " ".join(out)


def _options(select: _Node) -> list[_Node]:
    found: list[_Node] = []
    stack = list(reversed(select.elements()))
    while stack:
        node = stack.pop()
        if node.tag == "option":
            found.append(node)
        else:
            stack.extend(reversed(node.elements()))
    return found


def _option_value(option: _Node) -> str:
    text = _condense(_text_of(option), 60)
    return option.attrs.get("value", text) if "value" in option.attrs else text


def _fit(lines: list[tuple[str, bool]], budget: int) -> list[str]:
    """Shorten the text lines (longest first, never headings or controls) to fit ``budget``."""
    fixed = sum(len(line) + 1 for line, is_text in lines if not is_text)
    texts = [len(line) for line, is_text in lines if is_text]

    def size(cap: int) -> int:
        # Lines within the cap stay whole; longer ones are cut to it, or left out
        # when the cap is too short to say anything.
        return sum(min(n, cap) + 1 if n <= cap or cap >= _MIN_TEXT else 0 for n in texts)

    if fixed + size(max(texts, default=0)) <= budget:
        return [line for line, _ in lines]
    low, high = 0, max(texts, default=0)
    while low < high:  # the largest cap whose lines fit
        mid = (low + high + 1) // 2
        if fixed + size(mid) <= budget:
            low = mid
        else:
            high = mid - 1
    out: list[str] = []
    for line, is_text in lines:
        if not is_text or len(line) <= low:
            out.append(line)
        elif low >= _MIN_TEXT:
            out.append(line[: low - 1] + "…")
    return out


def page_view(html: str, *, max_chars: int = VIEW_MAX_CHARS) -> str:
    """The compact view of ``html`` (see the module's description), at most ``max_chars`` long."""
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    writer = _Writer(_Selectors(builder.root))
    writer.walk(builder.root)
    writer.flush()
    budget = min(max_chars, max(VIEW_MIN_CHARS, int(len(html) * VIEW_RATIO)))
    view = "\n".join(_fit(writer.lines, budget))
    if len(view) <= max_chars:
        return view
    note = f"\n[view truncated at {max_chars:,} of {len(view):,} characters]"
    cut = view.rfind("\n", 0, max(0, max_chars - len(note)))
    return view[: max(cut, 0)] + note
