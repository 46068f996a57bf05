"""The ``$connect`` REQUEST authorizer: verify the token in ``?token=``.

Allows exactly the connecting route (``methodArn``) and hands tenant, role and
client id to every later route as the authorizer context. An invalid token is
answered with an explicit ``Deny`` policy, which API Gateway turns into HTTP 403:
a refused token is a normal answer, not a function error, so a flood of bad
tokens (or clients still holding tokens of a retired key) neither counts as
Lambda errors nor pages anyone (a missing token never reaches here: the
identity source is required, and API Gateway answers 401 itself). Only a
failure to read the keys raises, and that is an error worth an alarm.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.dal.clients import secrets_manager
from functions.dal.secrets import SigningKeySource
from functions.handlers._events import query_parameter
from functions.handlers._powertools import logger
from functions.logic.auth import InvalidTokenError, verify_with
from functions.models.settings import AuthorizerSettings

__all__ = ["REFUSED_PRINCIPAL", "handler"]

#: The principal of a Deny policy (a refused token names no one we trust).
REFUSED_PRINCIPAL = "refused"

SETTINGS = AuthorizerSettings.from_env()
# The client is built by the first connect's key read; the keys are cached.
KEYS = SigningKeySource(
    secrets_manager(),
    SETTINGS.signing_secret_id,
    max_age=SETTINGS.secret_max_age_seconds,
)


def _policy(principal: str, effect: str, resource: str, context: dict[str, str]) -> dict[str, Any]:
    # Powertools' APIGatewayAuthorizerResponse models REST/HTTP method ARNs
    # (".../stage/VERB/path"); a WebSocket route ARN is ".../stage/$connect",
    # so the policy names the method ARN itself.
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        "context": context,
    }


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    token = query_parameter(event, "token")
    try:
        claims = verify_with(token, KEYS, now=time.time())
    except InvalidTokenError as exc:
        logger.info("token refused", extra={"reason": str(exc)})
        return _policy(REFUSED_PRINCIPAL, "Deny", event["methodArn"], {})
    logger.info("token accepted", extra={"tenant": claims.tenant, "role": claims.role})
    return _policy(
        f"{claims.tenant}/{claims.client_id}",
        "Allow",
        event["methodArn"],
        {"tenant": claims.tenant, "role": claims.role, "client_id": claims.client_id},
    )
