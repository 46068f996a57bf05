"""Integrations: the seam between the gateway and the functions it invokes.

This is the only module of the gateway that invokes a function. The socket
server hands it a connection's information and a message; it selects the
route, builds the event (:mod:`emulator.events`), invokes the route's
function through :class:`Invocable` (cut at API Gateway's 29 s integration
timeout) or renders a mock integration, and returns plain values: a
:class:`Refusal` or an :class:`Admission` for ``$connect``, the text or bytes
to send back for a message, whether ``$disconnect`` succeeded. Running the
handlers elsewhere (another process) means passing other :class:`Invocable`
objects; nothing else in the gateway changes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from emulator.events import (
    ConnectionInfo,
    Stamp,
    authorizer_event,
    connect_event,
    disconnect_event,
    message_event,
    new_id,
)
from emulator.gateway.authorizer import authorizer_context, identity_missing
from emulator.lambdas import FunctionError
from emulator.template import Api, Integration, Route

__all__ = [
    "INTEGRATION_TIMEOUT_S",
    "Admission",
    "Deployment",
    "Integrations",
    "Invocable",
    "Refusal",
    "error_body",
    "mock_status",
    "now_ms",
    "proxy_reply",
    "render_mock",
    "select_route_key",
]

log = logging.getLogger("emulator.gateway")

#: API Gateway's integration timeout caps every synchronous invocation.
INTEGRATION_TIMEOUT_S = 29.0


class Invocable(Protocol):
    """A function the gateway can invoke (in-process: :class:`emulator.lambdas.LocalFunction`).

    ``invoke`` returns the handler's JSON result, raises
    :class:`emulator.lambdas.FunctionError` if the handler failed.
    """

    @property
    def name(self) -> str: ...

    async def invoke(self, event: Mapping[str, Any]) -> Any: ...


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where the API runs: what its ARNs and events name."""

    api_id: str
    region: str
    account: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """``$connect`` refused: the handshake's HTTP status and message."""

    status: int
    message: str


@dataclass(frozen=True, slots=True)
class Admission:
    """``$connect`` accepted: the connection (with its authorizer context) and subprotocol."""

    info: ConnectionInfo
    subprotocol: str | None


_UNAUTHORIZED = Refusal(401, "Unauthorized")
_FORBIDDEN = Refusal(403, "Forbidden")
_INTERNAL = Refusal(500, "Internal server error")


def now_ms() -> int:
    return int(time.time() * 1000)


def _stamp(request_id: str | None = None) -> Stamp:
    return Stamp(now_ms=now_ms(), request_id=new_id() if request_id is None else request_id)


def error_body(message: str, connection_id: str, request_id: str) -> str:
    """The error API Gateway sends on the socket instead of an integration's answer."""
    return json.dumps(
        {"message": message, "connectionId": connection_id, "requestId": request_id},
        separators=(",", ":"),
    )


def _header(headers: Any, name: str) -> str | None:
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _subprotocol(response: Any) -> str | None:
    """The ``Sec-WebSocket-Protocol`` a ``$connect`` integration returned, if any."""
    if not isinstance(response, dict):
        return None
    chosen = _header(response.get("headers"), "Sec-WebSocket-Protocol")
    if chosen is None:
        values = _header(response.get("multiValueHeaders"), "Sec-WebSocket-Protocol")
        if values is not None:
            chosen = values.strip("[]'\" ")
    return chosen


def _connect_refusal(status: int) -> Refusal:
    if status == 403:
        return Refusal(status, "Forbidden")
    if status >= 500:
        return Refusal(status, "Internal server error")
    return Refusal(status, "Connection refused")


def select_route_key(expression: str, body: str | bytes) -> str | None:
    """Evaluate a route selection expression such as ``$request.body.action``."""
    prefix = "$request.body."
    if not expression.startswith(prefix):
        return expression.replace("\\$", "$") if "$request" not in expression else None
    if isinstance(body, bytes):
        return None
    try:
        value: Any = json.loads(body)
    except ValueError:
        return None
    for part in expression[len(prefix) :].split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, dict | list) or value is None:
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def mock_status(integration: Integration) -> int:
    """The status a mock integration's request template sets (200 unless it says otherwise)."""
    templates = integration.request_templates
    text = templates.get("$default") or next(iter(templates.values()), None)
    if text is None:
        return 200
    try:
        data = json.loads(text)
        return int(data.get("statusCode", 200))
    except (ValueError, TypeError, AttributeError):
        return 200


def render_mock(integration: Integration, context: Mapping[str, str]) -> str | None:
    """A mock integration's response template with ``$context.<name>`` substituted."""
    status = str(mock_status(integration))
    chosen = next(
        (
            r
            for r in integration.responses
            if r.key.startswith("/") and r.key.endswith("/") and re.fullmatch(r.key[1:-1], status)
        ),
        None,
    )
    if chosen is None:
        chosen = next((r for r in integration.responses if r.key == "$default"), None)
    if chosen is None or not chosen.templates:
        return None
    template = chosen.templates.get("$default") or next(iter(chosen.templates.values()))
    return re.sub(
        r"\$\{?context\.(\w+)\}?",
        lambda m: context.get(m.group(1), ""),
        template,
    )


def proxy_reply(result: Any) -> str | bytes | None:
    """What a Lambda proxy integration's ``result`` sends back through a route response."""
    if isinstance(result, dict) and ("statusCode" in result or "body" in result):
        reply = result.get("body")
        if reply is None:
            return None
        if result.get("isBase64Encoded"):
            return base64.b64decode(str(reply))
        return reply if isinstance(reply, str) else json.dumps(reply)
    if result is not None:
        return result if isinstance(result, str) else json.dumps(result)
    return None


class Integrations:
    """The routes of one API and what answers them: authorizer, Lambda proxies, mocks.

    ``functions`` maps the template's logical ids of Lambda functions to what
    runs them; it may be filled after construction (the functions load later).
    """

    def __init__(
        self, api: Api, functions: Mapping[str, Invocable], deployment: Deployment
    ) -> None:
        self.api = api
        self.functions = functions
        self.deployment = deployment

    def method_arn(self, route_key: str) -> str:
        d = self.deployment
        return (
            f"arn:aws:execute-api:{d.region}:{d.account}:"
            f"{d.api_id}/{self.api.stage.name}/{route_key}"
        )

    def route_for(self, body: str | bytes) -> Route | None:
        """The route a message selects: its own, else ``$default`` (None if neither)."""
        key = select_route_key(self.api.route_selection_expression, body)
        if key is not None and key in self.api.routes and not key.startswith("$"):
            return self.api.routes[key]
        return self.api.routes.get("$default")

    async def _invoke(self, function: Invocable, event: Mapping[str, Any]) -> Any:
        return await asyncio.wait_for(function.invoke(event), INTEGRATION_TIMEOUT_S)

    # ------------------------------------------------------------------ $connect

    async def handshake(self, info: ConnectionInfo) -> Admission | Refusal:
        """Run the ``$connect`` authorizer and integration for a new connection."""
        route = self.api.routes.get("$connect")
        if route is not None and route.authorization_type == "CUSTOM":
            outcome = await self._authorize(route, info)
            if isinstance(outcome, Refusal):
                return outcome
            info = replace(info, authorizer=outcome)
        subprotocol: str | None = None
        if route is not None and route.integration_id is not None:
            integration = self.api.integrations[route.integration_id]
            status, response = await self._connect(integration, info)
            if not 200 <= status < 300:
                return _connect_refusal(status)
            subprotocol = _subprotocol(response)
        return Admission(info=info, subprotocol=subprotocol)

    async def _authorize(self, route: Route, info: ConnectionInfo) -> dict[str, Any] | Refusal:
        """The authorizer context to pass on, or the refusal of the handshake."""
        authorizer = self.api.authorizers.get(route.authorizer_id or "")
        if authorizer is None or authorizer.function_id is None:
            return _INTERNAL
        if identity_missing(authorizer, info):
            return _UNAUTHORIZED
        function = self.functions[authorizer.function_id]
        method_arn = self.method_arn("$connect")
        started = time.monotonic()
        try:
            result = await self._invoke(
                function, authorizer_event(info, method_arn=method_arn, stamp=_stamp())
            )
        except FunctionError as exc:
            return _UNAUTHORIZED if exc.error_message == "Unauthorized" else _INTERNAL
        except TimeoutError:
            return _INTERNAL
        latency = int((time.monotonic() - started) * 1000)
        try:
            context = authorizer_context(result, method_arn, latency)
        except (ValueError, AttributeError, TypeError) as exc:
            log.warning("authorizer %s returned a malformed result: %s", function.name, exc)
            return _INTERNAL
        return _FORBIDDEN if context is None else context

    async def _connect(self, integration: Integration, info: ConnectionInfo) -> tuple[int, Any]:
        """The ``$connect`` integration's status, and its response for the headers."""
        if integration.type == "MOCK":
            return mock_status(integration), None
        if integration.function_id is None:
            return 500, None
        function = self.functions[integration.function_id]
        try:
            response = await self._invoke(function, connect_event(info, stamp=_stamp()))
        except (FunctionError, TimeoutError):
            return 502, None
        if isinstance(response, dict) and "statusCode" in response:
            try:
                return int(response["statusCode"]), response
            except (TypeError, ValueError):
                return 502, None
        return 200, response

    # ------------------------------------------------------------------ messages

    async def message(
        self, info: ConnectionInfo, route: Route, body: str | bytes, request_id: str
    ) -> str | bytes | None:
        """Run ``route``'s integration on one message; what to send back (None: nothing)."""
        assert route.integration_id is not None, "the caller answers routes without one"
        integration = self.api.integrations[route.integration_id]
        replies = bool(route.response_selection_expression) and route.has_route_response
        if integration.type == "MOCK":
            if not replies:
                return None
            return render_mock(integration, self._mock_context(info, route, request_id))
        if integration.function_id is None:
            return error_body("Internal server error", info.connection_id, request_id)
        function = self.functions[integration.function_id]
        event = message_event(
            info, route_key=route.key, body=body, message_id=new_id(), stamp=_stamp(request_id)
        )
        try:
            result = await self._invoke(function, event)
        except (FunctionError, TimeoutError):
            return error_body("Internal server error", info.connection_id, request_id)
        return proxy_reply(result) if replies else None

    def _mock_context(self, info: ConnectionInfo, route: Route, request_id: str) -> dict[str, str]:
        return {
            "connectionId": info.connection_id,
            "requestId": request_id,
            "routeKey": route.key,
            "stage": self.api.stage.name,
            "apiId": self.deployment.api_id,
            "domainName": info.domain_name,
            "requestTimeEpoch": str(now_ms()),
        }

    # ------------------------------------------------------------------ $disconnect

    async def disconnect(self, info: ConnectionInfo, code: int, reason: str) -> bool:
        """Run the ``$disconnect`` integration, if any; False if it failed."""
        route = self.api.routes.get("$disconnect")
        if route is None or route.integration_id is None:
            return True
        integration = self.api.integrations[route.integration_id]
        if integration.function_id is None:
            return True
        event = disconnect_event(info, status_code=code, reason=reason, stamp=_stamp())
        try:
            await self._invoke(self.functions[integration.function_id], event)
        except (FunctionError, TimeoutError):
            return False
        return True
