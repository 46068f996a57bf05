"""The API Gateway WebSocket data plane and its ``@connections`` API, on aiohttp.

One aiohttp application (:class:`Gateway`, in :mod:`.app`) serves, on one
host and port:

* the WebSocket endpoint (``/`` and ``/{stage}``): REQUEST authorizer,
  ``$connect`` (a non-2xx answer refuses the handshake with that status),
  route selection, Lambda proxy and mock integrations, route responses,
  32 KB frame / 128 KB message limits (close 1009), idle and maximum-duration
  closes (1001), and ``$disconnect`` on every close;
* the Management API (``/{stage}/@connections/{id}``: POST, GET, DELETE),
  answering 410 ``GoneException`` for unknown, closed or still-connecting ids,
  and, as on AWS, only to requests SigV4-signed with the local credentials
  (403 otherwise, so no web page can post to a connection). No route answers
  a CORS preflight or sends ``Access-Control-*`` headers.

Its parts, each a module:

* :mod:`.sockets`: the socket server (handshake, read loop, ``$disconnect``);
* :mod:`.connections_api`: ``@connections``, SigV4-checked;
* :mod:`.registry`: the connections by id, sending to and closing them, counters;
* :mod:`.limits`: frame and message size, throttling, idle and maximum duration;
* :mod:`.integrations`: route selection, events, and the only calls into the
  functions (the seam to move handlers out of process); :mod:`.authorizer`
  holds the pure policy and context rules around the REQUEST authorizer.

Events are built by :mod:`emulator.events`. This package knows nothing of
moto or of the template file: it gets the parsed API and the functions.
"""

from __future__ import annotations

from emulator.gateway.app import Gateway
from emulator.gateway.integrations import Deployment, Invocable
from emulator.gateway.limits import FRAME_LIMIT, MESSAGE_LIMIT, Limits
from emulator.gateway.registry import Connection, GatewayStats

__all__ = [
    "FRAME_LIMIT",
    "MESSAGE_LIMIT",
    "Connection",
    "Deployment",
    "Gateway",
    "GatewayStats",
    "Invocable",
    "Limits",
]
