"""Delivery: posting to connections, shared by the inbound and the worker rules.

The one place that posts a message to a connection and deals with what a post
can meet (410: forget the target; throttling and failures: retry through the
delivery queue; a full window: park the snapshot), and that fans a snapshot out
to its recipients. Two paths fan out:

* :meth:`Delivery.fan_out_inline`, the **inline fan-out**: the message handler
  delivers a snapshot itself when the browser has at most
  ``Limits.inline_fan_out`` recipients, saving an SQS round trip and a router
  invocation; short of time, it hands the recipients left to the bus;
* :meth:`Delivery.fan_out`, the router's, for snapshots that came over the bus.

The inbound rules (:mod:`functions.logic.gateway`) and the worker rules
(:mod:`functions.logic.relay`) both use it; neither calls the other.

A fan-out posts to its recipients concurrently, at most
``Limits.fan_out_concurrency`` at once (one thread pool per container); each
recipient's post keeps its own outcome (410, 429, retries) exactly as one
after the other would. botocore clients are thread-safe; what this class
shares between those threads (the batch's recipient lookups, the counters) is
behind a lock.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from typing import Literal, NamedTuple

from tabrelay import wire

from functions.logic import envelopes
from functions.logic.envelopes import Park, Post, SnapshotEnvelope
from functions.logic.limits import Limits
from functions.logic.ports import (
    MAX_DELAY_SECONDS,
    ConnectionGoneError,
    Counters,
    DeliveryRetryableError,
    DeliveryThrottledError,
    Identity,
    Ports,
    Recipient,
)
from functions.logic.recipients import RecipientCache
from functions.logic.window import WindowBlocks

__all__ = ["MAX_POST_ATTEMPTS", "Delivery", "DeliveryFailedError"]

#: Retries of a failed post through the delivery queue before SQS's own retries.
MAX_POST_ATTEMPTS = 5


class DeliveryFailedError(Exception):
    """A post kept failing; the queue record fails and SQS takes over (then the DLQ)."""


class _Send(NamedTuple):
    """One snapshot part on its way to one consumer (for message ``cid``)."""

    tenant: str
    source: str
    connection_id: str
    msg: wire.Snapshot
    cid: str


class _LockedCounters:
    """Counters that a fan-out's threads may share (Powertools' metric set is a dict)."""

    def __init__(self, counters: Counters, lock: threading.Lock) -> None:
        self._counters = counters
        self._lock = lock

    def count(
        self, name: str, value: int = 1, *, code: str | None = None, kind: str | None = None
    ) -> None:
        with self._lock:
            self._counters.count(name, value, code=code, kind=kind)

    def observe_ms(self, name: str, milliseconds: float) -> None:
        with self._lock:
            self._counters.observe_ms(name, milliseconds)


class Delivery:
    """Posts, snapshot fan-out, parking and retries (see the module's docstring)."""

    def __init__(
        self,
        ports: Ports,
        limits: Limits,
        *,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """``jitter`` returns a number in [0, 1) that scales each retry's delay."""
        self._jitter = jitter
        self._registry = ports.registry
        self._flow = ports.flow
        self._bus = ports.bus
        self._poster = ports.poster
        self._lock = threading.Lock()
        self._counters: Counters = _LockedCounters(ports.counters, threading.Lock())
        self._limits = limits
        self._clock = clock
        #: Routing lookups, shared by the records of one batch (ten snapshots of one
        #: browser cost one pair of Queries) and kept for the TTL across warm calls.
        self.recipient_cache = RecipientCache(
            self._registry.fan_out_partition,
            ttl_seconds=limits.recipient_cache_seconds,
            clock=clock,
        )
        #: Consumers' windows, reserved in blocks (functions/logic/window.py).
        self.windows = WindowBlocks(self._flow, bound=limits.max_unacked, clock=clock)
        self._pool: ThreadPoolExecutor | None = None

    def begin_batch(self) -> None:
        """Start a queue batch (or an inline fan-out): lookups older than the
        recipient cache's TTL are read again."""
        self.recipient_cache.begin_batch()

    def invalidate_recipients(self, tenant: str, browsers: Iterable[str]) -> None:
        """This container saw these browsers' subscribers change (a ``subscribe``)."""
        self.recipient_cache.invalidate(tenant, browsers)

    def fan_out_inline(
        self, envelope: SnapshotEnvelope, remaining_ms: Callable[[], int] | None = None
    ) -> bool:
        """The inline fan-out: deliver a snapshot at once, from the message handler.

        Returns False, having delivered nothing, when the browser has more than
        ``Limits.inline_fan_out`` recipients: a large fan-out belongs to the router,
        whose timeout and batch concurrency are sized for it. Before each post it
        checks ``remaining_ms`` (milliseconds left to the function): below
        ``Limits.handoff_reserve_ms`` it publishes the snapshot for the recipients
        not yet served to the bus and stops, so no post can outlive the function.
        """
        self.begin_batch()
        if len(self._recipients_of(envelope.tenant, envelope.client)) > (
            self._limits.inline_fan_out
        ):
            return False
        self.fan_out(envelope, remaining_ms)
        return True

    def deliver_parked(self, envelope: Park) -> None:
        """A parked snapshot's turn came (the delivery queue)."""
        self._deliver_snapshot(
            _Send(envelope.tenant, envelope.source, envelope.to, envelope.msg, envelope.cid),
            acks=True,
            parks=envelope.parks,
        )

    def fan_out(
        self, envelope: SnapshotEnvelope, remaining_ms: Callable[[], int] | None = None
    ) -> None:
        """Deliver a snapshot to each of its browser's recipients (or those in ``to``)."""
        tenant, source = envelope.tenant, envelope.client
        recipients = self._recipients_of(tenant, source)
        only = envelope.to
        if only is not None:
            wanted = set(only)
            recipients = [r for r in recipients if r.connection_id in wanted]
        left: set[str] = set()  # recipients not served in time: handed to the bus

        def deliver(recipient: Recipient) -> None:
            # Checked as each post starts: one post takes at most the reserve.
            if remaining_ms is not None and remaining_ms() < self._limits.handoff_reserve_ms:
                with self._lock:
                    left.add(recipient.connection_id)
                return
            self._deliver_snapshot(
                _Send(tenant, source, recipient.connection_id, envelope.msg, envelope.cid),
                acks=recipient.acks,
                parks=None,
                dropped=recipient.missed,
            )

        self._run_each([partial(deliver, r) for r in recipients])
        if left:
            rest = tuple(r.connection_id for r in recipients if r.connection_id in left)
            self._bus.publish(dataclasses.replace(envelope, to=rest))
            self._counters.count("FanOutHandedOff")
            return
        self.observe_latency(envelope.t)

    def _run_each(self, tasks: Sequence[Callable[[], None]]) -> None:
        """Run ``tasks``, at most ``Limits.fan_out_concurrency`` at once; once all
        have ended, raise the first failure (the record fails and is retried)."""
        if len(tasks) <= 1 or self._limits.fan_out_concurrency <= 1:
            for task in tasks:
                task()
            return
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        max_workers=self._limits.fan_out_concurrency,
                        thread_name_prefix="fan-out",
                    )
        futures = [self._pool.submit(task) for task in tasks]
        wait(futures)
        for future in futures:
            error = future.exception()
            if error is not None:
                raise error

    def _recipients_of(self, tenant: str, source: str) -> list[Recipient]:
        return self.recipient_cache.recipients(tenant, source)

    def _deliver_snapshot(
        self, send: _Send, *, acks: bool, parks: int | None, dropped: bool = False
    ) -> None:
        """Deliver one snapshot part within the consumer's window, or park it.

        ``parks`` is None for a first attempt, else how often it was parked;
        ``dropped`` says a throttled post dropped an earlier snapshot of the
        browser for this consumer (its count goes into this delivery's ``missed``).
        """
        tenant, source, connection_id, msg, cid = send
        seq = msg.seq
        if parks is not None and self._flow.is_stale(connection_id, source, seq):
            self._conflate(connection_id, source, msg)
            return
        dseq: int | None = None
        if acks:
            try:
                dseq = self.windows.take(connection_id)
            except ConnectionGoneError:
                self.forget(connection_id)
                return
            if dseq is None:
                self._park(send, parks or 0)
                return
        missed = self._flow.mark_delivered(connection_id, source, seq) if parks or dropped else 0
        delivery = wire.SnapshotDelivery(
            source=source,
            sid=msg.sid,
            seq=seq,
            data=msg.data,
            url=msg.url,
            title=msg.title,
            enc=msg.enc,
            part=msg.part,
            parts=msg.parts,
            missed=missed,
            dseq=dseq,
        )
        outcome = self._post_snapshot(connection_id, wire.encode(delivery), cid)
        if outcome == "throttled":
            # Dropped, not retried: the slot goes back to the window (it numbers
            # the next delivery), and the consumer's next snapshot of this
            # browser says what it missed.
            if dseq is not None:
                self.windows.untake(connection_id, dseq)
            ttl = int(self._clock()) + self._limits.connection_ttl_seconds
            self._flow.note_dropped(tenant, connection_id, source, missed + 1, ttl)
            self._mark_recipient(tenant, source, connection_id, missed=True)
            self._counters.count("ThrottledSnapshotDropped")
            return
        if outcome == "gone":
            return
        if dropped:
            self._flow.clear_dropped(tenant, connection_id, source)
            self._mark_recipient(tenant, source, connection_id, missed=False)
        self._counters.count("Relayed")

    def _mark_recipient(
        self, tenant: str, source: str, connection_id: str, *, missed: bool
    ) -> None:
        """Keep the cached routing lookup in step with a drop or its report."""
        self.recipient_cache.mark_dropped(tenant, source, connection_id, dropped=missed)

    def _park(self, send: _Send, parks: int) -> None:
        tenant, source, connection_id, msg, cid = send
        if parks >= self._limits.max_parks:
            self._drop_slow_consumer(connection_id, cid)
            return
        ttl = int(self._clock()) + self._limits.connection_ttl_seconds
        if not self._flow.park(connection_id, source, msg.seq, ttl):
            self._conflate(connection_id, source, msg)
            return
        delay = min(MAX_DELAY_SECONDS, self._limits.park_delay_seconds * 2**parks)
        self._bus.schedule(
            Park(cid, tenant, connection_id, source, msg, parks + 1),
            delay_seconds=delay,
        )

    def _conflate(self, connection_id: str, source: str, msg: wire.Snapshot) -> None:
        """Drop a snapshot part a newer snapshot replaces; count the snapshot once."""
        if msg.part == 0:
            ttl = int(self._clock()) + self._limits.connection_ttl_seconds
            self._flow.count_missed(connection_id, source, ttl)
            self._counters.count("Conflated")

    def _drop_slow_consumer(self, connection_id: str, cid: str) -> None:
        """A consumer that stays over its window is disconnected with a reason."""
        self._counters.count("Dropped")
        reason = wire.ErrorMessage(
            code="busy",
            message=(
                f"disconnected: {self._limits.max_unacked} deliveries stayed unacknowledged "
                "through every retry; ack what you process"
            ),
        )
        self.post(connection_id, wire.encode(reason), cid)
        self._poster.disconnect(connection_id)

    def observe_latency(self, sent_at: int | None) -> None:
        """``sent_at``: when the gateway took the message (ms), if it said."""
        if sent_at is not None:
            self._counters.observe_ms("DeliveryLatencyMs", self._clock() * 1000 - sent_at)

    # -- posting ------------------------------------------------------------------

    def post(self, connection_id: str, data: str, cid: str) -> bool:
        """Post now; on 410 forget the target; on throttling or a failure retry via
        the queue (with backoff and full jitter).

        Returns False only when the target is gone.
        """
        try:
            self._poster.post(connection_id, data)
        except ConnectionGoneError:
            self.forget(connection_id)
            return False
        except DeliveryRetryableError:
            self.schedule_retry(connection_id, data, cid)
        return True

    def post_all(self, posts: Sequence[tuple[str, str]], cid: str) -> None:
        """:meth:`post` each ``(connection id, data)``, each with its own outcome; a
        connection's posts go in their order and stop once it is gone (410)."""
        by_connection: dict[str, list[str]] = {}
        for connection_id, data in posts:
            by_connection.setdefault(connection_id, []).append(data)

        def post_in_order(connection_id: str, messages: list[str]) -> None:
            for data in messages:
                if not self.post(connection_id, data, cid):
                    break

        self._run_each([partial(post_in_order, c, m) for c, m in by_connection.items()])

    def _post_snapshot(
        self, connection_id: str, data: str, cid: str
    ) -> Literal["posted", "gone", "throttled"]:
        """Post a snapshot delivery: like :meth:`_post`, except that a throttled post
        is not retried (the caller drops it)."""
        try:
            self._poster.post(connection_id, data)
        except ConnectionGoneError:
            self.forget(connection_id)
            return "gone"
        except DeliveryThrottledError:
            return "throttled"
        except DeliveryRetryableError:
            self.schedule_retry(connection_id, data, cid)
        return "posted"

    def schedule_retry(
        self, connection_id: str, data: str, cid: str, issuer: tuple[str, str] | None = None
    ) -> None:
        """Retry a post through the delivery queue; ``issuer`` (tenant, client id)
        makes a command's answer follow its issuer to a newer connection."""
        self._counters.count("DeliveryRetried", kind=_kind_of(data))
        self._bus.schedule(
            Post(cid, connection_id, data, attempt=1, issuer=issuer),
            self._backoff(1),
        )

    def _backoff(self, attempt: int) -> int:
        """Full jitter: anywhere from 0 to 2**attempt seconds (SQS's cap 900), so
        retries of many posts throttled together do not arrive together again."""
        return math.ceil(self._jitter() * min(MAX_DELAY_SECONDS, 1 << attempt))

    def answer_issuer(
        self, tenant: str, issuer_client: str, issuer_connection: str, data: str, cid: str
    ) -> bool:
        """Post a command's answer to its issuer; if that connection is gone, to the
        issuer's current connection (a consumer that reconnected meanwhile). A
        throttled answer is retried through the delivery queue, and that retry
        follows the issuer the same way.

        Returns False only when the issuer has no connection left.
        """
        connection: str | None = issuer_connection
        for _ in range(2):  # the recorded connection, then the current one
            if connection is None:
                return False
            try:
                self._poster.post(connection, data)
            except ConnectionGoneError:
                self.forget(connection)
                current = self._registry.lookup_client(tenant, "consumer", issuer_client)
                connection = None if current == connection else current
                continue
            except DeliveryRetryableError:
                self.schedule_retry(connection, data, cid, issuer=(tenant, issuer_client))
            return True
        return False

    def retry_post(self, envelope: Post) -> None:
        """A failed post's next attempt (the delivery queue)."""
        connection_id, attempt = envelope.to, envelope.attempt
        try:
            self._poster.post(connection_id, envelope.data)
        except ConnectionGoneError:
            self.forget(connection_id)
            issuer = envelope.issuer
            if issuer is None:
                return
            # A command's answer: follow the issuer to its current connection.
            current = self._registry.lookup_client(issuer[0], "consumer", issuer[1])
            if current is not None and current != connection_id:
                self.retry_post(dataclasses.replace(envelope, to=current))
        except DeliveryRetryableError as exc:
            self._counters.count("DeliveryRetried", kind=_kind_of(envelope.data))
            if attempt >= MAX_POST_ATTEMPTS:
                raise DeliveryFailedError(
                    f"post to {connection_id} failed {attempt} times: {exc}"
                ) from exc
            retry = dataclasses.replace(envelope, attempt=attempt + 1)
            self._bus.schedule(retry, delay_seconds=self._backoff(attempt + 1))

    def forget(self, connection_id: str) -> None:
        """The target is gone (410): remove *its* records, never the sender's."""
        self._counters.count("Gone")
        self.recipient_cache.forget_connection(connection_id)
        self.windows.forget(connection_id)
        record, owned = self._registry.unregister(connection_id)
        if record is not None and owned and record.identity.role == "browser":
            identity: Identity = record.identity
            self._bus.publish(
                envelopes.BrowserGone.of(identity, at=int(self._clock() * 1000), cid="gone")
            )


def _kind_of(data: str) -> str:
    """The action of an encoded message (the ``kind`` dimension of retry metrics)."""
    try:
        action = json.loads(data).get("action")
    except (ValueError, AttributeError):
        return "unknown"
    return action if isinstance(action, str) else "unknown"
