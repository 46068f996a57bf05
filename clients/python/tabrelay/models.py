"""Public data types the client hands to applications.

Gateway replies that are already plain and typed (:class:`BrowserInfo`,
:class:`Presence`) are re-exported from the wire definition unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tabrelay import wire
from tabrelay.wire import BrowserInfo, Presence

__all__ = ["BrowserInfo", "CommandRequest", "Presence", "Snapshot"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One whole page snapshot from browser ``source``, parts joined and decompressed.

    ``seq`` grows with every snapshot of one browser. ``missed`` counts the
    snapshots of ``source`` that were dropped for this consumer since the
    previous one it was given: conflated by the gateway, abandoned half-received,
    or dropped by the client's own bounded buffer (``overflow="drop_oldest"``).
    """

    source: str
    sid: str
    seq: int
    html: str
    url: str = ""
    title: str = ""
    missed: int = 0
    parts: int = 1

    @property
    def size(self) -> int:
        """Length of the HTML in UTF-8 bytes."""
        return len(self.html.encode("utf-8", "surrogatepass"))  # a page may hold lone surrogates


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """A command delivered to a browser-side relay, as a handler receives it.

    ``source`` is the issuing consumer's client id; ``timeout`` (seconds) is how
    long the consumer waits for the answer.
    """

    id: str
    source: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    timeout: float = wire.DEFAULT_COMMAND_TIMEOUT
