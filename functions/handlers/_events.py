"""Reading API Gateway WebSocket events: plain ``dict`` access, no event classes.

Powertools' data classes import every event type they know; a handler reads
five fields, so it reads them here.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported by identity_of: the authorizer reads no identity
    from functions.logic.ports import Identity

__all__ = ["body_of", "identity_of", "message_id", "query_parameter", "request_context"]


def request_context(event: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = event["requestContext"]
    return context


def identity_of(event: dict[str, Any]) -> Identity:
    """The identity the ``$connect`` authorizer established (every later route gets it).

    Raises KeyError when the event carries no authorizer context: the route is
    not behind the authorizer, a deployment error.
    """
    from functions.logic.ports import Identity

    context = event["requestContext"]
    authorizer = context["authorizer"]
    role = authorizer["role"]
    if role not in ("browser", "consumer"):
        raise KeyError("role")
    return Identity(
        connection_id=context["connectionId"],
        tenant=authorizer["tenant"],
        role=role,
        client_id=authorizer["client_id"],
    )


def message_id(event: dict[str, Any]) -> str:
    """The message's id (a MESSAGE event), else the request's."""
    context = request_context(event)
    value: str = context.get("messageId") or context["requestId"]
    return value


def query_parameter(event: dict[str, Any], name: str) -> str | None:
    value: str | None = (event.get("queryStringParameters") or {}).get(name)
    return value


def body_of(event: dict[str, Any]) -> str | bytes:
    """The frame: text, or bytes for a binary frame (API Gateway base64-encodes those).

    A binary frame stays bytes: the gateway refuses invalid UTF-8 as bad_request.
    """
    body: str = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body
