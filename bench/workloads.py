"""The reference workloads of the scale model (issue 11), and the clients' shipped defaults.

* **W1 fleet**: 100,000 connections, 50,000 browsers and 50,000 consumers in
  1,000 tenants (50 + 50 each). Each browser sends one 100 KB page every 10 s
  to the one consumer that follows it; one command per browser per minute.
* **W2 big tenant**: one tenant with 10,000 browsers and 100 consumers that
  follow ``*``, at the same rates, next to W1.
* **W3 storm**: all W1 connections drop at once and reconnect.

Clients run at their shipped defaults, read from the clients themselves (never
typed in here): the Python client's ack cadence (``RelayOptions``, run through
its own sans-I/O :class:`~tabrelay.core.AckTracker`) and keep-alive (the
consumer's :data:`~tabrelay.core.CONSUMER_KEEPALIVE`), and the extension's
keep-alive constants in ``lib/wire.js``; both keep-alives are run through the
client's own sans-I/O :class:`~tabrelay.core.KeepAlive` over a connection's
traffic (a busy connection sends none). Every connection is cut by API Gateway
after its maximum duration (2 h, fixed), and its client reconnects: that is the
steady rate of new connections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tabrelay.client import RelayOptions
from tabrelay.core import AckTracker, KeepAlive, KeepAlivePolicy

__all__ = [
    "W1",
    "W2",
    "W2_BIG_TENANT",
    "W3",
    "WORKLOADS",
    "ClientDefaults",
    "Segment",
    "Workload",
    "acks_per_delivery",
    "client_defaults",
    "keepalive_messages_per_s",
]

ROOT = Path(__file__).resolve().parent.parent
EXTENSION_WIRE = ROOT / "clients" / "extension" / "lib" / "wire.js"


@dataclass(frozen=True, slots=True)
class Segment:
    """A population of tenants that all look alike (so per-partition load is even
    within it): ``browsers`` and ``consumers`` spread over ``tenants``; each
    consumer follows one browser (``follow="one"``) or all of its tenant's (``"all"``)."""

    name: str
    tenants: float
    browsers: float
    consumers: float
    follow: Literal["one", "all"]
    page_kb: int = 100
    snapshot_interval_s: float = 10.0
    command_interval_s: float = 60.0

    @property
    def connections(self) -> float:
        return self.browsers + self.consumers

    def scaled(self, connections: float) -> Segment:
        """The same shape (tenant size kept) at ``connections`` connections."""
        k = connections / self.connections
        return Segment(
            self.name, self.tenants * k, self.browsers * k, self.consumers * k, self.follow,
            self.page_kb, self.snapshot_interval_s, self.command_interval_s,
        )  # fmt: skip

    @property
    def recipients(self) -> float:
        """Consumers that receive each snapshot."""
        return 1.0 if self.follow == "one" else self.consumers / self.tenants

    @property
    def delivery_interval_s(self) -> float:
        """Seconds between two snapshot deliveries to one consumer."""
        per_s = self.browsers * self.recipients / self.snapshot_interval_s / self.consumers
        return 1.0 / per_s


@dataclass(frozen=True, slots=True)
class Workload:
    """A named mix: a scalable segment (resized to N connections) plus fixed ones."""

    name: str
    title: str
    description: str
    scalable: Segment
    fixed: tuple[Segment, ...] = ()
    storm: bool = False

    def at(self, connections: float) -> list[Segment]:
        """The segments with the scalable one at ``connections`` connections."""
        return [self.scalable.scaled(connections), *self.fixed]


FLEET = Segment("fleet", tenants=1_000, browsers=50_000, consumers=50_000, follow="one")
W2_BIG_TENANT = Segment("big tenant", tenants=1, browsers=10_000, consumers=100, follow="all")

W1 = Workload(
    "W1",
    "fleet",
    "100,000 connections: 50,000 browsers and 50,000 consumers in 1,000 tenants (50 + 50 each). "
    "Each browser sends one 100 KB page every 10 s to the one consumer that follows it; "
    "one command per browser per minute; clients at their shipped defaults.",
    FLEET,
)
W2 = Workload(
    "W2",
    "big tenant",
    "W1, plus one tenant with 10,000 browsers and 100 consumers following `*`, at the same "
    "rates (every consumer of it receives every one of its browsers' snapshots).",
    FLEET,
    (W2_BIG_TENANT,),
)
W3 = Workload(
    "W3",
    "storm",
    "All W1 connections drop at once and reconnect (a network blip, or an outage of the "
    "network between clients and AWS).",
    FLEET,
    storm=True,
)
WORKLOADS = (W1, W2, W3)


@dataclass(frozen=True, slots=True)
class ClientDefaults:
    """What the shipped clients send on their own, per connection (seconds).

    Keep-alive: a one-way ``keepalive`` (one inbound message, no reply) after
    ``*_keepalive_interval_s`` without sending; a ``ping`` (and its ``pong``) after
    ``*_ping_interval_s`` without receiving. The Python client as a consumer, the
    extension as the browser.
    """

    python_keepalive_interval_s: float
    python_ping_interval_s: float
    python_ping_timeout_s: float
    python_ack_every: int
    python_ack_delay_s: float
    extension_keepalive_interval_s: float
    extension_ping_interval_s: float
    extension_ping_timeout_s: float
    python_acks: bool

    def keepalive(self, role: Literal["browser", "consumer"]) -> KeepAlivePolicy:
        """The keep-alive policy of a connection of ``role`` (the extension for browsers)."""
        if role == "browser":
            return KeepAlivePolicy(
                self.extension_keepalive_interval_s,
                self.extension_ping_interval_s,
                self.extension_ping_timeout_s,
            )
        return KeepAlivePolicy(
            self.python_keepalive_interval_s,
            self.python_ping_interval_s,
            self.python_ping_timeout_s,
        )


def _extension_constant_s(name: str, source: Path = EXTENSION_WIRE) -> float:
    match = re.search(rf"export const {name} = ([\d_]+);", source.read_text())
    if match is None:
        raise ValueError(f"{name} not found in {source}")
    return int(match.group(1).replace("_", "")) / 1000


def client_defaults() -> ClientDefaults:
    """The defaults as shipped: the Python consumer's ``RelayOptions()`` and the
    extension's ``lib/wire.js``."""
    options = RelayOptions()
    consumer = options.keepalive_policy("consumer")
    if consumer.keepalive_after is None or consumer.ping_after is None:
        raise ValueError("the Python consumer no longer keeps alive by default: revisit the model")
    return ClientDefaults(
        python_keepalive_interval_s=consumer.keepalive_after,
        python_ping_interval_s=consumer.ping_after,
        python_ping_timeout_s=consumer.ping_timeout,
        python_ack_every=options.ack_every,
        python_ack_delay_s=options.ack_delay,
        extension_keepalive_interval_s=_extension_constant_s("KEEPALIVE_AFTER_MS"),
        extension_ping_interval_s=_extension_constant_s("PING_AFTER_MS"),
        extension_ping_timeout_s=_extension_constant_s("PING_TIMEOUT_MS"),
        python_acks=options.acks,
    )


def keepalive_messages_per_s(
    policy: KeepAlivePolicy,
    *,
    sends_every_s: float | None,
    receives_every_s: float | None,
    hours: float = 6.0,
) -> tuple[float, float]:
    """Keep-alive messages per second of one connection, ``(in, out)`` at API Gateway:
    keepalives and pings in, pongs out. The connection sends a frame of its own every
    ``sends_every_s`` and receives one every ``receives_every_s`` (None: never); the
    client's own :class:`KeepAlive` is run over that timeline (sans-I/O, no clock),
    each ping answered at once."""
    alive = KeepAlive(policy)
    alive.opened(0.0)
    end = hours * 3600
    next_send, next_receive = sends_every_s, receives_every_s
    keepalives = pings = 0
    while True:
        events = [t for t in (alive.deadline(), next_send, next_receive) if t is not None]
        now = min(events, default=end + 1)
        if now > end:
            break
        if next_send is not None and now >= next_send:
            alive.sent(now)
            next_send = now + (sends_every_s or 0.0)
        if next_receive is not None and now >= next_receive:
            alive.received(now)
            next_receive = now + (receives_every_s or 0.0)
        due = alive.due(now)
        if due == "ping":
            alive.pinged(now)
            alive.received(now)  # the pong
            pings += 1
        elif due == "keepalive":
            alive.sent(now)
            keepalives += 1
    return (keepalives + pings) / end, pings / end


def acks_per_delivery(interval_s: float, defaults: ClientDefaults, deliveries: int = 1000) -> float:
    """Acks the Python client sends per snapshot delivery when deliveries arrive
    every ``interval_s`` and the application takes each at once: its own
    :class:`AckTracker` is run over that timeline (sans-I/O, no clock)."""
    if not defaults.python_acks:
        return 0.0
    tracker = AckTracker(every=defaults.python_ack_every, delay=defaults.python_ack_delay_s)
    sent = 0

    def settle(now: float) -> None:
        nonlocal sent
        seq = tracker.due(now)
        if seq is not None:
            tracker.sent(seq)
            sent += 1

    for dseq in range(1, deliveries + 1):
        now = dseq * interval_s
        deadline = tracker.deadline()
        if deadline is not None and deadline <= now:
            settle(deadline)  # the client's timer fired before this delivery
        token = tracker.received(dseq, now, hold=True)
        tracker.release(token, now)
        settle(now)
    deadline = tracker.deadline()
    if deadline is not None:
        settle(deadline)
    return sent / deliveries
