"""Deployment settings read from CDK context (``-c key=value`` or ``cdk.json``).

Every tunable of the stack lives here with its default, so the local emulator
(which derives its behaviour from the synthesized template) changes when, and
only when, ``infra/`` or the context changes. Nothing here calls AWS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, Protocol

__all__ = [
    "DEFAULT_RESERVED_CONCURRENCY",
    "RESERVABLE_FUNCTIONS",
    "ContextSource",
    "InvalidSettingError",
    "StackSettings",
]

_DEFAULT_STAGE = "dev"
_STAGE_PATTERN = re.compile(r"[A-Za-z0-9_]{1,64}")  # fullmatch: "$" allows a final newline
_DOMAIN_PATTERN = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_CERTIFICATE_PATTERN = re.compile(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+")
_HOSTED_ZONE_PATTERN = re.compile(r"Z[A-Z0-9]{1,31}")
# Functions that may get reserved concurrency, and what ``reservedConcurrency=true``
# reserves for the connection path: 50 each covers API Gateway's default of 500 new
# WebSocket connections per second at ~100 ms per warm invocation, and leaves 850 of a
# default 1,000 account quota unreserved (AWS keeps at least 100 unreserved).
RESERVABLE_FUNCTIONS = (
    "authorizer",
    "connect",
    "disconnect",
    "message",
    "router",
    "commands",
    "delivery",
)
DEFAULT_RESERVED_CONCURRENCY = {"authorizer": 50, "connect": 50, "disconnect": 50}


class InvalidSettingError(ValueError):
    """A context value is missing its expected shape (not an int, bad stage name...)."""


class ContextSource(Protocol):
    """Anything with ``try_get_context`` (a construct's ``node``)."""

    def try_get_context(self, key: str) -> Any: ...


def _to_bool(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise InvalidSettingError(f"context {key}={raw!r} is not a boolean")


def _to_int(key: str, raw: Any) -> int:
    if isinstance(raw, bool):
        raise InvalidSettingError(f"context {key}={raw!r} is not an integer")
    try:
        return int(str(raw).strip())
    except ValueError:
        raise InvalidSettingError(f"context {key}={raw!r} is not an integer") from None


@dataclass(frozen=True, slots=True)
class StackSettings:
    """Every setting of the stack; field names are the context keys in camelCase.

    ``stage`` names the API Gateway stage and decides what survives a ``cdk destroy``
    (``retain``: the table and its data outlive the stack; default: only for ``prod``).
    """

    stage: str = _DEFAULT_STAGE
    retain: bool = False
    bundle: bool = True
    # Handler settings (environment of the gateway functions).
    max_unacked: int = 100
    rate_limit_per_second: int = 50
    connection_ttl_seconds: int = 2 * 3600 + 600
    park_delay_seconds: int = 2
    max_parks: int = 8
    recipient_cache_seconds: int = 2
    presence_chunk: int = 100
    fan_out_concurrency: int = 8
    secret_max_age_seconds: int = 300
    log_level: str = "INFO"
    # API Gateway stage throttling (per stage, all routes). Routes are left to the
    # account's request quota (10,000 requests/s, burst 5,000: its defaults): the
    # per-connection rate limiter (``rate_limit_per_second``) is the flood guard, and
    # a lower stage throttle would drop every tenant's snapshots and results long
    # before the account quota binds (docs/architecture.md, "Stage throttling").
    # Raise these with the account quota.
    throttle_rate_limit: int = 10_000
    throttle_burst_limit: int = 5_000
    # SQS -> Lambda event sources.
    router_batch_size: int = 10
    router_batching_window_seconds: int = 0
    router_max_concurrency: int = 20
    # The command lane: its own queue, function and concurrency, so a fan-out or
    # presence storm on the bus never delays a command (docs/architecture.md).
    commands_batch_size: int = 10
    commands_batching_window_seconds: int = 0
    commands_max_concurrency: int = 20
    delivery_batch_size: int = 10
    delivery_batching_window_seconds: int = 0
    delivery_max_concurrency: int = 50
    max_receive_count: int = 5
    # Operations.
    log_retention_days: int = 30
    oldest_message_alarm_seconds: int = 60
    alarm_email: str = ""
    # Set the account's API Gateway CloudWatch Logs role (needed for access logs).
    api_gateway_account_role: bool = True
    # Reserved concurrency, opt-in (README, "Reserved concurrency"): ``reservedConcurrency``
    # reserves DEFAULT_RESERVED_CONCURRENCY; ``<function>ReservedConcurrency=N`` (N > 0)
    # reserves N for that function (0: no reservation, never Lambda's "throttle all").
    reserved_concurrency: bool = False
    authorizer_reserved_concurrency: int = 0
    connect_reserved_concurrency: int = 0
    disconnect_reserved_concurrency: int = 0
    message_reserved_concurrency: int = 0
    router_reserved_concurrency: int = 0
    commands_reserved_concurrency: int = 0
    delivery_reserved_concurrency: int = 0
    # Custom domain, optional (README, "A custom domain"): wss://domainName survives
    # replacing the API. The ACM certificate must be in the stack's Region; with a
    # hosted zone id the stack also writes the Route 53 alias record.
    domain_name: str = ""
    certificate_arn: str = ""
    hosted_zone_id: str = ""
    hosted_zone_name: str = ""

    @staticmethod
    def context_key(field_name: str) -> str:
        """The CDK context key of a field (``max_unacked`` -> ``maxUnacked``)."""
        head, *rest = field_name.split("_")
        return head + "".join(part.capitalize() for part in rest)

    @classmethod
    def from_context(cls, node: ContextSource) -> StackSettings:
        """Read every field from context, falling back to the defaults above.

        ``retain`` defaults to ``True`` for the stage ``prod``. Raises
        :class:`InvalidSettingError` for a value of the wrong shape.
        """
        values: dict[str, Any] = {}
        for field in fields(cls):
            key = cls.context_key(field.name)
            raw = node.try_get_context(key)
            if raw is None:
                continue
            if field.type == "bool":
                values[field.name] = _to_bool(key, raw)
            elif field.type == "int":
                values[field.name] = _to_int(key, raw)
            else:
                values[field.name] = str(raw)
        if "retain" not in values:
            values["retain"] = values.get("stage", _DEFAULT_STAGE) == "prod"
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Reject values AWS would refuse at deploy time, so ``synth`` fails first."""
        if not _STAGE_PATTERN.fullmatch(self.stage):
            raise InvalidSettingError(f"stage {self.stage!r} must match {_STAGE_PATTERN.pattern}")
        for name in (
            "router_max_concurrency",
            "commands_max_concurrency",
            "delivery_max_concurrency",
        ):
            value = getattr(self, name)
            if not 2 <= value <= 1000:
                raise InvalidSettingError(f"{name}={value} must be within 2..1000 (SQS ESM)")
        for name in ("router_batch_size", "commands_batch_size", "delivery_batch_size"):
            value = getattr(self, name)
            if not 1 <= value <= 10_000:
                raise InvalidSettingError(f"{name}={value} must be within 1..10000")
        for worker in ("router", "commands", "delivery"):
            window = getattr(self, f"{worker}_batching_window_seconds")
            if not 0 <= window <= 300:
                raise InvalidSettingError(
                    f"{worker}_batching_window_seconds must be within 0..300 seconds"
                )
            if getattr(self, f"{worker}_batch_size") > 10 and window < 1:
                raise InvalidSettingError(
                    f"a {worker} batch size over 10 needs a batching window >= 1 s"
                )
        # At most the clients' connection pool (functions/dal/clients.py, 16).
        if not 1 <= self.fan_out_concurrency <= 16:
            raise InvalidSettingError("fanOutConcurrency must be within 1..16 posts at once")
        if self.presence_chunk < 1:
            raise InvalidSettingError("presenceChunk must be at least 1 (posts per chunk)")
        if not 1 <= self.max_receive_count <= 1000:
            raise InvalidSettingError("maxReceiveCount must be within 1..1000")
        self._validate_reserved_concurrency()
        self._validate_domain()

    def reserved_concurrency_of(self, function: str) -> int | None:
        """The reserved concurrency of ``function``, or None when it has none."""
        explicit: int = getattr(self, f"{function}_reserved_concurrency")
        if explicit > 0:
            return explicit
        if self.reserved_concurrency:
            return DEFAULT_RESERVED_CONCURRENCY.get(function)
        return None

    def _validate_reserved_concurrency(self) -> None:
        for function in RESERVABLE_FUNCTIONS:
            name = f"{function}_reserved_concurrency"
            if getattr(self, name) < 0:
                raise InvalidSettingError(
                    f"{self.context_key(name)} must be >= 0 (0: no reservation)"
                )
        # A mapping allowed more concurrent batches than its function may run would
        # throttle its own function, and throttled batches go back to the queue.
        for function in ("router", "commands", "delivery"):
            reserved = self.reserved_concurrency_of(function)
            maximum: int = getattr(self, f"{function}_max_concurrency")
            if reserved is not None and maximum > reserved:
                raise InvalidSettingError(
                    f"{function}MaxConcurrency={maximum} exceeds {function}ReservedConcurrency="
                    f"{reserved}: the SQS event source's maximum concurrency must stay within "
                    f"its function's reservation (lower {function}MaxConcurrency to at most "
                    f"{reserved}, or raise the reservation)"
                )

    def _validate_domain(self) -> None:
        if bool(self.domain_name) != bool(self.certificate_arn):
            raise InvalidSettingError(
                "a custom domain needs both domainName and certificateArn (an ACM certificate "
                "in the stack's Region covering the name)"
            )
        if self.domain_name and not _DOMAIN_PATTERN.fullmatch(self.domain_name):
            raise InvalidSettingError(
                f"domainName {self.domain_name!r} is not a lower-case DNS name (e.g. ws.example.com)"
            )
        if self.certificate_arn and not _CERTIFICATE_PATTERN.fullmatch(self.certificate_arn):
            raise InvalidSettingError(
                f"certificateArn {self.certificate_arn!r} is not an ACM certificate ARN"
            )
        if (self.hosted_zone_id or self.hosted_zone_name) and not self.domain_name:
            raise InvalidSettingError("hostedZoneId/hostedZoneName need a domainName")
        if self.hosted_zone_name and not self.hosted_zone_id:
            raise InvalidSettingError("hostedZoneName needs the zone's hostedZoneId")
        if self.hosted_zone_id and not _HOSTED_ZONE_PATTERN.fullmatch(self.hosted_zone_id):
            raise InvalidSettingError(
                f"hostedZoneId {self.hosted_zone_id!r} is not a Route 53 zone id (Z...)"
            )
        zone = self.hosted_zone_name.rstrip(".")
        if zone and self.domain_name != zone and not self.domain_name.endswith(f".{zone}"):
            raise InvalidSettingError(
                f"domainName {self.domain_name!r} is not within hostedZoneName {zone!r}"
            )
