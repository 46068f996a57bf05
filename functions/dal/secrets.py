"""The token signing key, from Secrets Manager through Powertools Parameters.

The key is cached for ``max_age`` seconds in a warm container, so verifying a
token costs no AWS call on most connects.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider

__all__ = ["SigningKeySource"]


class SigningKeySource:
    """Reads the HS256 key: the secret string itself, or its ``"key"`` field when JSON."""

    def __init__(self, client: Any, secret_id: str, *, max_age: int) -> None:
        self._provider = SecretsProvider(boto3_client=client)
        self._secret_id = secret_id
        self._max_age = max_age

    def key(self) -> str:
        value = self._provider.get(self._secret_id, max_age=self._max_age)
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        if text.startswith("{"):
            parsed = json.loads(text)
            if isinstance(parsed, dict) and isinstance(parsed.get("key"), str):
                return str(parsed["key"])
        return text
