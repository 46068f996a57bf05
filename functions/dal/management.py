"""API Gateway Management API adapter: post to and close connections.

410 (GoneException) becomes :class:`ConnectionGoneError`; throttling (429)
becomes :class:`DeliveryThrottledError`; server errors (5xx) and network failures
(timeouts included) become :class:`DeliveryRetryableError`, so the rules can retry through SQS. Anything
else (403, 413) is a bug or a misconfiguration and propagates.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from functions.logic.ports import (
    ConnectionGoneError,
    DeliveryRetryableError,
    DeliveryThrottledError,
)

__all__ = ["ManagementApiPoster"]

_THROTTLED_CODES = frozenset(
    {"LimitExceededException", "TooManyRequestsException", "ThrottlingException"}
)


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


class ManagementApiPoster:
    """Implements :class:`~functions.logic.ports.Poster` with an injected
    ``apigatewaymanagementapi`` client whose endpoint is the stage's callback URL."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def post(self, connection_id: str, data: str) -> None:
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data.encode("utf-8"))
        except ClientError as error:
            code = error.response["Error"]["Code"]
            status = _status(error)
            if code == "GoneException" or status == 410:
                raise ConnectionGoneError(connection_id) from None
            if code in _THROTTLED_CODES or status == 429:
                raise DeliveryThrottledError(f"{code} ({status})") from error
            if status >= 500:
                raise DeliveryRetryableError(f"{code} ({status})") from error
            raise
        except (ConnectionError, HTTPClientError) as error:
            raise DeliveryRetryableError(str(error)) from error

    def disconnect(self, connection_id: str) -> None:
        try:
            self._client.delete_connection(ConnectionId=connection_id)
        except ClientError as error:
            if error.response["Error"]["Code"] != "GoneException" and _status(error) != 410:
                raise
