"""The whole local gateway: template -> moto resources -> functions -> gateway + pollers.

:class:`LocalGateway` is what ``make run`` and :mod:`emulator.testing` start.
Everything is derived from the synthesized template: which functions exist
and with which environment (``Ref``/``Fn::GetAtt``/``Fn::Join``/``Fn::Sub``
resolved to the local queue URLs, table names, secret ARNs and the local
callback URL), which routes call them, which queues feed them and how.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import string
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.backend import (
    ACCOUNT_ID,
    REGION,
    MotoServer,
    Provisioned,
    aws_environment,
    client,
    deprovision,
    provision,
    queue_depths,
    shared_moto,
)
from emulator.config import REPO_ROOT
from emulator.gateway import Deployment, Gateway, Limits
from emulator.lambdas import LocalFunction
from emulator.pollers import QueuePoller, RecordFailure, SqsQueue, TtlSweeper
from emulator.template import Model, Resolver, TemplateError, parse_template

__all__ = ["LocalGateway", "Settings"]

log = logging.getLogger("emulator")

_DEFAULT_CONCURRENCY = 20


def _api_id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10))


def _pseudo_parameters(stack_name: str) -> dict[str, str]:
    """What ``Ref`` returns for CloudFormation's pseudo parameters, locally."""
    return {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": stack_name,
    }


@dataclass(frozen=True, slots=True)
class Settings:
    """How one local deployment runs: where it serves, and what its functions get.

    ``port`` 0 picks a free port; ``public_host`` is the host clients and the
    handlers' callback URL use (default 127.0.0.1); ``env_overrides`` go into
    every function's environment; ``idle_timeout`` and ``max_duration`` are
    AWS's 10 minutes and 2 hours unless a test shortens them.
    """

    signing_key: str
    host: str = "127.0.0.1"
    port: int = 0
    public_host: str | None = None
    env_overrides: Mapping[str, str] = field(default_factory=dict)
    idle_timeout: float = 600.0
    max_duration: float = 7200.0
    code_root: Path = REPO_ROOT
    ttl_sweep_interval: float = 30.0
    stack_name: str = "tabrelay-local"


class LocalGateway:
    """One running local deployment of a template.

    ``start()`` provisions moto resources, imports every handler with its
    environment, serves the WebSocket API on ``host:port`` and starts the SQS
    pollers and the TTL sweeper; ``close()`` undoes all of it (running
    ``$disconnect`` for every open connection first).
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        settings: Settings,
        *,
        moto: MotoServer | None = None,
        on_failure: Callable[[RecordFailure], None] | None = None,
    ) -> None:
        self.template = template
        self.settings = settings
        self._on_failure = on_failure
        self.model: Model = parse_template(template)
        self.signing_key = settings.signing_key
        self.host = settings.host
        self.requested_port = settings.port
        self.port = 0
        self.env_overrides = dict(settings.env_overrides)
        self.code_root = settings.code_root
        self.stack_name = settings.stack_name
        self.public_host = settings.public_host
        self.api_id = _api_id()
        self._moto = moto
        self._ttl_interval = settings.ttl_sweep_interval
        self.functions: dict[str, LocalFunction] = {}
        self.pollers: dict[str, QueuePoller] = {}
        self.provisioned: Provisioned | None = None
        self.sweeper: TtlSweeper | None = None
        self._executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="lambda")
        self._io_executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="poller")
        self._saved_env: dict[str, str | None] = {}
        self.gateway = Gateway(
            api=self.model.api,
            functions=self.functions,
            deployment=Deployment(api_id=self.api_id, region=REGION, account=ACCOUNT_ID),
            limits=Limits(idle_timeout=settings.idle_timeout, max_duration=settings.max_duration),
        )

    # ----------------------------------------------------------------- values

    @property
    def moto(self) -> MotoServer:
        assert self._moto is not None, "not started"
        return self._moto

    @property
    def stage(self) -> str:
        return self.model.api.stage.name

    def _resolver(self) -> Resolver:
        refs = {
            **_pseudo_parameters(self.stack_name),
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{self.stack_name}/local",
            "AWS::NoValue": "",
        }
        refs.update({lid: self._ref(lid, kind) for lid, kind in self.model.resource_types.items()})
        return Resolver(
            refs,
            self._get_att,
            parameters=self.template.get("Parameters") or {},
            conditions=self.template.get("Conditions") or {},
        )

    def _ref(self, lid: str, kind: str) -> str:
        """What ``Ref`` on resource ``lid`` returns locally."""
        p = self.provisioned
        assert p is not None
        if kind == "AWS::ApiGatewayV2::Api":
            return self.api_id
        if kind == "AWS::ApiGatewayV2::Stage":
            return self.stage
        for physical in (p.queue_urls, p.table_names, p.secret_arns):
            if lid in physical:
                return physical[lid]
        if lid in self.model.functions:
            return self._function_name(lid)
        return lid

    def _get_att(self, lid: str, attr: str) -> str:
        """What ``Fn::GetAtt`` on resource ``lid`` returns locally."""
        p = self.provisioned
        assert p is not None
        kind = self.model.resource_types.get(lid)
        if kind is None:
            raise TemplateError(f"Fn::GetAtt on unknown resource {lid}")
        if kind == "AWS::ApiGatewayV2::Api":
            if attr == "ApiEndpoint":
                return f"wss://{self.api_id}.execute-api.{REGION}.amazonaws.com"
            return self.api_id
        if lid in p.queue_urls:
            return {
                "Arn": p.queue_arns[lid],
                "QueueName": p.queue_names[lid],
                "QueueUrl": p.queue_urls[lid],
            }.get(attr, p.queue_arns[lid])
        if lid in p.table_names:
            arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{p.table_names[lid]}"
            return arn + "/stream/local" if attr == "StreamArn" else arn
        if lid in p.secret_arns:
            return p.secret_arns[lid]
        if lid in self.model.functions:
            name = self._function_name(lid)
            return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
        return f"arn:aws:local:{REGION}:{ACCOUNT_ID}:{lid}/{attr}"

    def _function_name(self, lid: str) -> str:
        assert self.provisioned is not None
        raw = self.model.functions[lid].name
        if isinstance(raw, str):
            return raw
        return f"{self.stack_name}-{lid}"[:55] + "-" + self.provisioned.suffix

    def _localize(self, value: str) -> str:
        """Point API Gateway endpoints of this API at the emulator."""
        domain = re.escape(f"{self.api_id}.execute-api.{REGION}.amazonaws.com")
        host = f"{self.public_host or '127.0.0.1'}:{self.port}"
        value = re.sub(rf"https://{domain}", f"http://{host}", value)
        value = re.sub(rf"wss://{domain}", f"ws://{host}", value)
        return re.sub(domain, host, value)

    # ----------------------------------------------------------------- lifecycle

    def _apply_process_env(self) -> None:
        for key, value in aws_environment(self.moto.endpoint, self.moto.credentials).items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def _restore_process_env(self) -> None:
        for key, old in self._saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._saved_env.clear()

    async def start(self) -> None:
        """Provision, load the handlers and serve; raises if the template cannot run."""
        if self._moto is None:
            self._moto = await asyncio.to_thread(shared_moto)
        # @connections takes the credentials the handlers sign with: moto's.
        self.gateway.credentials = self.moto.credentials
        self.port = await self.gateway.start(self.host, self.requested_port)
        self._apply_process_env()
        self.provisioned = await asyncio.to_thread(
            provision,
            self.model,
            self.moto.endpoint,
            stack=self.stack_name,
            signing_key=self.signing_key,
            name_of=lambda raw: self._resolver_for_names().resolve(raw),
        )
        resolver = self._resolver()
        for lid, fn in self.model.functions.items():
            env = {k: self._localize(str(resolver.resolve(v))) for k, v in fn.environment.items()}
            env.update({"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION})
            env.update(self.env_overrides)
            self.functions[lid] = LocalFunction(
                name=self._function_name(lid),
                arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self._function_name(lid)}",
                handler_path=fn.handler,
                environment=env,
                code_root=self.code_root,
                executor=self._executor,
                memory_mb=fn.memory_mb,
                timeout_s=fn.timeout_s,
                concurrency=fn.reserved_concurrency or _DEFAULT_CONCURRENCY,
            )
        for function in self.functions.values():
            await asyncio.to_thread(function.load)

        sqs = client("sqs", self.moto.endpoint)
        for mapping in self.model.mappings:
            if not mapping.enabled:
                continue
            function = self.functions[mapping.function_id]
            if mapping.maximum_concurrency:
                function.concurrency = max(function.concurrency, mapping.maximum_concurrency)
            queue = SqsQueue(
                sqs=sqs,
                url=self.provisioned.queue_urls[mapping.queue_id],
                arn=self.provisioned.queue_arns[mapping.queue_id],
                region=REGION,
            )
            poller = QueuePoller(
                queue=queue,
                function=function,
                mapping=mapping,
                executor=self._io_executor,
                on_failure=self._on_failure,
            )
            self.pollers[mapping.queue_id] = poller
            poller.start()
        ttl_tables = {
            self.provisioned.table_names[lid]: t.ttl_attribute
            for lid, t in self.model.tables.items()
            if t.ttl_attribute
        }
        self.sweeper = TtlSweeper(
            dynamodb=client("dynamodb", self.moto.endpoint),
            tables=ttl_tables,
            interval_s=self._ttl_interval,
        )
        self.sweeper.start()

    def _resolver_for_names(self) -> Resolver:
        # Names may only use pseudo parameters and parameters (resources do not exist yet).
        refs = _pseudo_parameters(self.stack_name)

        def no_att(lid: str, attr: str) -> str:
            raise TemplateError(f"a resource name cannot use Fn::GetAtt {lid}.{attr} locally")

        return Resolver(refs, no_att, parameters=self.template.get("Parameters") or {})

    async def serve_again(self) -> None:
        """Serve the socket and ``@connections`` again on the same port after :meth:`stop_serving`."""
        await self.gateway.start(self.host, self.port)

    async def stop_serving(self) -> None:
        """Close every connection (1001, ``$disconnect``) and stop listening; workers keep running."""
        await self.gateway.stop()

    async def close(self) -> None:
        """Stop everything started by :meth:`start` and delete the moto resources."""
        await self.gateway.stop()
        for poller in self.pollers.values():
            await poller.stop()
        if self.sweeper is not None:
            await self.sweeper.stop()
        if self.provisioned is not None and self._moto is not None:
            await asyncio.to_thread(deprovision, self.provisioned, self._moto.endpoint)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._io_executor.shutdown(wait=False, cancel_futures=True)
        self._restore_process_env()

    # ----------------------------------------------------------------- status

    def dead_letter_queues(self) -> dict[str, str]:
        """The URL of every queue that is some queue's DLQ, by logical id."""
        assert self.provisioned is not None
        ids = {q.dead_letter_id for q in self.model.queues.values() if q.dead_letter_id}
        return {lid: self.provisioned.queue_urls[lid] for lid in sorted(ids)}

    def queue_depths(self) -> dict[str, tuple[int, int]]:
        """Visible and in-flight messages per queue logical id (blocking: call in a thread)."""
        assert self.provisioned is not None
        return queue_depths(client("sqs", self.moto.endpoint), self.provisioned.queue_urls)
