"""``$connect``: register the connection the authorizer let through.

Returning 200 completes the handshake. Nothing may be posted to the new
connection from here (API Gateway answers 410 until the handshake completes).
"""

from __future__ import annotations

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
    logger.append_keys(
        connection_id=identity.connection_id,
        tenant=identity.tenant,
        role=identity.role,
        client_id=identity.client_id,
        correlation_id=ws.request_context.request_id,
    )
    query = ws.query_string_parameters or {}
    acks = query.get(wire.ACK_QUERY_PARAMETER) == "1"
    RUNTIME.gateway.connect(identity, acks=acks, correlation_id=ws.request_context.request_id)
    logger.info("connected", extra={"acks": acks})
    return {"statusCode": 200}
