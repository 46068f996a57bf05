"""The workers' rules: fan-out, command routing, flow control and retries.

:meth:`Relay.handle_bus` consumes what the message handler published (the
router function); :meth:`Relay.handle_delivery` consumes the delivery queue
(retries, parked snapshots, command timeouts). Promises kept here:

* a snapshot reaches every consumer that wants it, within each consumer's
  window; beyond the window the newest snapshot per browser waits (is parked)
  and older ones are dropped and counted in the next delivery's ``missed``;
* a command is answered exactly once for its sender: the browser's result, or
  ``target_offline``, ``busy``, ``conflict`` or ``timeout``; it is delivered to
  the browser at most once per id (idempotency) while its record lives;
* a post that returns 410 forgets the *target* connection; a failing post is
  retried through the delivery queue with backoff and full jitter, then the
  dead-letter queue; except that a *throttled* (429) snapshot post is dropped and
  counted in the consumer's next ``missed``: a newer snapshot replaces it, and
  retrying would only add to the throttled load.

Raises only for what must be retried by SQS (the record is then reported as a
batch item failure).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Callable
from typing import Any, Literal

from functions.logic import envelopes
from functions.logic.envelopes import Envelope
from functions.logic.gateway import Limits
from functions.logic.ports import (
    Bus,
    ConnectionGoneError,
    Counters,
    DeliveryRetryableError,
    DeliveryThrottledError,
    FlowControl,
    Identity,
    Once,
    PendingCommand,
    Poster,
    Recipient,
    Registry,
)
from functions.models import wire

__all__ = ["CommandRejectedError", "DeliveryFailedError", "Relay"]

#: Retries of a failed post through the delivery queue before SQS's own retries.
MAX_POST_ATTEMPTS = 5
RAW_COMMAND_TIMEOUT = 30.0


class CommandRejectedError(Exception):
    """A command cannot be delivered; ``code`` goes back to its sender."""

    def __init__(self, code: wire.ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: wire.ErrorCode = code
        self.message = message


class DeliveryFailedError(Exception):
    """A post kept failing; the queue record fails and SQS takes over (then the DLQ)."""


class Relay:
    """Deliveries for the router (bus) and delivery (retry/park/timeout) functions."""

    def __init__(
        self,
        *,
        registry: Registry,
        flow: FlowControl,
        bus: Bus,
        poster: Poster,
        once: Once,
        counters: Counters,
        limits: Limits,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """``jitter`` returns a number in [0, 1) that scales each retry's delay."""
        self._jitter = jitter
        self._registry = registry
        self._flow = flow
        self._bus = bus
        self._poster = poster
        self._once = once
        self._counters = counters
        self._limits = limits
        self._clock = clock
        self._recipients: dict[tuple[str, str], list[Recipient]] = {}

    # -- entry points -----------------------------------------------------------

    def begin_batch(self) -> None:
        """Start a queue batch: routing lookups are shared by the records of one
        batch (ten snapshots of one browser cost one pair of Queries), never longer."""
        self._recipients.clear()

    def fan_out_now(
        self, envelope: Envelope, remaining_ms: Callable[[], int] | None = None
    ) -> bool:
        """Deliver a snapshot envelope at once, from the message handler.

        Returns False, having delivered nothing, when the browser has more than
        ``Limits.inline_fan_out`` recipients: a large fan-out belongs to the router,
        whose timeout and batch concurrency are sized for it. Before each post it
        checks ``remaining_ms`` (milliseconds left to the function): below
        ``Limits.handoff_reserve_ms`` it publishes the snapshot for the recipients
        not yet served to the bus and stops, so no post can outlive the function.
        """
        self.begin_batch()
        if len(self._recipients_of(envelope["tenant"], envelope["client"])) > (
            self._limits.inline_fan_out
        ):
            return False
        self._fan_out(envelope, remaining_ms)
        return True

    def handle_bus(self, envelope: Envelope) -> None:
        """Route one envelope from the bus."""
        kind = envelope["kind"]
        if kind == "snapshot":
            self._fan_out(envelope)
        elif kind == "command":
            self._command(envelope, envelope["msg"])
        elif kind == "raw_command":
            self._raw_command(envelope)
        elif kind == "result":
            self._result(envelope)
        elif kind == "presence":
            self._presence(envelope["tenant"], envelope["client"], envelope["online"], envelope)
        elif kind == "browser_gone":
            self._browser_gone(envelope)
        else:
            raise ValueError(f"unknown bus envelope kind {kind!r}")

    def handle_delivery(self, envelope: Envelope) -> None:
        """Handle one envelope from the delivery queue."""
        kind = envelope["kind"]
        if kind == "post":
            self._retry_post(envelope)
        elif kind == "park":
            self._deliver_snapshot(
                envelope["tenant"],
                envelope["source"],
                envelope["to"],
                envelope["msg"],
                acks=True,
                parks=envelope["parks"],
                cid=envelope["cid"],
            )
        elif kind == "timeout":
            self._timeout(envelope)
        else:
            raise ValueError(f"unknown delivery envelope kind {kind!r}")

    # -- snapshots ------------------------------------------------------------

    def _fan_out(self, envelope: Envelope, remaining_ms: Callable[[], int] | None = None) -> None:
        tenant, source = envelope["tenant"], envelope["client"]
        recipients = self._recipients_of(tenant, source)
        only = envelope.get("to")
        if only is not None:
            wanted = set(only)
            recipients = [r for r in recipients if r.connection_id in wanted]
        for n, recipient in enumerate(recipients):
            if remaining_ms is not None and remaining_ms() < self._limits.handoff_reserve_ms:
                rest = [r.connection_id for r in recipients[n:]]
                self._bus.publish(envelopes.only_to(envelope, rest))
                self._counters.count("FanOutHandedOff")
                return
            self._deliver_snapshot(
                tenant,
                source,
                recipient.connection_id,
                envelope["msg"],
                acks=recipient.acks,
                parks=None,
                cid=envelope["cid"],
                dropped=recipient.missed,
            )
        self._observe_latency(envelope)

    def _recipients_of(self, tenant: str, source: str) -> list[Recipient]:
        recipients = self._recipients.get((tenant, source))
        if recipients is None:
            recipients = self._registry.recipients(tenant, source)
            self._recipients[(tenant, source)] = recipients
        return recipients

    def _deliver_snapshot(
        self,
        tenant: str,
        source: str,
        connection_id: str,
        msg: dict[str, Any],
        *,
        acks: bool,
        parks: int | None,
        cid: str,
        dropped: bool = False,
    ) -> None:
        """Deliver one snapshot part within the consumer's window, or park it.

        ``parks`` is None for a first attempt, else how often it was parked;
        ``dropped`` says a throttled post dropped an earlier snapshot of the
        browser for this consumer (its count goes into this delivery's ``missed``).
        """
        seq: int = msg["seq"]
        if parks is not None and self._flow.is_stale(connection_id, source, seq):
            self._conflate(connection_id, source, msg)
            return
        dseq: int | None = None
        if acks:
            try:
                reservation = self._flow.reserve(connection_id, 1)
            except ConnectionGoneError:
                self._forget(connection_id)
                return
            if reservation.granted == 0:
                self._park(tenant, connection_id, source, msg, parks or 0, cid)
                return
            dseq = reservation.first_dseq
        missed = self._flow.mark_delivered(connection_id, source, seq) if parks or dropped else 0
        delivery = wire.SnapshotDelivery(
            source=source,
            sid=msg["sid"],
            seq=seq,
            data=msg["data"],
            url=msg.get("url", ""),
            title=msg.get("title", ""),
            enc=msg.get("enc", "none"),
            part=msg.get("part", 0),
            parts=msg.get("parts", 1),
            missed=missed,
            dseq=dseq,
        )
        outcome = self._post_snapshot(connection_id, wire.encode(delivery), cid)
        if outcome == "throttled":
            # Dropped, not retried: the slot goes back to the window, and the
            # consumer's next snapshot of this browser says what it missed.
            if dseq is not None:
                self._flow.release(connection_id, dseq)
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
        """Keep this batch's routing lookup in step with a drop or its report."""
        cached = self._recipients.get((tenant, source))
        if cached is not None:
            self._recipients[(tenant, source)] = [
                dataclasses.replace(r, missed=missed) if r.connection_id == connection_id else r
                for r in cached
            ]

    def _park(
        self,
        tenant: str,
        connection_id: str,
        source: str,
        msg: dict[str, Any],
        parks: int,
        cid: str,
    ) -> None:
        if parks >= self._limits.max_parks:
            self._drop_slow_consumer(connection_id, cid)
            return
        ttl = int(self._clock()) + self._limits.connection_ttl_seconds
        if not self._flow.park(connection_id, source, msg["seq"], ttl):
            self._conflate(connection_id, source, msg)
            return
        delay = min(900, self._limits.park_delay_seconds * 2**parks)
        self._bus.schedule(
            envelopes.park(tenant, connection_id, source, msg, parks=parks + 1, cid=cid),
            delay_seconds=delay,
        )

    def _conflate(self, connection_id: str, source: str, msg: dict[str, Any]) -> None:
        """Drop a snapshot part a newer snapshot replaces; count the snapshot once."""
        if msg.get("part", 0) == 0:
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
        self._post(connection_id, wire.encode(reason), cid)
        self._poster.disconnect(connection_id)

    # -- commands and results ------------------------------------------------

    def _command(self, envelope: Envelope, msg: dict[str, Any]) -> None:
        tenant, issuer_client = envelope["tenant"], envelope["client"]
        command_id: str = msg["id"]
        key = f"{tenant}/{issuer_client}/{command_id}"
        try:
            self._once(key, lambda: self._deliver_command(envelope, msg))
        except CommandRejectedError as rejected:
            self._counters.count("Errors", code=rejected.code)
            error = wire.ErrorMessage(code=rejected.code, message=rejected.message, id=command_id)
            self._answer_issuer(
                tenant, issuer_client, envelope["connection"], wire.encode(error), envelope["cid"]
            )

    def _deliver_command(self, envelope: Envelope, msg: dict[str, Any]) -> dict[str, Any]:
        tenant, cid = envelope["tenant"], envelope["cid"]
        target: str = msg["target"]
        command_id: str = msg["id"]
        timeout = float(msg.get("timeout", 30.0))
        target_connection = self._registry.lookup_client(tenant, "browser", target)
        if target_connection is None:
            raise CommandRejectedError("target_offline", f"browser {target!r} is not connected")
        pending = PendingCommand(
            tenant=tenant,
            target_client=target,
            command_id=command_id,
            issuer_connection=envelope["connection"],
            issuer_client=envelope["client"],
            target_connection=target_connection,
        )
        ttl = int(self._clock() + timeout) + 600
        outcome = self._registry.open_command(pending, ttl)
        if outcome == "conflict":
            raise CommandRejectedError(
                "conflict",
                f"command id {command_id!r} is already pending for browser {target!r} "
                "from another consumer; use unique ids",
            )
        if outcome == "opened":
            try:
                admitted = self._flow.add_inflight(
                    target_connection, self._limits.max_inflight_commands
                )
            except ConnectionGoneError:
                admitted = False
            if not admitted:
                self._registry.expire_command(tenant, target, command_id)
                raise CommandRejectedError(
                    "busy",
                    f"browser {target!r} has {self._limits.max_inflight_commands} commands "
                    "in flight; retry after some results",
                )
        delivery = wire.CommandDelivery(
            id=command_id,
            source=envelope["client"],
            name=msg["name"],
            args=msg.get("args", {}),
            timeout=timeout,
        )
        data = wire.encode(delivery)
        try:
            self._poster.post(target_connection, data)
        except ConnectionGoneError:
            self._registry.expire_command(tenant, target, command_id)
            self._forget(target_connection)
            raise CommandRejectedError(
                "target_offline", f"browser {target!r} disconnected"
            ) from None
        except DeliveryRetryableError:
            self._counters.count("DeliveryRetried")
            self._bus.schedule(envelopes.post(target_connection, data, attempt=1, cid=cid), 1)
        self._bus.schedule(
            envelopes.timeout(tenant, target, command_id, cid=cid),
            delay_seconds=min(900, math.ceil(timeout)),
        )
        self._counters.count("Relayed")
        self._observe_latency(envelope)
        return {"delivered_to": target_connection}

    def _raw_command(self, envelope: Envelope) -> None:
        """A seed consumer's raw frame: the command goes to every browser it follows."""
        tenant = envelope["tenant"]
        record = self._registry.get(envelope["connection"])
        if record is None:
            return
        subscriptions = record.subscriptions
        if subscriptions is None or "*" in subscriptions:
            targets = [client for client, _, _ in self._registry.list_clients(tenant, "browser")]
        else:
            targets = sorted(subscriptions)
        if not targets:
            error = wire.ErrorMessage(
                code="target_offline",
                message=f"no browser to send {envelope['name']!r} to: none of yours is online",
            )
            self._post(envelope["connection"], wire.encode(error), envelope["cid"])
            return
        if len(targets) > wire.RAW_COMMAND_MAX_TARGETS:
            # One small frame must not do unbounded work: refuse it whole, run nothing.
            self._counters.count("Errors", code="bad_request")
            error = wire.ErrorMessage(
                code="bad_request",
                message=(
                    f"a raw command goes to at most {wire.RAW_COMMAND_MAX_TARGETS} browsers; "
                    f"{envelope['name']!r} would go to {len(targets)}: subscribe to fewer, "
                    "or send JSON commands to each target"
                ),
            )
            self._post(envelope["connection"], wire.encode(error), envelope["cid"])
            return
        for target in targets:
            msg = {
                "id": f"{envelope['cid']}-{target}",
                "target": target,
                "name": envelope["name"],
                "args": {},
                "timeout": RAW_COMMAND_TIMEOUT,
            }
            self._command(envelope, msg)

    def _result(self, envelope: Envelope) -> None:
        tenant, source, msg = envelope["tenant"], envelope["client"], envelope["msg"]
        command_id: str = msg["id"]
        claimed = self._registry.close_command(
            tenant, source, command_id, part=msg.get("part", 0), parts=msg.get("parts", 1)
        )
        if claimed is None:
            error = wire.ErrorMessage(
                code="bad_request",
                message=f"no pending command {command_id!r}: answered, timed out or never sent",
                id=command_id,
            )
            self._post(envelope["connection"], wire.encode(error), envelope["cid"])
            return
        pending, complete = claimed
        if complete:
            self._flow.release_inflight(pending.target_connection)
        delivery = wire.ResultDelivery(
            id=command_id,
            source=source,
            ok=msg["ok"],
            value=msg.get("value"),
            error=msg.get("error"),
            code=msg.get("code"),
            part=msg.get("part", 0),
            parts=msg.get("parts", 1),
        )
        if self._answer_issuer(
            tenant,
            pending.issuer_client,
            pending.issuer_connection,
            wire.encode(delivery),
            envelope["cid"],
        ):
            self._counters.count("Relayed")
            self._observe_latency(envelope)

    def _timeout(self, envelope: Envelope) -> None:
        tenant, target, command_id = envelope["tenant"], envelope["target"], envelope["id"]
        pending = self._registry.expire_command(tenant, target, command_id)
        if pending is None:
            return  # answered in time
        self._flow.release_inflight(pending.target_connection)
        self._counters.count("Errors", code="timeout")
        error = wire.ErrorMessage(
            code="timeout",
            message=f"browser {target!r} did not answer command {command_id!r} in time",
            id=command_id,
        )
        self._answer_issuer(
            tenant,
            pending.issuer_client,
            pending.issuer_connection,
            wire.encode(error),
            envelope["cid"],
        )

    # -- presence -----------------------------------------------------------------

    def _presence(self, tenant: str, client: str, online: bool, envelope: Envelope) -> None:
        at = int(envelope.get("at") or self._clock() * 1000)
        data = wire.encode(wire.Presence(client_id=client, online=online, at=at))
        for _, connection_id, _ in self._registry.list_clients(tenant, "consumer"):
            self._post(connection_id, data, envelope["cid"])

    def _browser_gone(self, envelope: Envelope) -> None:
        tenant, client, connection_id = (
            envelope["tenant"],
            envelope["client"],
            envelope["connection"],
        )
        for pending in self._registry.pending_commands(tenant, client):
            if pending.target_connection != connection_id:
                continue
            if self._registry.expire_command(tenant, client, pending.command_id) is None:
                continue
            error = wire.ErrorMessage(
                code="target_offline",
                message=f"browser {client!r} disconnected before answering",
                id=pending.command_id,
            )
            self._answer_issuer(
                tenant,
                pending.issuer_client,
                pending.issuer_connection,
                wire.encode(error),
                envelope["cid"],
            )
        self._presence(tenant, client, False, envelope)

    def _observe_latency(self, envelope: Envelope) -> None:
        sent_at = envelope.get("t")
        if isinstance(sent_at, int):
            self._counters.observe_ms("DeliveryLatencyMs", self._clock() * 1000 - sent_at)

    # -- posting ------------------------------------------------------------------

    def _post(self, connection_id: str, data: str, cid: str) -> bool:
        """Post now; on 410 forget the target; on throttling or a failure retry via
        the queue (with backoff and full jitter).

        Returns False only when the target is gone.
        """
        try:
            self._poster.post(connection_id, data)
        except ConnectionGoneError:
            self._forget(connection_id)
            return False
        except DeliveryRetryableError:
            self._schedule_retry(connection_id, data, cid)
        return True

    def _post_snapshot(
        self, connection_id: str, data: str, cid: str
    ) -> Literal["posted", "gone", "throttled"]:
        """Post a snapshot delivery: like :meth:`_post`, except that a throttled post
        is not retried (the caller drops it)."""
        try:
            self._poster.post(connection_id, data)
        except ConnectionGoneError:
            self._forget(connection_id)
            return "gone"
        except DeliveryThrottledError:
            return "throttled"
        except DeliveryRetryableError:
            self._schedule_retry(connection_id, data, cid)
        return "posted"

    def _schedule_retry(self, connection_id: str, data: str, cid: str) -> None:
        self._counters.count("DeliveryRetried", kind=_kind_of(data))
        self._bus.schedule(
            envelopes.post(connection_id, data, attempt=1, cid=cid), self._backoff(1)
        )

    def _backoff(self, attempt: int) -> int:
        """Full jitter: anywhere from 0 to 2**attempt seconds (SQS's cap 900), so
        retries of many posts throttled together do not arrive together again."""
        return math.ceil(self._jitter() * min(900, 1 << attempt))

    def _answer_issuer(
        self, tenant: str, issuer_client: str, issuer_connection: str, data: str, cid: str
    ) -> bool:
        """Post a command's answer to its issuer; if that connection is gone, to the
        issuer's current connection (a consumer that reconnected meanwhile)."""
        if self._post(issuer_connection, data, cid):
            return True
        current = self._registry.lookup_client(tenant, "consumer", issuer_client)
        if current is None or current == issuer_connection:
            return False
        return self._post(current, data, cid)

    def _retry_post(self, envelope: Envelope) -> None:
        connection_id, attempt = envelope["to"], envelope["attempt"]
        try:
            self._poster.post(connection_id, envelope["data"])
        except ConnectionGoneError:
            self._forget(connection_id)
        except DeliveryRetryableError as exc:
            self._counters.count("DeliveryRetried", kind=_kind_of(envelope["data"]))
            if attempt >= MAX_POST_ATTEMPTS:
                raise DeliveryFailedError(
                    f"post to {connection_id} failed {attempt} times: {exc}"
                ) from exc
            retry = dict(envelope, attempt=attempt + 1)
            self._bus.schedule(retry, delay_seconds=self._backoff(attempt + 1))

    def _forget(self, connection_id: str) -> None:
        """The target is gone (410): remove *its* records, never the sender's."""
        self._counters.count("Gone")
        record, owned = self._registry.unregister(connection_id)
        if record is not None and owned and record.identity.role == "browser":
            identity: Identity = record.identity
            self._bus.publish(
                envelopes.browser_gone(identity, at=int(self._clock() * 1000), cid="gone")
            )


def _kind_of(data: str) -> str:
    """The action of an encoded message (the ``kind`` dimension of retry metrics)."""
    try:
        action = json.loads(data).get("action")
    except (ValueError, AttributeError):
        return "unknown"
    return action if isinstance(action, str) else "unknown"
