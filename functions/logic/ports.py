"""Ports: what the business rules need from the outside world, as Protocols.

The rules in :mod:`functions.logic` talk only to these interfaces; the boto3
adapters in :mod:`functions.dal` implement them, and tests may use fakes. No
boto3 types cross this boundary: records are plain dataclasses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

if TYPE_CHECKING:  # envelopes import Identity from here
    from functions.logic.envelopes import BusEnvelope, DeliveryEnvelope

__all__ = [
    "AckOutcome",
    "Bus",
    "CommandKey",
    "ConnectionGoneError",
    "ConnectionRecord",
    "Counters",
    "DeliveryRetryableError",
    "DeliveryThrottledError",
    "FanOut",
    "FlowControl",
    "Identity",
    "Once",
    "PendingCommand",
    "Ports",
    "Poster",
    "Recipient",
    "Registry",
    "Reservation",
    "combine_recipients",
]

#: SQS's longest per-message delay: the most :meth:`Bus.schedule` can wait.
MAX_DELAY_SECONDS = 900


class ConnectionGoneError(Exception):
    """The Management API answered 410: the connection is closed or never existed."""

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"connection {connection_id} is gone")
        self.connection_id = connection_id


class DeliveryRetryableError(Exception):
    """A post failed in a way worth retrying (throttled, 5xx, network)."""


class DeliveryThrottledError(DeliveryRetryableError):
    """The Management API answered 429: the account's post rate is used up, so
    retrying what can be replaced (a snapshot) only adds to the load."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sent a message: what the authorizer established at ``$connect``."""

    connection_id: str
    tenant: str
    role: Literal["browser", "consumer"]
    client_id: str


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    """A live connection as the registry stores it.

    ``subscriptions`` is ``None`` until the consumer first subscribes or
    unsubscribes (then it receives from every browser of its tenant).
    """

    identity: Identity
    connected_at: int
    acks: bool
    subscriptions: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Recipient:
    """A consumer connection that wants a browser's snapshots."""

    connection_id: str
    client_id: str
    acks: bool
    #: A snapshot of the browser was dropped for this consumer (a throttled post):
    #: its next delivery reads and reports the ``missed`` count.
    missed: bool = False


@dataclass(frozen=True, slots=True)
class FanOut:
    """One fan-out partition (``S#{tenant}#{browser}`` or ``S#{tenant}#*``): the
    consumers in it, and the consumers with a dropped mark there (a throttled
    snapshot of that browser they have not been told about)."""

    recipients: tuple[Recipient, ...] = ()
    dropped: frozenset[str] = frozenset()


def combine_recipients(*partitions: FanOut) -> list[Recipient]:
    """The recipients of a browser from its fan-out partitions (its own, then
    ``*``): each connection once, marked ``missed`` if any partition has its
    dropped mark."""
    seen: dict[str, Recipient] = {}
    dropped: set[str] = set()
    for partition in partitions:
        dropped |= partition.dropped
        for recipient in partition.recipients:
            seen[recipient.connection_id] = recipient
    return [
        Recipient(r.connection_id, r.client_id, r.acks, missed=True)
        if r.connection_id in dropped
        else r
        for r in seen.values()
    ]


@dataclass(frozen=True, slots=True)
class Reservation:
    """Delivery slots granted to a connection: ``granted`` of them, numbered
    ``first_dseq .. first_dseq + granted - 1``."""

    granted: int
    first_dseq: int


class CommandKey(NamedTuple):
    """Which command: its browser (tenant and client id) and the command's id."""

    tenant: str
    target_client: str
    command_id: str


@dataclass(frozen=True, slots=True)
class PendingCommand:
    """A command's item: the one record of its life, from the send to its answer.

    Open until ``ended_by`` is set; every field after ``target_connection`` is a
    step that a worker records before or after the AWS call it stands for, so a
    redelivered envelope can tell what was done (docs/architecture.md).
    """

    tenant: str
    target_client: str
    command_id: str
    issuer_connection: str
    issuer_client: str
    #: The browser's connection when the command was sent; "" when it was offline.
    target_connection: str
    #: Correlation id of the message that sent the command: equal for an SQS
    #: redelivery, different when a consumer sends the id again (a reuse).
    cid: str = ""
    #: The post to the browser was claimed: it is never posted twice.
    sent: bool = False
    #: The result's part count, fixed by the first part that arrived.
    parts: int | None = None
    #: Result parts claimed so far: part index -> correlation id of its message.
    claimed: Mapping[int, str] = field(default_factory=dict)
    #: Result parts relayed to the issuer (marked after the post).
    posted: frozenset[int] = frozenset()
    #: What ended it: ``"result"`` (every part arrived), ``"timeout"``,
    #: ``"gone"`` (the browser left) or ``"command"`` (refused when sent).
    ended_by: str | None = None
    #: How it ended: ``"result"`` or the error code of its answer.
    code: str | None = None
    #: The recorded error answer (encoded), posted until ``delivered``.
    answer: str | None = None
    #: The recorded error answer reached the issuer (or the retry queue); a
    #: result's parts are marked one by one in ``posted``.
    delivered: bool = False

    @property
    def ended(self) -> bool:
        return self.ended_by is not None

    @property
    def key(self) -> CommandKey:
        return CommandKey(self.tenant, self.target_client, self.command_id)


AckOutcome = Literal["ok", "stale", "ahead"]


class Registry(Protocol):
    """The connection registry and routing indexes (DynamoDB in AWS)."""

    def register(self, record: ConnectionRecord, ttl: int, window: int) -> str | None:
        """Store ``record`` with a delivery window of ``window`` messages; return
        the id of the connection it supersedes, if any."""

    def unregister(self, connection_id: str) -> tuple[ConnectionRecord | None, bool]:
        """Forget the connection; return its record and whether it still owned
        its client id (False when a newer connection had superseded it)."""

    def get(self, connection_id: str) -> ConnectionRecord | None:
        """The record of a live connection, or None."""

    def lookup_client(self, tenant: str, role: str, client_id: str) -> str | None:
        """The connection id currently serving ``client_id``, or None."""

    def list_clients(self, tenant: str, role: str) -> list[tuple[str, str, int]]:
        """``(client_id, connection_id, connected_at)`` of every client of a role."""

    def list_clients_page(
        self, tenant: str, role: str, *, after: str | None, limit: int
    ) -> tuple[list[tuple[str, int]], str | None]:
        """``(client_id, connected_at)`` of at most ``limit`` clients of a role, in
        client-id order, after client id
        ``after`` (None: from the first); and the client id to continue after, or
        None when this was the last page."""

    def set_subscriptions(
        self, record: ConnectionRecord, subscriptions: frozenset[str], ttl: int
    ) -> None:
        """Replace a consumer's subscription set (``"*"`` means every browser)."""

    def recipients(self, tenant: str, browser_client_id: str) -> list[Recipient]:
        """Consumers that receive ``browser_client_id``'s snapshots (deduplicated)."""

    def fan_out_partition(self, tenant: str, browser: str) -> FanOut:
        """One fan-out partition: ``browser``'s own subscribers, or with ``"*"`` the
        consumers that follow every browser of the tenant (one Query)."""

    def open_command(self, command: PendingCommand, ttl: int) -> PendingCommand | None:
        """Store ``command`` unless its browser has a live command with that id:
        None when stored, else the existing command (unchanged)."""

    def get_command(self, key: CommandKey) -> PendingCommand | None:
        """The command's item as it is now (strongly consistent), or None."""

    def claim_send(self, key: CommandKey) -> tuple[bool, PendingCommand | None]:
        """Claim the post of an open command to its browser, once.

        Returns ``(True, command after)`` for the first claim, else ``(False,
        command as it is)``: already claimed, or ended; None when unknown.
        """

    def claim_part(
        self, key: CommandKey, *, part: int, parts: int, cid: str, ends: bool
    ) -> tuple[bool, PendingCommand | None]:
        """Claim part ``part`` of the command's result for message ``cid``.

        Claimed only while the command is open, ``parts`` agrees with the first
        part's and the part is new; ``ends`` also ends the command with this part
        (``ended_by = "result"``). Returns ``(True, command after)`` or
        ``(False, command as it is)``; None when unknown.
        """

    def end_command(
        self, key: CommandKey, *, by: str, code: str, answer: str | None
    ) -> tuple[bool, PendingCommand | None]:
        """End an open command, recording what ended it and its answer.

        Returns ``(True, command after)``, or ``(False, command as it is)`` when it
        had already ended; None when unknown.
        """

    def mark_part_posted(self, key: CommandKey, part: int) -> None:
        """Note that a result part reached the issuer."""

    def mark_answered(self, key: CommandKey) -> None:
        """Note that the command's terminal answer reached the issuer."""

    def commands(self, tenant: str, target_client: str) -> list[PendingCommand]:
        """Every command item of a browser, open or ended (ended ones are kept
        for an hour, so a reused id is recognized)."""

    def count_inbound(self, connection_id: str, window: int, n: int, ttl: int) -> int:
        """Add ``n`` messages to the connection's counter for ``window``; return the total."""


class FlowControl(Protocol):
    """Per-connection bounds: delivery window (consumers), commands in flight (browsers)."""

    def reserve(self, connection_id: str, wanted: int) -> Reservation:
        """Take up to ``wanted`` slots of the delivery window (0 granted when full)."""

    def ack(self, connection_id: str, seq: int, bound: int) -> AckOutcome:
        """Cumulative ack up to ``seq``: ``"ok"``; ``"stale"`` when ``seq`` is not
        ahead of the last ack (nothing changes); ``"ahead"`` when ``seq`` is beyond
        the last delivery (refused)."""

    def add_inflight(self, connection_id: str, command_id: str, bound: int) -> bool:
        """Count ``command_id`` in flight to a browser unless ``bound`` others are
        (idempotent: counting it again changes nothing); ConnectionGoneError when
        the browser's connection is not registered."""

    def release_inflight(self, connection_id: str, command_id: str) -> None:
        """``command_id`` is no longer in flight to the browser (idempotent)."""

    def park(self, consumer_connection: str, browser_client: str, seq: int, ttl: int) -> bool:
        """Note that snapshot ``seq`` waits for the consumer; False when a newer
        one already waits (then ``seq`` is to be dropped)."""

    def is_stale(self, consumer_connection: str, browser_client: str, seq: int) -> bool:
        """True when a newer snapshot waits for, or was delivered to, the consumer."""

    def count_missed(self, consumer_connection: str, browser_client: str, ttl: int) -> None:
        """Count one snapshot of the browser dropped for the consumer."""

    def mark_delivered(self, consumer_connection: str, browser_client: str, seq: int) -> int:
        """Note that snapshot ``seq`` reached the consumer; return and reset the
        count of snapshots missed before it."""

    def release(self, connection_id: str, dseq: int, count: int = 1) -> None:
        """Give back the window slots ``dseq .. dseq + count - 1`` (the end of a
        reserved block), never posted: their numbers are reused when nothing was
        reserved after them, else they are a gap that a later ack covers."""

    def note_dropped(
        self, tenant: str, consumer_connection: str, browser_client: str, missed: int, ttl: int
    ) -> None:
        """Count ``missed`` snapshots of the browser dropped for the consumer, and mark
        its routing entry so that the next first delivery reads the count
        (:attr:`Recipient.missed`)."""

    def clear_dropped(self, tenant: str, consumer_connection: str, browser_client: str) -> None:
        """The dropped snapshots were reported: remove the mark."""


class Poster(Protocol):
    """Sends to connections (the Management API)."""

    def post(self, connection_id: str, data: str) -> None:
        """Send one text message; raises ConnectionGoneError or DeliveryRetryableError."""

    def disconnect(self, connection_id: str) -> None:
        """Close a connection (ignores one that is already gone)."""


class Bus(Protocol):
    """The queues: the bus (to the router), the command lane (to the commands
    function) and the delivery queue."""

    def publish(self, envelope: BusEnvelope) -> None:
        """Put an envelope on its lane's queue (``envelope.lane``): commands and
        results on the command lane, snapshots and presence on the bus."""

    def schedule(self, envelope: DeliveryEnvelope, delay_seconds: int = 0) -> None:
        """Put an envelope on the delivery queue, visible after ``delay_seconds``
        (at most :data:`MAX_DELAY_SECONDS`)."""


class Once(Protocol):
    """Runs an action at most once per key (idempotency)."""

    def __call__(self, key: str, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run ``action`` unless it already completed for ``key``; return its result."""


class Counters(Protocol):
    """Business metrics (CloudWatch via Powertools in AWS)."""

    def count(
        self, name: str, value: int = 1, *, code: str | None = None, kind: str | None = None
    ) -> None:
        """Add ``value`` to metric ``name`` (with dimension ``code`` or ``kind`` when given)."""

    def observe_ms(self, name: str, milliseconds: float) -> None:
        """Record one duration sample of metric ``name``."""


@dataclass(frozen=True, slots=True)
class Ports:
    """The adapters the rules work through, passed as one (the handlers' wiring
    builds it once per container; tests build it with their own adapters)."""

    registry: Registry
    flow: FlowControl
    bus: Bus
    poster: Poster
    counters: Counters
