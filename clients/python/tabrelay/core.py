"""The sans-I/O core of the client: every rule of the protocol, and no socket.

Nothing here awaits, sleeps or reads a clock: callers pass ``now`` where time
matters. The asyncio layer (:mod:`tabrelay.client`) only moves the frames this
module produces and feeds it the frames it receives, so all of the following is
unit-tested without a network:

* framing: :func:`encode_frame` refuses any frame over the byte budget;
* snapshots: :func:`snapshot_frames` compresses and cuts a page into parts
  that each fit one API Gateway frame; :class:`SnapshotAssembler` joins them;
* results: :func:`result_frames` / :class:`ResultAssembler` do the same for
  command results too large for one frame;
* acks: :class:`AckTracker` decides which cumulative ``ack`` to send and when;
* keep-alive: :class:`KeepAlive` decides when a one-way ``keepalive`` or a
  liveness ``ping`` goes out, and when a silent connection is dead
  (:data:`CONSUMER_KEEPALIVE`, :data:`BROWSER_KEEPALIVE`, :func:`token_role`);
* reconnecting: :func:`backoff` yields full-jitter reconnection delays;
  :class:`Reconnects` decides when to reconnect, after a drop and on purpose
  before API Gateway's 2-hour cut;
* pacing: :class:`TokenBucket` keeps the sending rate under the gateway's limit;
* queues: :class:`OutboundBuffer` and :class:`InboundSnapshots` are the two
  bounded queues with their overflow policies;
* connecting: :func:`connect_url` puts the token and ack flag in the URL,
  :func:`handshake_error` says which refusals are final;
* subscriptions: :class:`Subscriptions` keeps the set and rebuilds it on a new
  connection;
* replies: :class:`Replies` tells which pending command or request a frame
  answers, and which requests to ask again after a reconnect; :class:`Listing`
  joins the pages of ``list``;
* commands (browser side): :class:`CommandLedger` runs each command id once
  and remembers its answer;
* parts: :class:`PartResender` sends a part refused as ``rate_limited`` again;
* control frames: :class:`ControlFrames` orders restore, ack, ping and
  keepalive frames before queued items.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import random
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, NoReturn, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tabrelay import wire
from tabrelay.errors import (
    AuthError,
    CommandFailedError,
    ConnectError,
    QueueFullError,
    TabRelayError,
    TooLargeError,
)
from tabrelay.models import Snapshot

__all__ = [
    "BROWSER_KEEPALIVE",
    "CONSUMER_KEEPALIVE",
    "DEFAULT_ACK_DELAY",
    "DEFAULT_ACK_EVERY",
    "DEFAULT_EARLY_RECONNECT",
    "DEFAULT_FRAME_BUDGET",
    "DEFAULT_MAX_PENDING_RESULTS",
    "DEFAULT_MAX_PENDING_SNAPSHOT_BYTES",
    "DEFAULT_MAX_RESULT_BYTES",
    "DEFAULT_MAX_SNAPSHOT_BYTES",
    "HEALTHY_AFTER",
    "MAX_CONNECTION_SECONDS",
    "RESTORE_ID",
    "SUBSCRIBE_BATCH",
    "AckTracker",
    "Answer",
    "CommandLedger",
    "ControlFrames",
    "Duplicate",
    "InboundSnapshots",
    "KeepAlive",
    "KeepAlivePolicy",
    "Listing",
    "Malformed",
    "OutboundBuffer",
    "Outgoing",
    "Overflow",
    "PartResender",
    "Reconnects",
    "Replies",
    "RequestKind",
    "ResultAssembler",
    "SnapshotAssembler",
    "Subscriptions",
    "TokenBucket",
    "backoff",
    "batches",
    "browser_ids",
    "check_command_timeout",
    "connect_url",
    "encode_frame",
    "handshake_error",
    "parse_delivery",
    "part_id",
    "request_frame",
    "result_error",
    "result_frames",
    "snapshot_frames",
    "token_role",
]

#: Bytes of JSON per frame the client allows itself: API Gateway's frame limit
#: is 32 KB (32,768 bytes) and closes the connection with 1009 above it; the
#: margin leaves room for framing overhead and for gateways that count slightly
#: differently.
DEFAULT_FRAME_BUDGET = 30_000

Overflow = Literal["block", "drop_oldest", "raise"]
OVERFLOW_POLICIES: frozenset[str] = frozenset({"block", "drop_oldest", "raise"})

# Counters and sequence numbers beyond this are not exact in JavaScript peers:
# a delivery carrying one is malformed rather than a number to compute with.
_MAX_COUNTER = wire.MAX_INTEGER + 1

#: Bound on the HTML of one snapshot once decompressed (``max_snapshot_bytes``):
#: a gzip bomb is inflated incrementally and abandoned at this size.
DEFAULT_MAX_SNAPSHOT_BYTES = 32 * 1024 * 1024
#: Bound on the (base64) data of all half-received snapshots together
#: (``max_pending_snapshot_bytes``); beyond it the oldest is abandoned.
DEFAULT_MAX_PENDING_SNAPSHOT_BYTES = 64 * 1024 * 1024
#: Bound on the bytes of one command's result held while its parts arrive
#: (``max_result_bytes``); beyond it that command fails.
DEFAULT_MAX_RESULT_BYTES = 32 * 1024 * 1024
#: Bound on how many commands' results are being joined at once
#: (``max_pending_results``); beyond it the oldest of them fails.
DEFAULT_MAX_PENDING_RESULTS = 16


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def encode_frame(message: wire.Message, *, budget: int = DEFAULT_FRAME_BUDGET) -> str:
    """The JSON text of ``message``; raises :class:`TooLargeError` if over ``budget`` bytes."""
    text = wire.encode(message)
    size = _size(text)
    if size > budget:
        raise TooLargeError(
            f"{message.action} message is {size} bytes, over the {budget}-byte frame budget",
            id=getattr(message, "id", None),
        )
    return text


# --------------------------------------------------------------------------
# Reading what the gateway sends, whatever it is.
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Malformed:
    """A delivery the client cannot use, and what it could tell about its target.

    ``action``, ``id``, ``source``, ``sid`` and ``dseq`` are read from the frame
    when they have the right type (else ``None``), so that the caller can fail
    the one command or request it answers (``id``), count the one snapshot it
    carried as missed (``source``, ``sid``) and still acknowledge it (``dseq``).
    """

    code: str
    message: str
    action: str | None = None
    id: str | None = None
    source: str | None = None
    sid: str | None = None
    dseq: int | None = None

    @property
    def snapshot(self) -> tuple[str, str | None] | None:
        """The browser and snapshot id of a malformed snapshot delivery, to count as missed."""
        if self.action == "snapshot" and self.source is not None:
            return self.source, self.sid
        return None


def _counter(value: int, *, low: int = 0, high: int = _MAX_COUNTER) -> bool:
    return low <= value < high


def _parts_problem(part: int, parts: int) -> str | None:
    if _counter(parts, low=1, high=wire.MAX_PARTS + 1) and _counter(part, high=parts):
        return None
    return f"part {part} of {parts} is out of range"


def _snapshot_problem(m: wire.SnapshotDelivery) -> str | None:
    if not (_counter(m.seq) and _counter(m.missed)):
        return "seq and missed must be counters"
    if m.dseq is not None and not _counter(m.dseq):
        return "dseq must be a counter"
    return _parts_problem(m.part, m.parts)


def _result_problem(m: wire.ResultDelivery) -> str | None:
    problem = _parts_problem(m.part, m.parts)
    if problem is None and m.parts > 1 and not isinstance(m.value, str):
        return "value must be a string slice when parts > 1"
    return problem


def _range_problem(m: wire.Message) -> str | None:
    """Why a well-typed delivery is still unusable (numbers out of range), if it is."""
    if isinstance(m, wire.SnapshotDelivery):
        return _snapshot_problem(m)
    if isinstance(m, wire.ResultDelivery):
        return _result_problem(m)
    if isinstance(m, wire.CommandDelivery) and not 0 < m.timeout <= wire.MAX_COMMAND_TIMEOUT:
        return f"timeout must be in (0, {wire.MAX_COMMAND_TIMEOUT}] seconds"
    if isinstance(m, wire.Presence) and not _counter(m.at):
        return "at must be a counter"
    if isinstance(m, wire.Browsers) and not all(_counter(b.connected_at) for b in m.browsers):
        return "connected_at must be a counter"
    return None


def _salvage(text: str | bytes, code: str, message: str) -> Malformed:
    # Only for frames already refused: parse again, leniently, to learn what they answer.
    try:
        # Numbers too long for int() (a result value of 5,000 digits) must not
        # hide the id: they are not needed here.
        obj = json.loads(text, parse_int=lambda s: int(s) if len(s) <= 20 else None)
    except Exception:  # any parse failure: there is nothing to salvage
        obj = None
    if not isinstance(obj, dict):
        return Malformed(code, message)

    def text_field(name: str) -> str | None:
        v = obj.get(name)
        return v if isinstance(v, str) and 0 < len(v) <= wire.MAX_ID_CHARS else None

    dseq = obj.get("dseq")
    return Malformed(
        code,
        message,
        action=text_field("action"),
        id=text_field("id"),
        source=text_field("source"),
        sid=text_field("sid"),
        dseq=dseq if type(dseq) is int and _counter(dseq) else None,
    )


def parse_delivery(text: str | bytes) -> wire.Message | Malformed:
    """One frame from the gateway as a typed message, or :class:`Malformed`. Never raises.

    Beyond the wire decoder's checks (JSON object, known action, known fields of
    the right types), numbers must be in range: counters (``seq``, ``dseq``,
    ``missed``, ``at``) in ``[0, 2**53)``, ``0 <= part < parts <= 10,000``, a
    command's ``timeout`` in ``(0, 900]``.
    """
    try:
        message = wire.decode_outbound(text)
    except wire.RawFrame as raw:
        return Malformed("bad_request", f"not a JSON object ({len(raw.text)} characters)")
    except wire.ProtocolError as exc:
        return _salvage(text, exc.code, exc.message)
    except Exception as exc:  # a decoder bug must not end the relay
        return _salvage(text, "bad_request", f"undecodable frame: {type(exc).__name__}")
    problem = _range_problem(message)
    if problem is not None:
        return _salvage(text, "bad_request", f"{message.action}: {problem}")
    return message


# --------------------------------------------------------------------------
# Snapshots: compression and parts.
# --------------------------------------------------------------------------


def part_id(sid: str, part: int) -> str:
    """The message id of part ``part`` of snapshot ``sid``."""
    return f"{sid}.{part}"


def snapshot_frames(  # noqa: PLR0913  keyword-only fields of the wire Snapshot it builds, named by 30 callers (client, tests, bench)
    html: str,
    *,
    sid: str,
    seq: int,
    url: str = "",
    title: str = "",
    budget: int = DEFAULT_FRAME_BUDGET,
    compress: bool | None = None,
) -> list[str]:
    """The frames that carry one snapshot; each is at most ``budget`` bytes.

    With ``compress=None`` (the default) a page that fits one frame as plain
    text is sent plain, and anything larger is gzip-compressed, base64-encoded
    and cut into as many parts as needed. ``compress=True`` always compresses,
    ``False`` never does (and then raises :class:`TooLargeError` if the page
    does not fit one frame). ``url`` and ``title`` travel on part 0 only.
    Part ``i`` carries the message id :func:`part_id` ``(sid, i)``, so that an
    ``error`` (``rate_limited``, say) names the part it refused.
    Raises :class:`TooLargeError` if the snapshot needs more than 10,000 parts
    or ``url``/``title`` alone do not fit a frame.
    """
    if compress is not True:
        plain = wire.Snapshot(sid=sid, seq=seq, data=html, url=url, title=title, id=part_id(sid, 0))
        text = wire.encode(plain)
        if _size(text) <= budget:
            return [text]
        if compress is False:
            raise TooLargeError(f"snapshot of {_size(text)} bytes does not fit one frame")
    payload = base64.b64encode(gzip.compress(html.encode("utf-8"), mtime=0)).decode("ascii")
    # The longest part number the protocol allows; base64 needs no JSON escaping,
    # so a slice of n characters adds exactly n bytes to this overhead.
    first_overhead = _size(
        wire.encode(
            wire.Snapshot(
                sid=sid,
                seq=seq,
                data="",
                url=url,
                title=title,
                enc="gzip",
                part=wire.MAX_PARTS - 1,
                parts=wire.MAX_PARTS,
                id=part_id(sid, wire.MAX_PARTS - 1),
            )
        )
    )
    rest_overhead = _size(
        wire.encode(
            wire.Snapshot(
                sid=sid,
                seq=seq,
                data="",
                enc="gzip",
                part=wire.MAX_PARTS - 1,
                parts=wire.MAX_PARTS,
                id=part_id(sid, wire.MAX_PARTS - 1),
            )
        )
    )
    first_room = budget - first_overhead
    rest_room = budget - rest_overhead
    if first_room <= 0:
        raise TooLargeError("snapshot url and title do not fit one frame")
    slices = [payload[:first_room]]
    offset = first_room
    while offset < len(payload):
        slices.append(payload[offset : offset + rest_room])
        offset += rest_room
    if len(slices) > wire.MAX_PARTS:
        raise TooLargeError(f"snapshot needs {len(slices)} parts, more than {wire.MAX_PARTS}")
    frames = []
    for i, data in enumerate(slices):
        msg = wire.Snapshot(
            sid=sid,
            seq=seq,
            data=data,
            url=url if i == 0 else "",
            title=title if i == 0 else "",
            enc="gzip",
            part=i,
            parts=len(slices),
            id=part_id(sid, i),
        )
        frames.append(wire.encode(msg))
    return frames


@dataclass
class _PendingSnapshot:
    source: str
    sid: str
    seq: int
    enc: str
    parts: int
    url: str = ""
    title: str = ""
    missed: int = 0
    size: int = 0
    slices: dict[int, str] = field(default_factory=dict)


class SnapshotAssembler:
    """Joins snapshot deliveries into whole :class:`~tabrelay.models.Snapshot` objects.

    Contract of :meth:`feed`: give it every snapshot delivery in arrival order;
    it returns the :class:`Snapshot` when the delivery completes one (parts may
    arrive in any order; a repeated part is ignored), else ``None``.

    * Memory is bounded: at most ``max_pending`` snapshots are half-received at
      once and their data is at most ``max_bytes`` characters together; beyond
      that the oldest half-received snapshot is abandoned.
    * When a snapshot of a browser completes, every half-received one of the
      same browser with a lower ``seq`` is abandoned; repeated deliveries of a
      recently completed snapshot are ignored (SQS delivers at least once).
    * Abandoned snapshots and the gateway's ``missed`` counts add up in the
      ``missed`` of the next snapshot returned for that browser.
    * A malformed snapshot (parts that disagree or are out of range, undecodable
      data, HTML beyond ``max_html_bytes``) is abandoned, counted like any
      abandoned snapshot, and :class:`wire.ProtocolError` raised; later parts of
      it are ignored. :meth:`feed` raises nothing else, whatever it is given.
    """

    def __init__(
        self,
        *,
        max_pending: int = 64,
        max_bytes: int = DEFAULT_MAX_PENDING_SNAPSHOT_BYTES,
        max_html_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES,
    ) -> None:
        self.max_pending = max_pending
        self.max_bytes = max_bytes
        self.max_html_bytes = max_html_bytes
        self._pending: OrderedDict[tuple[str, str], _PendingSnapshot] = OrderedDict()
        self._bytes = 0
        self._carry: dict[str, int] = {}
        # Recently completed (or abandoned) snapshot ids per browser: SQS may
        # deliver a part twice, and parts of an abandoned snapshot keep coming.
        self._done: dict[str, deque[str]] = {}

    @property
    def pending(self) -> int:
        """Number of half-received snapshots held."""
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        """Characters of data held in half-received snapshots."""
        return self._bytes

    def unreported(self, source: str) -> int:
        """Snapshots of ``source`` abandoned since its last completed one (not yet in a ``missed``)."""
        return self._carry.get(source, 0)

    def abandon(self, source: str, sid: str | None, *, missed: int = 0) -> None:
        """Count snapshot ``sid`` of ``source`` as missed (a malformed delivery carried it).

        Its half-received parts are dropped and its later parts ignored; an
        ``sid`` already completed or abandoned is not counted again.
        """
        if sid is not None:
            done = self._done.get(source)
            if done is not None and sid in done:
                return
            if (source, sid) in self._pending:
                self._drop((source, sid), count=True)  # with what its parts reported missed
                return
            self._mark_done(source, sid)
        self._carry[source] = self._carry.get(source, 0) + 1 + max(0, min(missed, _MAX_COUNTER))

    def _mark_done(self, source: str, sid: str) -> None:
        self._done.setdefault(source, deque(maxlen=32)).append(sid)

    def _reject(self, d: wire.SnapshotDelivery, code: wire.ErrorCode, why: str) -> NoReturn:
        self.abandon(d.source, d.sid, missed=d.missed if _counter(d.missed) else 0)
        raise wire.ProtocolError(code, f"snapshot {d.sid} from {d.source}: {why}")

    def feed(self, d: wire.SnapshotDelivery) -> Snapshot | None:
        done = self._done.get(d.source)
        if done is not None and d.sid in done:
            return None
        if not (_counter(d.seq) and _counter(d.missed)):
            self._reject(d, "bad_request", "seq and missed must be counters")
        if not (
            _counter(d.parts, low=1, high=wire.MAX_PARTS + 1) and _counter(d.part, high=d.parts)
        ):
            self._reject(d, "bad_request", f"part {d.part} of {d.parts} is out of range")
        key = (d.source, d.sid)
        p = self._pending.get(key)
        if p is None:
            p = _PendingSnapshot(d.source, d.sid, d.seq, d.enc, d.parts, d.url, d.title, d.missed)
            if d.parts == 1:
                # The common small case: no bookkeeping at all.
                return self._complete(p, d.data)
            p.missed = 0
            self._pending[key] = p
        elif p.parts != d.parts or p.enc != d.enc or p.seq != d.seq:
            self._reject(d, "bad_request", "parts disagree")
        if d.part in p.slices:
            return None
        p.missed += d.missed
        if d.part == 0:
            p.url, p.title = d.url, d.title
        p.slices[d.part] = d.data
        p.size += len(d.data)
        self._bytes += len(d.data)
        self._evict()
        if key not in self._pending or len(p.slices) < p.parts:
            return None
        self._drop(key, count=False)
        data = "".join(p.slices[i] for i in range(p.parts))
        return self._complete(p, data)

    def _complete(self, p: _PendingSnapshot, data: str) -> Snapshot:
        self._mark_done(p.source, p.sid)
        try:
            html = self._decode(p.sid, p.enc, data)
        except wire.ProtocolError:
            # Undecodable: it counts as missed, with whatever it reported missed.
            self._carry[p.source] = self._carry.get(p.source, 0) + 1 + p.missed
            raise
        # Older half-received snapshots of this browser will never be shown.
        stale = [k for k, q in self._pending.items() if q.source == p.source and q.seq < p.seq]
        for key in stale:
            self._drop(key, count=True)
        missed = p.missed + self._carry.pop(p.source, 0)
        return Snapshot(
            source=p.source,
            sid=p.sid,
            seq=p.seq,
            html=html,
            url=p.url,
            title=p.title,
            missed=missed,
            parts=p.parts,
        )

    def _decode(self, sid: str, enc: str, data: str) -> str:
        if enc == "none":
            if len(data) > self.max_html_bytes:
                raise wire.ProtocolError(
                    "too_large", f"snapshot {sid}: HTML over {self.max_html_bytes} bytes"
                )
            return data
        try:
            raw = base64.b64decode(data, validate=True)
            # wbits=31: a gzip stream; max_length bounds what a small payload may inflate to.
            inflater = zlib.decompressobj(wbits=31)
            body = inflater.decompress(raw, self.max_html_bytes + 1)
            if len(body) > self.max_html_bytes or inflater.unconsumed_tail:
                raise wire.ProtocolError(
                    "too_large", f"snapshot {sid}: HTML over {self.max_html_bytes} bytes"
                )
            if not inflater.eof:
                raise ValueError("truncated gzip stream")
            return body.decode("utf-8")
        except wire.ProtocolError:
            raise
        except (ValueError, zlib.error) as exc:
            raise wire.ProtocolError("bad_request", f"snapshot {sid}: {exc}") from None

    def _drop(self, key: tuple[str, str], *, count: bool) -> None:
        p = self._pending.pop(key, None)
        if p is None:
            return
        self._bytes -= p.size
        if count:
            # Its later parts must not start it again (and count it twice).
            self._mark_done(p.source, p.sid)
            self._carry[p.source] = self._carry.get(p.source, 0) + 1 + p.missed

    def _evict(self) -> None:
        while self._pending and (
            len(self._pending) > self.max_pending or self._bytes > self.max_bytes
        ):
            oldest = next(iter(self._pending))
            self._drop(oldest, count=True)


# --------------------------------------------------------------------------
# Results too large for one frame.
# --------------------------------------------------------------------------


def result_frames(  # noqa: PLR0913  keyword-only fields of the wire Result it builds, named by its callers (core, tests, bench)
    id: str,
    *,
    ok: bool,
    value: Any = None,
    error: str | None = None,
    code: str | None = None,
    budget: int = DEFAULT_FRAME_BUDGET,
) -> list[str]:
    """The frames that answer command ``id``; each is at most ``budget`` bytes.

    A result that fits one frame is one frame. Otherwise the JSON text of
    ``value`` is cut into string slices, one per part, as the wire protocol's
    ``Result`` describes. ``value`` must be JSON-serializable (else
    :class:`TypeError`); an ``error`` longer than 4,096 characters is cut.
    """
    if error is not None and len(error) > wire.MAX_ERROR_CHARS:
        error = error[: wire.MAX_ERROR_CHARS - 3] + "..."
    single = wire.encode(wire.Result(id=id, ok=ok, value=value, error=error, code=code))
    if _size(single) <= budget:
        return [single]
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    overhead = _size(
        wire.encode(
            wire.Result(
                id=id,
                ok=ok,
                value="",
                error=error,
                code=code,
                part=wire.MAX_PARTS - 1,
                parts=wire.MAX_PARTS,
            )
        )
    )
    room = budget - overhead
    if room < 64:
        raise TooLargeError(f"result {id}: error text leaves no room for the value", id=id)
    slices: list[str] = []
    offset = 0
    while offset < len(text):
        n = room
        while True:
            piece = text[offset : offset + n]
            # Escaping may grow a slice (quotes, backslashes, non-ASCII bytes).
            grown = _size(json.dumps(piece, ensure_ascii=False)) - 2
            if grown <= room:
                break
            n = max(1, n * room // grown - 1)
        slices.append(piece)
        offset += len(piece)
    if len(slices) > wire.MAX_PARTS:
        raise TooLargeError(f"result {id} needs {len(slices)} parts", id=id)
    return [
        wire.encode(
            wire.Result(id=id, ok=ok, value=s, error=error, code=code, part=i, parts=len(slices))
        )
        for i, s in enumerate(slices)
    ]


@dataclass
class _PendingResult:
    first: wire.ResultDelivery
    size: int = 0
    slices: dict[int, str] = field(default_factory=dict)


class ResultAssembler:
    """Joins result deliveries; :meth:`feed` returns the whole result or ``None``.

    The returned :class:`wire.ResultDelivery` has ``parts == 1`` and the parsed
    ``value``. A repeated part is ignored (SQS delivers at least once).

    * Malformed parts (``part``/``parts`` out of range, parts that disagree with
      the first one seen on ``parts``, ``ok``, ``error``, ``code`` or
      ``source``, a slice that is not a string, joined text that is not JSON)
      make :meth:`feed` raise :class:`wire.ProtocolError` with ``id`` set, and
      the half-received result is forgotten. It raises nothing else.
    * Memory is bounded: one result holds at most ``max_bytes`` bytes of slices
      (beyond, ``too_large`` is raised for it), and at most ``max_pending``
      results are joined at once; beyond that the oldest is forgotten and its
      id appended to :attr:`abandoned`, for the caller to fail that command.
      :meth:`discard` forgets one (e.g. when its command gave up).
    """

    def __init__(
        self,
        *,
        max_pending: int = DEFAULT_MAX_PENDING_RESULTS,
        max_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        self.max_pending = max_pending
        self.max_bytes = max_bytes
        self.abandoned: list[str] = []
        self._pending: OrderedDict[str, _PendingResult] = OrderedDict()

    @property
    def pending(self) -> int:
        """Number of half-received results held."""
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        """Bytes of slices held in half-received results."""
        return sum(p.size for p in self._pending.values())

    def _fail(self, d: wire.ResultDelivery, code: wire.ErrorCode, why: str) -> NoReturn:
        self._pending.pop(d.id, None)
        raise wire.ProtocolError(code, f"result {d.id} from {d.source}: {why}", id=d.id)

    def feed(self, d: wire.ResultDelivery) -> wire.ResultDelivery | None:
        if not (
            _counter(d.parts, low=1, high=wire.MAX_PARTS + 1) and _counter(d.part, high=d.parts)
        ):
            self._fail(d, "bad_request", f"part {d.part} of {d.parts} is out of range")
        p = self._pending.get(d.id)
        if p is not None:
            f = p.first
            if (f.parts, f.ok, f.error, f.code, f.source) != (
                d.parts,
                d.ok,
                d.error,
                d.code,
                d.source,
            ):
                self._fail(d, "bad_request", "parts disagree")
        if d.parts == 1:
            return d
        if not isinstance(d.value, str):
            self._fail(d, "bad_request", "value must be a string slice when parts > 1")
        if p is None:
            p = self._pending[d.id] = _PendingResult(d)
            while len(self._pending) > self.max_pending:
                oldest, _ = self._pending.popitem(last=False)
                self.abandoned.append(oldest)
        if d.part in p.slices:
            return None
        size = len(d.value.encode("utf-8", "surrogatepass"))
        if p.size + size > self.max_bytes:
            self._fail(d, "too_large", f"more than {self.max_bytes} bytes")
        p.slices[d.part] = d.value
        p.size += size
        if len(p.slices) < d.parts:
            return None
        del self._pending[d.id]
        text = "".join(p.slices[i] for i in range(d.parts))
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise wire.ProtocolError(
                "bad_request", f"result {d.id}: value is not JSON ({exc})", id=d.id
            ) from None
        return replace(d, value=value, part=0, parts=1)

    def discard(self, id: str) -> None:
        self._pending.pop(id, None)


# --------------------------------------------------------------------------
# Cumulative acknowledgements.
# --------------------------------------------------------------------------

#: An ack goes out once this many deliveries became acknowledgeable: half the
#: gateway's window (``wire.MAX_UNACKED``), so the other half is still open while
#: the ack travels. The window fills only if 50 more deliveries arrive before the
#: gateway has the ack (a round trip), far beyond any one connection's rate.
DEFAULT_ACK_EVERY = wire.MAX_UNACKED // 2
#: ... or this many seconds after the oldest delivery not yet acknowledged (a
#: trickle): fewer than DEFAULT_ACK_EVERY deliveries in that time leave more than
#: half the window open, so the delay never stalls a consumer; it only bounds how
#: long the gateway counts them. At one delivery per 10 s that is one ack per six.
DEFAULT_ACK_DELAY = 60.0


class AckTracker:
    """Decides which cumulative ``ack`` to send, and when.

    The gateway numbers the snapshot deliveries of one connection (``dseq``)
    and keeps at most MAX_UNACKED of them unacknowledged. An ack of ``seq``
    says every delivery with ``dseq <= seq`` is processed, so the tracker never
    acknowledges past a delivery that is *held*: one whose snapshot still waits
    in the client's buffer for the application. That is how a slow application
    slows the gateway down (which then conflates) instead of filling memory.

    Contract: call :meth:`received` for each delivery with a ``dseq`` (``hold``
    for the one that completed a buffered snapshot; it returns a token),
    :meth:`release` with that token once the application took the snapshot (or
    it was dropped), and after any of these or at :meth:`deadline` call
    :meth:`due`; when it returns a number, send ``ack`` with it and call
    :meth:`sent`. Acks go out when ``every`` deliveries became acknowledgeable
    or ``delay`` seconds after the first one did, never once per message.
    :meth:`reset` starts a new connection (``dseq`` restarts there; tokens of
    the old one are ignored).

    With the defaults (:data:`DEFAULT_ACK_EVERY` = half the window,
    :data:`DEFAULT_ACK_DELAY`) a consumer that processes what it receives never
    fills the window: at most ``every`` acknowledgeable deliveries wait for an
    ack, and the rest of the window covers the ack's round trip.
    """

    def __init__(self, *, every: int = DEFAULT_ACK_EVERY, delay: float = DEFAULT_ACK_DELAY) -> None:
        if every < 1:
            raise ValueError("every must be >= 1")
        self.every = every
        self.delay = delay
        self._epoch = 0
        self.reset()

    def reset(self) -> None:
        self._epoch += 1
        self._highest: int | None = None
        self._floor: int | None = None  # dseq just below the first delivery seen
        self._last_sent: int | None = None
        self._held: dict[int, int] = {}
        self._since: float | None = None

    @property
    def ackable(self) -> int | None:
        """The highest ``seq`` that may be acknowledged now, if any."""
        if self._highest is None:
            return None
        top = self._highest
        if self._held:
            top = min(top, min(self._held) - 1)
        base = self._last_sent if self._last_sent is not None else self._floor
        if base is not None and top <= base:
            return None
        return top

    def received(self, dseq: int, now: float, *, hold: bool = False) -> tuple[int, int] | None:
        if self._floor is None or dseq - 1 < self._floor:
            self._floor = dseq - 1
        if self._highest is None or dseq > self._highest:
            self._highest = dseq
        token = None
        if hold:
            self._held[dseq] = self._held.get(dseq, 0) + 1
            token = (self._epoch, dseq)
        self._touch(now)
        return token

    def release(self, token: tuple[int, int] | None, now: float) -> None:
        if token is None or token[0] != self._epoch:
            return
        dseq = token[1]
        count = self._held.get(dseq, 0)
        if count <= 1:
            self._held.pop(dseq, None)
        else:
            self._held[dseq] = count - 1
        self._touch(now)

    def _touch(self, now: float) -> None:
        if self._since is None and self.ackable is not None:
            self._since = now

    def deadline(self) -> float | None:
        """When :meth:`due` will next return a number without new input."""
        if self._since is None:
            return None
        return self._since + self.delay

    def due(self, now: float) -> int | None:
        top = self.ackable
        if top is None:
            self._since = None
            return None
        base = self._last_sent if self._last_sent is not None else self._floor
        assert base is not None
        if top - base >= self.every:
            return top
        if self._since is not None and now - self._since >= self.delay:
            return top
        return None

    def sent(self, seq: int) -> None:
        if self._last_sent is None or seq > self._last_sent:
            self._last_sent = seq
        self._since = None


# --------------------------------------------------------------------------
# Keep-alive and liveness.
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeepAlivePolicy:
    """When a connection sends keep-alives, all in seconds (``None``: never).

    * ``keepalive_after``: send a one-way ``keepalive`` (no reply, no Lambda) when
      nothing went out for this long. API Gateway closes a connection idle for
      10 minutes; every frame the client sends (an ack, a snapshot) counts, so a
      busy connection never sends one.
    * ``ping_after``: send a ``ping`` (answered ``pong``) when nothing came in for
      this long: a liveness check, since a half-open TCP connection looks alive
      to the side that only sends.
    * ``ping_timeout``: nothing at all came in this long after such a ping: the
      connection is dead. A dead connection is noticed at most
      ``ping_after + ping_timeout`` after its last received frame.
    """

    keepalive_after: float | None
    ping_after: float | None
    ping_timeout: float

    def __post_init__(self) -> None:
        for name in ("keepalive_after", "ping_after", "ping_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 (or None)")


#: A consumer: one keepalive after 5 minutes without sending (half API Gateway's
#: 10-minute idle limit), a liveness ping after 10 minutes without receiving; a
#: dead connection is noticed within 10.5 minutes of its last frame. An idle
#: consumer sends 3 messages per 10 minutes (keepalive, ping, and the pong it
#: gets back) instead of 60 with a ping every 20 s; a busy one none.
CONSUMER_KEEPALIVE = KeepAlivePolicy(keepalive_after=300.0, ping_after=600.0, ping_timeout=30.0)
#: A browser (``tabrelay simulate-browser``, the extension): a keepalive when
#: nothing else went out for 20 s, since a Manifest V3 service worker needs a
#: message at least every 30 s; a liveness ping after 2 minutes without
#: receiving; a dead connection is noticed within 140 s of its last frame.
BROWSER_KEEPALIVE = KeepAlivePolicy(keepalive_after=20.0, ping_after=120.0, ping_timeout=20.0)


def token_role(token: str | None) -> str | None:
    """The ``role`` claim of a JWT, read without verifying it (the gateway verifies);
    None when ``token`` is not a JWT or names no known role."""
    if not token or token.count(".") != 2:
        return None
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    role = claims.get("role") if isinstance(claims, dict) else None
    return role if role in ("browser", "consumer") else None


class KeepAlive:
    """Decides when to send a ``keepalive`` or a ``ping``, and when the connection is dead.

    Contract, with the current time ``now``: :meth:`opened` on each new
    connection; :meth:`sent` for every frame written, :meth:`received` for every
    frame read; at :meth:`deadline` (or any time) ask :meth:`due`, which returns
    ``"keepalive"`` or ``"ping"`` (send one, then call :meth:`sent` /
    :meth:`pinged`), ``"dead"`` (abort the connection) or ``None``. Only an
    answered ping (:meth:`received` returns True) moves :meth:`deadline` earlier.
    """

    def __init__(self, policy: KeepAlivePolicy) -> None:
        self.policy = policy
        self.opened(0.0)

    def opened(self, now: float) -> None:
        self._last_out = self._last_in = now
        self._ping_at: float | None = None

    def sent(self, now: float) -> None:
        self._last_out = max(self._last_out, now)

    def received(self, now: float) -> bool:
        """Returns True when the frame answered a ping (:meth:`deadline` moved earlier)."""
        self._last_in = max(self._last_in, now)
        answered = self._ping_at is not None
        self._ping_at = None  # any frame answers the ping
        return answered

    def pinged(self, now: float) -> None:
        self._ping_at = now
        self.sent(now)

    def _ping_due_at(self) -> float | None:
        after = self.policy.ping_after
        return None if after is None or self._ping_at is not None else self._last_in + after

    def _keepalive_due_at(self) -> float | None:
        after = self.policy.keepalive_after
        return None if after is None else self._last_out + after

    def _dead_at(self) -> float | None:
        return None if self._ping_at is None else self._ping_at + self.policy.ping_timeout

    def due(self, now: float) -> Literal["dead", "ping", "keepalive"] | None:
        dead, ping, keepalive = self._dead_at(), self._ping_due_at(), self._keepalive_due_at()
        if dead is not None and now >= dead:
            return "dead"
        if ping is not None and now >= ping:
            return "ping"  # a ping goes out too: it keeps the connection alive as well
        if keepalive is not None and now >= keepalive:
            after = self.policy.keepalive_after or 0.0
            if ping is not None and ping < now + after:
                return "ping"  # due before the next keepalive anyway: one frame, not two
            return "keepalive"
        return None

    def deadline(self) -> float | None:
        """When :meth:`due` will next return something without new input."""
        times = (self._dead_at(), self._ping_due_at(), self._keepalive_due_at())
        known = [t for t in times if t is not None]
        return min(known) if known else None


# --------------------------------------------------------------------------
# Reconnection delays.
# --------------------------------------------------------------------------


def backoff(
    *,
    initial: float = 0.5,
    factor: float = 2.0,
    maximum: float = 30.0,
    jitter: float = 1.0,
    rng: Callable[[], float] = random.random,
) -> Iterator[float]:
    """Endless reconnection delays: exponential growth capped at ``maximum``, with jitter.

    Delay ``n`` (from 0) lies in ``[d * (1 - jitter), d]`` where
    ``d = min(maximum, initial * factor ** n)``. The default is *full jitter*
    (``jitter=1``: uniform in ``[0, d]``, AWS Architecture Blog "Exponential
    Backoff And Jitter"), so a fleet dropped at once (a gateway blip) spreads
    its reconnections over the whole window instead of coming back in lockstep.
    """
    if not 0 <= jitter <= 1:
        raise ValueError("jitter must be in [0, 1]")
    delay = initial
    while True:
        yield delay * (1 - jitter * rng())
        delay = min(maximum, delay * factor)


#: API Gateway closes every WebSocket connection after 2 hours (a fixed quota).
MAX_CONNECTION_SECONDS = 7200.0
#: When the client reconnects on purpose, in seconds after a connection opened:
#: a moment drawn uniformly from this window, 10 to 20 minutes before the
#: 2-hour cut, so that a fleet that connected together is not cut together.
DEFAULT_EARLY_RECONNECT = (6000.0, 6600.0)
#: A connection that lived this long resets the backoff (its drop is news, not
#: a gateway that accepts and then drops at once).
HEALTHY_AFTER = 10.0


class Reconnects:
    """When to reconnect: after a drop, and on purpose before the gateway's 2-hour cut.

    Contract, all with the current time ``now``: :meth:`opened` when a
    connection opens (it draws :attr:`renew_at`, the moment to reconnect on
    purpose, uniformly in ``window`` after ``now``; ``window=None`` never
    does); :meth:`renew_due` says whether that moment has come; the caller then
    opens the next connection (no backoff), closes the old one, and calls
    :meth:`opened` again, or :meth:`renew_failed` if the open failed.
    :meth:`dropped` when a connection was lost and :meth:`failed` when an
    attempt failed give the delay before the next attempt: full-jitter backoff
    (:func:`backoff`) that starts over once a connection lived ``healthy_after``
    seconds.
    """

    def __init__(
        self,
        *,
        initial: float = 0.5,
        maximum: float = 30.0,
        window: tuple[float, float] | None = DEFAULT_EARLY_RECONNECT,
        healthy_after: float = HEALTHY_AFTER,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if window is not None and not 0 < window[0] <= window[1]:
            raise ValueError("the early reconnect window must satisfy 0 < start <= end")
        self.initial = initial
        self.maximum = maximum
        self.window = window
        self.healthy_after = healthy_after
        self._rng = rng
        self._delays = backoff(initial=initial, maximum=maximum, rng=rng)
        self.opened_at: float | None = None
        self.renew_at: float | None = None

    def _ended(self, now: float) -> None:
        if self.opened_at is not None and now - self.opened_at >= self.healthy_after:
            self._delays = backoff(initial=self.initial, maximum=self.maximum, rng=self._rng)
        self.opened_at = self.renew_at = None

    def opened(self, now: float) -> float | None:
        """A connection opened at ``now`` (replacing any other); returns :attr:`renew_at`."""
        self._ended(now)
        self.opened_at = now
        if self.window is not None:
            start, end = self.window
            self.renew_at = now + start + (end - start) * self._rng()
        return self.renew_at

    def renew_due(self, now: float) -> bool:
        return self.renew_at is not None and now >= self.renew_at

    def renew_failed(self, now: float) -> float | None:
        """Opening the next connection failed: try again after a backoff delay while
        that is still before the cut; returns the new :attr:`renew_at` (``None``: let
        the gateway's cut end the connection, then reconnect as after a drop)."""
        if self.opened_at is None:
            return None
        at = now + next(self._delays)
        self.renew_at = at if at < self.opened_at + MAX_CONNECTION_SECONDS else None
        return self.renew_at

    def dropped(self, now: float) -> float:
        """The connection was lost at ``now``: the delay before the first attempt."""
        self._ended(now)
        return next(self._delays)

    def failed(self) -> float:
        """An attempt failed: the delay before the next one."""
        return next(self._delays)


# --------------------------------------------------------------------------
# Pacing.
# --------------------------------------------------------------------------


class TokenBucket:
    """Paces outgoing frames under the gateway's per-connection rate limit.

    The gateway counts messages in fixed one-second windows (50 per connection
    as deployed) and answers ``rate_limited`` beyond that, so a burst of
    snapshot parts would lose some. A bucket of ``burst`` tokens refilled at
    ``rate`` per second lets through at most ``burst + rate`` frames in any
    one-second window; the defaults (20 + 20) stay under 50 with a margin for
    acks and pings. Contract: before sending, wait :meth:`delay` seconds, then
    call :meth:`take` (both with the current time); give the code of every
    error the gateway answers to :meth:`refused`, which calls :meth:`slow_down`
    when it is ``rate_limited``.
    """

    def __init__(self, rate: float = 20.0, burst: int = 20) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at: float | None = None

    def _refill(self, now: float) -> None:
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def delay(self, now: float) -> float:
        """Seconds to wait before the next frame may go (0 if it may go now)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self._tokens -= 1

    def refused(self, code: str) -> None:
        """The gateway answered an error with ``code``: slow down if it was ``rate_limited``."""
        if code == "rate_limited":
            self.slow_down()

    def slow_down(self) -> None:
        """Halve the rate and the burst (not below 1): the gateway's limit is lower."""
        self.rate = max(1.0, self.rate / 2)
        self.burst = max(1, self.burst // 2)
        self._tokens = min(self._tokens, float(self.burst))


# --------------------------------------------------------------------------
# The two bounded queues.
# --------------------------------------------------------------------------


@dataclass(eq=False)
class Outgoing:
    """One queued outgoing item: a whole snapshot (all its parts), a command or a result."""

    kind: Literal["snapshot", "command", "result", "request"]
    frames: list[str]
    key: str = ""
    ids: list[str] | None = None  # message ids of the frames (snapshot parts)


class OutboundBuffer:
    """The writer's bounded queue of :class:`Outgoing` items, with an overflow policy.

    ``maxsize`` counts items (a snapshot is one item, however many parts).
    :meth:`offer` either accepts the item (returns ``True``) or, when full:

    * ``"block"``: returns ``False``; the caller waits for room and offers again;
    * ``"drop_oldest"``: drops the oldest queued *snapshot* (counted in
      :attr:`dropped`) and accepts; if no snapshot is queued it behaves like
      ``"block"``, because commands and results are never dropped;
    * ``"raise"``: raises :class:`QueueFullError`.
    """

    def __init__(self, maxsize: int = 100, overflow: Overflow = "block") -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {sorted(OVERFLOW_POLICIES)}")
        self.maxsize = maxsize
        self.overflow = overflow
        self.dropped = 0
        self._items: deque[Outgoing] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return len(self._items) >= self.maxsize

    def offer(self, item: Outgoing) -> bool:
        if not self.full():
            self._items.append(item)
            return True
        if self.overflow == "raise":
            raise QueueFullError(f"outgoing queue full ({self.maxsize} items)")
        if self.overflow == "drop_oldest":
            for i, queued in enumerate(self._items):
                if queued.kind == "snapshot":
                    del self._items[i]
                    self.dropped += 1
                    self._items.append(item)
                    return True
        return False

    def peek(self) -> Outgoing | None:
        return self._items[0] if self._items else None

    def pop(self) -> Outgoing:
        return self._items.popleft()

    def remove(self, item: Outgoing) -> bool:
        """Take ``item`` out if it is still queued (its sender gave up)."""
        try:
            self._items.remove(item)
        except ValueError:
            return False
        return True


T = TypeVar("T")


class InboundSnapshots(Generic[T]):
    """The bounded buffer between the reader and :meth:`Relay.snapshots`.

    Holds at most ``maxsize`` whole snapshots, each with an opaque token (the
    ack hold to release when it leaves). When full, :meth:`offer`:

    * ``"block"``: returns ``False``; the caller stops reading until there is room;
    * ``"drop_oldest"``: drops the oldest buffered snapshot and accepts;
    * ``"raise"``: drops the new snapshot and makes the next :meth:`take` raise
      :class:`QueueFullError` once.

    SQS does not keep order, so a snapshot may arrive after a newer one of the
    same browser. Given ``now``, :meth:`offer` drops such a *stale* snapshot
    (counted in :attr:`stale`) when the newer one came less than
    ``reorder_window`` seconds before; past that window a lower ``seq`` is
    taken as a restarted browser and accepted.

    A dropped snapshot is never lost silently: its ``missed + 1`` is added to
    the ``missed`` of the next snapshot the application gets from that browser.
    Every token that leaves the buffer without being taken is appended to
    :attr:`released` for the caller to release.
    """

    def __init__(
        self, maxsize: int = 100, overflow: Overflow = "block", *, reorder_window: float = 10.0
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {sorted(OVERFLOW_POLICIES)}")
        self.maxsize = maxsize
        self.overflow = overflow
        self.reorder_window = reorder_window
        self.dropped = 0
        self.stale = 0
        self._newest: dict[str, tuple[int, float]] = {}
        self.released: list[T] = []
        self._items: deque[tuple[Snapshot, T]] = deque()
        self._carry: dict[str, int] = {}
        self._overflowed = False

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return len(self._items) >= self.maxsize

    def offer(self, snap: Snapshot, token: T, now: float | None = None) -> bool:
        if now is not None:
            newest = self._newest.get(snap.source)
            if (
                newest is not None
                and snap.seq < newest[0]
                and now - newest[1] < self.reorder_window
            ):
                self.stale += 1
                self._carry[snap.source] = self._carry.get(snap.source, 0) + snap.missed + 1
                self.released.append(token)
                return True
        if self.full() and self.overflow == "block":
            return False
        if now is not None:
            self._newest[snap.source] = (snap.seq, now)
        if not self.full():
            self._items.append((self._with_carry(snap), token))
            return True
        if self.overflow == "block":
            return False
        self.dropped += 1
        if self.overflow == "drop_oldest":
            old, old_token = self._items.popleft()
            self._lose(old)
            self.released.append(old_token)
            self._items.append((self._with_carry(snap), token))
        else:
            self._carry[snap.source] = self._carry.get(snap.source, 0) + snap.missed + 1
            self.released.append(token)
            self._overflowed = True
        return True

    def _lose(self, snap: Snapshot) -> None:
        # ``snap`` was the oldest: the next one of its browser is buffered or yet to come.
        lost = snap.missed + 1
        for i, (later, tok) in enumerate(self._items):
            if later.source == snap.source:
                self._items[i] = (replace(later, missed=later.missed + lost), tok)
                return
        self._carry[snap.source] = self._carry.get(snap.source, 0) + lost

    def take(self) -> tuple[Snapshot, T] | None:
        """The oldest snapshot with its token, ``None`` if empty; may raise (see above)."""
        if self._overflowed:
            self._overflowed = False
            raise QueueFullError(
                f"snapshot buffer full ({self.maxsize}): the application is slower than its browsers"
            )
        if not self._items:
            return None
        return self._items.popleft()

    def unreported(self, source: str) -> int:
        """Snapshots of ``source`` dropped after the newest buffered one (reported with the next)."""
        return self._carry.get(source, 0)

    def _with_carry(self, snap: Snapshot) -> Snapshot:
        carried = self._carry.pop(snap.source, 0)
        return replace(snap, missed=snap.missed + carried) if carried else snap


# --------------------------------------------------------------------------
# Connecting.
# --------------------------------------------------------------------------


def connect_url(url: str, token: str | None, *, acks: bool) -> str:
    """The URL to open: ``url`` with ``token`` (replacing one it carries) and the ack flag.

    Browsers cannot set headers on a WebSocket, so the token travels in the
    query string; ``acks`` negotiates cumulative acknowledgements.
    """
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != wire.ACK_QUERY_PARAMETER]
    if token is not None:
        query = [(k, v) for k, v in query if k != "token"]
        query.append(("token", token))
    if acks:
        query.append((wire.ACK_QUERY_PARAMETER, "1"))
    return urlunsplit(parts._replace(query=urlencode(query)))


# --------------------------------------------------------------------------
# Subscriptions and their restore after a reconnect.
# --------------------------------------------------------------------------

#: The request id of the frames that restore subscriptions on a new connection.
RESTORE_ID = "restore"
#: Browsers per ``subscribe``/``unsubscribe`` frame (the wire protocol's bound).
SUBSCRIBE_BATCH = wire.MAX_SUBSCRIPTIONS


def browser_ids(browsers: Iterable[str]) -> list[str]:
    """``browsers`` as a list of distinct client ids; a lone string is one id.

    Raises :class:`ValueError` for an empty list or an id that is not a non-empty string.
    """
    if isinstance(browsers, str):
        browsers = [browsers]
    ids = list(dict.fromkeys(browsers))
    if not ids or not all(isinstance(b, str) and b for b in ids):
        raise ValueError("browsers must be a non-empty list of client ids (or '*')")
    return ids


def batches(ids: list[str], size: int = SUBSCRIBE_BATCH) -> list[list[str]]:
    """``ids`` cut into lists of at most ``size`` (one ``subscribe`` frame each)."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


class Subscriptions:
    """The consumer's subscription set, and how to rebuild it on a new connection.

    Contract: call :meth:`subscribe` / :meth:`unsubscribe` with what the
    application asks for (before the requests go out). When a connection opens,
    send the frames of :meth:`restore`; each ``subscribed`` (or ``error``)
    answering :data:`RESTORE_ID` goes to :meth:`confirmed` (or :meth:`failed`),
    and the connection is ready when :attr:`restoring` is false.

    Before the first subscribe/unsubscribe a consumer receives from every
    browser, which is also what a fresh connection does: nothing to restore.
    An emptied set is restored as subscribe-all then unsubscribe-all.
    """

    def __init__(self) -> None:
        self._ids: set[str] | None = None
        self._left = 0

    @property
    def current(self) -> frozenset[str] | None:
        """The set the application asked for; ``None`` before its first change."""
        return None if self._ids is None else frozenset(self._ids)

    @property
    def restoring(self) -> bool:
        """Whether restore frames are still unconfirmed."""
        return self._left > 0

    def subscribe(self, ids: Iterable[str]) -> None:
        self._ids = (self._ids or set()) | set(ids)

    def unsubscribe(self, ids: Iterable[str]) -> None:
        self._ids = (self._ids or set()) - set(ids)

    def restore(self) -> list[str]:
        """The frames that rebuild the set on a new connection (may be none)."""
        frames: list[str] = []
        if self._ids is not None:
            if self._ids:
                for chunk in batches(sorted(self._ids)):
                    frames.append(wire.encode(wire.Subscribe(browsers=chunk, id=RESTORE_ID)))
            else:
                frames.append(wire.encode(wire.Subscribe(browsers=["*"], id=RESTORE_ID)))
                frames.append(wire.encode(wire.Unsubscribe(browsers=["*"], id=RESTORE_ID)))
        self._left = len(frames)
        return frames

    def confirmed(self) -> bool:
        """One restore frame was confirmed; returns whether the restore is complete."""
        self._left = max(0, self._left - 1)
        return not self._left

    def failed(self) -> None:
        """The gateway refused a restore frame: stop waiting for the rest."""
        self._left = 0


# --------------------------------------------------------------------------
# Commands a browser runs: at most once per id.
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A command id seen before: ``frames`` is its remembered answer (``None``: still running)."""

    frames: list[str] | None


class CommandLedger:
    """Which command ids a browser has run, and their answers, to run each at most once.

    SQS delivers at least once and a consumer's gateway may redeliver after a
    reconnect, so a command id is run once per relay. Contract: give every
    command delivery to :meth:`receive`; ``None`` means run it, and its outcome
    goes to :meth:`finish`, which returns the result frames to send. A
    :class:`Duplicate` is not run again: send its ``frames`` if it has some
    (the consumer may have missed them). A malformed command goes to
    :meth:`refuse`, which answers it (once) with ``bad_request``.

    The last ``remember`` finished ids are kept (running ones are never forgotten).
    """

    def __init__(self, remember: int = 10_000, *, budget: int = DEFAULT_FRAME_BUDGET) -> None:
        self.remember = remember
        self.budget = budget
        self._seen: OrderedDict[str, list[str] | None] = OrderedDict()

    def __contains__(self, id: str) -> bool:
        return id in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def receive(self, id: str) -> Duplicate | None:
        if id in self._seen:
            return Duplicate(self._seen[id])
        self._seen[id] = None
        self._forget()
        return None

    def finish(
        self, id: str, *, value: Any = None, error: BaseException | None = None
    ) -> list[str]:
        """The result frames of command ``id``: ``value``, or ``error`` as ``ok: false``.

        The error's ``code`` attribute (else its class name) becomes the result's code.
        """
        if error is None:
            frames = result_frames(id, ok=True, value=value, budget=self.budget)
        else:
            code = getattr(error, "code", None)
            frames = result_frames(
                id,
                ok=False,
                error=str(error) or type(error).__name__,
                code=code if isinstance(code, str) else type(error).__name__,
                budget=self.budget,
            )
        self._seen[id] = frames
        return frames

    def refuse(self, m: Malformed) -> tuple[str, list[str]] | None:
        """The id and ``bad_request`` answer of a malformed command, answered now rather
        than at its consumer's timeout; ``None`` if ``m`` is no command or its id was seen."""
        id = m.id
        if m.action != "command" or id is None or id in self._seen:
            return None
        frames = result_frames(
            id,
            ok=False,
            error=f"malformed command: {m.message}",
            code="bad_request",
            budget=self.budget,
        )
        self._seen[id] = frames
        self._forget()
        return id, frames

    def _forget(self) -> None:
        while len(self._seen) > self.remember:
            oldest = next(iter(self._seen))
            if self._seen[oldest] is None:
                break
            del self._seen[oldest]


# --------------------------------------------------------------------------
# Snapshot parts the gateway refused.
# --------------------------------------------------------------------------


class PartResender:
    """Remembers the last snapshot parts written, so a part refused as ``rate_limited`` goes again.

    Contract: call :meth:`written` for each part written (its message id, see
    :func:`part_id`), and give every ``error`` to :meth:`refused`: for a
    ``rate_limited`` one naming a part, it returns that part's id and frame to
    send again; ``None`` for any other error, an unknown id, or a part already
    resent ``max_tries`` times. At most ``keep`` parts are remembered.
    """

    def __init__(self, *, keep: int = 256, max_tries: int = 3) -> None:
        self.keep = keep
        self.max_tries = max_tries
        self._parts: OrderedDict[str, tuple[str, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._parts)

    def written(self, id: str, frame: str) -> None:
        tries = self._parts.pop(id, (frame, 0))[1]
        self._parts[id] = (frame, tries)
        while len(self._parts) > self.keep:
            self._parts.popitem(last=False)

    def refused(self, error: wire.ErrorMessage) -> tuple[str, str] | None:
        id = error.id
        if error.code != "rate_limited" or id is None:
            return None
        sent = self._parts.get(id)
        if sent is None or sent[1] >= self.max_tries:
            return None
        self._parts[id] = (sent[0], sent[1] + 1)
        return id, sent[0]


# --------------------------------------------------------------------------
# Which pending request or command a frame answers.
# --------------------------------------------------------------------------

RequestKind = Literal["list", "subscribe", "unsubscribe"]


@dataclass(eq=False)
class _Request(Generic[T]):
    kind: RequestKind
    frame: str
    waiter: T
    sent_in: int = 0  # the connection it was last written on (0: not yet)


@dataclass(frozen=True, slots=True)
class Answer(Generic[T]):
    """What a frame answers: a ``command`` or a ``request`` (with its waiter), or the ``restore``."""

    kind: Literal["command", "request", "restore"]
    id: str
    waiter: T | None = None


class Replies(Generic[T]):
    """The commands and requests waiting for an answer, and which one a frame answers.

    ``T`` is whatever the caller waits on (a future). Contract: :meth:`command`
    / :meth:`request` when one is issued, :meth:`written` when a request's frame
    was written on connection ``n``, :meth:`discard` when its caller stops
    waiting; :meth:`match` tells what a delivery answers. Requests written on a
    lost connection never got their reply: :meth:`unanswered` gives their
    frames to send again on the new one.
    """

    def __init__(self) -> None:
        self.commands: dict[str, T] = {}
        self._requests: OrderedDict[str, _Request[T]] = OrderedDict()
        self._ids = itertools.count(1)

    def command(self, id: str, waiter: T) -> None:
        self.commands[id] = waiter

    def next_request_id(self) -> str:
        return f"r{next(self._ids)}"

    def request(self, id: str, kind: RequestKind, frame: str, waiter: T) -> None:
        self._requests[id] = _Request(kind, frame, waiter)

    def waiters(self) -> list[T]:
        """Every waiter, commands first (to fail them all when the relay ends)."""
        return [*self.commands.values(), *(r.waiter for r in self._requests.values())]

    def discard(self, id: str) -> None:
        self.commands.pop(id, None)
        self._requests.pop(id, None)

    def written(self, id: str, connection: int) -> None:
        request = self._requests.get(id)
        if request is not None:
            request.sent_in = connection

    def unanswered(self, connection: int) -> list[str]:
        """Frames of requests written before connection ``connection``; now written on it."""
        frames = []
        for request in self._requests.values():
            if request.sent_in and request.sent_in < connection:
                frames.append(request.frame)
                request.sent_in = connection
        return frames

    def match(self, message: wire.Message | Malformed) -> Answer[T] | None:
        """What ``message`` answers, if anything it is waited for.

        A result answers its command; an error answers the command or request
        it names, or the restore. ``browsers`` answers a ``list`` and
        ``subscribed`` a ``subscribe``/``unsubscribe`` (or the restore); from a
        gateway that does not echo ids, the oldest request of that kind. A
        malformed delivery answers the command or request it names.
        """
        if isinstance(message, wire.Browsers):
            return self._reply(message.id, ("list",))
        if isinstance(message, wire.Subscribed):
            if message.id == RESTORE_ID:
                return Answer("restore", RESTORE_ID)
            return self._reply(message.id, ("subscribe", "unsubscribe"))
        if isinstance(message, wire.ResultDelivery):
            waiter = self.commands.get(message.id)
            return None if waiter is None else Answer("command", message.id, waiter)
        if isinstance(message, (wire.ErrorMessage, Malformed)) and message.id is not None:
            answer = self._by_id(message.id)
            if (
                answer is None
                and message.id == RESTORE_ID
                and isinstance(message, wire.ErrorMessage)
            ):
                return Answer("restore", RESTORE_ID)
            return answer
        return None

    def _by_id(self, id: str) -> Answer[T] | None:
        waiter = self.commands.get(id)
        if waiter is not None:
            return Answer("command", id, waiter)
        request = self._requests.get(id)
        if request is not None:
            return Answer("request", id, request.waiter)
        return None

    def _reply(self, id: str | None, kinds: tuple[RequestKind, ...]) -> Answer[T] | None:
        if id is None:
            # A gateway that does not echo ids: the oldest request of that kind.
            id = next((k for k, r in self._requests.items() if r.kind in kinds), None)
        request = self._requests.get(id) if id is not None else None
        if id is None or request is None:
            return None
        return Answer("request", id, request.waiter)


def result_error(d: wire.ResultDelivery) -> CommandFailedError | None:
    """The error a whole result stands for (``ok: false``), ``None`` if it succeeded."""
    if d.ok:
        return None
    return CommandFailedError(
        d.error or "the command failed", code=d.code or "command_failed", id=d.id, source=d.source
    )


def check_command_timeout(timeout: float) -> None:
    """Raises :class:`ValueError` unless a command's ``timeout`` is 1 to 900 s (the gateway's bound)."""
    if not wire.MIN_COMMAND_TIMEOUT <= timeout <= wire.MAX_COMMAND_TIMEOUT:
        raise ValueError(
            f"timeout must be between {wire.MIN_COMMAND_TIMEOUT} and "
            f"{wire.MAX_COMMAND_TIMEOUT} seconds"
        )


def request_frame(
    kind: RequestKind,
    id: str,
    browsers: list[str] | None = None,
    *,
    cursor: str | None = None,
    budget: int = DEFAULT_FRAME_BUDGET,
) -> str:
    """The frame of a ``list``, ``subscribe`` or ``unsubscribe`` request ``id``."""
    message: wire.Message
    if kind == "list":
        message = wire.List(id=id, cursor=cursor)
    elif kind == "subscribe":
        message = wire.Subscribe(browsers=browsers or [], id=id)
    else:
        message = wire.Unsubscribe(browsers=browsers or [], id=id)
    return encode_frame(message, budget=budget)


def handshake_error(status: int) -> TabRelayError:
    """The error of a refused WebSocket handshake: a refused token (401/403) is never retried."""
    if status in (401, 403):
        return AuthError(f"the gateway refused the token (HTTP {status})", status=status)
    return ConnectError(f"handshake refused with HTTP {status}")


class Listing:
    """Joins the pages of the gateway's answers to ``list``.

    Contract: send ``list`` with :attr:`cursor`, give each answer to :meth:`add`,
    and ask again while it returns ``True``; :attr:`browsers` is the result.
    """

    def __init__(self) -> None:
        self.browsers: list[wire.BrowserInfo] = []
        self.cursor: str | None = None
        self._seen: set[str] = set()

    def add(self, page: list[wire.BrowserInfo], next: str | None) -> bool:
        self.browsers.extend(page)
        # A cursor seen before would loop forever: the listing is complete.
        if next is None or next in self._seen:
            return False
        self._seen.add(next)
        self.cursor = next
        return True


class ControlFrames:
    """The frames that go before any queued item, in order: the frames that
    restore a new connection, then the latest cumulative ``ack``, then a ``ping``,
    then a ``keepalive``.

    Contract: :meth:`start` on each new connection (what was pending for the
    old one is dropped), :meth:`ack` / :meth:`ping` / :meth:`keepalive` when one
    is due, and the writer takes :meth:`next` until it returns ``None``.
    """

    def __init__(self) -> None:
        self._restore: deque[str] = deque()
        self._ack: int | None = None
        self._ping = False
        self._keepalive = False

    def start(self, restore: list[str]) -> None:
        self._restore = deque(restore)
        self._ack = None
        self._ping = False
        self._keepalive = False

    def ack(self, seq: int) -> None:
        self._ack = seq

    def ping(self) -> None:
        self._ping = True

    def keepalive(self) -> None:
        self._keepalive = True

    def next(self) -> tuple[Literal["restore", "ack", "ping", "keepalive"], str] | None:
        if self._restore or self._ack is not None or self._ping:
            self._keepalive = False  # any frame keeps the connection alive
        if self._restore:
            return "restore", self._restore.popleft()
        if self._ack is not None:
            seq, self._ack = self._ack, None
            return "ack", wire.encode(wire.Ack(seq=seq))
        if self._ping:
            self._ping = False
            return "ping", wire.encode(wire.Ping())
        if self._keepalive:
            self._keepalive = False
            return "keepalive", wire.encode(wire.Keepalive())
        return None
