"""Local emulator of the deployed gateway: API Gateway WebSocket API + Lambda + moto.

Only tests, benchmarks and ``make run`` import it. See docs/local.md.
"""

from __future__ import annotations

__all__: list[str] = []
