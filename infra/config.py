"""Deployment settings read from CDK context (``-c key=value`` or ``cdk.json``).

Every tunable of the stack lives here with its default, so the local emulator
(which derives its behaviour from the synthesized template) changes when, and
only when, ``infra/`` or the context changes. Nothing here calls AWS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, Protocol

__all__ = ["ContextSource", "InvalidSettingError", "StackSettings"]

_DEFAULT_STAGE = "dev"
_STAGE_PATTERN = re.compile(r"[A-Za-z0-9_]{1,64}")  # fullmatch: "$" allows a final newline


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
    secret_max_age_seconds: int = 300
    log_level: str = "INFO"
    # API Gateway stage throttling (per stage, all routes).
    throttle_rate_limit: int = 1000
    throttle_burst_limit: int = 500
    # SQS -> Lambda event sources.
    router_batch_size: int = 10
    router_batching_window_seconds: int = 0
    router_max_concurrency: int = 20
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
        for name in ("router_max_concurrency", "delivery_max_concurrency"):
            value = getattr(self, name)
            if not 2 <= value <= 1000:
                raise InvalidSettingError(f"{name}={value} must be within 2..1000 (SQS ESM)")
        for name in ("router_batch_size", "delivery_batch_size"):
            value = getattr(self, name)
            if not 1 <= value <= 10_000:
                raise InvalidSettingError(f"{name}={value} must be within 1..10000")
        for name in ("router_batching_window_seconds", "delivery_batching_window_seconds"):
            if not 0 <= getattr(self, name) <= 300:
                raise InvalidSettingError(f"{name} must be within 0..300 seconds")
        if self.router_batch_size > 10 and self.router_batching_window_seconds < 1:
            raise InvalidSettingError("a router batch size over 10 needs a batching window >= 1 s")
        if self.delivery_batch_size > 10 and self.delivery_batching_window_seconds < 1:
            raise InvalidSettingError(
                "a delivery batch size over 10 needs a batching window >= 1 s"
            )
        if not 1 <= self.max_receive_count <= 1000:
            raise InvalidSettingError("maxReceiveCount must be within 1..1000")
