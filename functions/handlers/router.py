"""Lambda entry point: router (placeholder until the handler lands)."""

from __future__ import annotations

from typing import Any

from functions.models.settings import GatewaySettings

__all__ = ["handler"]

SETTINGS = GatewaySettings.from_env()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise NotImplementedError
