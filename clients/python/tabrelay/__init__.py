"""tabrelay: the Python client of the tabrelay WebSocket gateway.

Consumers watch snapshots from browsers and drive them with commands; browser-side
programs (simulators, headless agents) send snapshots and answer commands::

    async with tabrelay.connect(url, token=token) as relay:
        await relay.subscribe(["b1"])
        async for snap in relay.snapshots():
            print(snap.source, snap.url, len(snap.html))

The package installs alone: it depends on ``websockets`` and the standard
library. The wire protocol is :mod:`tabrelay.wire`, the one definition the
gateway's Lambdas use too. Names below are imported lazily (PEP 562, as
``websockets`` does): ``import tabrelay.wire`` loads nothing else of the
package, and no ``websockets``, so a Lambda pays only for the protocol.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Which submodule defines each public name, for the lazy lookup below.
_ERRORS = (
    "AuthError",
    "BadRequestError",
    "BusyError",
    "CommandFailedError",
    "CommandTimeoutError",
    "ConflictError",
    "ConnectError",
    "ConnectionClosedError",
    "ForbiddenError",
    "InternalError",
    "MalformedDeliveryError",
    "MalformedResultError",
    "QueueFullError",
    "RateLimitedError",
    "TabRelayError",
    "TargetOfflineError",
    "TooLargeError",
    "UnknownActionError",
)
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ("CommandHandler", "Relay", "RelayOptions", "RelayStats", "connect"), "tabrelay.client"
    ),
    **dict.fromkeys(("DEFAULT_FRAME_BUDGET", "backoff"), "tabrelay.core"),
    **dict.fromkeys(_ERRORS, "tabrelay.errors"),
    **dict.fromkeys(("BrowserInfo", "CommandRequest", "Presence", "Snapshot"), "tabrelay.models"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
