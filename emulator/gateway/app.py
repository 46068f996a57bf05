"""The gateway: one aiohttp application serving a stage's socket and ``@connections``.

It composes the parts (see :mod:`emulator.gateway`) and owns the server's
lifecycle: start on a port, stop (closing every connection as AWS would).
"""

from __future__ import annotations

import errno
from collections.abc import Mapping

from aiohttp import web

from emulator.gateway.connections_api import ConnectionsApi, Handler
from emulator.gateway.integrations import Deployment, Integrations, Invocable
from emulator.gateway.limits import Limits
from emulator.gateway.registry import Connection, ConnectionRegistry
from emulator.gateway.sockets import SocketServer
from emulator.sigv4 import Credentials
from emulator.template import Api

__all__ = ["Gateway"]


@web.middleware
async def _refuse_preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
    # No route answers a CORS preflight, so no web page gets a signed request through.
    if request.method == "OPTIONS":
        return web.json_response({"message": "Forbidden"}, status=403)
    return await handler(request)


class Gateway:
    """The WebSocket API of one stage, served by aiohttp.

    ``functions`` maps the template's logical ids of Lambda functions to what
    runs them (filled in later is fine). ``limits`` are AWS's unless a test
    shortens them; ``credentials`` are what ``@connections`` callers must sign
    with (None refuses them all).
    """

    def __init__(
        self,
        *,
        api: Api,
        functions: Mapping[str, Invocable],
        deployment: Deployment,
        limits: Limits | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.api = api
        self.functions = functions
        self.deployment = deployment
        self.limits = limits or Limits()
        self.registry = ConnectionRegistry()
        self.connections = self.registry.connections
        self.stats = self.registry.stats
        self.integrations = Integrations(api, functions, deployment)
        self.sockets = SocketServer(
            registry=self.registry, integrations=self.integrations, limits=self.limits
        )
        self.connections_api = ConnectionsApi(
            self.registry,
            stage=api.stage.name,
            region=deployment.region,
            message_limit=self.limits.message_limit,
        )
        self.credentials = credentials
        self._runner: web.AppRunner | None = None
        self.app = self._build_app()

    @property
    def credentials(self) -> Credentials | None:
        """What ``@connections`` callers must sign with; None refuses them all."""
        return self.connections_api.credentials

    @credentials.setter
    def credentials(self, value: Credentials | None) -> None:
        self.connections_api.credentials = value

    def _build_app(self) -> web.Application:
        app = web.Application(
            client_max_size=4 * 1024 * 1024,
            middlewares=[_refuse_preflight, self.connections_api.signed_only],
        )
        self.connections_api.add_routes(app)
        self.sockets.add_routes(app)
        return app

    async def start(self, host: str, port: int) -> int:
        """Serve on ``host:port`` (0: a free port); the port in use."""
        # A fresh application per start: an aiohttp app cannot outlive its runner.
        self.app = self._build_app()
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            if host != "localhost" or exc.errno == errno.EADDRINUSE:
                await self._runner.cleanup()
                raise
            # "localhost" may resolve to an IPv6 address this machine cannot bind.
            site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
            await site.start()
        addresses = self._runner.addresses
        return int(addresses[0][1]) if addresses else port

    async def stop(self) -> None:
        """Close every connection as AWS would (1001, ``$disconnect``), then stop serving."""
        await self.drop_all(1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def drop_all(self, code: int = 1001, reason: str = "Going away") -> None:
        """Close every connection with ``code`` and wait for their ``$disconnect``."""
        await self.registry.drop_all(code, reason)

    async def settle(self) -> None:
        """Wait until every message received so far has been fully handled."""
        await self.registry.settle()

    async def close_connection(self, conn: Connection, code: int, reason: str) -> None:
        """Close ``conn`` from the gateway side; its reader then runs ``$disconnect``."""
        await self.registry.close(conn, code, reason)

    async def send(self, conn: Connection, data: str | bytes) -> None:
        """Send one message to ``conn`` (as one frame, as API Gateway does)."""
        await self.registry.send(conn, data)
