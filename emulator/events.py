"""Pure builders of the events API Gateway and Lambda's SQS poller send.

Each function returns a fresh JSON-compatible dict shaped as AWS documents it
(API Gateway WebSocket Lambda proxy events, REQUEST authorizer events, SQS
event source records). No I/O, no clocks: callers pass times and ids, so tests
can compare the shapes to AWS's documented examples.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ConnectionInfo",
    "Stamp",
    "authorizer_event",
    "connect_event",
    "disconnect_event",
    "message_event",
    "new_id",
    "request_time",
    "sqs_event",
    "sqs_record",
]

_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def new_id() -> str:
    """An id shaped like API Gateway's (16 characters ending in ``=``).

    API Gateway's ids are base64; this avoids ``+`` and ``/`` so ids can sit in
    URL paths unquoted, as real ones are used in practice.
    """
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(15)) + "="


def request_time(epoch_ms: int) -> str:
    """The ``requestTime`` format: ``25/Nov/2026:18:00:00 +0000``."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_ms / 1000))


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What API Gateway knows about a connection when it builds an event."""

    connection_id: str
    connected_at: int
    source_ip: str
    user_agent: str
    domain_name: str
    stage: str
    api_id: str
    headers: Mapping[str, list[str]] = field(default_factory=dict)
    query: Mapping[str, list[str]] = field(default_factory=dict)
    authorizer: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Stamp:
    """One request as API Gateway receives it: when (epoch ms), and the id it gives it."""

    now_ms: int
    request_id: str


def _single(multi: Mapping[str, list[str]]) -> dict[str, str]:
    # API Gateway's single-value maps keep the last value of a repeated key.
    return {k: v[-1] for k, v in multi.items() if v}


def _context(
    info: ConnectionInfo, *, route_key: str, event_type: str, stamp: Stamp
) -> dict[str, Any]:
    identity: dict[str, Any] = {"sourceIp": info.source_ip}
    if event_type != "MESSAGE":  # only $connect and $disconnect name the user agent
        identity["userAgent"] = info.user_agent
    ctx: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": stamp.request_id,
        "requestTime": request_time(stamp.now_ms),
        "messageDirection": "IN",
        "stage": info.stage,
        "connectedAt": info.connected_at,
        "requestTimeEpoch": stamp.now_ms,
        "identity": identity,
        "requestId": stamp.request_id,
        "domainName": info.domain_name,
        "connectionId": info.connection_id,
        "apiId": info.api_id,
    }
    if info.authorizer is not None:
        ctx["authorizer"] = dict(info.authorizer)
    return ctx


def _with_request(event: dict[str, Any], info: ConnectionInfo) -> dict[str, Any]:
    event["headers"] = _single(info.headers)
    event["multiValueHeaders"] = {k: list(v) for k, v in info.headers.items()}
    if info.query:
        event["queryStringParameters"] = _single(info.query)
        event["multiValueQueryStringParameters"] = {k: list(v) for k, v in info.query.items()}
    return event


def authorizer_event(info: ConnectionInfo, *, method_arn: str, stamp: Stamp) -> dict[str, Any]:
    """The event a REQUEST authorizer receives for ``$connect``."""
    event: dict[str, Any] = {
        "type": "REQUEST",
        "methodArn": method_arn,
    }
    _with_request(event, info)
    event["stageVariables"] = {}
    event["requestContext"] = _context(
        ConnectionInfo(**{**_fields(info), "authorizer": None}),
        route_key="$connect",
        event_type="CONNECT",
        stamp=stamp,
    )
    return event


def _fields(info: ConnectionInfo) -> dict[str, Any]:
    return {name: getattr(info, name) for name in ConnectionInfo.__slots__}


def connect_event(info: ConnectionInfo, *, stamp: Stamp) -> dict[str, Any]:
    """The ``$connect`` Lambda proxy event (headers and query string included)."""
    event: dict[str, Any] = {}
    _with_request(event, info)
    event["requestContext"] = _context(
        info, route_key="$connect", event_type="CONNECT", stamp=stamp
    )
    event["isBase64Encoded"] = False
    return event


def message_event(
    info: ConnectionInfo,
    *,
    route_key: str,
    body: str | bytes,
    message_id: str,
    stamp: Stamp,
) -> dict[str, Any]:
    """A ``MESSAGE`` event; binary bodies are base64 with ``isBase64Encoded``."""
    ctx = _context(info, route_key=route_key, event_type="MESSAGE", stamp=stamp)
    ctx = {"routeKey": route_key, "messageId": message_id, **ctx}
    if isinstance(body, bytes):
        return {
            "requestContext": ctx,
            "body": base64.b64encode(body).decode("ascii"),
            "isBase64Encoded": True,
        }
    return {"requestContext": ctx, "body": body, "isBase64Encoded": False}


def disconnect_event(
    info: ConnectionInfo,
    *,
    status_code: int,
    reason: str,
    stamp: Stamp,
) -> dict[str, Any]:
    """The ``$disconnect`` event, with ``disconnectStatusCode`` and ``disconnectReason``."""
    headers = {
        "Host": [info.domain_name],
        "x-api-key": [""],
        "X-Forwarded-For": [""],
        "x-restapi": [""],
    }
    ctx = _context(info, route_key="$disconnect", event_type="DISCONNECT", stamp=stamp)
    ctx["disconnectStatusCode"] = status_code
    ctx["disconnectReason"] = reason
    return {
        "headers": _single(headers),
        "multiValueHeaders": headers,
        "requestContext": ctx,
        "isBase64Encoded": False,
    }


def sqs_record(message: Mapping[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One SQS event record from a ``ReceiveMessage`` result entry."""
    attributes = dict(message.get("Attributes") or {})
    msg_attrs: dict[str, Any] = {}
    for name, attr in (message.get("MessageAttributes") or {}).items():
        entry: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": attr.get("DataType", "String"),
        }
        if "StringValue" in attr:
            entry["stringValue"] = attr["StringValue"]
        if "BinaryValue" in attr:
            raw = attr["BinaryValue"]
            entry["binaryValue"] = (
                base64.b64encode(raw).decode("ascii") if isinstance(raw, bytes) else raw
            )
        msg_attrs[name] = entry
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": msg_attrs,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def sqs_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The event an SQS event source mapping passes to its function."""
    return {"Records": records}
