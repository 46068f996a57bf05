"""``$disconnect``: forget the connection (best effort in AWS; TTL and 410s catch the rest)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.handlers._events import request_context
from functions.handlers._powertools import logger, metrics
from functions.handlers._wiring import Runtime
from functions.models.settings import GatewaySettings

__all__ = ["handler"]

SETTINGS = GatewaySettings.from_env()
RUNTIME = Runtime(SETTINGS)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = request_context(event)
    connection_id: str = request["connectionId"]
    request_id: str = request["requestId"]
    authorizer = request.get("authorizer") or {}
    logger.append_keys(
        connection_id=connection_id,
        tenant=authorizer.get("tenant"),
        role=authorizer.get("role"),
        correlation_id=request_id,
    )
    RUNTIME.gateway.disconnect(connection_id, correlation_id=request_id)
    logger.info(
        "disconnected",
        extra={
            "status": request.get("disconnectStatusCode"),
            "reason": request.get("disconnectReason"),
        },
    )
    return {"statusCode": 200}
