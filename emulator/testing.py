"""The local gateway for tests and benchmarks: start it on a free port, use it, stop it.

Only tests and benchmarks import this module::

    async with running_gateway(env_overrides={"MAX_UNACKED": "3"}) as gw:
        token = gw.token("consumer", "acme", "c1")
        async with websockets.connect(f"{gw.url}?token={token}") as ws:
            ...

The template comes from the CDK app (synthesized once per ``infra/`` content
and ``context``, then cached), unless a test passes one.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypedDict, Unpack

from emulator.backend import client
from emulator.config import mint_token
from emulator.lambdas import LocalFunction
from emulator.pollers import QueuePoller
from emulator.sigv4 import Credentials
from emulator.system import LocalGateway, Settings

__all__ = ["GatewayOptions", "RunningGateway", "running_gateway"]


class RunningGateway:
    """A local gateway serving on ``127.0.0.1:port``.

    ``url`` is what clients connect to (add ``?token=...``); ``http_url`` is the
    Management API base (``{http_url}/@connections/{id}``), the same value the
    handlers get as their callback URL.
    """

    def __init__(self, system: LocalGateway) -> None:
        self.system = system
        self.port: int = system.port
        self.url: str = f"ws://127.0.0.1:{self.port}/{system.stage}"
        self.http_url: str = f"http://127.0.0.1:{self.port}/{system.stage}"

    def token(self, role: str, tenant: str, client_id: str, ttl: int = 3600) -> str:
        """A token the gateway's authorizer accepts."""
        return mint_token(
            self.system.signing_key, role=role, tenant=tenant, client_id=client_id, ttl=ttl
        )

    async def drop_all(self, code: int = 1001) -> None:
        """Close every connection as AWS would, and wait for their ``$disconnect``."""
        await self.system.gateway.drop_all(code)

    async def stop(self) -> None:
        """Stop serving (every connection closes with 1001 and runs ``$disconnect``)."""
        await self.system.stop_serving()

    async def start(self) -> None:
        """Serve again on the same port."""
        await self.system.serve_again()

    # Extras for the emulator's own tests.

    def function(self, logical_id: str) -> LocalFunction:
        """The local runner of the template's function ``logical_id``."""
        return self.system.functions[logical_id]

    @property
    def credentials(self) -> Credentials:
        """What moto and ``@connections`` accept signatures from (the handlers use them)."""
        return self.system.moto.credentials

    def aws(self, service: str) -> Any:
        """A boto3 client of the moto backing this gateway."""
        return client(service, self.system.moto.endpoint)

    def queue_url(self, logical_id: str) -> str:
        assert self.system.provisioned is not None
        return self.system.provisioned.queue_urls[logical_id]

    def table_name(self, logical_id: str) -> str:
        assert self.system.provisioned is not None
        return self.system.provisioned.table_names[logical_id]

    def poller_of(self, handler: str) -> QueuePoller:
        """The SQS poller feeding the function whose handler is ``handler`` (dotted path)."""
        for poller in self.system.pollers.values():
            if poller.function.handler_path == handler:
                return poller
        raise KeyError(f"no event source mapping runs {handler}")

    async def sweep_ttl(self) -> int:
        """Run the TTL sweeper now; how many items it deleted."""
        assert self.system.sweeper is not None
        return await self.system.sweeper.sweep()


class GatewayOptions(TypedDict, total=False):
    """What a test may set on the gateway it runs (see :class:`emulator.system.Settings`)."""

    port: int
    env_overrides: Mapping[str, str]
    idle_timeout: float
    max_duration: float
    code_root: Path
    ttl_sweep_interval: float


@asynccontextmanager
async def running_gateway(
    *,
    context: dict[str, str] | None = None,
    template: Mapping[str, Any] | None = None,
    **options: Unpack[GatewayOptions],
) -> AsyncIterator[RunningGateway]:
    """Start a local gateway, yield it, and stop it (running every ``$disconnect``).

    ``context`` goes to the CDK synthesis; ``template`` (with ``code_root``)
    lets the emulator's own tests run a hand-written template with fixture
    handlers. ``options``: ``env_overrides`` are applied to every function's
    environment; ``port``, ``idle_timeout``, ``max_duration`` and
    ``ttl_sweep_interval`` as in :class:`emulator.system.Settings`.
    """
    if template is None:
        from emulator.synth import load_template

        # Synthesis takes seconds the first time: keep the event loop free meanwhile.
        template = await asyncio.to_thread(load_template, context or {})
    system = LocalGateway(template, Settings(signing_key=secrets.token_urlsafe(32), **options))
    try:
        await system.start()
        yield RunningGateway(system)
    finally:
        await system.close()
