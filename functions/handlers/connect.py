"""``$connect``: register the connection the authorizer let through.

Returning 200 completes the handshake. Nothing may be posted to the new
connection from here (API Gateway answers 410 until the handshake completes).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from tabrelay import wire

from functions.handlers._events import identity_of, query_parameter, request_context
from functions.handlers._powertools import logger, metrics
from functions.handlers._wiring import Runtime
from functions.models.settings import GatewaySettings

__all__ = ["handler"]

SETTINGS = GatewaySettings.from_env()
RUNTIME = Runtime(SETTINGS)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request_id: str = request_context(event)["requestId"]
    identity = identity_of(event)
    logger.append_keys(
        connection_id=identity.connection_id,
        tenant=identity.tenant,
        role=identity.role,
        client_id=identity.client_id,
        correlation_id=request_id,
    )
    acks = query_parameter(event, wire.ACK_QUERY_PARAMETER) == "1"
    RUNTIME.gateway.connect(identity, acks=acks, correlation_id=request_id)
    logger.info("connected", extra={"acks": acks})
    return {"statusCode": 200}
