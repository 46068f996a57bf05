"""Idempotency with Powertools, stored in the connections table.

Each record is its own partition: ``pk`` is the record's id (the idempotency
key, ``idempotency#<md5 of the request>``) and ``sk`` the constant
:data:`RECORD_SORT_KEY`, so commands of every tenant spread over the table's
partitions instead of sharing one (Powertools' composite-key default puts every
record under ``pk = "idempotency#<function>"``, one partition for the whole
account: about 500 commands/s at a partition's 1,000 writes/s, two writes each).
Records expire through the table's ``ttl`` attribute, so no second table is needed.

Records written before this layout (``pk = "idempotency#<function>"``, the key
in ``sk``) are never read again and expire within the hour. A command in flight
during the deploy whose envelope comes back (an SQS redelivery) finds no record
under the new key and runs again: that is safe, because the command's own item
(docs/architecture.md, "A command's item") records every step and its second
run resumes or refuses exactly as it would after a dead worker.

The Powertools layer is imported and built on the first call, so a function
that never needs it (every one but the router) pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = [
    "EXPIRY_ATTRIBUTE",
    "KEY_ATTRIBUTE",
    "KEY_PREFIX",
    "RECORD_SORT_KEY",
    "SORT_KEY_ATTRIBUTE",
    "PowertoolsOnce",
    "record_key",
]

#: The table's key and TTL attributes (infra/components/storage.py).
KEY_ATTRIBUTE = "pk"
SORT_KEY_ATTRIBUTE = "sk"
EXPIRY_ATTRIBUTE = "ttl"
#: Every record id starts with this (Powertools' ``key_prefix``): ``idempotency#<md5>``.
KEY_PREFIX = "idempotency"
#: The one sort key of every record: the record id alone is its partition.
RECORD_SORT_KEY = "idempotency"


def record_key(idempotency_key: str) -> dict[str, dict[str, str]]:
    """The table key of the record with id ``idempotency_key``."""
    return {
        KEY_ATTRIBUTE: {"S": idempotency_key},
        SORT_KEY_ATTRIBUTE: {"S": RECORD_SORT_KEY},
    }


def _persistence_layer(client: Any, table_name: str) -> Any:
    """Powertools' DynamoDB layer keyed by the record id (imported on first use)."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    class RecordPerPartition(DynamoDBPersistenceLayer):  # type: ignore[misc]
        """``pk`` = the record id, ``sk`` = a constant. Powertools reads the id back
        from ``key_attr`` and builds every Get, Put, Update and Delete key with
        ``_get_key``, so this one method moves the whole record."""

        def _get_key(self, idempotency_key: str) -> dict[str, Any]:
            return record_key(idempotency_key)

    return RecordPerPartition(
        table_name=table_name,
        key_attr=KEY_ATTRIBUTE,
        sort_key_attr=SORT_KEY_ATTRIBUTE,
        expiry_attr=EXPIRY_ATTRIBUTE,
        boto3_client=client,
    )


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

    def persistence_layer(self) -> Any:
        """The Powertools persistence layer this uses (built on each call: for tests)."""
        return _persistence_layer(self._client, self._table_name)

    def _build(self) -> Callable[..., Any]:
        from aws_lambda_powertools.utilities.idempotency import (
            IdempotencyConfig,
            idempotent_function,
        )

        config = IdempotencyConfig(
            event_key_jmespath="key", expires_after_seconds=self._expires_after_seconds
        )
        if self._context is not None:
            config.register_lambda_context(self._context)
        self._config = config

        @idempotent_function(  # type: ignore[untyped-decorator]
            data_keyword_argument="request",
            persistence_store=self.persistence_layer(),
            config=config,
            key_prefix=KEY_PREFIX,
        )
        def run(*, request: dict[str, str], action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            return action()

        return run  # type: ignore[no-any-return]

    def __call__(self, key: str, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if self._run is None:
            self._run = self._build()
        result: dict[str, Any] = self._run(request={"key": key}, action=action)
        return result
