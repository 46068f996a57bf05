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

import math
import time
from collections.abc import Callable
from typing import Any

from functions.logic.delivery import Delivery, DeliveryFailedError
from functions.logic.envelopes import (
    BrowserGone,
    BusEnvelope,
    CommandEnvelope,
    DeliveryEnvelope,
    Park,
    Post,
    Presence,
    RawCommand,
    ResultEnvelope,
    SnapshotEnvelope,
    Timeout,
)
from functions.logic.limits import Limits
from functions.logic.ports import (
    ConnectionGoneError,
    Counters,
    DeliveryRetryableError,
    FlowControl,
    Once,
    PendingCommand,
    Poster,
    Registry,
)
from functions.models import wire

__all__ = ["CommandRejectedError", "DeliveryFailedError", "Relay"]

RAW_COMMAND_TIMEOUT = 30.0


class CommandRejectedError(Exception):
    """A command cannot be delivered; ``code`` goes back to its sender."""

    def __init__(self, code: wire.ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: wire.ErrorCode = code
        self.message = message


class Relay:
    """The router's (bus) and the delivery function's rules; posts go through
    :class:`~functions.logic.delivery.Delivery`."""

    def __init__(
        self,
        *,
        registry: Registry,
        flow: FlowControl,
        delivery: Delivery,
        poster: Poster,
        once: Once,
        counters: Counters,
        limits: Limits,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._flow = flow
        self._delivery = delivery
        self._bus = delivery.bus
        self._poster = poster
        self._once = once
        self._counters = counters
        self._limits = limits
        self._clock = clock

    # -- entry points -----------------------------------------------------------

    def begin_batch(self) -> None:
        """Start a queue batch (routing lookups are shared within one batch)."""
        self._delivery.begin_batch()

    def handle_bus(self, envelope: BusEnvelope) -> None:
        """Route one envelope from the bus."""
        match envelope:
            case SnapshotEnvelope():
                self._delivery.fan_out(envelope)
            case CommandEnvelope():
                self._command(envelope, envelope.msg)
            case RawCommand():
                self._raw_command(envelope)
            case ResultEnvelope():
                self._result(envelope)
            case Presence():
                self._presence(envelope.tenant, envelope.client, envelope.online, envelope)
            case BrowserGone():
                self._browser_gone(envelope)

    def handle_delivery(self, envelope: DeliveryEnvelope) -> None:
        """Handle one envelope from the delivery queue."""
        match envelope:
            case Post():
                self._delivery.retry_post(envelope)
            case Park():
                self._delivery.deliver_parked(envelope)
            case Timeout():
                self._timeout(envelope)

    # -- commands and results ------------------------------------------------

    def _command(self, envelope: CommandEnvelope | RawCommand, msg: wire.Command) -> None:
        tenant, issuer_client = envelope.tenant, envelope.client
        command_id = msg.id
        key = f"{tenant}/{issuer_client}/{command_id}"
        try:
            self._once(key, lambda: self._deliver_command(envelope, msg))
        except CommandRejectedError as rejected:
            self._counters.count("Errors", code=rejected.code)
            error = wire.ErrorMessage(code=rejected.code, message=rejected.message, id=command_id)
            self._delivery.answer_issuer(
                tenant, issuer_client, envelope.connection, wire.encode(error), envelope.cid
            )

    def _deliver_command(
        self, envelope: CommandEnvelope | RawCommand, msg: wire.Command
    ) -> dict[str, Any]:
        tenant, cid = envelope.tenant, envelope.cid
        target = msg.target
        command_id = msg.id
        timeout = float(msg.timeout)
        target_connection = self._registry.lookup_client(tenant, "browser", target)
        if target_connection is None:
            raise CommandRejectedError("target_offline", f"browser {target!r} is not connected")
        pending = PendingCommand(
            tenant=tenant,
            target_client=target,
            command_id=command_id,
            issuer_connection=envelope.connection,
            issuer_client=envelope.client,
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
            source=envelope.client,
            name=msg.name,
            args=msg.args,
            timeout=timeout,
        )
        data = wire.encode(delivery)
        try:
            self._poster.post(target_connection, data)
        except ConnectionGoneError:
            self._registry.expire_command(tenant, target, command_id)
            self._delivery.forget(target_connection)
            raise CommandRejectedError(
                "target_offline", f"browser {target!r} disconnected"
            ) from None
        except DeliveryRetryableError:
            self._counters.count("DeliveryRetried")
            self._bus.schedule(Post(cid, target_connection, data, attempt=1), 1)
        self._bus.schedule(
            Timeout(cid, tenant, target, command_id),
            delay_seconds=min(900, math.ceil(timeout)),
        )
        self._counters.count("Relayed")
        self._delivery.observe_latency(
            envelope.t if isinstance(envelope, CommandEnvelope) else None
        )
        return {"delivered_to": target_connection}

    def _raw_command(self, envelope: RawCommand) -> None:
        """A seed consumer's raw frame: the command goes to every browser it follows."""
        tenant = envelope.tenant
        record = self._registry.get(envelope.connection)
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
                message=f"no browser to send {envelope.name!r} to: none of yours is online",
            )
            self._delivery.post(envelope.connection, wire.encode(error), envelope.cid)
            return
        if len(targets) > wire.RAW_COMMAND_MAX_TARGETS:
            # One small frame must not do unbounded work: refuse it whole, run nothing.
            self._counters.count("Errors", code="bad_request")
            error = wire.ErrorMessage(
                code="bad_request",
                message=(
                    f"a raw command goes to at most {wire.RAW_COMMAND_MAX_TARGETS} browsers; "
                    f"{envelope.name!r} would go to {len(targets)}: subscribe to fewer, "
                    "or send JSON commands to each target"
                ),
            )
            self._delivery.post(envelope.connection, wire.encode(error), envelope.cid)
            return
        for target in targets:
            msg = wire.Command(
                id=f"{envelope.cid}-{target}",
                target=target,
                name=envelope.name,
                args={},
                timeout=RAW_COMMAND_TIMEOUT,
            )
            self._command(envelope, msg)

    def _result(self, envelope: ResultEnvelope) -> None:
        tenant, source, msg = envelope.tenant, envelope.client, envelope.msg
        command_id = msg.id
        claimed = self._registry.close_command(
            tenant, source, command_id, part=msg.part, parts=msg.parts
        )
        if claimed is None:
            error = wire.ErrorMessage(
                code="bad_request",
                message=f"no pending command {command_id!r}: answered, timed out or never sent",
                id=command_id,
            )
            self._delivery.post(envelope.connection, wire.encode(error), envelope.cid)
            return
        pending, complete = claimed
        if complete:
            self._flow.release_inflight(pending.target_connection)
        delivery = wire.ResultDelivery(
            id=command_id,
            source=source,
            ok=msg.ok,
            value=msg.value,
            error=msg.error,
            code=msg.code,
            part=msg.part,
            parts=msg.parts,
        )
        if self._delivery.answer_issuer(
            tenant,
            pending.issuer_client,
            pending.issuer_connection,
            wire.encode(delivery),
            envelope.cid,
        ):
            self._counters.count("Relayed")
            self._delivery.observe_latency(envelope.t)

    def _timeout(self, envelope: Timeout) -> None:
        tenant, target, command_id = envelope.tenant, envelope.target, envelope.id
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
        self._delivery.answer_issuer(
            tenant,
            pending.issuer_client,
            pending.issuer_connection,
            wire.encode(error),
            envelope.cid,
        )

    # -- presence -----------------------------------------------------------------

    def _presence(
        self, tenant: str, client: str, online: bool, envelope: Presence | BrowserGone
    ) -> None:
        at = int(envelope.at or self._clock() * 1000)
        data = wire.encode(wire.Presence(client_id=client, online=online, at=at))
        for _, connection_id, _ in self._registry.list_clients(tenant, "consumer"):
            self._delivery.post(connection_id, data, envelope.cid)

    def _browser_gone(self, envelope: BrowserGone) -> None:
        tenant, client, connection_id = (
            envelope.tenant,
            envelope.client,
            envelope.connection,
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
            self._delivery.answer_issuer(
                tenant,
                pending.issuer_client,
                pending.issuer_connection,
                wire.encode(error),
                envelope.cid,
            )
        self._presence(tenant, client, False, envelope)
