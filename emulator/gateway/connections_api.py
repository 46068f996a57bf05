"""The Management API: ``POST``/``GET``/``DELETE`` on ``/{stage}/@connections/{id}``.

As on AWS, only requests SigV4-signed with the local credentials are served
(403 otherwise, so no web page can post to a connection), and unknown,
closed or still-connecting ids answer 410 ``GoneException``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from emulator.gateway.registry import Connection, ConnectionRegistry
from emulator.sigv4 import Credentials, SignatureError, SignedRequest, verify

__all__ = ["ConnectionsApi"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _gone() -> web.Response:
    return web.json_response(
        {"message": None}, status=410, headers={"x-amzn-ErrorType": "GoneException"}
    )


class ConnectionsApi:
    """``@connections`` for the connections of ``registry``, on stage ``stage``."""

    def __init__(
        self, registry: ConnectionRegistry, *, stage: str, region: str, message_limit: int
    ) -> None:
        self._registry = registry
        self._stage = stage
        self._region = region
        self._message_limit = message_limit
        #: What callers must sign with; None refuses them all.
        self.credentials: Credentials | None = None

    def add_routes(self, app: web.Application) -> None:
        for prefix in ("", "/{stage}"):
            app.router.add_route("POST", prefix + "/@connections/{cid}", self._post)
            app.router.add_route("GET", prefix + "/@connections/{cid}", self._get)
            app.router.add_route("DELETE", prefix + "/@connections/{cid}", self._delete)

    @web.middleware
    async def signed_only(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse unsigned or wrongly signed ``@connections`` calls (403, as AWS)."""
        if "/@connections/" in request.path:
            body = await request.read()
            try:
                if self.credentials is None:
                    raise SignatureError("ForbiddenException", "Forbidden")
                received = SignedRequest(
                    method=request.method,
                    raw_path=request.raw_path,
                    headers=list(request.headers.items()),
                    body=body,
                )
                verify(received, self.credentials, region=self._region, service="execute-api")
            except SignatureError as refused:
                return web.json_response(
                    {"message": refused.message},
                    status=403,
                    headers={"x-amzn-ErrorType": refused.code},
                )
        return await handler(request)

    def _live(self, request: web.Request) -> Connection | None:
        stage = request.match_info.get("stage")
        if stage is not None and stage != self._stage:
            return None
        return self._registry.live(request.match_info["cid"])

    async def _post(self, request: web.Request) -> web.Response:
        data = await request.read()
        conn = self._live(request)
        if conn is None:
            return _gone()
        if len(data) > self._message_limit:
            return web.json_response(
                {"message": "Message too long"},
                status=413,
                headers={"x-amzn-ErrorType": "PayloadTooLargeException"},
            )
        try:
            payload: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            payload = data
        try:
            await self._registry.send(conn, payload)
        except (ConnectionError, RuntimeError):
            return _gone()
        return web.Response(status=200)

    async def _get(self, request: web.Request) -> web.Response:
        conn = self._live(request)
        if conn is None:
            return _gone()
        return web.json_response(
            {
                "connectedAt": _iso(conn.info.connected_at),
                "identity": {"sourceIp": conn.info.source_ip, "userAgent": conn.info.user_agent},
                "lastActiveAt": _iso(conn.last_active_ms),
            }
        )

    async def _delete(self, request: web.Request) -> web.Response:
        conn = self._live(request)
        if conn is None:
            return _gone()
        await self._registry.close(conn, 1000, "")
        return web.Response(status=204)
