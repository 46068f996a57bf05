"""Every message route (``$default`` and the protocol's actions).

On the routes with a route response the reply, if any, is the response body:
API Gateway sends it back to the sender, which costs no Management API call. The
one-way routes (``snapshot``, ``command``, ``result``, ``ack``) have none, so the
gateway posts their errors to the sender instead (``Gateway.reply``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from tabrelay import wire

from functions.handlers._events import body_of, identity_of, request_context
from functions.handlers._events import message_id as message_id_of
from functions.handlers._powertools import logger, metrics
from functions.handlers._wiring import Runtime
from functions.models.settings import GatewaySettings

__all__ = ["handler"]

SETTINGS = GatewaySettings.from_env()
RUNTIME = Runtime(SETTINGS)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    identity = identity_of(event)
    message_id = message_id_of(event)
    route = str(request_context(event).get("routeKey") or "$default")
    logger.append_keys(
        connection_id=identity.connection_id,
        tenant=identity.tenant,
        role=identity.role,
        client_id=identity.client_id,
        correlation_id=message_id,
    )
    try:
        reply = RUNTIME.gateway.receive(
            identity,
            body_of(event),
            message_id=message_id,
            remaining_ms=context.get_remaining_time_in_millis,
            route=route,
        )
    except Exception:
        # A client deserves a precise error, never API Gateway's generic one.
        logger.exception("message failed")
        error = wire.encode(
            wire.ErrorMessage(code="internal", message=f"internal error (ref {message_id})")
        )
        try:
            reply = RUNTIME.gateway.reply(identity, error, route=route, message_id=message_id)
        except Exception:  # posting failed too: the route response is all that is left
            logger.exception("posting the error failed")
            reply = error
    if reply is None:
        return {"statusCode": 200}
    return {"statusCode": 200, "body": reply}
