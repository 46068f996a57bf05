"""Lambda entry point: the $connect authorizer (placeholder until the handler lands)."""

from __future__ import annotations

from typing import Any

from functions.models.settings import AuthorizerSettings

__all__ = ["handler"]

SETTINGS = AuthorizerSettings.from_env()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise NotImplementedError
