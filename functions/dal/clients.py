"""boto3 clients of the Lambda functions: configuration, created on first use.

A handler builds only what its invocations use: a :class:`LazyClient` stands
for a boto3 client and creates it (loading its service model, the costly part)
on the first attribute read, then keeps it for every warm invocation of the
container. boto3 itself is the Lambda runtime's (the asset does not carry it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

__all__ = [
    "CLIENT_CONFIG",
    "HANDOFF_SECONDS",
    "MANAGEMENT_CONFIG",
    "MANAGEMENT_CONNECT_TIMEOUT",
    "MANAGEMENT_MAX_ATTEMPTS",
    "MANAGEMENT_POST_WORST_SECONDS",
    "MANAGEMENT_READ_TIMEOUT",
    "AWSClients",
    "LazyClient",
    "secrets_manager",
]

# Lambda has seconds, not minutes: fail fast and let SQS retry, rather than
# let botocore's retries eat the function's timeout.
CLIENT_CONFIG = Config(
    connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"}
)
# A post to @connections answers in tens of milliseconds or not at all: 1 s to
# connect, 1 s to read, one retry. That bounds one post, so the message function's
# inline fan-out (up to 10 posts) can stop and hand off to the bus in time.
MANAGEMENT_CONNECT_TIMEOUT = 1
MANAGEMENT_READ_TIMEOUT = 1
MANAGEMENT_MAX_ATTEMPTS = 2
MANAGEMENT_CONFIG = Config(
    connect_timeout=MANAGEMENT_CONNECT_TIMEOUT,
    read_timeout=MANAGEMENT_READ_TIMEOUT,
    # total_max_attempts counts the first attempt (botocore's max_attempts does not).
    retries={"total_max_attempts": MANAGEMENT_MAX_ATTEMPTS, "mode": "standard"},
)
#: The longest one post can take: every attempt times out connecting and then
#: reading, and botocore's standard mode waits up to 1 s before the (first) retry.
MANAGEMENT_POST_WORST_SECONDS = MANAGEMENT_MAX_ATTEMPTS * (
    MANAGEMENT_CONNECT_TIMEOUT + MANAGEMENT_READ_TIMEOUT
) + (MANAGEMENT_MAX_ATTEMPTS - 1)
#: Left for handing the rest of an inline fan-out to the bus (one SQS send).
HANDOFF_SECONDS = 1


class LazyClient:
    """A boto3 client made by ``factory`` on first use, then cached."""

    __slots__ = ("_client", "_factory")

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._client: Any = None

    @property
    def created(self) -> bool:
        return self._client is not None

    def __getattr__(self, name: str) -> Any:
        # Only called for names the proxy lacks: every client method and ``meta``.
        client = self._client
        if client is None:
            client = self._client = self._factory()
        return getattr(client, name)


class AWSClients:
    """The boto3 clients a gateway function may use, each created on first use.

    Tests pass their own (moto) clients; those are used as they are.
    """

    def __init__(
        self,
        *,
        dynamodb: Any = None,
        sqs: Any = None,
        management: Any = None,
        callback_url: str | None = None,
    ) -> None:
        self.dynamodb: Any = dynamodb or LazyClient(
            lambda: boto3.client("dynamodb", config=CLIENT_CONFIG)
        )
        self.sqs: Any = sqs or LazyClient(lambda: boto3.client("sqs", config=CLIENT_CONFIG))
        self.management: Any = management or LazyClient(
            lambda: boto3.client(
                "apigatewaymanagementapi", endpoint_url=callback_url, config=MANAGEMENT_CONFIG
            )
        )


def secrets_manager() -> LazyClient:
    """The Secrets Manager client of the authorizer, created on first use."""
    return LazyClient(lambda: boto3.client("secretsmanager"))
