"""Composition root shared by the handlers: clients, adapters, rules, Powertools.

Built once per Lambda container (module scope of each handler), so warm
invocations reuse the boto3 clients and their connection pools. Tests build a
:class:`Runtime` with their own (moto) clients and put it in the handler
module's ``RUNTIME``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from functions.dal.idempotency import PowertoolsOnce
from functions.dal.management import ManagementApiPoster
from functions.dal.queues import SqsBus
from functions.dal.registry import DynamoRegistry
from functions.logic.gateway import Gateway, Limits
from functions.logic.ports import Identity
from functions.logic.ratelimit import RateLimiter
from functions.logic.relay import Relay
from functions.models.settings import GatewaySettings

__all__ = [
    "HANDOFF_SECONDS",
    "MANAGEMENT_CONNECT_TIMEOUT",
    "MANAGEMENT_MAX_ATTEMPTS",
    "MANAGEMENT_POST_WORST_SECONDS",
    "MANAGEMENT_READ_TIMEOUT",
    "AWSClients",
    "PowertoolsCounters",
    "Runtime",
    "identity_of",
    "logger",
    "metrics",
    "process_queue_batch",
    "tracer",
]

logger = Logger()
metrics = Metrics()
tracer = Tracer()

# Lambda has seconds, not minutes: fail fast and let SQS retry, rather than
# let botocore's retries eat the function's timeout.
_CLIENT_CONFIG = Config(
    connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"}
)
# A post to @connections answers in tens of milliseconds or not at all: 1 s to
# connect, 1 s to read, one retry. That bounds one post, so the message function's
# inline fan-out (up to 10 posts) can stop and hand off to the bus in time.
MANAGEMENT_CONNECT_TIMEOUT = 1
MANAGEMENT_READ_TIMEOUT = 1
MANAGEMENT_MAX_ATTEMPTS = 2
_MANAGEMENT_CONFIG = Config(
    connect_timeout=MANAGEMENT_CONNECT_TIMEOUT,
    read_timeout=MANAGEMENT_READ_TIMEOUT,
    # total_max_attempts counts the first attempt (botocore's max_attempts does not).
    retries={"total_max_attempts": MANAGEMENT_MAX_ATTEMPTS, "mode": "standard"},
)
#: The longest one post can take: every attempt times out connecting and then
#: reading, and botocore's standard mode waits up to 1 s before the (first) retry.
MANAGEMENT_POST_WORST_SECONDS = MANAGEMENT_MAX_ATTEMPTS * (
    MANAGEMENT_CONNECT_TIMEOUT + MANAGEMENT_READ_TIMEOUT
) + (MANAGEMENT_MAX_ATTEMPTS - 1)
#: Left for handing the rest of an inline fan-out to the bus (one SQS send).
HANDOFF_SECONDS = 1


class PowertoolsCounters:
    """Implements :class:`~functions.logic.ports.Counters` with Powertools Metrics (EMF)."""

    def __init__(self, sink: Metrics) -> None:
        self._metrics = sink

    def count(
        self, name: str, value: int = 1, *, code: str | None = None, kind: str | None = None
    ) -> None:
        if code is None and kind is None:
            self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
            return
        with single_metric(
            name=name, unit=MetricUnit.Count, value=value, namespace=self._metrics.namespace
        ) as metric:
            if code is not None:
                metric.add_dimension(name="code", value=code)
            if kind is not None:
                metric.add_dimension(name="kind", value=kind)

    def observe_ms(self, name: str, milliseconds: float) -> None:
        self._metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=milliseconds)


@dataclass(frozen=True, slots=True)
class AWSClients:
    """The boto3 clients a gateway function uses."""

    dynamodb: Any
    sqs: Any
    management: Any

    @classmethod
    def create(cls, settings: GatewaySettings) -> AWSClients:
        return cls(
            dynamodb=boto3.client("dynamodb", config=_CLIENT_CONFIG),
            sqs=boto3.client("sqs", config=_CLIENT_CONFIG),
            management=boto3.client(
                "apigatewaymanagementapi",
                endpoint_url=settings.callback_url,
                config=_MANAGEMENT_CONFIG,
            ),
        )


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything a gateway handler needs, wired together."""

    settings: GatewaySettings
    clients: AWSClients
    gateway: Gateway
    relay: Relay
    once: PowertoolsOnce

    @classmethod
    def build(cls, settings: GatewaySettings, clients: AWSClients | None = None) -> Runtime:
        clients = clients or AWSClients.create(settings)
        registry = DynamoRegistry(clients.dynamodb, settings.table_name)
        bus = SqsBus(clients.sqs, settings.bus_queue_url, settings.delivery_queue_url)
        poster = ManagementApiPoster(clients.management)
        counters = PowertoolsCounters(metrics)
        limits = Limits(
            max_unacked=settings.max_unacked,
            connection_ttl_seconds=settings.connection_ttl_seconds,
            park_delay_seconds=settings.park_delay_seconds,
            max_parks=settings.max_parks,
            max_inflight_commands=settings.max_unacked,
            handoff_reserve_ms=(MANAGEMENT_POST_WORST_SECONDS + HANDOFF_SECONDS) * 1000,
        )
        once = PowertoolsOnce(clients.dynamodb, settings.table_name)
        relay = Relay(
            registry=registry,
            flow=registry,
            bus=bus,
            poster=poster,
            once=once,
            counters=counters,
            limits=limits,
        )
        gateway = Gateway(
            registry=registry,
            flow=registry,
            bus=bus,
            poster=poster,
            limiter=RateLimiter(registry, limit_per_second=settings.rate_limit_per_second),
            counters=counters,
            limits=limits,
            fan_out=relay.fan_out_now,
        )
        return cls(settings=settings, clients=clients, gateway=gateway, relay=relay, once=once)


def identity_of(event: dict[str, Any]) -> Identity:
    """The identity the ``$connect`` authorizer established (every later route gets it).

    Raises KeyError when the event carries no authorizer context: the route is
    not behind the authorizer, a deployment error.
    """
    context = event["requestContext"]
    authorizer = context["authorizer"]
    role = authorizer["role"]
    if role not in ("browser", "consumer"):
        raise KeyError("role")
    return Identity(
        connection_id=context["connectionId"],
        tenant=authorizer["tenant"],
        role=role,
        client_id=authorizer["client_id"],
    )


_processor = BatchProcessor(event_type=EventType.SQS)


def process_queue_batch(
    event: dict[str, Any],
    context: LambdaContext,
    runtime: Runtime,
    handle: Callable[[Relay, dict[str, Any]], None],
) -> PartialItemFailureResponse:
    """Run ``handle`` on each record's envelope; report only the failed records.

    The event source mapping has ``ReportBatchItemFailures``, so only a failing
    record is retried and, after ``maxReceiveCount`` receives, lands in its DLQ.
    """
    runtime.once.config.register_lambda_context(context)
    runtime.relay.begin_batch()

    def record_handler(record: SQSRecord) -> None:
        try:
            envelope: dict[str, Any] = json.loads(record.body)
            logger.append_keys(correlation_id=envelope.get("cid"), tenant=envelope.get("tenant"))
            handle(runtime.relay, envelope)
        except Exception:
            # Keyed by the SQS message id, which the message keeps in its DLQ:
            # whoever inspects a dead letter finds its error in the logs.
            logger.exception("record failed", extra={"message_id": record.message_id})
            raise

    return process_partial_response(
        event=event, record_handler=record_handler, processor=_processor, context=context
    )
