"""Idempotency with Powertools, stored in the connections table.

Records live under ``pk = "idempotency#<function>"`` with the hashed key as
``sk`` and expire through the table's ``ttl`` attribute, so no second table is
needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

__all__ = ["PowertoolsOnce"]


class PowertoolsOnce:
    """Implements :class:`~functions.logic.ports.Once` with Powertools idempotency.

    An action that raises leaves no record, so a retry runs it again.
    """

    def __init__(self, client: Any, table_name: str, *, expires_after_seconds: int = 3600) -> None:
        persistence = DynamoDBPersistenceLayer(
            table_name=table_name,
            key_attr="pk",
            sort_key_attr="sk",
            expiry_attr="ttl",
            boto3_client=client,
        )
        config = IdempotencyConfig(
            event_key_jmespath="key", expires_after_seconds=expires_after_seconds
        )
        self.config = config

        @idempotent_function(  # type: ignore[untyped-decorator]
            data_keyword_argument="request", persistence_store=persistence, config=config
        )
        def run(*, request: dict[str, str], action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            return action()

        self._run = run

    def __call__(self, key: str, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = self._run(request={"key": key}, action=action)
        return result
