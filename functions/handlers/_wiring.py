"""Wiring: the adapters and rules a gateway handler uses, built on first use.

A handler module holds one :class:`Runtime` (``RUNTIME``) for its container's
life. Creating it costs nothing; each part (a boto3 client, the registry, the
idempotency layer, the rules) is built the first time an invocation needs it,
then reused by every warm invocation. Tests build a Runtime with their own
(moto) clients and put it in the handler modules' ``RUNTIME``.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from functions.dal.clients import (
    HANDOFF_SECONDS,
    MANAGEMENT_POST_WORST_SECONDS,
    MAX_POOL_CONNECTIONS,
    AWSClients,
)
from functions.dal.idempotency import PowertoolsOnce
from functions.dal.management import ManagementApiPoster
from functions.dal.metrics import PowertoolsCounters
from functions.dal.queues import SqsBus
from functions.dal.registry import DynamoRegistry
from functions.handlers._powertools import metrics
from functions.logic.gateway import Gateway
from functions.logic.limits import Limits
from functions.logic.ports import Ports
from functions.logic.ratelimit import RateLimiter
from functions.models.settings import GatewaySettings

if TYPE_CHECKING:
    from functions.logic.delivery import Delivery
    from functions.logic.relay import Relay

__all__ = ["AWSClients", "Runtime"]


class Runtime:
    """Everything a gateway handler may need, each part built on first use."""

    def __init__(self, settings: GatewaySettings, clients: AWSClients | None = None) -> None:
        self.settings = settings
        self.clients = clients or AWSClients(callback_url=settings.callback_url)

    @classmethod
    def build(cls, settings: GatewaySettings, clients: AWSClients | None = None) -> Runtime:
        return cls(settings, clients)

    @cached_property
    def registry(self) -> DynamoRegistry:
        return DynamoRegistry(self.clients.dynamodb, self.settings.table_name)

    @cached_property
    def bus(self) -> SqsBus:
        settings = self.settings
        return SqsBus(
            self.clients.sqs,
            settings.bus_queue_url,
            settings.delivery_queue_url,
            settings.command_queue_url,
        )

    @cached_property
    def poster(self) -> ManagementApiPoster:
        return ManagementApiPoster(self.clients.management)

    @cached_property
    def counters(self) -> PowertoolsCounters:
        return PowertoolsCounters(metrics)

    @cached_property
    def ports(self) -> Ports:
        """The adapters, as the rules take them (the registry is also the flow control)."""
        return Ports(
            registry=self.registry,
            flow=self.registry,
            bus=self.bus,
            poster=self.poster,
            counters=self.counters,
        )

    @cached_property
    def limits(self) -> Limits:
        settings = self.settings
        return Limits(
            max_unacked=settings.max_unacked,
            connection_ttl_seconds=settings.connection_ttl_seconds,
            park_delay_seconds=settings.park_delay_seconds,
            max_parks=settings.max_parks,
            recipient_cache_seconds=settings.recipient_cache_seconds,
            presence_chunk=settings.presence_chunk,
            # No more posts at once than the clients keep connections for.
            fan_out_concurrency=min(settings.fan_out_concurrency, MAX_POOL_CONNECTIONS),
            max_inflight_commands=settings.max_unacked,
            handoff_reserve_ms=(MANAGEMENT_POST_WORST_SECONDS + HANDOFF_SECONDS) * 1000,
        )

    @cached_property
    def once(self) -> PowertoolsOnce:
        return PowertoolsOnce(self.clients.dynamodb, self.settings.table_name)

    @cached_property
    def delivery(self) -> Delivery:
        # Imported here: $connect and $disconnect never deliver.
        from functions.logic.delivery import Delivery

        return Delivery(self.ports, self.limits)

    @cached_property
    def relay(self) -> Relay:
        from functions.logic.relay import Relay

        return Relay(self.ports, self.limits, delivery=self.delivery, once=self.once)

    @cached_property
    def gateway(self) -> Gateway:
        return Gateway(
            self.ports,
            self.limits,
            limiter=RateLimiter(
                self.registry, limit_per_second=self.settings.rate_limit_per_second
            ),
            delivery=self.delivery,
        )
