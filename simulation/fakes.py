"""What moto lacks, as the handlers' clients see it.

* :class:`ConnectionsApi`: the ``@connections`` API, as botocore ``before-call``
  hooks on the handlers' ``apigatewaymanagementapi`` client (moto has none);
  410 for ids that are not open, as API Gateway answers. Subclasses decide what
  else a post may meet (throttling, size) and what becomes of a delivered body.
* :class:`DelayedSqs`: an SQS client wrapper that holds messages sent with a
  delay until :meth:`DelayedSqs.advance` moves its virtual clock, so parks,
  timeouts and retries need no sleep.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from typing import Any
from urllib.parse import unquote

__all__ = ["ConnectionsApi", "DelayedSqs", "Reply"]


class _HTTP:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""


#: What a ``before-call`` hook returns to short-circuit botocore: (response, parsed).
Reply = tuple[_HTTP, dict[str, Any]]


class ConnectionsApi:
    """``@connections``: open ids, posts answered by :meth:`post`, deletes that close."""

    def __init__(self) -> None:
        self.open: set[str] = set()
        #: Ids closed by DeleteConnection, in order.
        self.deleted: list[str] = []
        #: Posts that reached an open connection.
        self.posts = 0

    def install(self, client: Any) -> None:
        client.meta.events.register(
            "before-call.apigatewaymanagementapi.PostToConnection", self._post
        )
        client.meta.events.register(
            "before-call.apigatewaymanagementapi.DeleteConnection", self._delete
        )

    @staticmethod
    def error(status: int, code: str, message: str | None = None) -> Reply:
        return _HTTP(status), {
            "Error": {"Code": code, "Message": message or code},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }

    @staticmethod
    def ok(status: int = 200) -> Reply:
        return _HTTP(status), {"ResponseMetadata": {"HTTPStatusCode": status}}

    @staticmethod
    def _connection_id(params: dict[str, Any]) -> str:
        return unquote(params["url_path"].rsplit("/", 1)[-1])

    def _post(self, params: dict[str, Any], **_: Any) -> Reply:
        body = params["body"]
        data = body if isinstance(body, bytes) else str(body).encode("utf-8", "surrogatepass")
        return self.post(self._connection_id(params), data)

    def post(self, connection_id: str, data: bytes) -> Reply:
        """One PostToConnection: 410 unless open, else :meth:`delivered` and 200."""
        if connection_id not in self.open:
            return self.error(410, "GoneException", "Gone")
        self.posts += 1
        self.delivered(connection_id, data)
        return self.ok()

    def delivered(self, connection_id: str, data: bytes) -> None:
        """A body reached an open connection (subclasses record or check it)."""

    def _delete(self, params: dict[str, Any], **_: Any) -> Reply:
        connection_id = self._connection_id(params)
        if connection_id not in self.open:
            return self.error(410, "GoneException", "Gone")
        self.open.discard(connection_id)
        self.deleted.append(connection_id)
        return self.ok(204)


class DelayedSqs:
    """Wraps an SQS client: messages sent with a delay wait for :meth:`advance`.

    Held messages are sent when their time comes, earliest first (in the order
    they were held when due at the same time).
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self.now = 0.0
        self._held: list[tuple[float, int, dict[str, Any]]] = []
        self._order = itertools.count()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def send_message(self, **kwargs: Any) -> Any:
        delay = kwargs.pop("DelaySeconds", 0) or 0
        if delay:
            self.hold(delay, kwargs)
            return {"MessageId": f"held-{uuid.uuid4().hex}"}
        return self.release(kwargs)

    def hold(self, delay: float, send_kwargs: dict[str, Any]) -> None:
        heapq.heappush(self._held, (self.now + delay, next(self._order), send_kwargs))

    def release(self, send_kwargs: dict[str, Any]) -> Any:
        """Send now (a subclass may note which queue became non-empty)."""
        return self._client.send_message(**send_kwargs)

    def advance(self, seconds: float) -> int:
        """Let ``seconds`` of virtual time pass; returns how many held messages came due."""
        self.now += seconds
        due = 0
        while self._held and self._held[0][0] <= self.now:
            _, _, kwargs = heapq.heappop(self._held)
            self.release(kwargs)
            due += 1
        return due

    @property
    def held(self) -> int:
        return len(self._held)

    def next_due(self) -> float | None:
        return self._held[0][0] if self._held else None
