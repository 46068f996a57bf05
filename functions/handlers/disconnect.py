"""``$disconnect``: forget the connection (best effort in AWS; TTL and 410s catch the rest)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.handlers._runtime import Runtime, logger, metrics, tracer
from functions.models.settings import GatewaySettings

__all__ = ["handler"]

SETTINGS = GatewaySettings.from_env()
RUNTIME = Runtime.build(SETTINGS)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ws = APIGatewayWebSocketEvent(event)
    connection_id = ws.request_context.connection_id
    authorizer = event["requestContext"].get("authorizer") or {}
    logger.append_keys(
        connection_id=connection_id,
        tenant=authorizer.get("tenant"),
        role=authorizer.get("role"),
        correlation_id=ws.request_context.request_id,
    )
    RUNTIME.gateway.disconnect(connection_id, correlation_id=ws.request_context.request_id)
    logger.info(
        "disconnected",
        extra={
            "status": ws.request_context.disconnect_status_code,
            "reason": ws.request_context.disconnect_reason,
        },
    )
    return {"statusCode": 200}
