"""Wire protocol v1 of tabrelay: the one definition of every message.

Every frame is a JSON text frame holding one object with an ``action``. This
module is the single, machine-checked definition of those objects and of every
protocol limit, used by the Python client and by the Lambda handlers (the asset
carries ``tabrelay/__init__.py`` and this file, nothing else of the client).
``clients/extension/lib/wire.js`` mirrors it; a Node test checks it against the
same fixtures and limits.

It must import nothing but the standard library (``tests/unit/test_layers.py``):
the client installs alone, and the Lambdas must not pay for anything heavier at
cold start. ``import tabrelay.wire`` loads no other module of the package.

Contract:

* :func:`decode` turns a received text frame into one of the message classes
  below, or raises :class:`ProtocolError` whose ``code`` is one of
  :data:`ERROR_CODES` and whose message names the offending field.
* :func:`encode` turns a message into the compact JSON text that goes on the
  wire; ``decode(encode(m)) == m`` for every valid message ``m``.
* Text that is not a JSON object (the seed's raw frames) makes :func:`decode`
  raise :class:`RawFrame`, so callers can apply the raw-frame rules of
  ``docs/protocol.md`` explicitly.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Union

__all__ = [
    "ACK_QUERY_PARAMETER",
    "BROWSER_ACTIONS",
    "CONSUMER_ACTIONS",
    "DEFAULT_COMMAND_TIMEOUT",
    "ERROR_CODES",
    "FRAME_LIMIT",
    "INBOUND",
    "KEEPALIVE_ACTION",
    "LIST_PAGE_MAX",
    "MAX_COMMAND_TIMEOUT",
    "MAX_CURSOR_CHARS",
    "MAX_DEPTH",
    "MAX_ERROR_CHARS",
    "MAX_ID_CHARS",
    "MAX_INTEGER",
    "MAX_NAME_CHARS",
    "MAX_PARTS",
    "MAX_SUBSCRIPTIONS",
    "MAX_TITLE_CHARS",
    "MAX_UNACKED",
    "MAX_URL_CHARS",
    "MESSAGE_LIMIT",
    "MIN_COMMAND_TIMEOUT",
    "OUTBOUND",
    "PROTOCOL_VERSION",
    "RAW_COMMAND_MAX_TARGETS",
    "Ack",
    "BrowserInfo",
    "Browsers",
    "Command",
    "CommandDelivery",
    "ErrorCode",
    "ErrorMessage",
    "Keepalive",
    "List",
    "Message",
    "Ping",
    "Pong",
    "Presence",
    "ProtocolError",
    "RawFrame",
    "Result",
    "ResultDelivery",
    "Role",
    "Snapshot",
    "SnapshotDelivery",
    "Subscribe",
    "Subscribed",
    "Unsubscribe",
    "decode",
    "decode_outbound",
    "encode",
    "to_dict",
]

PROTOCOL_VERSION = 1

#: API Gateway closes a connection with 1009 when one frame exceeds this.
FRAME_LIMIT = 32 * 1024
#: API Gateway closes a connection with 1009 when one message exceeds this.
MESSAGE_LIMIT = 128 * 1024
#: Query-string parameter a client sets to ``1`` to negotiate cumulative acks.
ACK_QUERY_PARAMETER = "acks"
#: Browser ids one consumer connection may follow at once (``"*"`` is not counted).
MAX_SUBSCRIPTIONS = 100
#: Browsers one raw consumer frame (a seed command name) may be sent to.
RAW_COMMAND_MAX_TARGETS = 10
#: Deepest nesting of arrays and objects a frame may have (the frame itself is 1).
MAX_DEPTH = 64
#: Largest integer a stored field (``seq``) may hold: exact in JavaScript and DynamoDB.
MAX_INTEGER = 2**53 - 1
#: A consumer connection's window: snapshot deliveries it may have unacknowledged
#: (the gateway's ``MAX_UNACKED`` setting defaults to it). Also the commands one
#: browser may have in flight.
MAX_UNACKED = 100
#: The one-way keep-alive's action: API Gateway answers its route with nothing and
#: calls no Lambda (a MOCK integration without a route response).
KEEPALIVE_ACTION = "keepalive"

Role = Literal["browser", "consumer"]
ErrorCode = Literal[
    "bad_request",
    "unknown_action",
    "unauthorized",
    "forbidden",
    "too_large",
    "rate_limited",
    "target_offline",
    "busy",
    "timeout",
    "conflict",
    "internal",
]
ERROR_CODES: frozenset[str] = frozenset(typing.get_args(ErrorCode))

# Bounds on client-chosen strings keep every delivery far below MESSAGE_LIMIT.
#: Longest id (a message ``id``, ``sid``, ``target``, a browser id), in characters.
MAX_ID_CHARS = 128
#: Longest command ``name``, result ``code`` and raw command name, in characters.
MAX_NAME_CHARS = 64
#: Longest snapshot ``url``, in characters.
MAX_URL_CHARS = 8192
#: Longest snapshot ``title``, in characters.
MAX_TITLE_CHARS = 1024
#: Longest result ``error`` text, in characters.
MAX_ERROR_CHARS = 4096
#: A ``list`` cursor is opaque to clients; the gateway's are far shorter.
MAX_CURSOR_CHARS = 256
#: Most parts one snapshot or one result may be cut into.
MAX_PARTS = 10_000
#: Bounds and default of a command's ``timeout``, in seconds. The gateway arms a
#: command's timeout as one delayed queue message: at most SQS's 900 s delay.
MIN_COMMAND_TIMEOUT = 1
MAX_COMMAND_TIMEOUT = 900
DEFAULT_COMMAND_TIMEOUT = 30.0

# The page size of ``list`` is computed, not guessed: a full page of the longest
# client ids (128 ASCII characters, the token's alphabet), each with a 16-digit
# ``connected_at`` (epoch ms has 13 digits until the year 2286), plus the longest
# ``id`` (every character escaped as \uXXXX) and cursor, fits one 32 KB frame:
# one API Gateway billing unit, a quarter of the 128 KB message limit.
_BROWSER_INFO_MAX = len('{"client_id":"","connected_at":},') + MAX_ID_CHARS + 16
_BROWSERS_OVERHEAD = (
    len('{"action":"browsers","browsers":[],"id":"","next":""}')
    + 6 * MAX_ID_CHARS
    + MAX_CURSOR_CHARS
)
#: The most browsers one ``browsers`` reply lists (the default and maximum ``list.limit``).
LIST_PAGE_MAX = (FRAME_LIMIT - _BROWSERS_OVERHEAD) // _BROWSER_INFO_MAX


class ProtocolError(ValueError):
    """A frame broke the protocol; ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: ErrorCode, message: str, *, id: str | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.id = id


class RawFrame(ValueError):
    """The text is not a JSON object: a raw frame, handled by the raw-frame rules."""

    def __init__(self, text: str) -> None:
        super().__init__("not a JSON object")
        self.text = text


def _meta(
    *,
    min_len: int | None = None,
    max_len: int | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    max_items: int | None = None,
) -> dict[str, Any]:
    return {
        "min_len": min_len,
        "max_len": max_len,
        "minimum": minimum,
        "maximum": maximum,
        "max_items": max_items,
    }


class Message:
    """Base of every message; ``action`` is the discriminator on the wire."""

    action: ClassVar[str]


# --------------------------------------------------------------------------
# Inbound: what clients send.
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot(Message):
    """Page state from a browser: one part of snapshot ``sid``.

    ``data`` is the HTML itself when ``enc`` is ``"none"``; when ``enc`` is
    ``"gzip"`` it is one slice of the base64 text of the gzip-compressed UTF-8
    HTML. Parts are numbered ``0 .. parts-1``; the receiver joins the slices in
    order, decodes base64 and decompresses. ``seq`` grows with every snapshot
    of one browser (not with parts) so a receiver can drop stale ones.
    """

    action: ClassVar[str] = "snapshot"
    sid: str = field(metadata=_meta(min_len=1, max_len=MAX_ID_CHARS))
    seq: int = field(metadata=_meta(minimum=0, maximum=MAX_INTEGER))
    data: str
    url: str = field(default="", metadata=_meta(max_len=MAX_URL_CHARS))
    title: str = field(default="", metadata=_meta(max_len=MAX_TITLE_CHARS))
    enc: Literal["none", "gzip"] = "none"
    part: int = field(default=0, metadata=_meta(minimum=0))
    parts: int = field(default=1, metadata=_meta(minimum=1, maximum=MAX_PARTS))
    id: str | None = field(default=None, metadata=_meta(max_len=MAX_ID_CHARS))

    def __post_init__(self) -> None:
        if self.part >= self.parts:
            raise ProtocolError("bad_request", "'part' must be less than 'parts'", id=self.id)


@dataclass(frozen=True, slots=True)
class Subscribe(Message):
    """Receive snapshots from these browsers (client ids; ``"*"`` means all).

    Before a consumer's first subscribe or unsubscribe it receives from every
    browser of its tenant; afterwards exactly from the set it has built.
    """

    action: ClassVar[str] = "subscribe"
    browsers: list[str] = field(
        metadata=_meta(min_len=1, max_len=MAX_ID_CHARS, max_items=MAX_SUBSCRIPTIONS)
    )
    id: str | None = field(default=None, metadata=_meta(max_len=MAX_ID_CHARS))


@dataclass(frozen=True, slots=True)
class Unsubscribe(Message):
    """Stop receiving snapshots from these browsers (``"*"`` drops "all")."""

    action: ClassVar[str] = "unsubscribe"
    browsers: list[str] = field(
        metadata=_meta(min_len=1, max_len=MAX_ID_CHARS, max_items=MAX_SUBSCRIPTIONS)
    )
    id: str | None = field(default=None, metadata=_meta(max_len=MAX_ID_CHARS))


@dataclass(frozen=True, slots=True)
class Command(Message):
    """A command for browser ``target``; answered by one result or error ``id``."""

    action: ClassVar[str] = "command"
    id: str = field(metadata=_meta(min_len=1, max_len=MAX_ID_CHARS))
    target: str = field(metadata=_meta(min_len=1, max_len=MAX_ID_CHARS))
    name: str = field(metadata=_meta(min_len=1, max_len=MAX_NAME_CHARS))
    args: dict[str, Any] = field(default_factory=dict)
    timeout: float = field(
        default=DEFAULT_COMMAND_TIMEOUT,
        metadata=_meta(minimum=MIN_COMMAND_TIMEOUT, maximum=MAX_COMMAND_TIMEOUT),
    )


@dataclass(frozen=True, slots=True)
class Result(Message):
    """A browser's answer to command ``id``: ``value`` when ok, else ``error``.

    A value too large for one 32 KB frame (a screenshot) is sent in ``parts``
    messages: the JSON text of the whole value is cut into string slices, part
    ``i`` carries slice ``i`` as its ``value``, and the receiver joins the slices
    in order and parses the JSON. ``ok``, ``error`` and ``code`` repeat on every part.
    """

    action: ClassVar[str] = "result"
    id: str = field(metadata=_meta(min_len=1, max_len=MAX_ID_CHARS))
    ok: bool
    value: Any = None
    error: str | None = field(default=None, metadata=_meta(max_len=MAX_ERROR_CHARS))
    code: str | None = field(default=None, metadata=_meta(max_len=MAX_NAME_CHARS))
    part: int = field(default=0, metadata=_meta(minimum=0))
    parts: int = field(default=1, metadata=_meta(minimum=1, maximum=MAX_PARTS))

    def __post_init__(self) -> None:
        if self.part >= self.parts:
            raise ProtocolError("bad_request", "'part' must be less than 'parts'", id=self.id)
        if self.parts > 1 and not isinstance(self.value, str):
            raise ProtocolError(
                "bad_request", "result.value must be a string slice when parts > 1", id=self.id
            )


@dataclass(frozen=True, slots=True)
class Ping(Message):
    """Keep-alive; answered with ``pong`` (without a Lambda call when deployed)."""

    action: ClassVar[str] = "ping"
    id: str | None = field(default=None, metadata=_meta(max_len=MAX_ID_CHARS))


@dataclass(frozen=True, slots=True)
class Keepalive(Message):
    """One-way keep-alive: nothing answers it (deployed, its route calls no Lambda
    and has no route response; should it reach the gateway, it changes nothing)."""

    action: ClassVar[str] = KEEPALIVE_ACTION


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """Cumulative acknowledgement: every delivery with ``dseq <= seq`` is processed."""

    action: ClassVar[str] = "ack"
    seq: int = field(metadata=_meta(minimum=0, maximum=MAX_INTEGER))


@dataclass(frozen=True, slots=True)
class List(Message):
    """Ask for one page of the tenant's online browsers; answered with ``browsers``.

    Without ``cursor`` the first page; with it, the page after the reply whose
    ``next`` it was. ``limit`` caps the page (at most :data:`LIST_PAGE_MAX`).
    """

    action: ClassVar[str] = "list"
    id: str | None = field(default=None, metadata=_meta(max_len=MAX_ID_CHARS))
    cursor: str | None = field(default=None, metadata=_meta(min_len=1, max_len=MAX_CURSOR_CHARS))
    limit: int | None = field(default=None, metadata=_meta(minimum=1, maximum=LIST_PAGE_MAX))


# --------------------------------------------------------------------------
# Outbound: what the gateway delivers.
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotDelivery(Message):
    """A snapshot part from browser ``source``, as a consumer receives it.

    ``missed`` counts snapshots of ``source`` the gateway dropped for this
    consumer (conflation) since the previous delivery from ``source``.
    ``dseq`` is present only on connections that negotiated acks.
    """

    action: ClassVar[str] = "snapshot"
    source: str
    sid: str
    seq: int
    data: str
    url: str = ""
    title: str = ""
    enc: Literal["none", "gzip"] = "none"
    part: int = 0
    parts: int = 1
    missed: int = 0
    dseq: int | None = None


@dataclass(frozen=True, slots=True)
class CommandDelivery(Message):
    """A command as the target browser receives it; ``source`` is the consumer."""

    action: ClassVar[str] = "command"
    id: str
    source: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    timeout: float = DEFAULT_COMMAND_TIMEOUT


@dataclass(frozen=True, slots=True)
class ResultDelivery(Message):
    """A result (or one part of it) as the issuing consumer receives it.

    ``source`` is the browser; parts are joined as described on :class:`Result`.
    """

    action: ClassVar[str] = "result"
    id: str
    source: str
    ok: bool
    value: Any = None
    error: str | None = None
    code: str | None = None
    part: int = 0
    parts: int = 1


@dataclass(frozen=True, slots=True)
class Presence(Message):
    """Browser ``client_id`` came online or went offline (``at``: epoch ms)."""

    action: ClassVar[str] = "presence"
    client_id: str
    online: bool
    at: int


@dataclass(frozen=True, slots=True)
class BrowserInfo:
    """One online browser in a ``browsers`` reply."""

    client_id: str
    connected_at: int


@dataclass(frozen=True, slots=True)
class Browsers(Message):
    """Reply to ``list``: one page of browsers; ``next``, when present, is the
    ``cursor`` of the following page (absent on the last page)."""

    action: ClassVar[str] = "browsers"
    browsers: list[BrowserInfo]
    id: str | None = None
    next: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribed(Message):
    """Reply to ``subscribe``/``unsubscribe``: the subscription set now in force."""

    action: ClassVar[str] = "subscribed"
    browsers: list[str]
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Pong(Message):
    """Reply to ``ping``."""

    action: ClassVar[str] = "pong"
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorMessage(Message):
    """An error: stable ``code``, human ``message``, and the ``id`` it refers to."""

    action: ClassVar[str] = "error"
    code: ErrorCode
    message: str
    id: str | None = None


INBOUND: dict[str, type[Message]] = {
    cls.action: cls
    for cls in (Snapshot, Subscribe, Unsubscribe, Command, Result, Ping, Keepalive, Ack, List)
}
OUTBOUND: dict[str, type[Message]] = {
    cls.action: cls
    for cls in (
        SnapshotDelivery,
        CommandDelivery,
        ResultDelivery,
        Presence,
        Browsers,
        Subscribed,
        Pong,
        ErrorMessage,
    )
}
#: Which inbound actions each role may send.
BROWSER_ACTIONS: frozenset[str] = frozenset({"snapshot", "result", "ping", "keepalive", "ack"})
CONSUMER_ACTIONS: frozenset[str] = frozenset(
    {"subscribe", "unsubscribe", "command", "ping", "keepalive", "ack", "list"}
)


# --------------------------------------------------------------------------
# Encoding and decoding.
# --------------------------------------------------------------------------


def to_dict(message: Message) -> dict[str, Any]:
    """The JSON object of ``message``: ``action`` first, ``None`` fields left out."""
    out: dict[str, Any] = {"action": message.action}
    for f in dataclasses.fields(message):  # type: ignore[arg-type]
        value = getattr(message, f.name)
        if value is None:
            continue
        if isinstance(value, list):
            value = [
                dataclasses.asdict(v)
                if dataclasses.is_dataclass(v) and not isinstance(v, type)
                else v
                for v in value
            ]
        out[f.name] = value
    return out


def encode(message: Message) -> str:
    """Compact JSON text of ``message`` (non-ASCII kept as UTF-8, never escaped).

    Never emits ``NaN`` or ``Infinity`` (not JSON): such a value raises ValueError.
    """
    return json.dumps(to_dict(message), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def decode(text: str | bytes) -> Message:
    """Parse one inbound frame.

    Raises :class:`RawFrame` when the text is not a JSON object, and
    :class:`ProtocolError` (``bad_request`` or ``unknown_action``) when it is an
    object that is not a valid inbound message.
    """
    return _decode(text, INBOUND, direction="inbound")


def decode_outbound(text: str | bytes) -> Message:
    """Parse one frame the gateway sent (used by clients); same errors as :func:`decode`."""
    return _decode(text, OUTBOUND, direction="outbound")


def _decode(text: str | bytes, table: dict[str, type[Message]], *, direction: str) -> Message:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("bad_request", "frame is not valid UTF-8") from None
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        raise RawFrame(text)
    _check_depth(text)
    try:
        obj = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except _NotCarried as exc:
        raise ProtocolError("bad_request", str(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("bad_request", f"malformed JSON: {exc}") from None
    if not isinstance(obj, dict):  # pragma: no cover - guarded by the '{' check
        raise RawFrame(text)
    raw_id = obj.get("id")
    ref = (
        raw_id
        if isinstance(raw_id, str) and len(raw_id) <= MAX_ID_CHARS and not _SURROGATE.search(raw_id)
        else None
    )
    _check_strings(obj, ref)
    action = obj.get("action")
    if not isinstance(action, str):
        raise ProtocolError("bad_request", "'action' is required and must be a string", id=ref)
    cls = table.get(action)
    if cls is None:
        known = ", ".join(sorted(table))
        raise ProtocolError(
            "unknown_action", f"unknown {direction} action {action!r} (known: {known})", id=ref
        )
    return _build(cls, obj, ref)


class _NotCarried(Exception):
    """JSON that parses but cannot travel (not a ValueError: it must not read as malformed)."""


def _no_constant(name: str) -> Any:
    raise _NotCarried(f"{name} is not a JSON number; numbers must be finite")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _NotCarried(f"number {literal[:40]} is out of range; numbers must be finite")
    return value


# Strings outside any JSON string literal, and the brackets that remain.
_STRING_LITERAL = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# Lone surrogates cannot be encoded as UTF-8, so no queue, table or socket takes them.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before any parser recurses into it."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return  # cannot be deeper: the common case costs two C-level scans
    brackets = _NOT_BRACKET.sub("", _STRING_LITERAL.sub("", text))
    depth = 0
    for char in brackets:
        depth += 1 if char in "[{" else -1
        if depth > MAX_DEPTH:
            raise ProtocolError("bad_request", f"frame is nested deeper than {MAX_DEPTH} levels")


def _check_strings(obj: dict[str, Any], ref: str | None) -> None:
    """Every key and string must be valid Unicode (no lone surrogates); walked
    without recursion (depth is already bounded, but a stack is as cheap)."""
    stack: list[Any] = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    raise ProtocolError(
                        "bad_request", "a field name holds a lone UTF-16 surrogate", id=ref
                    )
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and _SURROGATE.search(value):
            raise ProtocolError(
                "bad_request",
                "a string holds a lone UTF-16 surrogate, which is not valid Unicode",
                id=ref,
            )


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = hints
    return hints


def _build(cls: type[Message], obj: dict[str, Any], ref: str | None) -> Message:
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(obj) - set(fields) - {"action"}
    if unknown:
        names = ", ".join(repr(n) for n in sorted(unknown))
        raise ProtocolError("bad_request", f"{cls.action}: unknown field(s) {names}", id=ref)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in obj:
            has_default = (
                f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            )
            if not has_default:
                raise ProtocolError("bad_request", f"{cls.action}: missing field {name!r}", id=ref)
            continue
        value = _check(obj[name], hints[name], f"{cls.action}.{name}", ref)
        _limits(value, f.metadata, f"{cls.action}.{name}", ref)
        kwargs[name] = value
    return cls(**kwargs)


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "object"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _check(value: Any, tp: Any, where: str, ref: str | None) -> Any:
    """Return ``value`` if it has JSON type ``tp`` (ints accepted as floats)."""
    if tp is Any:
        return value
    checked = _checked(value, tp, where, ref)
    if checked is _WRONG:
        shown = json.dumps(value)[:40] if _jsonable(value) else type(value).__name__
        raise ProtocolError("bad_request", f"{where} must be {_type_name(tp)}, got {shown}", id=ref)
    return checked


#: What :func:`_checked` returns for a value of the wrong type.
_WRONG: Any = object()

#: JSON scalar types a field may declare, and whether a parsed value is one.
_SCALARS: dict[Any, typing.Callable[[Any], bool]] = {
    type(None): lambda v: v is None,
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    str: lambda v: isinstance(v, str),
}


def _checked(value: Any, tp: Any, where: str, ref: str | None) -> Any:
    """``value`` as type ``tp`` (its items checked), or :data:`_WRONG`."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return _checked_union(value, tp, where, ref)
    if origin is Literal:
        return value if isinstance(value, str) and value in typing.get_args(tp) else _WRONG
    if origin is list:
        if not isinstance(value, list):
            return _WRONG
        (item_tp,) = typing.get_args(tp)
        return [_check(v, item_tp, f"{where}[{i}]", ref) for i, v in enumerate(value)]
    if origin is dict:
        return value if isinstance(value, dict) else _WRONG
    if tp is float:
        return _checked_float(value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _checked_record(value, tp, where, ref)
    test = _SCALARS.get(tp)
    if test is None:  # pragma: no cover - a type this module does not use
        raise TypeError(f"unsupported type {tp!r}")
    return value if test(value) else _WRONG


def _checked_union(value: Any, tp: Any, where: str, ref: str | None) -> Any:
    for option in typing.get_args(tp):
        try:
            return _check(value, option, where, ref)
        except ProtocolError:
            continue
    return _WRONG


def _checked_float(value: Any) -> Any:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return _WRONG
    try:
        number = float(value)
    except OverflowError:  # an integer literal too large for any float
        return _WRONG
    return number if math.isfinite(number) else _WRONG


def _checked_record(value: Any, tp: type, where: str, ref: str | None) -> Any:
    if not isinstance(value, dict):
        return _WRONG
    sub_hints = _hints(tp)
    names = [f.name for f in dataclasses.fields(tp)]  # type: ignore[arg-type]
    if set(value) != set(names):
        return _WRONG
    return tp(**{n: _check(value[n], sub_hints[n], f"{where}.{n}", ref) for n in names})


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _limits(value: Any, meta: typing.Mapping[str, Any], where: str, ref: str | None) -> None:
    if not meta:
        return
    items = value if isinstance(value, list) else [value]
    max_items = meta.get("max_items")
    if max_items is not None and isinstance(value, list):
        if not value:
            raise ProtocolError("bad_request", f"{where} must not be empty", id=ref)
        if len(value) > max_items:
            raise ProtocolError(
                "bad_request", f"{where} has {len(value)} items, at most {max_items}", id=ref
            )
    for item in items:
        if isinstance(item, str):
            if meta.get("min_len") is not None and len(item) < meta["min_len"]:
                raise ProtocolError("bad_request", f"{where} must not be empty", id=ref)
            if meta.get("max_len") is not None and len(item) > meta["max_len"]:
                raise ProtocolError(
                    "bad_request", f"{where} is longer than {meta['max_len']} characters", id=ref
                )
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            if meta.get("minimum") is not None and item < meta["minimum"]:
                raise ProtocolError("bad_request", f"{where} must be >= {meta['minimum']}", id=ref)
            if meta.get("maximum") is not None and item > meta["maximum"]:
                raise ProtocolError("bad_request", f"{where} must be <= {meta['maximum']}", id=ref)
