"""tabrelay: the Python client of the tabrelay WebSocket gateway.

Consumers watch snapshots from browsers and drive them with commands; browser-side
programs (simulators, headless agents) send snapshots and answer commands::

    async with tabrelay.connect(url, token=token) as relay:
        await relay.subscribe(["b1"])
        async for snap in relay.snapshots():
            print(snap.source, snap.url, len(snap.html))

The package installs alone: it depends on ``websockets`` and the standard
library; the wire protocol is a generated copy (``tabrelay._wire``).
"""

from __future__ import annotations

from tabrelay.client import CommandHandler, Relay, RelayOptions, RelayStats, connect
from tabrelay.core import DEFAULT_FRAME_BUDGET, backoff
from tabrelay.errors import (
    AuthError,
    BadRequestError,
    BusyError,
    CommandFailedError,
    CommandTimeoutError,
    ConflictError,
    ConnectError,
    ConnectionClosedError,
    ForbiddenError,
    InternalError,
    MalformedDeliveryError,
    MalformedResultError,
    QueueFullError,
    RateLimitedError,
    TabRelayError,
    TargetOfflineError,
    TooLargeError,
    UnknownActionError,
)
from tabrelay.models import BrowserInfo, CommandRequest, Presence, Snapshot

__all__ = [
    "DEFAULT_FRAME_BUDGET",
    "AuthError",
    "BadRequestError",
    "BrowserInfo",
    "BusyError",
    "CommandFailedError",
    "CommandHandler",
    "CommandRequest",
    "CommandTimeoutError",
    "ConflictError",
    "ConnectError",
    "ConnectionClosedError",
    "ForbiddenError",
    "InternalError",
    "MalformedDeliveryError",
    "MalformedResultError",
    "Presence",
    "QueueFullError",
    "RateLimitedError",
    "Relay",
    "RelayOptions",
    "RelayStats",
    "Snapshot",
    "TabRelayError",
    "TargetOfflineError",
    "TooLargeError",
    "UnknownActionError",
    "__version__",
    "backoff",
    "connect",
]

__version__ = "0.1.0"
