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
* a post that returns 410 forgets the *target* connection; a throttled or
  failing post is retried through the delivery queue, then the dead-letter queue.

Raises only for what must be retried by SQS (the record is then reported as a
batch item failure).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from functions.logic import envelopes
from functions.logic.envelopes import Envelope
from functions.logic.gateway import Limits
from functions.logic.ports import (
    Bus,
    ConnectionGoneError,
    Counters,
    DeliveryRetryableError,
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
    ) -> None:
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

    def fan_out_now(self, envelope: Envelope) -> bool:
        """Deliver a snapshot envelope at once, from the message handler.

        Returns False, having delivered nothing, when the browser has more than
        ``Limits.inline_fan_out`` recipients: a large fan-out belongs to the router,
        whose timeout and batch concurrency are sized for it.
        """
        self.begin_batch()
        if len(self._recipients_of(envelope["tenant"], envelope["client"])) > (
            self._limits.inline_fan_out
        ):
            return False
        self._fan_out(envelope)
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

    def _fan_out(self, envelope: Envelope) -> None:
        tenant, source = envelope["tenant"], envelope["client"]
        for recipient in self._recipients_of(tenant, source):
            self._deliver_snapshot(
                tenant,
                source,
                recipient.connection_id,
                envelope["msg"],
                acks=recipient.acks,
                parks=None,
                cid=envelope["cid"],
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
    ) -> None:
        """Deliver one snapshot part within the consumer's window, or park it.

        ``parks`` is None for a first attempt, else how often it was parked.
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
        missed = self._flow.mark_delivered(connection_id, source, seq) if parks else 0
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
        if self._post(connection_id, wire.encode(delivery), cid):
            self._counters.count("Relayed")

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
        """Post now; on 410 forget the target; on throttling retry via the queue.

        Returns False only when the target is gone.
        """
        try:
            self._poster.post(connection_id, data)
        except ConnectionGoneError:
            self._forget(connection_id)
            return False
        except DeliveryRetryableError:
            self._counters.count("DeliveryRetried")
            self._bus.schedule(envelopes.post(connection_id, data, attempt=1, cid=cid), 1)
        return True

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
            self._counters.count("DeliveryRetried")
            if attempt >= MAX_POST_ATTEMPTS:
                raise DeliveryFailedError(
                    f"post to {connection_id} failed {attempt} times: {exc}"
                ) from exc
            retry = dict(envelope, attempt=attempt + 1)
            self._bus.schedule(retry, delay_seconds=min(900, 2**attempt))

    def _forget(self, connection_id: str) -> None:
        """The target is gone (410): remove *its* records, never the sender's."""
        self._counters.count("Gone")
        record, owned = self._registry.unregister(connection_id)
        if record is not None and owned and record.identity.role == "browser":
            identity: Identity = record.identity
            self._bus.publish(
                envelopes.browser_gone(identity, at=int(self._clock() * 1000), cid="gone")
            )
