"""The bounds the rules enforce, one value per bound (defaults: the settings')."""

from __future__ import annotations

from dataclasses import dataclass

from tabrelay import wire

from functions.models.settings import (
    DEFAULT_CONNECTION_TTL_SECONDS,
    DEFAULT_FAN_OUT_CONCURRENCY,
    DEFAULT_MAX_PARKS,
    DEFAULT_MAX_UNACKED,
    DEFAULT_PARK_DELAY_SECONDS,
    DEFAULT_PRESENCE_CHUNK,
    DEFAULT_RECIPIENT_CACHE_SECONDS,
)

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds every connection lives within (from the function's settings,
    whose defaults are these)."""

    max_unacked: int = DEFAULT_MAX_UNACKED
    connection_ttl_seconds: int = DEFAULT_CONNECTION_TTL_SECONDS
    park_delay_seconds: int = DEFAULT_PARK_DELAY_SECONDS
    max_parks: int = DEFAULT_MAX_PARKS
    #: How long a warm container keeps a fan-out partition it read (0: one batch).
    recipient_cache_seconds: float = DEFAULT_RECIPIENT_CACHE_SECONDS
    #: Room left under API Gateway's 128 KB for what a delivery adds.
    max_inbound_bytes: int = wire.MESSAGE_LIMIT - 1024
    #: Commands in flight per browser.
    max_inflight_commands: int = DEFAULT_MAX_UNACKED
    #: Snapshots with at most this many recipients are delivered by the message
    #: handler itself; more go through the bus to the router.
    inline_fan_out: int = 10
    #: The inline fan-out posts only while the function has more than this left
    #: (the longest one post can take, plus a hand-off to the bus); then it hands
    #: the recipients left to the router.
    handoff_reserve_ms: int = 6000
    #: Posts per chunk of a tenant's coalesced presence (the router posts one
    #: chunk per tenant per batch and puts the others back on the bus).
    presence_chunk: int = DEFAULT_PRESENCE_CHUNK
    #: Posts of one fan-out in flight at once (1: one after the other).
    fan_out_concurrency: int = DEFAULT_FAN_OUT_CONCURRENCY
