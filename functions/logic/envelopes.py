"""Envelopes: what the gateway's own queues carry (never seen by clients).

Every envelope is a JSON object with a ``kind`` and a correlation id ``cid``
(the API Gateway message id that caused it), so one client message can be
followed through every log line it produces.

Bus (message handler -> router): ``snapshot``, ``command``, ``raw_command``,
``result``, ``presence``, ``browser_gone``. A ``snapshot`` with ``to`` (connection
ids) is the rest of an inline fan-out that ran out of time: only those get it.
Delivery queue (router/delivery -> delivery): ``post`` (a retry of a failed
post), ``park`` (a snapshot waiting for a consumer's window), ``timeout``.
"""

from __future__ import annotations

from typing import Any

from functions.logic.ports import Identity
from functions.models import wire

__all__ = [
    "Envelope",
    "browser_gone",
    "command",
    "only_to",
    "park",
    "post",
    "presence",
    "raw_command",
    "result",
    "snapshot",
    "timeout",
]

Envelope = dict[str, Any]


def _sender(identity: Identity) -> Envelope:
    return {
        "tenant": identity.tenant,
        "client": identity.client_id,
        "connection": identity.connection_id,
    }


def snapshot(identity: Identity, message: wire.Snapshot, *, cid: str) -> Envelope:
    return {"kind": "snapshot", "cid": cid, **_sender(identity), "msg": wire.to_dict(message)}


def only_to(envelope: Envelope, connection_ids: list[str]) -> Envelope:
    """The same snapshot envelope, for these recipients only."""
    return {**envelope, "to": connection_ids}


def command(identity: Identity, message: wire.Command, *, cid: str) -> Envelope:
    return {"kind": "command", "cid": cid, **_sender(identity), "msg": wire.to_dict(message)}


def raw_command(identity: Identity, name: str, *, cid: str) -> Envelope:
    return {"kind": "raw_command", "cid": cid, **_sender(identity), "name": name}


def result(identity: Identity, message: wire.Result, *, cid: str) -> Envelope:
    return {"kind": "result", "cid": cid, **_sender(identity), "msg": wire.to_dict(message)}


def presence(tenant: str, client_id: str, *, online: bool, at: int, cid: str) -> Envelope:
    return {
        "kind": "presence",
        "cid": cid,
        "tenant": tenant,
        "client": client_id,
        "online": online,
        "at": at,
    }


def browser_gone(identity: Identity, *, at: int, cid: str) -> Envelope:
    return {"kind": "browser_gone", "cid": cid, **_sender(identity), "at": at}


def post(connection_id: str, data: str, *, attempt: int, cid: str) -> Envelope:
    return {"kind": "post", "cid": cid, "to": connection_id, "data": data, "attempt": attempt}


def park(
    tenant: str,
    consumer_connection: str,
    source: str,
    message: dict[str, Any],
    *,
    parks: int,
    cid: str,
) -> Envelope:
    return {
        "kind": "park",
        "cid": cid,
        "tenant": tenant,
        "to": consumer_connection,
        "source": source,
        "msg": message,
        "parks": parks,
    }


def timeout(tenant: str, target_client: str, command_id: str, *, cid: str) -> Envelope:
    return {
        "kind": "timeout",
        "cid": cid,
        "tenant": tenant,
        "target": target_client,
        "id": command_id,
    }
