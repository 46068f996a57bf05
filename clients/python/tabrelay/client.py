"""The asyncio layer: one :class:`Relay` object per logical connection.

It follows the seed's design. Each WebSocket connection (a *session*) runs a
reader task, a writer task and a keep-alive task. The writer drains the bounded
outgoing queue (:class:`~tabrelay.core.OutboundBuffer`); the reader owns the
session: when the connection ends, it cancels the writer and the keep-alive.
A lifecycle task then reconnects with exponential backoff and full jitter,
restores the subscriptions and resends what was in flight. Each session also
reconnects on purpose, at a random moment 10-20 minutes before API Gateway's
2-hour cut: it opens the next connection first, then closes its own. Every
protocol rule lives in :mod:`tabrelay.core`; this module only moves frames and
wakes waiters.

This module must not implement protocol rules of its own (put them in
``core``) and must not import anything outside the package but ``websockets``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from tabrelay import wire
from tabrelay.core import (
    BROWSER_KEEPALIVE,
    CONSUMER_KEEPALIVE,
    DEFAULT_ACK_DELAY,
    DEFAULT_ACK_EVERY,
    DEFAULT_EARLY_RECONNECT,
    DEFAULT_FRAME_BUDGET,
    DEFAULT_MAX_PENDING_RESULTS,
    DEFAULT_MAX_PENDING_SNAPSHOT_BYTES,
    DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_MAX_SNAPSHOT_BYTES,
    OVERFLOW_POLICIES,
    AckTracker,
    CommandLedger,
    ControlFrames,
    InboundSnapshots,
    KeepAlive,
    KeepAlivePolicy,
    Listing,
    Malformed,
    OutboundBuffer,
    Outgoing,
    Overflow,
    PartResender,
    Reconnects,
    Replies,
    RequestKind,
    ResultAssembler,
    SnapshotAssembler,
    Subscriptions,
    TokenBucket,
    batches,
    browser_ids,
    check_command_timeout,
    connect_url,
    encode_frame,
    handshake_error,
    parse_delivery,
    part_id,
    request_frame,
    result_error,
    snapshot_frames,
    token_role,
)
from tabrelay.errors import (
    AuthError,
    CommandTimeoutError,
    ConnectError,
    ConnectionClosedError,
    MalformedDeliveryError,
    MalformedResultError,
    TabRelayError,
    error_for_code,
)
from tabrelay.models import BrowserInfo, CommandRequest, Presence, Snapshot

__all__ = ["CommandHandler", "Relay", "RelayOptions", "RelayStats", "connect"]

logger = logging.getLogger("tabrelay")

#: A browser-side command handler: gets the command, returns a JSON-serializable
#: value (or an awaitable of one); raising makes the result ``ok: false``.
CommandHandler = Callable[[CommandRequest], Any]
TokenSource = str | Callable[[], str] | None

_Token = tuple[int, int] | None


@dataclass
class RelayStats:
    """Counters a program (or the CLI's rate display) may read at any time."""

    sessions: int = 0
    snapshots_sent: int = 0
    frames_sent: int = 0
    snapshots_received: int = 0
    missed: int = 0
    outgoing_dropped: int = 0
    incoming_dropped: int = 0
    stale_dropped: int = 0
    parts_resent: int = 0
    acks_sent: int = 0
    pings_sent: int = 0
    keepalives_sent: int = 0
    commands_run: int = 0
    duplicate_commands: int = 0
    planned_reconnects: int = 0  # connections replaced on purpose before the 2-hour cut
    malformed: int = 0  # deliveries the client could not use (each answered or counted)


@dataclass(frozen=True, slots=True)
class RelayOptions:
    """How a :class:`Relay` behaves; every field is described there.

    Pass one as ``options=`` (shared by several relays), or the fields as
    keyword arguments of :func:`connect` / :class:`Relay`, which override it.
    """

    role: Literal["browser", "consumer"] | None = None
    acks: bool = True
    queue_size: int = 100
    overflow: Overflow = "block"
    keepalive_interval: float | None = None
    ping_interval: float | None = None
    ping_timeout: float | None = None
    reconnect: bool = True
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    early_reconnect: tuple[float, float] | None = DEFAULT_EARLY_RECONNECT
    open_timeout: float = 10.0
    request_timeout: float = 10.0
    close_timeout: float = 5.0
    ack_every: int = DEFAULT_ACK_EVERY
    ack_delay: float = DEFAULT_ACK_DELAY
    frame_budget: int = DEFAULT_FRAME_BUDGET
    max_rate: float | None = 20.0
    max_burst: int = 20
    command_grace: float = 5.0
    max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES
    max_pending_snapshot_bytes: int = DEFAULT_MAX_PENDING_SNAPSHOT_BYTES
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    max_pending_results: int = DEFAULT_MAX_PENDING_RESULTS
    presence_size: int = 1000
    remember_commands: int = 10_000
    proxy: str | Literal[True] | None = True

    def __post_init__(self) -> None:
        if self.overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {sorted(OVERFLOW_POLICIES)}")
        Reconnects(window=self.early_reconnect)  # raises ValueError on a bad window
        self.keepalive_policy("consumer")  # raises ValueError on a bad interval

    def keepalive_policy(self, role: str | None) -> KeepAlivePolicy:
        """The keep-alive of a connection with ``role`` (``self.role`` wins): the
        role's default (:data:`~tabrelay.core.CONSUMER_KEEPALIVE`,
        :data:`~tabrelay.core.BROWSER_KEEPALIVE`) with this object's overrides."""
        base = BROWSER_KEEPALIVE if (self.role or role) == "browser" else CONSUMER_KEEPALIVE

        def pick(value: float | None, default: float | None) -> float | None:
            if value is None:
                return default
            return None if math.isinf(value) else value

        return KeepAlivePolicy(
            keepalive_after=pick(self.keepalive_interval, base.keepalive_after),
            ping_after=pick(self.ping_interval, base.ping_after),
            ping_timeout=base.ping_timeout if self.ping_timeout is None else self.ping_timeout,
        )


def connect(
    url: str, *, token: TokenSource = None, options: RelayOptions | None = None, **overrides: Any
) -> Relay:
    """Open a relay to the gateway at ``url`` (``ws://`` or ``wss://``).

    Use it as ``async with tabrelay.connect(url, token=...) as relay:`` (or
    ``relay = await tabrelay.connect(...)`` and later ``await relay.close()``).
    Entering opens the first connection and raises :class:`AuthError` when the
    gateway refuses the token (HTTP 401/403; never retried) or
    :class:`ConnectError` when it cannot be reached. After that, dropped
    connections are reopened with backoff; see :class:`Relay` for the options
    (:class:`RelayOptions` fields, as ``options=`` or keyword arguments).
    """
    return Relay(url, token=token, options=options, **overrides)


class Relay:
    """A reconnecting client of the tabrelay gateway, for consumers and browsers alike.

    Options (keyword-only):

    * ``token``: the JWT (or a callable returning a fresh one at each connect);
      may be omitted when ``url`` already carries ``?token=``.
    * ``role``: ``"browser"`` or ``"consumer"``; informative (the token decides).
    * ``acks``: negotiate cumulative acks (``&acks=1``). With acks, a snapshot
      counts as processed when the application takes it from
      :meth:`snapshots`, so a slow consumer makes the gateway conflate.
    * ``queue_size``, ``overflow``: the bound and policy of both queues: the
      outgoing queue the writer drains, and the buffer of whole snapshots
      waiting for the application. ``"block"`` waits for room (a producer in
      :meth:`send_snapshot`; the reader for incoming snapshots), ``"drop_oldest"``
      drops the oldest snapshot (never a command or result) and ``"raise"``
      raises :class:`QueueFullError` (from the send call; from
      :meth:`snapshots` for incoming ones). No snapshot disappears silently:
      incoming drops add to ``Snapshot.missed``, outgoing ones to
      :attr:`stats` ``.outgoing_dropped``.
    * ``keepalive_interval``, ``ping_interval``, ``ping_timeout``: a one-way
      ``keepalive`` when nothing went out for ``keepalive_interval`` (API Gateway
      closes a connection idle for 10 minutes; it answers a keepalive with
      nothing and calls no Lambda), a ``ping`` when nothing came in for
      ``ping_interval``, and the connection is treated as dead and reopened when
      nothing at all arrives ``ping_timeout`` after that ping. ``None`` takes the
      role's default (the role is ``role``, else the token's claim, else
      consumer): a consumer 300 s, 600 s and 30 s (a dead connection is noticed
      within 10.5 minutes of its last frame); a browser 20 s (a Manifest V3
      service worker needs a message every 30 s), 120 s and 20 s.
      ``math.inf`` never sends that one.
    * ``reconnect`` (True), ``backoff_initial`` (0.5 s), ``backoff_max`` (30 s):
      after a drop, attempt ``n`` waits a random delay in ``[0, d]`` with
      ``d = min(backoff_max, backoff_initial * 2**n)`` (full jitter); a
      connection that lived 10 s starts the schedule over.
    * ``early_reconnect`` (``(6000, 6600)`` s): API Gateway closes every
      connection after 2 hours, so each connection, once open, draws a moment
      uniformly in this window (100-110 minutes after it opened) and then
      reconnects on purpose, without backoff: it opens the next connection,
      closes the old one (code 1000), and restores the subscriptions and
      resends what was in flight as after a drop. A fleet that connected
      together is thus not cut together. ``None`` waits for the cut; so does
      ``reconnect=False``. If the gateway refuses the token then, the relay
      ends with :class:`AuthError` as on any reconnect.
    * ``open_timeout`` (10 s), ``request_timeout`` (10 s) for ``list`` and
      ``subscribe`` replies, ``close_timeout`` (5 s) to flush on close.
    * ``ack_every`` (50), ``ack_delay`` (60 s): one cumulative ack goes out once
      that many deliveries became acknowledgeable, or that long after the oldest
      one not yet acknowledged. 50 is half the gateway's window of 100
      (``wire.MAX_UNACKED``), so a consumer that keeps up never fills it; lower
      ``ack_every`` with a gateway configured with a smaller window.
    * ``frame_budget`` (30,000 bytes) per outgoing frame.
    * ``max_rate`` (20 frames/s), ``max_burst`` (20): outgoing pacing that keeps
      the connection under the gateway's rate limit (50 messages/s as deployed)
      even while a large snapshot goes out in parts; each ``rate_limited`` error
      halves both. ``max_rate=None`` disables pacing.
    * ``proxy``: as in ``websockets.connect`` (``True``: from the environment).
    * ``command_grace`` (5 s): how long past a command's timeout the client
      waits for the gateway's answer before raising :class:`CommandTimeoutError`.
    * Bounds on what a hostile or broken peer can make the client hold:
      ``max_snapshot_bytes`` (32 MiB) of HTML per snapshot once decompressed
      (inflated incrementally, so a gzip bomb stops there),
      ``max_pending_snapshot_bytes`` (64 MiB) of data in half-received
      snapshots, ``max_result_bytes`` (32 MiB) per command result being joined
      from parts, ``max_pending_results`` (16) results joined at once. Going
      over one, like any malformed delivery, fails that one command
      (:class:`MalformedResultError`) or counts that one snapshot in the next
      ``missed`` of its browser; the relay goes on.

    The options are the fields of :class:`RelayOptions`: pass them as keyword
    arguments, or as ``options=RelayOptions(...)`` (keyword arguments override
    it); :attr:`options` holds the result. An unknown name raises :class:`TypeError`.

    One task at a time should iterate :meth:`snapshots` (and :meth:`presence`).
    """

    def __init__(
        self,
        url: str,
        *,
        token: TokenSource = None,
        options: RelayOptions | None = None,
        **overrides: Any,
    ) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in ("ws", "wss"):
            raise ValueError(f"url must start with ws:// or wss://, got {url!r}")
        self.options = opts = replace(options or RelayOptions(), **overrides)
        self.url = url
        self._token = token
        self.stats = RelayStats()

        self._outbox = OutboundBuffer(opts.queue_size, opts.overflow)
        self._inbox: InboundSnapshots[_Token] = InboundSnapshots(opts.queue_size, opts.overflow)
        self._assembler = SnapshotAssembler(
            max_bytes=opts.max_pending_snapshot_bytes, max_html_bytes=opts.max_snapshot_bytes
        )
        self._results = ResultAssembler(
            max_pending=opts.max_pending_results, max_bytes=opts.max_result_bytes
        )
        self._ack = AckTracker(every=opts.ack_every, delay=opts.ack_delay)
        self._ack_timer: asyncio.TimerHandle | None = None
        self._token_role: str | None = None
        self._alive = KeepAlive(opts.keepalive_policy(None))
        self._alive_changed = asyncio.Event()
        self._bucket = TokenBucket(opts.max_rate, opts.max_burst) if opts.max_rate else None
        self._control = ControlFrames()
        self._ready_timer: asyncio.TimerHandle | None = None

        self._replies: Replies[asyncio.Future[Any]] = Replies()
        self._subs = Subscriptions()
        self._presence: deque[Presence] = deque(maxlen=opts.presence_size)

        self._handler: CommandHandler | None = None
        self._ledger = CommandLedger(opts.remember_commands, budget=opts.frame_budget)
        self._parts = PartResender()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Snapshot sequence numbers grow across reconnects and process restarts.
        self._seq = time.time_ns() // 1_000_000

        self._ws: ClientConnection | None = None
        self._reconnects = Reconnects(
            initial=opts.backoff_initial,
            maximum=opts.backoff_max,
            window=opts.early_reconnect if opts.reconnect else None,
        )
        self._next_ws: ClientConnection | None = None  # opened by a planned reconnect
        self._renew_error: AuthError | None = None
        self._renewing = False  # a planned reconnect's handshake is under way
        self._renew_task: asyncio.Task[None] | None = None
        self._session = 0
        self._last_rx = 0.0
        self._reader_paused = False
        self._wake = asyncio.Event()  # the writer has something to send
        self._room = asyncio.Event()  # the outgoing queue has room again
        self._empty = asyncio.Event()  # the outgoing queue is empty
        self._empty.set()
        self._inbox_changed = asyncio.Event()
        self._presence_changed = asyncio.Event()
        self._ready = asyncio.Event()  # connected, subscriptions restored
        self._ready_changed = asyncio.Event()
        self._closing = asyncio.Event()
        self._finished = asyncio.Event()
        self._fatal: BaseException | None = None
        self._lifecycle: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------
    # Opening and closing.
    # ------------------------------------------------------------------

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __await__(self) -> Generator[Any, None, Relay]:
        return self._started().__await__()

    async def _started(self) -> Relay:
        await self.start()
        return self

    async def start(self) -> None:
        """Open the first connection; raises :class:`AuthError` or :class:`ConnectError`."""
        if self._lifecycle is not None:
            raise RuntimeError("relay already started")
        ws = await self._open()
        self._ws = ws  # so that a close() before the first session starts closes it
        self._lifecycle = asyncio.create_task(self._run(ws), name="tabrelay-lifecycle")

    async def close(self) -> None:
        """Flush the outgoing queue (at most ``close_timeout``), then close for good.

        Afterwards :meth:`snapshots` ends, and pending and later calls raise
        :class:`ConnectionClosedError`. Closing twice is harmless.
        """
        if self._lifecycle is None:
            self._closing.set()
            self._finish()
            return
        if not self._closing.is_set() and self._ws is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.close_timeout):
                    await self.drain()
        self._closing.set()
        ws = self._ws
        if ws is not None:
            # Bounded: a peer that never answers the close handshake must not
            # keep the program from exiting (Ctrl-C included).
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.options.close_timeout):
                    await ws.close()
        try:
            async with asyncio.timeout(self.options.close_timeout):
                # never raises: it keeps a fatal error for the callers
                await asyncio.shield(self._lifecycle)
        except TimeoutError:
            self._lifecycle.cancel()
            await asyncio.gather(self._lifecycle, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until the outgoing queue is empty (everything queued was written)."""
        while len(self._outbox) and not self._finished.is_set():
            self._empty.clear()
            await self._first(self._empty, self._finished)

    @property
    def snapshot_seq(self) -> int:
        """The ``seq`` of the newest snapshot :meth:`send_snapshot` queued (each
        snapshot takes the next one)."""
        return self._seq

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._ready.is_set()

    async def wait_connected(self, session: int = 1) -> None:
        """Wait until connection number ``session`` (or a later one) is open and restored.

        Connections are counted from 1 in :attr:`stats` ``.sessions``; after a
        drop, ``wait_connected(relay.stats.sessions + 1)`` waits for the
        reconnection and the restored subscriptions. Raises if the relay ends.
        """
        while True:
            self._check_open()
            if self._ready.is_set() and self._session >= session:
                return
            self._ready_changed.clear()
            await self._first(self._ready_changed, self._finished)

    def _set_ready(self) -> None:
        self._ready.set()
        self._ready_changed.set()

    async def wait_closed(self) -> None:
        """Wait until the relay has ended; raises the fatal error if one ended it."""
        await self._finished.wait()
        if self._fatal is not None:
            raise self._fatal

    # ------------------------------------------------------------------
    # Consumer API.
    # ------------------------------------------------------------------

    async def subscribe(self, browsers: Iterable[str]) -> list[str]:
        """Receive snapshots from these browsers (client ids; ``"*"``: all of the tenant).

        Returns the subscription set now in force. Before the first
        subscribe/unsubscribe a consumer receives from every browser. The set is
        restored on every reconnect.
        """
        ids = browser_ids(browsers)
        self._subs.subscribe(ids)
        reply: list[str] = []
        for chunk in batches(ids):
            reply = await self._request("subscribe", chunk)
        return reply

    async def unsubscribe(self, browsers: Iterable[str]) -> list[str]:
        """Stop receiving snapshots from these browsers; returns the set in force."""
        ids = browser_ids(browsers)
        self._subs.unsubscribe(ids)
        reply: list[str] = []
        for chunk in batches(ids):
            reply = await self._request("unsubscribe", chunk)
        return reply

    async def browsers(self) -> list[BrowserInfo]:
        """The tenant's online browsers (every page of the gateway's replies)."""
        listing = Listing()
        while True:
            page: list[BrowserInfo]
            page, next_cursor = await self._request("list", None, cursor=listing.cursor)
            if not listing.add(page, next_cursor):
                return listing.browsers

    async def command(
        self,
        target: str,
        name: str,
        /,
        *,
        timeout: float = wire.DEFAULT_COMMAND_TIMEOUT,
        args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run command ``name`` on browser ``target`` and return its result value.

        Arguments are ``args`` merged with the keyword arguments. ``timeout``
        (1 to 900 s) is how long the browser has to answer. Raises the typed
        gateway error (:class:`BusyError`, :class:`TargetOfflineError`,
        :class:`CommandTimeoutError`, :class:`ForbiddenError`,
        :class:`RateLimitedError`, ...), :class:`CommandFailedError` when the
        browser answered ``ok: false``, :class:`QueueFullError` with
        ``overflow="raise"``. A command whose connection drops after it was
        written is not written again (it may have run); it then ends with the
        gateway's answer if it arrives, else :class:`CommandTimeoutError`.
        """
        check_command_timeout(timeout)
        self._check_open()
        id = uuid.uuid4().hex
        message = wire.Command(
            id=id, target=target, name=name, args={**(args or {}), **kwargs}, timeout=timeout
        )
        item = Outgoing("command", [self._encode(message)], key=id)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies.command(id, future)
        try:
            async with asyncio.timeout(timeout + self.options.command_grace):
                await self._enqueue(item)
                return await future
        except TimeoutError:
            raise CommandTimeoutError(
                f"no answer to {name!r} from {target} within {timeout:g} s", id=id
            ) from None
        finally:
            self._replies.discard(id)
            self._results.discard(id)
            if self._outbox.remove(item):
                self._room.set()

    async def snapshots(self) -> AsyncIterator[Snapshot]:
        """Whole snapshots as they arrive, oldest first; ends when the relay closes.

        Parts are joined and decompressed; ``missed`` tells how many snapshots
        of that browser were dropped before this one. Taking a snapshot is what
        acknowledges it. Raises :class:`QueueFullError` (with
        ``overflow="raise"``) when the buffer overflowed, and the fatal error
        (e.g. :class:`AuthError` on a reconnect) if one ended the relay.
        """
        while True:
            taken = self._inbox.take()
            if taken is not None:
                snap, token = taken
                self._ack.release(token, self._now())
                self._ack_update()
                self._inbox_changed.set()  # a reader blocked on a full buffer may go on
                yield snap
                continue
            if self._finished.is_set():
                if self._fatal is not None:
                    raise self._fatal
                return
            self._inbox_changed.clear()
            await self._first(self._inbox_changed, self._finished)

    def unreported_missed(self, source: str) -> int:
        """Snapshots of browser ``source`` the client dropped that no ``missed`` has reported yet.

        They are added to the next snapshot from ``source``; this says how many
        there are now (e.g. late, reordered deliveries that arrived after the
        newest snapshot). Drops by the gateway are not known until it reports them.
        """
        return self._inbox.unreported(source) + self._assembler.unreported(source)

    async def presence(self) -> AsyncIterator[Presence]:
        """Browser online/offline events as they arrive; ends when the relay closes.

        At most ``presence_size`` events are buffered (the oldest are dropped).
        """
        while True:
            if self._presence:
                yield self._presence.popleft()
                continue
            if self._finished.is_set():
                return
            self._presence_changed.clear()
            await self._first(self._presence_changed, self._finished)

    # ------------------------------------------------------------------
    # Browser API.
    # ------------------------------------------------------------------

    async def send_snapshot(
        self, html: str, *, url: str = "", title: str = "", compress: bool | None = None
    ) -> str:
        """Queue one page snapshot and return its snapshot id.

        Compression and parts are automatic (see
        :func:`tabrelay.core.snapshot_frames`). Returns once the snapshot is in
        the outgoing queue (subject to ``overflow``), not once it is written;
        :meth:`drain` waits for that.
        """
        self._check_open()
        self._seq += 1
        sid = uuid.uuid4().hex[:16]
        seq = self._seq

        def build() -> list[str]:
            return snapshot_frames(
                html,
                sid=sid,
                seq=seq,
                url=url,
                title=title,
                budget=self.options.frame_budget,
                compress=compress,
            )

        # Compressing megabytes takes a while: keep the event loop responsive.
        frames = await asyncio.to_thread(build) if len(html) > 256 * 1024 else build()
        ids = [part_id(sid, i) for i in range(len(frames))]
        await self._enqueue(Outgoing("snapshot", frames, key=sid, ids=ids))
        self.stats.snapshots_sent += 1
        return sid

    def on_command(self, handler: CommandHandler) -> CommandHandler:
        """Register the handler that answers commands (usable as a decorator).

        ``handler(cmd)`` gets a :class:`CommandRequest` and returns a
        JSON-serializable value or an awaitable of one; the relay sends it as an
        ``ok`` result (in parts when large). If it raises, the result is
        ``ok: false`` with ``str(exc)`` and the exception's ``code`` attribute
        (or its class name). Handlers run concurrently, one task per command.
        A command id is run at most once per relay, also across reconnects:
        a redelivered id gets the remembered result again (the last
        ``remember_commands`` ids are kept).
        """
        self._handler = handler
        return handler

    # ------------------------------------------------------------------
    # Internals: connection and lifecycle.
    # ------------------------------------------------------------------

    def _connect_url(self) -> str:
        token = self._token() if callable(self._token) else self._token
        self._token_role = token_role(token) or token_role(
            dict(parse_qsl(urlsplit(self.url).query)).get("token")
        )
        return connect_url(self.url, token, acks=self.options.acks)

    async def _open(self) -> ClientConnection:
        try:
            return await ws_connect(
                self._connect_url(),
                open_timeout=self.options.open_timeout,
                ping_interval=None,  # API Gateway: JSON keepalive and ping (tabrelay.core.KeepAlive)
                compression=None,  # API Gateway does not negotiate permessage-deflate
                max_size=4 * wire.MESSAGE_LIMIT,
                close_timeout=self.options.close_timeout,
                proxy=self.options.proxy,
            )
        except InvalidStatus as exc:
            raise handshake_error(exc.response.status_code) from None
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise ConnectError(f"cannot connect to {self.url}: {exc}") from None

    async def _run(self, ws: ClientConnection) -> None:
        try:
            while True:
                await self._run_session(ws)
                if self._renew_task is not None:
                    # Cancelling the lifecycle cancels it too.
                    await asyncio.gather(self._renew_task, return_exceptions=True)
                planned, self._next_ws = self._next_ws, None
                if self._closing.is_set():
                    if planned is not None:
                        await planned.close()
                    return
                if self._renew_error is not None:
                    raise self._renew_error
                if planned is not None:
                    ws = planned  # a planned reconnect: no backoff
                    continue
                if not self.options.reconnect:
                    raise ConnectionClosedError("connection lost (reconnect=False)")
                ws = await self._reopen()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if not self._closing.is_set() or isinstance(exc, AuthError):
                self._fatal = exc
        finally:
            self._finish()

    async def _reopen(self) -> ClientConnection:
        delay = self._reconnects.dropped(self._now())
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._closing.wait()
            if self._closing.is_set():
                raise ConnectionClosedError("relay closed")
            try:
                ws = await self._open()
            except ConnectError as exc:
                logger.info("tabrelay: reconnect failed (%s); retrying", exc)
                delay = self._reconnects.failed()
                continue
            self._ws = ws
            if self._closing.is_set():  # close() ran while the handshake was under way
                await ws.close()
                raise ConnectionClosedError("relay closed")
            return ws

    async def _run_session(self, ws: ClientConnection) -> None:
        """One connection: the reader runs here and ends the session; it cancels the rest."""
        self._session += 1
        self.stats.sessions += 1
        self._ws = ws
        self._last_rx = self._now()
        self._reconnects.opened(self._last_rx)
        self._alive = KeepAlive(self.options.keepalive_policy(self._token_role))
        self._alive.opened(self._last_rx)
        self._ack.reset()
        # Rebuild the subscriptions; requests written on the lost connection
        # never got their reply: ask again.
        self._control.start(self._subs.restore() + self._replies.unanswered(self._session))
        self._reader_paused = False
        if not self._subs.restoring:
            self._set_ready()
        else:
            # A gateway that never confirms must not leave wait_connected() hanging.
            self._ready_timer = asyncio.get_running_loop().call_later(
                self.options.request_timeout, self._set_ready
            )
        self._wake.set()
        writer = asyncio.create_task(self._writer(ws), name="tabrelay-writer")
        keepalive = asyncio.create_task(self._keepalive(ws), name="tabrelay-keepalive")
        self._renew_task = renew = asyncio.create_task(self._renew(ws), name="tabrelay-renew")
        try:
            await self._reader(ws)
        finally:
            # A planned reconnect's handshake under way is the next connection:
            # the lifecycle waits for it (bounded by open_timeout) rather than abort it.
            if not self._renewing:
                renew.cancel()
            self._ready.clear()
            if self._ready_timer is not None:
                self._ready_timer.cancel()
                self._ready_timer = None
            self._ws = None
            writer.cancel()
            keepalive.cancel()
            await asyncio.gather(writer, keepalive, return_exceptions=True)
            if self._ack_timer is not None:
                self._ack_timer.cancel()
                self._ack_timer = None
            await ws.close()

    async def _renew(self, ws: ClientConnection) -> None:
        """Reconnect on purpose at the moment the core drew, before the gateway's 2-hour
        cut: open the next connection first (make before break: a browser's new
        connection supersedes this one at the gateway, a consumer may hold both),
        then close this one; the lifecycle starts a session on the next one."""
        while True:
            at = self._reconnects.renew_at
            if at is None:
                return
            await asyncio.sleep(max(0.0, at - self._now()))  # a deadline, not synchronization
            if self._closing.is_set():
                return
            if not self._reconnects.renew_due(self._now()):
                continue  # woken a clock tick early
            self._renewing = True
            try:
                self._next_ws = await self._open()
                break
            except AuthError as exc:
                # As on any reconnect, a refused token ends the relay.
                self._renew_error = exc
                break
            except ConnectError as exc:
                logger.info("tabrelay: planned reconnect failed (%s)", exc)
                self._reconnects.renew_failed(self._now())
            finally:
                self._renewing = False
        reason = "the gateway refused the token on a planned reconnect"
        if self._next_ws is not None:
            self.stats.planned_reconnects += 1
            reason = "planned reconnect before the 2-hour limit"
            logger.info("tabrelay: reconnecting before the gateway's 2-hour limit")
        await ws.close(1000, reason)

    async def _reader(self, ws: ClientConnection) -> None:
        try:
            async for text in ws:
                self._last_rx = self._now()
                if self._alive.received(self._last_rx):
                    self._alive_changed.set()  # the next ping is due sooner than "dead"
                await self._dispatch(text)
        except ConnectionClosed:
            pass
        code = ws.close_code
        if not self._closing.is_set():
            logger.info("tabrelay: connection closed (code %s, %s)", code, ws.close_reason)

    async def _writer(self, ws: ClientConnection) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                frame = self._take_control()
                if frame is not None:
                    await self._send(ws, frame)
                    continue
                item = self._outbox.peek()
                if item is None:
                    self._empty.set()
                    break
                for i, frame in enumerate(item.frames):
                    await self._send(ws, frame)
                    if item.ids:
                        self._parts.written(item.ids[i], frame)
                if item.kind == "request":
                    self._replies.written(item.key, self._session)
                self._outbox.remove(item)
                self._room.set()

    async def _send(self, ws: ClientConnection, frame: str) -> None:
        if self._bucket is not None:
            wait = self._bucket.delay(self._now())
            if wait > 0:
                await asyncio.sleep(wait)  # pacing, not synchronization
            self._bucket.take(self._now())
        await ws.send(frame)
        self._alive.sent(self._now())
        self.stats.frames_sent += 1

    def _take_control(self) -> str | None:
        taken = self._control.next()
        if taken is None:
            return None
        kind, frame = taken
        if kind == "ack":
            self.stats.acks_sent += 1
        elif kind == "ping":
            self.stats.pings_sent += 1
        elif kind == "keepalive":
            self.stats.keepalives_sent += 1
        return frame

    async def _keepalive(self, ws: ClientConnection) -> None:
        """Send a ``keepalive`` or a ``ping`` when the core says one is due; abort the
        connection when a ping got no frame at all within ``ping_timeout``."""
        alive = self._alive
        while True:
            now = self._now()
            if self._reader_paused:
                alive.received(now)  # not reading: silence proves nothing
            action = alive.due(now)
            if action == "dead":
                logger.warning("tabrelay: no answer to ping; reconnecting")
                ws.transport.abort()
                return
            if action == "ping":
                alive.pinged(now)
                self._control.ping()
                self._wake.set()
            elif action == "keepalive":
                alive.sent(now)
                self._control.keepalive()
                self._wake.set()
            deadline = alive.deadline()
            if deadline is None:
                return
            # A deadline, not synchronization: frames move it later, except an
            # answered ping, which wakes this loop.
            self._alive_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - self._now())):
                    await self._alive_changed.wait()

    def _finish(self) -> None:
        if self._finished.is_set():
            return
        self._finished.set()
        error = self._closed_error()
        for future in self._replies.waiters():
            if not future.done():
                future.set_exception(error)
        self._room.set()

    def _closed_error(self) -> BaseException:
        if self._fatal is not None:
            return self._fatal
        return ConnectionClosedError("the relay is closed")

    def _check_open(self) -> None:
        if self._finished.is_set() or self._closing.is_set():
            raise self._closed_error()

    # ------------------------------------------------------------------
    # Internals: dispatching what the gateway sends.
    # ------------------------------------------------------------------

    async def _dispatch(self, text: str | bytes) -> None:
        message = parse_delivery(text)
        if isinstance(message, Malformed):
            self._on_malformed(message)
            return
        try:
            await self._handle(message)
        except (asyncio.CancelledError, ConnectionClosed):
            raise
        except Exception:
            # A bug here must cost one delivery, never the relay.
            self.stats.malformed += 1
            logger.exception("tabrelay: could not handle a %s delivery", message.action)

    def _on_malformed(self, m: Malformed) -> None:
        """Answer or count what a delivery the client cannot use was for; never raise."""
        self.stats.malformed += 1
        logger.warning("tabrelay: ignoring a malformed %s delivery: %s", m.action, m.message)
        if m.dseq is not None:
            # Processed (as far as it goes): it must not hold the acks back.
            self._ack.received(m.dseq, self._now())
            self._ack_update()
        if m.snapshot is not None:
            self._assembler.abandon(*m.snapshot)
            return
        answer = self._replies.match(m)
        if answer is not None and answer.waiter is not None:
            error_type = (
                MalformedResultError if answer.kind == "command" else MalformedDeliveryError
            )
            self._results.discard(answer.id)
            if not answer.waiter.done():
                answer.waiter.set_exception(
                    error_type(f"malformed {m.action}: {m.message}", id=answer.id)
                )
            return
        refusal = self._ledger.refuse(m)
        if refusal is not None:
            id, frames = refusal
            self._spawn(self._enqueue(Outgoing("result", frames, key=id)))

    async def _handle(self, message: wire.Message) -> None:
        if isinstance(message, wire.SnapshotDelivery):
            await self._on_snapshot(message)
        elif isinstance(message, wire.CommandDelivery):
            self._on_command(message)
        elif isinstance(message, wire.ErrorMessage):
            self._on_error(message)
        elif isinstance(message, wire.Presence):
            self._presence.append(message)
            self._presence_changed.set()
        else:
            self._on_reply(message)
        # Pong: receiving it is all that matters (``_last_rx``).

    def _on_reply(self, message: wire.Message) -> None:
        answer = self._replies.match(message)
        if answer is None:
            return
        if answer.kind == "restore":
            if self._subs.confirmed():
                self._set_ready()
            return
        future = answer.waiter
        assert future is not None  # a command or request always has its waiter
        if isinstance(message, wire.ResultDelivery):
            self._on_result(message, future)
        elif future.done():
            return
        elif isinstance(message, wire.Browsers):
            future.set_result((list(message.browsers), message.next))
        elif isinstance(message, wire.Subscribed):
            future.set_result(list(message.browsers))

    async def _on_snapshot(self, d: wire.SnapshotDelivery) -> None:
        try:
            snap = self._assembler.feed(d)
        except wire.ProtocolError as exc:
            self.stats.malformed += 1
            logger.warning("tabrelay: dropping snapshot %s from %s: %s", d.sid, d.source, exc)
            snap = None
        token = None
        if d.dseq is not None:
            token = self._ack.received(d.dseq, self._now(), hold=snap is not None)
        if snap is not None:
            self.stats.snapshots_received += 1
            self.stats.missed += snap.missed
            while not self._inbox.offer(snap, token, self._now()):
                # overflow="block": stop reading until the application makes room.
                self._reader_paused = True
                self._inbox_changed.clear()
                await self._first(self._inbox_changed, self._closing)
                if self._closing.is_set():
                    return
            self._reader_paused = False
            self.stats.incoming_dropped = self._inbox.dropped
            self.stats.stale_dropped = self._inbox.stale
            for released in self._inbox.released:
                self._ack.release(released, self._now())
            self._inbox.released.clear()
            self._inbox_changed.set()
        self._ack_update()

    def _on_result(self, d: wire.ResultDelivery, future: asyncio.Future[Any]) -> None:
        if future.done():
            return  # nobody waits for it: nothing to join or hold
        try:
            whole = self._results.feed(d)
        except wire.ProtocolError as exc:
            self.stats.malformed += 1
            whole = None
            future.set_exception(MalformedResultError(exc.message, id=d.id, source=d.source))
        for id in self._results.abandoned:
            abandoned = self._replies.commands.get(id)
            if abandoned is not None and not abandoned.done():
                abandoned.set_exception(
                    MalformedResultError(
                        f"result {id} abandoned: more than {self._results.max_pending} "
                        "results were being joined at once",
                        id=id,
                    )
                )
        self._results.abandoned.clear()
        if whole is None or future.done():
            return
        error = result_error(whole)
        if error is None:
            future.set_result(whole.value)
        else:
            future.set_exception(error)

    def _on_error(self, e: wire.ErrorMessage) -> None:
        error = error_for_code(e.code, e.message, id=e.id)
        if self._bucket is not None:
            self._bucket.refused(e.code)
        resend = self._parts.refused(e)
        if resend is not None:
            # A refused snapshot part: send it again (more slowly) rather than lose the page.
            part, frame = resend
            self.stats.parts_resent += 1
            self._spawn(self._enqueue(Outgoing("snapshot", [frame], ids=[part])))
            return
        answer = self._replies.match(e)
        if answer is None:
            logger.warning("tabrelay: gateway error: %s", error)
        elif answer.kind == "restore":
            logger.warning("tabrelay: restoring subscriptions failed: %s", error)
            self._subs.failed()
            self._set_ready()
        elif answer.waiter is not None and not answer.waiter.done():
            answer.waiter.set_exception(error)

    async def _request(
        self, kind: RequestKind, browsers: list[str] | None, *, cursor: str | None = None
    ) -> Any:
        self._check_open()
        id = self._replies.next_request_id()
        frame = request_frame(kind, id, browsers, cursor=cursor, budget=self.options.frame_budget)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies.request(id, kind, frame, future)
        item = Outgoing("request", [frame], key=id)
        try:
            async with asyncio.timeout(self.options.request_timeout):
                await self._enqueue(item)
                return await future
        except TimeoutError:
            raise CommandTimeoutError(
                f"no reply to {kind} within {self.options.request_timeout:g} s", id=id
            ) from None
        finally:
            self._replies.discard(id)
            if self._outbox.remove(item):
                self._room.set()

    # ------------------------------------------------------------------
    # Internals: running commands (browser side).
    # ------------------------------------------------------------------

    def _on_command(self, d: wire.CommandDelivery) -> None:
        duplicate = self._ledger.receive(d.id)
        if duplicate is None:
            self._spawn(self._run_command(d))
            return
        self.stats.duplicate_commands += 1
        if duplicate.frames is not None:  # finished: the consumer may have missed the result
            self._spawn(self._enqueue(Outgoing("result", duplicate.frames, key=d.id)))

    async def _run_command(self, d: wire.CommandDelivery) -> None:
        request = CommandRequest(
            id=d.id, source=d.source, name=d.name, args=dict(d.args), timeout=d.timeout
        )
        self.stats.commands_run += 1
        try:
            if self._handler is None:
                raise TabRelayError("this client has no command handler", code="unsupported")
            value = self._handler(request)
            if inspect.isawaitable(value):
                value = await value
            frames = self._ledger.finish(d.id, value=value)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            frames = self._ledger.finish(d.id, error=exc)
        await self._enqueue(Outgoing("result", frames, key=d.id))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except TabRelayError as exc:
                logger.warning("tabrelay: could not send a result: %s", exc)

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------
    # Internals: queues and acks.
    # ------------------------------------------------------------------

    async def _enqueue(self, item: Outgoing) -> None:
        while True:
            self._check_open()
            dropped = self._outbox.dropped
            if self._outbox.offer(item):
                self.stats.outgoing_dropped += self._outbox.dropped - dropped
                self._empty.clear()
                self._wake.set()
                return
            self._room.clear()
            await self._first(self._room, self._finished)

    def _ack_update(self) -> None:
        if self._ws is None:
            return
        now = self._now()
        seq = self._ack.due(now)
        if seq is not None:
            self._ack.sent(seq)
            self._control.ack(seq)
            self._wake.set()
            return
        deadline = self._ack.deadline()
        if deadline is None:
            return
        if self._ack_timer is not None:
            if self._ack_timer.when() <= deadline:
                return
            self._ack_timer.cancel()
        loop = asyncio.get_running_loop()
        self._ack_timer = loop.call_at(deadline, self._ack_fire)

    def _ack_fire(self) -> None:
        self._ack_timer = None
        self._ack_update()

    def _encode(self, message: wire.Message) -> str:
        return encode_frame(message, budget=self.options.frame_budget)

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    @staticmethod
    async def _first(*events: asyncio.Event) -> None:
        """Wait until any of ``events`` is set."""
        if any(e.is_set() for e in events):
            return
        waiters = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
