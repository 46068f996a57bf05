"""Idempotency with Powertools, stored in the connections table.

Records live under ``pk = "idempotency#<function>"`` with the hashed key as
``sk`` and expire through the table's ``ttl`` attribute, so no second table is
needed.

The Powertools layer is imported and built on the first call, so a function
that never needs it (every one but the router) pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["PowertoolsOnce"]


class PowertoolsOnce:
    """Implements :class:`~functions.logic.ports.Once` with Powertools idempotency.

    An action that raises leaves no record, so a retry runs it again.
    """

    def __init__(self, client: Any, table_name: str, *, expires_after_seconds: int = 3600) -> None:
        self._client = client
        self._table_name = table_name
        self._expires_after_seconds = expires_after_seconds
        self._context: LambdaContext | None = None
        self._run: Callable[..., Any] | None = None
        self._config: Any = None

    def register_lambda_context(self, context: LambdaContext) -> None:
        """Records expire relative to the invocation's remaining time (Powertools)."""
        self._context = context
        if self._config is not None:
            self._config.register_lambda_context(context)

    def _build(self) -> Callable[..., Any]:
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        persistence = DynamoDBPersistenceLayer(
            table_name=self._table_name,
            key_attr="pk",
            sort_key_attr="sk",
            expiry_attr="ttl",
            boto3_client=self._client,
        )
        config = IdempotencyConfig(
            event_key_jmespath="key", expires_after_seconds=self._expires_after_seconds
        )
        if self._context is not None:
            config.register_lambda_context(self._context)
        self._config = config

        @idempotent_function(  # type: ignore[untyped-decorator]
            data_keyword_argument="request", persistence_store=persistence, config=config
        )
        def run(*, request: dict[str, str], action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            return action()

        return run  # type: ignore[no-any-return]

    def __call__(self, key: str, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if self._run is None:
            self._run = self._build()
        result: dict[str, Any] = self._run(request={"key": key}, action=action)
        return result
