"""The token signing key, from Secrets Manager through Powertools Parameters.

The key is cached for ``max_age`` seconds in a warm container, so verifying a
token costs no AWS call on most connects. The provider is built on the first
read, so importing the authorizer costs no Powertools Parameters import.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

__all__ = ["SigningKeySource"]


class SigningKeySource:
    """Reads the HS256 key: the secret string itself, or its ``"key"`` field when JSON."""

    def __init__(self, client: Any, secret_id: str, *, max_age: int) -> None:
        self._client = client
        self._provider: SecretsProvider | None = None
        self._secret_id = secret_id
        self._max_age = max_age

    def key(self) -> str:
        if self._provider is None:
            from aws_lambda_powertools.utilities.parameters import SecretsProvider

            self._provider = SecretsProvider(boto3_client=self._client)
        value = self._provider.get(self._secret_id, max_age=self._max_age)
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        if text.startswith("{"):
            parsed = json.loads(text)
            if isinstance(parsed, dict) and isinstance(parsed.get("key"), str):
                return str(parsed["key"])
        return text
