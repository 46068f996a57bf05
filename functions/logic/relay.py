"""The workers' rules: fan-out, command routing, flow control and retries.

:meth:`Relay.handle_bus` consumes what the message handler published on the
bus (the router function: snapshots and presence); :meth:`Relay.handle_command`
consumes the command lane (the commands function: commands and results, which
never wait behind a fan-out); :meth:`Relay.handle_delivery` consumes the
delivery queue (retries, parked snapshots, command timeouts). Promises kept here:

* a snapshot reaches every consumer that wants it, within each consumer's
  window; beyond the window the newest snapshot per browser waits (is parked)
  and older ones are dropped and counted in the next delivery's ``missed``;
* a command is answered exactly once for its sender: the browser's result, or
  ``target_offline``, ``busy``, ``conflict`` or ``timeout``, even when a worker
  dies between any two steps (the command's item records each step; see
  docs/architecture.md); it is posted to the browser at most once, and a reused
  id is answered ``conflict``;
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
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from tabrelay import wire

from functions.logic import presence
from functions.logic.delivery import Delivery, DeliveryFailedError
from functions.logic.envelopes import (
    BrowserGone,
    BusEnvelope,
    CommandEnvelope,
    CommandLaneEnvelope,
    DeliveryEnvelope,
    Park,
    Post,
    Presence,
    PresenceFanOut,
    RawCommand,
    ResultEnvelope,
    SnapshotEnvelope,
    Timeout,
)
from functions.logic.limits import Limits
from functions.logic.ports import (
    MAX_DELAY_SECONDS,
    CommandKey,
    ConnectionGoneError,
    DeliveryRetryableError,
    Once,
    PendingCommand,
    Ports,
)

__all__ = ["DeliveryFailedError", "PresenceFanOutError", "Relay"]

RAW_COMMAND_TIMEOUT = wire.DEFAULT_COMMAND_TIMEOUT
#: How long a command's item outlives its timeout: the same id sent again to that
#: browser within this time is a reuse and gets ``conflict`` (docs/protocol.md).
COMMAND_MEMORY_SECONDS = 3600


class PresenceFanOutError(Exception):
    """The coalesced presence of this record's tenant failed: the record is retried."""


class Relay:
    """The router's (bus) and the delivery function's rules; posts go through
    :class:`~functions.logic.delivery.Delivery`."""

    def __init__(
        self,
        ports: Ports,
        limits: Limits,
        *,
        delivery: Delivery,
        once: Once,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = ports.registry
        self._flow = ports.flow
        self._delivery = delivery
        self._bus = ports.bus
        self._poster = ports.poster
        self._once = once
        self._counters = ports.counters
        self._limits = limits
        self._clock = clock
        #: Tenants whose presence this batch fanned out: None, or why it failed
        #: (per thread: the local emulator runs batches side by side).
        self._batch = threading.local()

    # -- entry points -----------------------------------------------------------

    def begin_batch(self) -> None:
        """Start a queue batch (routing lookups are shared within one batch)."""
        self._delivery.begin_batch()
        self._batch.presence_done = {}

    def prepare_bus(self, batch: Sequence[BusEnvelope]) -> None:
        """Before a bus batch's records run: fan out its presence, coalesced per tenant.

        Each browser's latest change (``presence`` and the offline of
        ``browser_gone``) goes to the tenant's consumers, one Query per tenant;
        the first chunk is posted here, the rest goes back on the bus as
        ``presence_fan_out`` chunks. A tenant whose fan-out fails makes each of
        its presence records fail (and come back), so nothing is lost.
        """
        by_tenant: dict[str, list[Presence | BrowserGone]] = {}
        for envelope in batch:
            if isinstance(envelope, Presence | BrowserGone):
                by_tenant.setdefault(envelope.tenant, []).append(envelope)
        for tenant, records in by_tenant.items():
            try:
                changes = [(tenant, c) for r in records if (c := self._change_of(r)) is not None]
                for latest in presence.coalesce(changes).values():
                    self._fan_out_presence(tenant, latest, records[-1].cid)
            except Exception as exc:  # every presence record of the tenant fails with it
                self._presence_done[tenant] = exc
            else:
                self._presence_done[tenant] = None

    def _change_of(self, envelope: Presence | BrowserGone) -> wire.Presence | None:
        """The presence note a record stands for; None for the offline of a browser
        that is connected again (its ``$disconnect`` ran while it reconnected, so
        the offline may carry a later ``at`` than the online of its new connection)."""
        at = int(envelope.at or self._clock() * 1000)
        if isinstance(envelope, Presence):
            return wire.Presence(client_id=envelope.client, online=envelope.online, at=at)
        current = self._registry.lookup_client(envelope.tenant, "browser", envelope.client)
        if current is not None and current != envelope.connection:
            return None
        return wire.Presence(client_id=envelope.client, online=False, at=at)

    @property
    def _presence_done(self) -> dict[str, Exception | None]:
        done: dict[str, Exception | None] | None = getattr(self._batch, "presence_done", None)
        if done is None:
            done = self._batch.presence_done = {}
        return done

    def handle_bus(self, envelope: BusEnvelope) -> None:
        """Route one envelope from the bus (commands and results too: the bus
        carried them before the command lane existed, and a deploy drains it)."""
        match envelope:
            case SnapshotEnvelope():
                self._delivery.fan_out(envelope)
            case CommandEnvelope() | RawCommand() | ResultEnvelope():
                self.handle_command(envelope)
            case Presence():
                self._presence(envelope)
            case BrowserGone():
                self._browser_gone(envelope)
            case PresenceFanOut():
                self._post_presence(envelope.changes, envelope.to, envelope.cid)

    def handle_command(self, envelope: CommandLaneEnvelope) -> None:
        """Route one envelope from the command lane."""
        match envelope:
            case CommandEnvelope():
                self._command(envelope, envelope.msg)
            case RawCommand():
                self._raw_command(envelope)
            case ResultEnvelope():
                self._result(envelope)

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

    # A command's item is the one record of its life (docs/architecture.md, "A
    # command's item"): open -> in-flight slot taken -> post claimed -> ended (by
    # what, with the answer recorded) -> answer delivered. Each step is a
    # conditional write that a redelivered envelope repeats or skips, so a worker
    # that dies anywhere leaves a state its retry finishes, and every command gets
    # exactly one terminal answer.

    def _command(self, envelope: CommandEnvelope | RawCommand, msg: wire.Command) -> None:
        tenant, issuer_client = envelope.tenant, envelope.client
        command_id: str = msg.id
        key = f"{tenant}/{issuer_client}/{command_id}"
        first = self._once(key, lambda: self._deliver_command(envelope, msg))
        if first.get("cid", envelope.cid) != envelope.cid:
            # Not SQS redelivering this message: the consumer sent the id again.
            self._refuse_reuse(
                envelope,
                command_id,
                f"command id {command_id!r} was already used by your command to browser "
                f"{first.get('target', '?')!r}; use a new id for every command",
            )

    def _refuse_reuse(
        self, envelope: CommandEnvelope | RawCommand, command_id: str, message: str
    ) -> None:
        """A reused id gets ``conflict``; the command that had it is unaffected."""
        self._counters.count("Errors", code="conflict")
        error = wire.ErrorMessage(code="conflict", message=message, id=command_id)
        self._delivery.answer_issuer(
            envelope.tenant,
            envelope.client,
            envelope.connection,
            wire.encode(error),
            envelope.cid,
        )

    def _deliver_command(
        self, envelope: CommandEnvelope | RawCommand, msg: wire.Command
    ) -> dict[str, Any]:
        """Open the command's item, take a slot, post to the browser, arm the timeout.

        Run again on a redelivery (a worker died), it resumes from the item.
        Returns what Powertools keeps for the id: the message that used it first.
        """
        cid = envelope.cid
        done = {"cid": cid, "target": msg.target}
        command = self._open_command(envelope, msg)
        if command is None or not self._admit(command, cid):
            return done
        claimed, state = self._registry.claim_send(command.key)
        if state is None:
            return done
        if state.ended:
            # It ended (the browser left) while this worker took its slot: give it back.
            self._flow.release_inflight(command.target_connection, command.command_id)
            if state.ended_by == "command":
                self._finish(state, cid)
            return done
        # A redelivery that finds the post claimed never posts again.
        if claimed and not self._post_command(envelope, msg, state):
            return done
        # Every run arms the timeout: a duplicate check finds the command ended.
        self._bus.schedule(
            Timeout(cid, envelope.tenant, command.target_client, command.command_id),
            delay_seconds=min(MAX_DELAY_SECONDS, math.ceil(float(msg.timeout))),
        )
        return done

    def _open_command(
        self, envelope: CommandEnvelope | RawCommand, msg: wire.Command
    ) -> PendingCommand | None:
        """Open the command's item, or find it (a redelivery); None when there is
        nothing left to do: the id is someone else's, or the command has ended."""
        tenant, cid = envelope.tenant, envelope.cid
        target: str = msg.target
        command_id: str = msg.id
        target_connection = self._registry.lookup_client(tenant, "browser", target) or ""
        fresh = PendingCommand(
            tenant=tenant,
            target_client=target,
            command_id=command_id,
            issuer_connection=envelope.connection,
            issuer_client=envelope.client,
            target_connection=target_connection,
            cid=cid,
        )
        if not target_connection:  # refused at once, but recorded: a retry answers the same
            answer = self._error_data(
                "target_offline", f"browser {target!r} is not connected", command_id
            )
            fresh = replace(fresh, ended_by="command", code="target_offline", answer=answer)
        ttl = int(self._clock() + float(msg.timeout)) + COMMAND_MEMORY_SECONDS
        existing = self._registry.open_command(fresh, ttl)
        command = fresh if existing is None else existing
        if command.cid != cid or command.issuer_client != envelope.client:
            other = "another consumer" if command.issuer_client != envelope.client else "you"
            self._refuse_reuse(
                envelope,
                command_id,
                f"command id {command_id!r} is already used for browser {target!r} by "
                f"{other}; use a new id for every command",
            )
            return None
        if existing is None and command.ended:
            self._counters.count("Errors", code="target_offline")
        if command.ended:
            if command.ended_by == "command":
                self._finish(command, cid)
            return None  # else its result, timeout or browser_gone answers it
        return command

    def _admit(self, command: PendingCommand, cid: str) -> bool:
        """Take one of the browser's in-flight slots; without one, end the command
        (``target_offline`` or ``busy``) and return False."""
        target = command.target_client
        try:
            admitted: bool | None = self._flow.add_inflight(
                command.target_connection, command.command_id, self._limits.max_inflight_commands
            )
        except ConnectionGoneError:
            admitted = None
        if admitted:
            return True
        if admitted is None:
            code: wire.ErrorCode = "target_offline"
            text = f"browser {target!r} disconnected"
        else:
            code = "busy"
            text = (
                f"browser {target!r} has {self._limits.max_inflight_commands} commands "
                "in flight; retry after some results"
            )
        self._end(command, by="command", code=code, message=text, cid=cid)
        return False

    def _post_command(
        self, envelope: CommandEnvelope | RawCommand, msg: wire.Command, command: PendingCommand
    ) -> bool:
        """Post a claimed command to its browser; False when the browser is gone
        (the command is then ended ``target_offline``)."""
        cid = envelope.cid
        delivery = wire.CommandDelivery(
            id=command.command_id,
            source=envelope.client,
            name=msg.name,
            args=msg.args,
            timeout=float(msg.timeout),
        )
        data = wire.encode(delivery)
        try:
            self._poster.post(command.target_connection, data)
        except ConnectionGoneError:
            self._delivery.forget(command.target_connection)
            self._end(
                command,
                by="command",
                code="target_offline",
                message=f"browser {command.target_client!r} disconnected",
                cid=cid,
            )
            return False
        except DeliveryRetryableError:
            self._delivery.schedule_retry(command.target_connection, data, cid)
        self._counters.count("Relayed")
        self._delivery.observe_latency(_sent_at(envelope))
        return True

    def _end(
        self,
        command: PendingCommand,
        *,
        by: str,
        code: wire.ErrorCode,
        message: str,
        cid: str,
    ) -> None:
        """End an open command with an error answer: recorded first, then posted.

        Nothing happens when something else ended it first (that one answers).
        """
        answer = self._error_data(code, message, command.command_id)
        ended, state = self._registry.end_command(command.key, by=by, code=code, answer=answer)
        if state is None or state.ended_by != by:
            return
        if ended:
            self._counters.count("Errors", code=code)
        self._finish(state, cid)

    def _finish(self, command: PendingCommand, cid: str) -> None:
        """Give back the browser's slot, then post the recorded answer unless it was
        delivered. Each step can be repeated: a redelivery calls this again."""
        if command.target_connection:
            self._flow.release_inflight(command.target_connection, command.command_id)
        if command.delivered or command.answer is None:
            return
        self._delivery.answer_issuer(
            command.tenant,
            command.issuer_client,
            command.issuer_connection,
            command.answer,
            cid,
        )
        self._registry.mark_answered(command.key)

    @staticmethod
    def _error_data(code: wire.ErrorCode, message: str, command_id: str) -> str:
        return wire.encode(wire.ErrorMessage(code=code, message=message, id=command_id))

    @staticmethod
    def _progress(command: PendingCommand) -> str:
        """How much of its result a command got, for the message of its error."""
        if not command.claimed:
            return ""
        return f" ({len(command.claimed)} of {command.parts} result parts arrived)"

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
        tenant, source, msg, cid = (
            envelope.tenant,
            envelope.client,
            envelope.msg,
            envelope.cid,
        )
        command_id: str = msg.id
        part: int = msg.part
        parts: int = msg.parts
        key = CommandKey(tenant, source, command_id)
        claimed, command = self._registry.claim_part(
            key, part=part, parts=parts, cid=cid, ends=parts == 1
        )
        if command is None:
            self._refuse_part(
                envelope,
                command_id,
                f"no pending command {command_id!r}: answered, timed out or never sent",
            )
            return
        if not claimed and command.claimed.get(part) != cid:
            self._refuse_part(envelope, command_id, self._refusal(command, part, parts))
            return
        # Claimed now, or by this very message before its worker died (a redelivery).
        if not command.ended and len(command.claimed) >= (command.parts or parts):
            # Every part is in: the result ends the command (whichever part sees it first).
            _, state = self._registry.end_command(key, by="result", code="result", answer=None)
            if state is None:
                return
            command = state
        if command.ended and command.ended_by != "result":
            # It ended (timeout, browser gone) after this part was claimed: the
            # issuer has its one terminal answer, so the part is not relayed.
            return
        if command.ended:
            self._flow.release_inflight(command.target_connection, command_id)
        if part in command.posted:
            return
        delivery = wire.ResultDelivery(
            id=command_id,
            source=source,
            ok=msg.ok,
            value=msg.value,
            error=msg.error,
            code=msg.code,
            part=part,
            parts=parts,
        )
        posted = self._delivery.answer_issuer(
            tenant,
            command.issuer_client,
            command.issuer_connection,
            wire.encode(delivery),
            cid,
        )
        self._registry.mark_part_posted(key, part)
        if posted:
            self._counters.count("Relayed")
            self._delivery.observe_latency(_sent_at(envelope))

    @staticmethod
    def _refusal(command: PendingCommand, part: int, parts: int) -> str:
        """Why a result part was refused, precisely."""
        command_id = command.command_id
        if command.ended:
            how = {"result": "was answered", "timeout": "timed out"}.get(
                command.code or "", f"ended with {command.code}"
            )
            return f"no pending command {command_id!r}: it {how}"
        if command.parts is not None and command.parts != parts:
            return (
                f"result {command_id!r} part {part}: parts={parts} disagrees with "
                f"parts={command.parts} of its first part"
            )
        return f"result {command_id!r}: part {part} was already received"

    def _refuse_part(self, envelope: ResultEnvelope, command_id: str, message: str) -> None:
        self._counters.count("Errors", code="bad_request")
        error = wire.ErrorMessage(code="bad_request", message=message, id=command_id)
        self._delivery.post(envelope.connection, wire.encode(error), envelope.cid)

    def _timeout(self, envelope: Timeout) -> None:
        tenant, target, command_id = envelope.tenant, envelope.target, envelope.id
        command = self._registry.get_command(CommandKey(tenant, target, command_id))
        if command is None:
            return
        if command.ended:
            if command.ended_by == "timeout":  # a redelivery: finish what was started
                self._finish(command, envelope.cid)
            return  # answered in time, or ended otherwise
        if command.claimed:
            message = (
                f"browser {target!r} did not finish its result to command {command_id!r} "
                f"in time{self._progress(command)}"
            )
        else:
            message = f"browser {target!r} did not answer command {command_id!r} in time"
        self._end(command, by="timeout", code="timeout", message=message, cid=envelope.cid)

    # -- presence -----------------------------------------------------------------

    def _presence(self, envelope: Presence | BrowserGone) -> None:
        """One presence record: done by :meth:`prepare_bus` (coalesced with its
        batch), failed with it, or (not prepared) fanned out alone."""
        tenant = envelope.tenant
        if tenant in self._presence_done:
            failure = self._presence_done[tenant]
            if failure is not None:
                raise PresenceFanOutError(f"presence of tenant {tenant!r} failed") from failure
            return
        change = self._change_of(envelope)
        if change is not None:
            self._fan_out_presence(tenant, [change], envelope.cid)

    def _fan_out_presence(self, tenant: str, changes: Sequence[wire.Presence], cid: str) -> None:
        """Post ``changes`` to every consumer of the tenant: the first chunk now, the
        others as ``presence_fan_out`` envelopes on the bus (bounded work per record)."""
        consumers = [c for _, c, _ in self._registry.list_clients(tenant, "consumer")]
        if not consumers:
            return
        first, *rest = presence.chunks(changes, consumers, self._limits.presence_chunk)
        for chunk in rest:
            self._bus.publish(PresenceFanOut(cid, tenant, chunk.changes, chunk.to))
        self._post_presence(first.changes, first.to, cid)

    def _post_presence(self, changes: Sequence[wire.Presence], to: Sequence[str], cid: str) -> None:
        encoded = [wire.encode(change) for change in changes]
        self._delivery.post_all([(c, data) for c in to for data in encoded], cid)

    def _browser_gone(self, envelope: BrowserGone) -> None:
        tenant, client, connection_id = (
            envelope.tenant,
            envelope.client,
            envelope.connection,
        )
        for command in self._registry.commands(tenant, client):
            if command.target_connection != connection_id:
                continue
            if command.ended:
                if command.ended_by == "gone" and not command.delivered:
                    self._finish(command, envelope.cid)  # a redelivery
                continue
            self._end(
                command,
                by="gone",
                code="target_offline",
                message=f"browser {client!r} disconnected before answering"
                + self._progress(command),
                cid=envelope.cid,
            )
        self._presence(envelope)


def _sent_at(envelope: CommandEnvelope | RawCommand | ResultEnvelope) -> int | None:
    """When the gateway took a client's message (ms), for the latency metric."""
    return None if isinstance(envelope, RawCommand) else envelope.t
