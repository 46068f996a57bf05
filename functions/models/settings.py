"""Typed settings of the Lambda functions, read from the environment.

Every environment variable a handler reads is named here, and handlers read
them once at import (module scope), so a missing variable fails at cold start,
not in the middle of a delivery. The infrastructure tests import each handler
with exactly the environment the stack gives it and ``TABRELAY_STRICT_SETTINGS``
set: then a variable with a default must be provided too, so a handler cannot
start reading a setting the stack does not set.

Imports nothing from the project.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = [
    "DEFAULT_CONNECTION_TTL_SECONDS",
    "DEFAULT_FAN_OUT_CONCURRENCY",
    "DEFAULT_MAX_PARKS",
    "DEFAULT_MAX_UNACKED",
    "DEFAULT_PARK_DELAY_SECONDS",
    "DEFAULT_PRESENCE_CHUNK",
    "DEFAULT_RATE_LIMIT_PER_SECOND",
    "DEFAULT_RECIPIENT_CACHE_SECONDS",
    "STRICT_VARIABLE",
    "AuthorizerSettings",
    "GatewaySettings",
    "MissingSettingError",
    "env_int",
    "env_str",
]

STRICT_VARIABLE = "TABRELAY_STRICT_SETTINGS"

# The one place that holds the defaults of the gateway's bounds: the settings
# read them, and so do the rules' ``Limits`` (functions/logic/limits.py).
DEFAULT_MAX_UNACKED = 100
DEFAULT_RATE_LIMIT_PER_SECOND = 100
DEFAULT_CONNECTION_TTL_SECONDS = 2 * 3600 + 600
DEFAULT_PARK_DELAY_SECONDS = 2
DEFAULT_MAX_PARKS = 8
# How long a warm container keeps a browser's recipients (a fan-out partition) it
# read: a subscription change reaches other containers this much later.
DEFAULT_RECIPIENT_CACHE_SECONDS = 2
#: Posts per chunk of a tenant's coalesced presence (functions/logic/presence.py):
#: the most one presence record makes the router post.
DEFAULT_PRESENCE_CHUNK = 100
#: Posts one fan-out (a snapshot's recipients, a presence chunk) runs at once.
DEFAULT_FAN_OUT_CONCURRENCY = 8


class MissingSettingError(RuntimeError):
    """A required environment variable is not set."""


def _strict() -> bool:
    return os.environ.get(STRICT_VARIABLE, "") == "1"


def env_str(name: str, default: str | None = None) -> str:
    """The variable ``name``; ``default`` if unset (never in strict mode)."""
    value = os.environ.get(name)
    if value is not None and value != "":
        return value
    if default is None or _strict():
        raise MissingSettingError(f"environment variable {name} is required")
    return default


def env_int(name: str, default: int | None = None) -> int:
    """The integer variable ``name``; ``default`` if unset (never in strict mode)."""
    raw = env_str(name, None if default is None else str(default))
    try:
        return int(raw)
    except ValueError:
        raise MissingSettingError(f"environment variable {name} must be an integer") from None


@dataclass(frozen=True, slots=True)
class AuthorizerSettings:
    """What the ``$connect`` authorizer needs: where the signing key lives."""

    signing_secret_id: str
    secret_max_age_seconds: int

    @classmethod
    def from_env(cls) -> AuthorizerSettings:
        return cls(
            signing_secret_id=env_str("SIGNING_SECRET_ID"),
            secret_max_age_seconds=env_int("SECRET_MAX_AGE_SECONDS", 300),
        )


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """What the connection, message and worker handlers need.

    ``callback_url`` is the Management API endpoint
    (``https://{api-id}.execute-api.{region}.amazonaws.com/{stage}``).
    ``command_queue_url`` is the command lane: commands and results, never
    behind snapshot fan-out or presence on the bus.
    """

    table_name: str
    bus_queue_url: str
    command_queue_url: str
    delivery_queue_url: str
    callback_url: str
    max_unacked: int
    rate_limit_per_second: int
    connection_ttl_seconds: int
    park_delay_seconds: int
    max_parks: int
    recipient_cache_seconds: int
    presence_chunk: int = DEFAULT_PRESENCE_CHUNK
    fan_out_concurrency: int = DEFAULT_FAN_OUT_CONCURRENCY

    @classmethod
    def from_env(cls) -> GatewaySettings:
        return cls(
            table_name=env_str("TABLE_NAME"),
            bus_queue_url=env_str("BUS_QUEUE_URL"),
            command_queue_url=env_str("COMMAND_QUEUE_URL"),
            delivery_queue_url=env_str("DELIVERY_QUEUE_URL"),
            callback_url=env_str("CALLBACK_URL"),
            max_unacked=env_int("MAX_UNACKED", DEFAULT_MAX_UNACKED),
            rate_limit_per_second=env_int("RATE_LIMIT_PER_SECOND", DEFAULT_RATE_LIMIT_PER_SECOND),
            connection_ttl_seconds=env_int(
                "CONNECTION_TTL_SECONDS", DEFAULT_CONNECTION_TTL_SECONDS
            ),
            park_delay_seconds=env_int("PARK_DELAY_SECONDS", DEFAULT_PARK_DELAY_SECONDS),
            max_parks=env_int("MAX_PARKS", DEFAULT_MAX_PARKS),
            recipient_cache_seconds=env_int(
                "RECIPIENT_CACHE_SECONDS", DEFAULT_RECIPIENT_CACHE_SECONDS
            ),
            presence_chunk=env_int("PRESENCE_CHUNK", DEFAULT_PRESENCE_CHUNK),
            fan_out_concurrency=env_int("FAN_OUT_CONCURRENCY", DEFAULT_FAN_OUT_CONCURRENCY),
        )
