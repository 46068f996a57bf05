"""Every message route (``$default`` and the protocol's actions).

The reply, if any, is the response body: API Gateway sends it back to the
sender through the route response, which costs no Management API call.
"""

from __future__ import annotations

import base64
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.handlers._runtime import Runtime, identity_of, logger, metrics, tracer
from functions.models import wire
from functions.models.settings import GatewaySettings

__all__ = ["handler"]

SETTINGS = GatewaySettings.from_env()
RUNTIME = Runtime.build(SETTINGS)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ws = APIGatewayWebSocketEvent(event)
    identity = identity_of(event)
    message_id = ws.request_context.message_id or ws.request_context.request_id
    logger.append_keys(
        connection_id=identity.connection_id,
        tenant=identity.tenant,
        role=identity.role,
        client_id=identity.client_id,
        correlation_id=message_id,
    )
    try:
        # A binary frame stays bytes: the gateway refuses invalid UTF-8 as bad_request.
        body: str | bytes = (
            base64.b64decode(ws.body or "") if ws.is_base64_encoded else (ws.body or "")
        )
        reply = RUNTIME.gateway.receive(
            identity,
            body,
            message_id=message_id,
            remaining_ms=context.get_remaining_time_in_millis,
        )
    except Exception:
        # A client deserves a precise error, never API Gateway's generic one.
        logger.exception("message failed")
        reply = wire.encode(
            wire.ErrorMessage(code="internal", message=f"internal error (ref {message_id})")
        )
    if reply is None:
        return {"statusCode": 200}
    return {"statusCode": 200, "body": reply}
