"""Events shaped as API Gateway and SQS hand them to the handlers, and the Lambda context."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulation.environment import ACCOUNT, API_ID, REGION, STAGE

__all__ = [
    "LambdaContext",
    "authorizer_event",
    "connect_event",
    "disconnect_event",
    "message_event",
    "request_context",
    "sqs_event",
    "sqs_record",
]


@dataclass
class LambdaContext:
    function_name: str = "tabrelay-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:tabrelay-test"
    aws_request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    log_group_name: str = "/aws/lambda/tabrelay-test"
    log_stream_name: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def request_context(
    connection_id: str, route: str, event_type: str, *, connected_at: int, now: int
) -> dict[str, Any]:
    """A WebSocket ``requestContext`` (times in epoch milliseconds); no authorizer yet."""
    context: dict[str, Any] = {
        "routeKey": route,
        "eventType": event_type,
        "connectionId": connection_id,
        "connectedAt": connected_at,
        "requestTimeEpoch": now,
        "requestId": uuid.uuid4().hex,
        "extendedRequestId": uuid.uuid4().hex,
        "messageDirection": "IN",
        "stage": STAGE,
        "apiId": API_ID,
        "domainName": f"{API_ID}.execute-api.{REGION}.amazonaws.com",
        "identity": {"sourceIp": "127.0.0.1", "userAgent": "simulation"},
    }
    if event_type == "MESSAGE":
        context["messageId"] = uuid.uuid4().hex[:16]
    return context


def authorizer_event(token: str | None, context: dict[str, Any]) -> dict[str, Any]:
    """The REQUEST authorizer's event for ``$connect`` (no query string without a token)."""
    return {
        "type": "REQUEST",
        "methodArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{STAGE}/$connect",
        "headers": {"Host": "example"},
        "queryStringParameters": {"token": token} if token is not None else {},
        "requestContext": context,
    }


def connect_event(context: dict[str, Any], *, acks: bool) -> dict[str, Any]:
    """``$connect`` once the authorizer allowed it (``context`` carries its ``authorizer``)."""
    query = {"token": "x"} | ({"acks": "1"} if acks else {})
    return {
        "headers": {"Host": "example"},
        "queryStringParameters": query,
        "requestContext": context,
        "isBase64Encoded": False,
    }


def message_event(context: dict[str, Any], body: str, *, binary: bool = False) -> dict[str, Any]:
    """One inbound frame; a binary frame's ``body`` is its base64 text."""
    return {"requestContext": context, "body": body, "isBase64Encoded": binary}


def disconnect_event(context: dict[str, Any], *, reason: str) -> dict[str, Any]:
    context = context | {"disconnectStatusCode": 1000, "disconnectReason": reason}
    return {"requestContext": context, "isBase64Encoded": False}


def sqs_record(
    message_id: str,
    body: str,
    *,
    receipt_handle: str | None = None,
    receive_count: str = "1",
    queue: str = "q",
) -> dict[str, Any]:
    """One record of an SQS event source mapping's batch."""
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle or f"rh-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": receive_count},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
        "awsRegion": REGION,
    }


def sqs_event(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"Records": list(records)}
