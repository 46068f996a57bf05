"""Envelopes: what the gateway's own queues carry (never seen by clients).

Every envelope is a frozen dataclass with one encoding (:meth:`to_dict`, JSON
through :func:`encode`) and one decoding (:func:`decode_bus`,
:func:`decode_delivery`), pinned by the fixtures in ``tests/fixtures/envelopes``.
Each has a ``kind`` and a correlation id ``cid`` (the API Gateway message id
that caused it), so one client message can be followed through every log line
it produces. The wire messages they carry are :mod:`tabrelay.wire`
dataclasses, encoded as on the wire.

Bus (message handler -> router): ``snapshot``, ``presence``, ``browser_gone``,
``presence_fan_out``. A ``snapshot`` with ``to`` (connection ids) is the rest of
an inline fan-out that ran out of time: only those get it. A
``presence_fan_out`` is one chunk of a tenant's coalesced presence, for the
consumers in ``to`` (:mod:`functions.logic.presence`).
Command lane (message handler -> commands function): ``command``,
``raw_command``, ``result``, so no command waits behind a fan-out or a presence
storm. Each envelope class names its queue in ``lane``; the router still reads
the command kinds, which the bus carried before the lane existed (a deploy).
Delivery queue (router/delivery -> delivery): ``post`` (a retry of a failed
post), ``park`` (a snapshot waiting for a consumer's window), ``timeout``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from tabrelay import wire

from functions.logic.ports import Identity

__all__ = [
    "BrowserGone",
    "BusEnvelope",
    "CommandEnvelope",
    "CommandLaneEnvelope",
    "DeliveryEnvelope",
    "EnvelopeError",
    "Lane",
    "Park",
    "Post",
    "Presence",
    "PresenceFanOut",
    "RawCommand",
    "ResultEnvelope",
    "SnapshotEnvelope",
    "Timeout",
    "decode_bus",
    "decode_command",
    "decode_delivery",
    "encode",
]


#: Which queue an envelope travels on: the bus or the command lane.
Lane = Literal["bus", "commands"]


class EnvelopeError(ValueError):
    """A queue record that is not a valid envelope (the record fails, then its DLQ)."""


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise EnvelopeError(f"{obj.get('kind')!r} envelope: {key!r} must be a string")
    return value


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise EnvelopeError(f"{obj.get('kind')!r} envelope: {key!r} must be an integer")
    return value


def _optional_int(obj: dict[str, Any], key: str) -> int | None:
    return None if obj.get(key) is None else _int(obj, key)


def _bool(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key)
    if not isinstance(value, bool):
        raise EnvelopeError(f"{obj.get('kind')!r} envelope: {key!r} must be a boolean")
    return value


_M = TypeVar("_M", bound=wire.Message)


def _message(obj: dict[str, Any], cls: type[_M]) -> _M:
    """A wire message the gateway validated before queueing it (``action`` optional)."""
    raw = obj.get("msg")
    if not isinstance(raw, dict):
        raise EnvelopeError(f"{obj.get('kind')!r} envelope: 'msg' must be an object")
    fields = {k: v for k, v in raw.items() if k != "action"}
    try:
        return cls(**fields)
    except TypeError as exc:
        raise EnvelopeError(f"{obj.get('kind')!r} envelope: bad 'msg': {exc}") from None


@dataclass(frozen=True, slots=True)
class _Sent:
    """Who put a client's message on the bus."""

    cid: str
    tenant: str
    client: str
    connection: str

    def _sender(self) -> dict[str, Any]:
        return {
            "cid": self.cid,
            "tenant": self.tenant,
            "client": self.client,
            "connection": self.connection,
        }


@dataclass(frozen=True, slots=True)
class SnapshotEnvelope(_Sent):
    kind: ClassVar[str] = "snapshot"
    lane: ClassVar[Lane] = "bus"
    msg: wire.Snapshot
    #: When the gateway took it (ms): the delivery-latency metric.
    t: int | None = None
    #: Only these connections (the rest of an inline fan-out), else every recipient.
    to: tuple[str, ...] | None = None

    @classmethod
    def of(
        cls, identity: Identity, message: wire.Snapshot, *, cid: str, t: int | None = None
    ) -> SnapshotEnvelope:
        return cls(cid, identity.tenant, identity.client_id, identity.connection_id, message, t)

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind, **self._sender(), "msg": wire.to_dict(self.msg)}
        if self.t is not None:
            out["t"] = self.t
        if self.to is not None:
            out["to"] = list(self.to)
        return out

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> SnapshotEnvelope:
        to = obj.get("to")
        if to is not None and not (isinstance(to, list) and all(isinstance(c, str) for c in to)):
            raise EnvelopeError("'snapshot' envelope: 'to' must be a list of strings")
        return cls(
            _str(obj, "cid"),
            _str(obj, "tenant"),
            _str(obj, "client"),
            _str(obj, "connection"),
            _message(obj, wire.Snapshot),
            _optional_int(obj, "t"),
            None if to is None else tuple(to),
        )


@dataclass(frozen=True, slots=True)
class CommandEnvelope(_Sent):
    kind: ClassVar[str] = "command"
    lane: ClassVar[Lane] = "commands"
    msg: wire.Command
    t: int | None = None

    @classmethod
    def of(
        cls, identity: Identity, message: wire.Command, *, cid: str, t: int | None = None
    ) -> CommandEnvelope:
        return cls(cid, identity.tenant, identity.client_id, identity.connection_id, message, t)

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind, **self._sender(), "msg": wire.to_dict(self.msg)}
        if self.t is not None:
            out["t"] = self.t
        return out

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> CommandEnvelope:
        return cls(
            _str(obj, "cid"),
            _str(obj, "tenant"),
            _str(obj, "client"),
            _str(obj, "connection"),
            _message(obj, wire.Command),
            _optional_int(obj, "t"),
        )


@dataclass(frozen=True, slots=True)
class RawCommand(_Sent):
    """A seed consumer's raw frame: a command name for every browser it follows."""

    kind: ClassVar[str] = "raw_command"
    lane: ClassVar[Lane] = "commands"
    name: str

    @classmethod
    def of(cls, identity: Identity, name: str, *, cid: str) -> RawCommand:
        return cls(cid, identity.tenant, identity.client_id, identity.connection_id, name)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self._sender(), "name": self.name}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> RawCommand:
        return cls(
            _str(obj, "cid"),
            _str(obj, "tenant"),
            _str(obj, "client"),
            _str(obj, "connection"),
            _str(obj, "name"),
        )


@dataclass(frozen=True, slots=True)
class ResultEnvelope(_Sent):
    kind: ClassVar[str] = "result"
    lane: ClassVar[Lane] = "commands"
    msg: wire.Result
    t: int | None = None

    @classmethod
    def of(
        cls, identity: Identity, message: wire.Result, *, cid: str, t: int | None = None
    ) -> ResultEnvelope:
        return cls(cid, identity.tenant, identity.client_id, identity.connection_id, message, t)

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind, **self._sender(), "msg": wire.to_dict(self.msg)}
        if self.t is not None:
            out["t"] = self.t
        return out

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> ResultEnvelope:
        return cls(
            _str(obj, "cid"),
            _str(obj, "tenant"),
            _str(obj, "client"),
            _str(obj, "connection"),
            _message(obj, wire.Result),
            _optional_int(obj, "t"),
        )


@dataclass(frozen=True, slots=True)
class Presence:
    """A browser came online (``$connect``); offline goes as :class:`BrowserGone`."""

    kind: ClassVar[str] = "presence"
    lane: ClassVar[Lane] = "bus"
    cid: str
    tenant: str
    client: str
    online: bool
    at: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "cid": self.cid,
            "tenant": self.tenant,
            "client": self.client,
            "online": self.online,
            "at": self.at,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Presence:
        return cls(
            _str(obj, "cid"),
            _str(obj, "tenant"),
            _str(obj, "client"),
            _bool(obj, "online"),
            _int(obj, "at"),
        )


@dataclass(frozen=True, slots=True)
class PresenceFanOut:
    """One chunk of a tenant's coalesced presence: every change to every consumer
    connection in ``to`` (the router posts the first chunk itself)."""

    kind: ClassVar[str] = "presence_fan_out"
    lane: ClassVar[Lane] = "bus"
    cid: str
    tenant: str
    changes: tuple[wire.Presence, ...]
    to: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "cid": self.cid,
            "tenant": self.tenant,
            "changes": [wire.to_dict(change) for change in self.changes],
            "to": list(self.to),
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> PresenceFanOut:
        raw, to = obj.get("changes"), obj.get("to")
        if not isinstance(raw, list) or not raw:
            raise EnvelopeError("'presence_fan_out' envelope: 'changes' must be a non-empty list")
        if not (isinstance(to, list) and all(isinstance(c, str) for c in to)):
            raise EnvelopeError("'presence_fan_out' envelope: 'to' must be a list of strings")
        changes = []
        for change in raw:
            if not isinstance(change, dict):
                raise EnvelopeError("'presence_fan_out' envelope: a change must be an object")
            checked = {"kind": cls.kind, **change}
            changes.append(
                wire.Presence(
                    client_id=_str(checked, "client_id"),
                    online=_bool(checked, "online"),
                    at=_int(checked, "at"),
                )
            )
        return cls(_str(obj, "cid"), _str(obj, "tenant"), tuple(changes), tuple(to))


@dataclass(frozen=True, slots=True)
class BrowserGone(_Sent):
    kind: ClassVar[str] = "browser_gone"
    lane: ClassVar[Lane] = "bus"
    at: int

    @classmethod
    def of(cls, identity: Identity, *, at: int, cid: str) -> BrowserGone:
        return cls(cid, identity.tenant, identity.client_id, identity.connection_id, at)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self._sender(), "at": self.at}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> BrowserGone:
        return cls(
            _str(obj, "cid"),
            _str(obj, "tenant"),
            _str(obj, "client"),
            _str(obj, "connection"),
            _int(obj, "at"),
        )


@dataclass(frozen=True, slots=True)
class Post:
    """A retry of a failed post of ``data`` (an encoded wire message) to ``to``.

    ``issuer`` (tenant, consumer client id) marks a command's answer: if ``to`` is
    gone by then, the retry goes to the issuer's current connection, as a first
    delivery does.
    """

    kind: ClassVar[str] = "post"
    cid: str
    to: str
    data: str
    attempt: int
    issuer: tuple[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "cid": self.cid,
            "to": self.to,
            "data": self.data,
            "attempt": self.attempt,
        }
        if self.issuer is not None:
            out["issuer"] = {"tenant": self.issuer[0], "client": self.issuer[1]}
        return out

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Post:
        raw = obj.get("issuer")
        issuer: tuple[str, str] | None = None
        if raw is not None:
            tenant = raw.get("tenant") if isinstance(raw, dict) else None
            client = raw.get("client") if isinstance(raw, dict) else None
            if not isinstance(tenant, str) or not isinstance(client, str):
                raise EnvelopeError("'post' envelope: 'issuer' must be {tenant, client} strings")
            issuer = (tenant, client)
        return cls(
            _str(obj, "cid"), _str(obj, "to"), _str(obj, "data"), _int(obj, "attempt"), issuer
        )


@dataclass(frozen=True, slots=True)
class Park:
    """A snapshot of browser ``source`` waiting for consumer ``to``'s window."""

    kind: ClassVar[str] = "park"
    cid: str
    tenant: str
    to: str
    source: str
    msg: wire.Snapshot
    parks: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "cid": self.cid,
            "tenant": self.tenant,
            "to": self.to,
            "source": self.source,
            "msg": wire.to_dict(self.msg),
            "parks": self.parks,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Park:
        return cls(
            _str(obj, "cid"),
            _str(obj, "tenant"),
            _str(obj, "to"),
            _str(obj, "source"),
            _message(obj, wire.Snapshot),
            _int(obj, "parks"),
        )


@dataclass(frozen=True, slots=True)
class Timeout:
    """Command ``id`` to browser ``target`` is answered by now, or times out."""

    kind: ClassVar[str] = "timeout"
    cid: str
    tenant: str
    target: str
    id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "cid": self.cid,
            "tenant": self.tenant,
            "target": self.target,
            "id": self.id,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Timeout:
        return cls(_str(obj, "cid"), _str(obj, "tenant"), _str(obj, "target"), _str(obj, "id"))


BusEnvelope = (
    SnapshotEnvelope
    | CommandEnvelope
    | RawCommand
    | ResultEnvelope
    | Presence
    | BrowserGone
    | PresenceFanOut
)
#: What the command lane carries (a subset of what the router reads).
CommandLaneEnvelope = CommandEnvelope | RawCommand | ResultEnvelope
DeliveryEnvelope = Post | Park | Timeout

_BUS: dict[str, Any] = {
    c.kind: c
    for c in (
        SnapshotEnvelope,
        CommandEnvelope,
        RawCommand,
        ResultEnvelope,
        Presence,
        BrowserGone,
        PresenceFanOut,
    )
}
_COMMANDS: dict[str, Any] = {c.kind: c for c in (CommandEnvelope, RawCommand, ResultEnvelope)}
_DELIVERY: dict[str, Any] = {c.kind: c for c in (Post, Park, Timeout)}


def encode(envelope: BusEnvelope | DeliveryEnvelope) -> dict[str, Any]:
    """The JSON object of an envelope (the queue adapter serializes it)."""
    return envelope.to_dict()


def _decode(obj: Any, table: dict[str, Any], queue: str) -> Any:
    if not isinstance(obj, dict):
        raise EnvelopeError(f"a {queue} envelope must be a JSON object")
    kind = obj.get("kind")
    cls = table.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise EnvelopeError(f"unknown {queue} envelope kind {kind!r}")
    return cls.from_dict(obj)


def decode_bus(text: str) -> BusEnvelope:
    """A bus record's envelope; :class:`EnvelopeError` when it is none."""
    envelope: BusEnvelope = _decode(_load(text), _BUS, "bus")
    return envelope


def decode_command(text: str) -> CommandLaneEnvelope:
    """A command-lane record's envelope; :class:`EnvelopeError` when it is none, or
    when it belongs on the bus (a snapshot or presence has no business here)."""
    envelope: CommandLaneEnvelope = _decode(_load(text), _COMMANDS, "command lane")
    return envelope


def decode_delivery(text: str) -> DeliveryEnvelope:
    """A delivery-queue record's envelope; :class:`EnvelopeError` when it is none."""
    envelope: DeliveryEnvelope = _decode(_load(text), _DELIVERY, "delivery")
    return envelope


def _load(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise EnvelopeError(f"malformed envelope JSON: {exc}") from None
