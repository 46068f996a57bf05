"""Presence, coalesced per tenant and cut into chunks of bounded work.

A reconnect storm is many presence records of few tenants. The router takes a
batch of them and, per tenant, keeps only each browser's latest state (by
``at``; online wins a tie), looks the tenant's consumers up once, and splits
the posts (every change to every consumer) into chunks of at most ``limit``
posts: one tenant's storm costs bounded work per record and per batch.

What a consumer sees: every browser's latest state always arrives. Changes of
one browser that meet in one batch are merged, so an offline-and-back
(online, offline, online) may arrive as a single ``online`` whose ``at`` is
later than the one before it: the browser reconnected in between
(docs/protocol.md). Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from tabrelay import wire

__all__ = ["Chunk", "chunks", "coalesce"]


class Chunk(NamedTuple):
    """Some presence changes for some consumers: ``len(changes) * len(to)`` posts."""

    changes: tuple[wire.Presence, ...]
    to: tuple[str, ...]


def coalesce(changes: Iterable[tuple[str, wire.Presence]]) -> dict[str, list[wire.Presence]]:
    """``(tenant, change)`` pairs -> per tenant, each browser's latest change, by client id."""
    latest: dict[str, dict[str, wire.Presence]] = {}
    for tenant, change in changes:
        browsers = latest.setdefault(tenant, {})
        seen = browsers.get(change.client_id)
        if seen is None or (change.at, change.online) > (seen.at, seen.online):
            browsers[change.client_id] = change
    return {
        tenant: [browsers[client] for client in sorted(browsers)]
        for tenant, browsers in latest.items()
    }


def chunks(changes: Sequence[wire.Presence], consumers: Sequence[str], limit: int) -> list[Chunk]:
    """Cover every (change, consumer) pair exactly once, at most ``limit`` posts a chunk."""
    if limit < 1:
        raise ValueError(f"a presence chunk holds at least one post, not {limit}")
    out: list[Chunk] = []
    for start in range(0, len(changes), limit):
        group = tuple(changes[start : start + limit])
        width = max(1, limit // len(group))
        out.extend(
            Chunk(group, tuple(consumers[at : at + width]))
            for at in range(0, len(consumers), width)
        )
    return out
