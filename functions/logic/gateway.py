"""What happens when a client connects, disconnects or sends a frame.

The gateway validates and authorizes each inbound frame, answers what it can
answer at once (``subscribe``, ``list``, ``ping``, errors), and puts everything
that must reach another connection on the bus, for the router to deliver. It
never posts to other connections itself, except to close a connection that a
newer one superseded or that floods.

A reply travels in the route response only on the routes that always reply
(:data:`ROUTES_WITH_RESPONSE`): on a route with a route response API Gateway may
bill an empty reply to a frame that needs none. The protocol's one-way routes
(:data:`ONE_WAY_ROUTES`) have none, so their errors are posted to the sender
with ``@connections`` by the delivery service instead.
"""

from __future__ import annotations

import base64
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from tabrelay import wire

from functions.logic import envelopes
from functions.logic.limits import Limits
from functions.logic.ports import (
    ConnectionGoneError,
    ConnectionRecord,
    DeliveryRetryableError,
    Identity,
    Ports,
)
from functions.logic.ratelimit import RateLimiter

if TYPE_CHECKING:  # only the message handler fans out: the others never import it
    from functions.logic.delivery import Delivery

__all__ = ["ONE_WAY_ROUTES", "ROUTES_WITH_RESPONSE", "Gateway", "Limits"]

#: Routes deployed with a route response: each of their frames gets a reply
#: (``subscribed``, ``browsers``, a ``pong``, a raw frame's or an unknown action's
#: error), which API Gateway sends back as the integration's response body.
#: ``infra/components/websocket_api.py`` deploys exactly these (a test holds them equal).
ROUTES_WITH_RESPONSE: frozenset[str] = frozenset({"$default", "subscribe", "unsubscribe", "list"})
#: Routes deployed without one: a valid frame gets no reply, and an error is posted.
ONE_WAY_ROUTES: frozenset[str] = frozenset({"snapshot", "command", "result", "ack"})


# A ``list`` cursor is the base64url text of the last client id of a page. It
# carries no tenant: the next page is read from the asking connection's own
# tenant, so a forged cursor can only move within it.
_CLIENT_ID = re.compile(rf"[A-Za-z0-9._:@-]{{1,{wire.MAX_ID_CHARS}}}")


def _cursor_of(client_id: str) -> str:
    return base64.urlsafe_b64encode(client_id.encode("ascii")).decode("ascii").rstrip("=")


def _client_after(cursor: str) -> str | None:
    """The client id a cursor continues after, or None when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        client_id = raw.decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    if not _CLIENT_ID.fullmatch(client_id) or _cursor_of(client_id) != cursor:
        return None
    return client_id


class Gateway:
    """Inbound side: ``$connect``, ``$disconnect`` and every message route."""

    def __init__(
        self,
        ports: Ports,
        limits: Limits,
        *,
        limiter: RateLimiter,
        delivery: Delivery | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``delivery``, when given, fans small snapshots out at once (its inline
        fan-out path); without it, or when that fails, snapshots go through the bus."""
        self._delivery = delivery
        self._registry = ports.registry
        self._flow = ports.flow
        self._bus = ports.bus
        self._poster = ports.poster
        self._limiter = limiter
        self._counters = ports.counters
        self._limits = limits
        self._clock = clock

    # -- lifecycle ----------------------------------------------------------

    def connect(self, identity: Identity, *, acks: bool, correlation_id: str) -> None:
        """Register a connection; a browser's supersedes its older one of the same client id.

        Consumers are not superseded: one consumer identity may run several programs at
        once (``tabrelay watch`` beside ``tabrelay send``), each with its own fan-out
        entries; closing the older one lost whatever it was sent while it reconnected.
        """
        now = self._clock()
        record = ConnectionRecord(identity=identity, connected_at=int(now * 1000), acks=acks)
        superseded = self._registry.register(
            record,
            ttl=int(now) + self._limits.connection_ttl_seconds,
            window=self._limits.max_unacked,
        )
        if superseded is not None and identity.role == "browser":
            # The old socket's $disconnect cleans up after it; its index entry
            # already points at the new connection, so it will not touch that.
            self._poster.disconnect(superseded)
        if identity.role == "browser":
            self._bus.publish(
                envelopes.Presence(
                    correlation_id,
                    identity.tenant,
                    identity.client_id,
                    online=True,
                    at=record.connected_at,
                )
            )

    def disconnect(self, connection_id: str, *, correlation_id: str) -> None:
        """Forget a connection; tell its tenant when a browser went offline."""
        record, owned = self._registry.unregister(connection_id)
        if record is None or not owned or record.identity.role != "browser":
            return
        self._bus.publish(
            envelopes.BrowserGone.of(
                record.identity, at=int(self._clock() * 1000), cid=correlation_id
            )
        )

    # -- messages -----------------------------------------------------------

    def receive(
        self,
        identity: Identity,
        body: str | bytes,
        *,
        message_id: str,
        remaining_ms: Callable[[], int] | None = None,
        route: str = "$default",
    ) -> str | None:
        """Handle one inbound frame; return the route response to send back, if any.

        ``body`` is text, or the bytes of a binary frame. Every frame counts
        against the connection's rate limit, whatever it holds: one that is too
        large, does not decode or is forbidden costs a flooder as much as a valid one.
        ``remaining_ms`` tells the milliseconds left before the function times out
        (Lambda's ``get_remaining_time_in_millis``), so delivery can stop in time.
        ``route`` is the route API Gateway selected: on a route without a route
        response (:data:`ONE_WAY_ROUTES`) a reply is posted instead (see :meth:`reply`).
        """
        answer = self._receive(identity, body, message_id, remaining_ms)
        return self.reply(identity, answer, route=route, message_id=message_id)

    def reply(
        self, identity: Identity, answer: str | None, *, route: str, message_id: str
    ) -> str | None:
        """Send ``answer`` back to the sender the way ``route`` allows.

        Returns it as the route response when the route has one; otherwise posts it
        to the sender (410 forgets the connection, a throttled post is retried through
        the delivery queue) and returns None, since API Gateway would discard it.
        """
        if answer is None or route not in ONE_WAY_ROUTES:
            return answer
        if self._delivery is not None:
            self._delivery.post(identity.connection_id, answer, message_id)
        else:  # no delivery service (a bare gateway): post once, best effort
            with contextlib.suppress(ConnectionGoneError, DeliveryRetryableError):
                self._poster.post(identity.connection_id, answer)
        return None

    def _receive(
        self,
        identity: Identity,
        body: str | bytes,
        message_id: str,
        remaining_ms: Callable[[], int] | None,
    ) -> str | None:
        raw: str | None = None
        message: wire.Message | None = None
        refusal: tuple[wire.ErrorCode, str, str | None] | None = None
        size = len(body) if isinstance(body, bytes) else len(body.encode("utf-8", "surrogatepass"))
        if size > self._limits.max_inbound_bytes:
            refusal = (
                "too_large",
                f"message is larger than {self._limits.max_inbound_bytes} bytes; "
                "send large snapshots compressed and in parts",
                None,
            )
        else:
            try:
                message = wire.decode(body)
            except wire.RawFrame as frame:
                raw = frame.text
            except wire.ProtocolError as exc:
                refusal = (exc.code, exc.message, exc.id)

        ref = getattr(message, "id", None) if refusal is None else refusal[2]
        verdict = self._limiter.check(identity.connection_id)
        if verdict == "disconnect":
            self._close_flooder(identity)
            return None
        if verdict == "limited":
            return self._error(
                "rate_limited",
                f"too many messages: at most {self._limiter.limit} per second per connection",
                ref,
            )
        if refusal is not None:
            return self._error(*refusal)
        if raw is not None:
            return self._raw(identity, raw, message_id, remaining_ms)
        assert message is not None
        allowed = wire.BROWSER_ACTIONS if identity.role == "browser" else wire.CONSUMER_ACTIONS
        if message.action not in allowed:
            return self._error(
                "forbidden", f"a {identity.role} may not send {message.action!r}", ref
            )
        return self._dispatch(identity, message, message_id, remaining_ms)

    def _dispatch(
        self,
        identity: Identity,
        message: wire.Message,
        message_id: str,
        remaining_ms: Callable[[], int] | None,
    ) -> str | None:
        match message:
            case wire.Snapshot():
                self._relay_snapshot(
                    envelopes.SnapshotEnvelope.of(identity, message, cid=message_id), remaining_ms
                )
                return None
            case wire.Result():
                self._bus.publish(
                    envelopes.ResultEnvelope.of(identity, message, cid=message_id, t=self._now_ms())
                )
                return None
            case wire.Command():
                self._bus.publish(
                    envelopes.CommandEnvelope.of(
                        identity, message, cid=message_id, t=self._now_ms()
                    )
                )
                return None
            case wire.Subscribe() | wire.Unsubscribe():
                return self._subscribe(identity, message)
            case wire.List():
                return self._list(identity, message)
            case wire.Ack():
                return self._ack(identity, message)
            case wire.Ping():
                return wire.encode(wire.Pong(id=message.id))
            case wire.Keepalive():
                return None  # deployed, its route never calls a Lambda: nothing to do
        return self._error(  # pragma: no cover - every inbound action is matched above
            "unknown_action", f"unhandled action {message.action!r}", None
        )

    def _raw(
        self,
        identity: Identity,
        text: str,
        message_id: str,
        remaining_ms: Callable[[], int] | None,
    ) -> str | None:
        """The seed's raw frames: HTML from a browser, a command name from a consumer."""
        if identity.role == "browser":
            snapshot = wire.Snapshot(
                sid=f"raw-{message_id}", seq=int(self._clock() * 1000), data=text, enc="none"
            )
            # Raw HTML is escaped into a JSON envelope (quotes double, control
            # characters grow sixfold): what reaches consumers must still fit.
            escaped = len(wire.encode(snapshot).encode("utf-8"))
            if escaped > self._limits.max_inbound_bytes:
                return self._error(
                    "too_large",
                    f"this raw frame is {escaped} bytes once escaped into a snapshot, more "
                    f"than {self._limits.max_inbound_bytes}; send JSON snapshots compressed "
                    "and in parts",
                    None,
                )
            self._relay_snapshot(
                envelopes.SnapshotEnvelope.of(identity, snapshot, cid=message_id), remaining_ms
            )
            return None
        name = text.strip()
        if not name or len(name) > wire.MAX_NAME_CHARS:
            return self._error(
                "bad_request",
                "a raw frame from a consumer is a command name of 1 to "
                f"{wire.MAX_NAME_CHARS} characters",
                None,
            )
        self._bus.publish(envelopes.RawCommand.of(identity, name, cid=message_id))
        return None

    def _subscribe(self, identity: Identity, message: wire.Subscribe | wire.Unsubscribe) -> str:
        record = self._registry.get(identity.connection_id)
        if record is None:
            return self._error("internal", "connection is not registered", message.id)
        wanted = frozenset(message.browsers)
        if isinstance(message, wire.Subscribe):
            # The first subscribe narrows "every browser" to what was asked for.
            current = record.subscriptions or frozenset()
            updated = current | wanted
        else:
            current = record.subscriptions if record.subscriptions is not None else frozenset({"*"})
            updated = current - wanted
        followed = len(updated - {"*"})
        if followed > wire.MAX_SUBSCRIPTIONS:
            return self._error(
                "bad_request",
                f"a connection follows at most {wire.MAX_SUBSCRIPTIONS} browser ids "
                f"(this would make {followed}); unsubscribe some first or subscribe to '*'",
                message.id,
            )
        self._registry.set_subscriptions(
            record, updated, ttl=int(self._clock()) + self._limits.connection_ttl_seconds
        )
        if self._delivery is not None:
            # This container's cached recipients of what changed; other containers
            # see the change when their entries expire (RECIPIENT_CACHE_SECONDS).
            before = record.subscriptions if record.subscriptions is not None else {"*"}
            self._delivery.invalidate_recipients(identity.tenant, before | updated)
        return wire.encode(wire.Subscribed(browsers=sorted(updated), id=message.id))

    def _list(self, identity: Identity, message: wire.List) -> str:
        """One page of the tenant's browsers: every reply fits one 32 KB frame."""
        after: str | None = None
        if message.cursor is not None:
            after = _client_after(message.cursor)
            if after is None:
                return self._error(
                    "bad_request",
                    "list.cursor is not a cursor this gateway issued: pass a reply's 'next' "
                    "unchanged",
                    message.id,
                )
        clients, last = self._registry.list_clients_page(
            identity.tenant, "browser", after=after, limit=message.limit or wire.LIST_PAGE_MAX
        )
        infos = [wire.BrowserInfo(client_id=c, connected_at=at) for c, at in clients]
        cursor = None if last is None else _cursor_of(last)
        return wire.encode(wire.Browsers(browsers=infos, id=message.id, next=cursor))

    def _ack(self, identity: Identity, message: wire.Ack) -> str | None:
        outcome = self._flow.ack(identity.connection_id, message.seq, self._limits.max_unacked)
        if outcome == "ahead":
            return self._error(
                "bad_request", f"ack.seq {message.seq} is beyond the last delivery", None
            )
        return None

    def _close_flooder(self, identity: Identity) -> None:
        reason = wire.ErrorMessage(
            code="rate_limited",
            message="disconnected: kept sending far over the rate limit after rate_limited errors",
        )
        self._counters.count("Errors", code="rate_limited")
        with contextlib.suppress(ConnectionGoneError, DeliveryRetryableError):
            self._poster.post(identity.connection_id, wire.encode(reason))  # closing it anyway
        self._poster.disconnect(identity.connection_id)

    def _relay_snapshot(
        self, envelope: envelopes.SnapshotEnvelope, remaining_ms: Callable[[], int] | None
    ) -> None:
        """Fan a snapshot out now when that is possible, else through the bus.

        Delivering from here saves an SQS round trip and a router invocation per
        snapshot (most of the cost after API Gateway's own). If the inline fan-out
        fails half way, the bus delivers to every recipient again: a duplicate
        snapshot is harmless, a lost one is not.
        """
        envelope = replace(envelope, t=self._now_ms())
        if self._delivery is not None:
            try:
                if self._delivery.fan_out_inline(envelope, remaining_ms):
                    return
            except Exception:  # any failure: the router retries the whole fan-out
                self._counters.count("DeliveryRetried", kind="snapshot")
        self._bus.publish(envelope)

    def _now_ms(self) -> int:
        """Stamps what goes on the bus, for the delivery-latency metric."""
        return int(self._clock() * 1000)

    def _error(self, code: wire.ErrorCode, message: str, ref: str | None) -> str:
        self._counters.count("Errors", code=code)
        return wire.encode(wire.ErrorMessage(code=code, message=message, id=ref))
