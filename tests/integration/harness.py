"""Drive the real handlers under moto with API Gateway-shaped events.

What stands in for AWS here:

* moto: DynamoDB, SQS, Secrets Manager (created from the same keys the stack uses);
* :class:`FakeManagementApi`: a botocore ``before-call`` hook on the handlers'
  ``apigatewaymanagementapi`` client that records every post per connection and
  answers 410 for ids that are not open, as API Gateway does (moto never does);
* :class:`HeldDelays`: an SQS client wrapper that holds messages sent with a
  delay until the test advances its clock, so parks and timeouts need no sleep.

The Lambda event source mapping is played by :meth:`Harness.drain`: it reads
the queues in batches of ten, invokes the worker, and deletes what the worker
did not report as failed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import unquote

import boto3

from functions.dal.secrets import SigningKeySource
from functions.handlers._wiring import AWSClients, Runtime
from functions.logic.auth import mint_token
from functions.models.settings import GatewaySettings
from tests.integration import env  # noqa: F401  (must precede Powertools objects)
from tests.integration.constants import API_ID, REGION, SIGNING_KEY, STAGE


@dataclass
class LambdaContext:
    function_name: str = "tabrelay-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:tabrelay-test"
    aws_request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    log_group_name: str = "/aws/lambda/tabrelay-test"
    log_stream_name: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


class _HTTP:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""


class FakeManagementApi:
    """The ``@connections`` API as the handlers see it: posts recorded, 410 for closed ids."""

    def __init__(self) -> None:
        self.open: set[str] = set()
        self.received: dict[str, list[str]] = defaultdict(list)
        self.deleted: list[str] = []
        self.throttle_next = 0
        self.posts = 0

    def install(self, client: Any) -> None:
        client.meta.events.register(
            "before-call.apigatewaymanagementapi.PostToConnection", self._post
        )
        client.meta.events.register(
            "before-call.apigatewaymanagementapi.DeleteConnection", self._delete
        )

    @staticmethod
    def _connection_id(params: dict[str, Any]) -> str:
        return unquote(params["url_path"].rsplit("/", 1)[-1])

    def _gone(self) -> tuple[_HTTP, dict[str, Any]]:
        return _HTTP(410), {
            "Error": {"Code": "GoneException", "Message": "Gone"},
            "ResponseMetadata": {"HTTPStatusCode": 410},
        }

    def _post(self, params: dict[str, Any], **_: Any) -> tuple[_HTTP, dict[str, Any]]:
        connection_id = self._connection_id(params)
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return _HTTP(429), {
                "Error": {"Code": "LimitExceededException", "Message": "Too Many Requests"},
                "ResponseMetadata": {"HTTPStatusCode": 429},
            }
        if connection_id not in self.open:
            return self._gone()
        self.posts += 1
        body = params["body"]
        self.received[connection_id].append(body.decode() if isinstance(body, bytes) else body)
        return _HTTP(200), {"ResponseMetadata": {"HTTPStatusCode": 200}}

    def _delete(self, params: dict[str, Any], **_: Any) -> tuple[_HTTP, dict[str, Any]]:
        connection_id = self._connection_id(params)
        if connection_id not in self.open:
            return self._gone()
        self.open.discard(connection_id)
        self.deleted.append(connection_id)
        return _HTTP(204), {"ResponseMetadata": {"HTTPStatusCode": 204}}


class HeldDelays:
    """Wraps an SQS client: messages sent with a delay wait for :meth:`advance`."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.now = 0.0
        self._held: list[tuple[float, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def send_message(self, **kwargs: Any) -> Any:
        delay = kwargs.pop("DelaySeconds", 0)
        if delay:
            self._held.append((self.now + delay, kwargs))
            return {"MessageId": "held"}
        return self._client.send_message(**kwargs)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [kw for at, kw in self._held if at <= self.now]
        self._held = [(at, kw) for at, kw in self._held if at > self.now]
        for kwargs in due:
            self._client.send_message(**kwargs)

    @property
    def held(self) -> int:
        return len(self._held)


@dataclass
class Connection:
    connection_id: str
    role: str
    tenant: str
    client_id: str


class Harness:
    """A whole gateway under moto, driven event by event."""

    def __init__(self, handlers: dict[str, ModuleType], settings: GatewaySettings) -> None:
        self.handlers = handlers
        self.settings = settings
        self.api = FakeManagementApi()
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.raw_sqs = boto3.client("sqs", region_name=REGION)
        self.sqs = HeldDelays(self.raw_sqs)
        management = boto3.client(
            "apigatewaymanagementapi", region_name=REGION, endpoint_url=settings.callback_url
        )
        self.api.install(management)
        self.clients = AWSClients(dynamodb=dynamodb, sqs=self.sqs, management=management)
        runtime = Runtime.build(settings, self.clients)
        for name in ("connect", "disconnect", "message", "router", "delivery"):
            handlers[name].RUNTIME = runtime  # type: ignore[attr-defined]
        self.runtime = runtime
        secrets = boto3.client("secretsmanager", region_name=REGION)
        handlers["authorizer"].KEYS = SigningKeySource(  # type: ignore[attr-defined]
            secrets, "tabrelay-signing-key", max_age=300
        )
        self.connected_at: dict[str, int] = {}

    # -- API Gateway events ----------------------------------------------------

    def _context(self, connection_id: str, route: str, event_type: str) -> dict[str, Any]:
        now = int(time.time() * 1000)
        context: dict[str, Any] = {
            "routeKey": route,
            "eventType": event_type,
            "connectionId": connection_id,
            "connectedAt": self.connected_at.get(connection_id, now),
            "requestTimeEpoch": now,
            "requestId": uuid.uuid4().hex,
            "extendedRequestId": uuid.uuid4().hex,
            "messageDirection": "IN",
            "stage": STAGE,
            "apiId": API_ID,
            "domainName": f"{API_ID}.execute-api.{REGION}.amazonaws.com",
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "pytest"},
        }
        if event_type == "MESSAGE":
            context["messageId"] = uuid.uuid4().hex[:16]
        return context

    def authorize(self, token: str | None) -> dict[str, Any]:
        """Run the authorizer; raises what it raises (``Unauthorized``)."""
        event = {
            "type": "REQUEST",
            "methodArn": f"arn:aws:execute-api:{REGION}:123456789012:{API_ID}/{STAGE}/$connect",
            "headers": {"Host": "example"},
            "queryStringParameters": {"token": token} if token is not None else {},
            "requestContext": self._context("pending", "$connect", "CONNECT"),
        }
        result: dict[str, Any] = self.handlers["authorizer"].handler(event, LambdaContext())
        return result

    def token(self, role: str, tenant: str, client_id: str, **kwargs: Any) -> str:
        return mint_token(SIGNING_KEY, tenant=tenant, role=role, client_id=client_id, **kwargs)

    def connect(self, role: str, tenant: str, client_id: str, *, acks: bool = False) -> Connection:
        """Authorize, run ``$connect``, and open the connection (as API Gateway does)."""
        policy = self.authorize(self.token(role, tenant, client_id))
        assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
        connection_id = f"{uuid.uuid4().hex[:14]}=="
        self.connected_at[connection_id] = int(time.time() * 1000)
        context = self._context(connection_id, "$connect", "CONNECT")
        context["authorizer"] = {"principalId": policy["principalId"], **policy["context"]}
        query = {"token": "x"} | ({"acks": "1"} if acks else {})
        event = {
            "headers": {"Host": "example"},
            "queryStringParameters": query,
            "requestContext": context,
            "isBase64Encoded": False,
        }
        response = self.handlers["connect"].handler(event, LambdaContext())
        assert response["statusCode"] == 200
        self.api.open.add(connection_id)
        self._authorizers = getattr(self, "_authorizers", {})
        self._authorizers[connection_id] = context["authorizer"]
        return Connection(connection_id, role, tenant, client_id)

    def send(
        self,
        conn: Connection,
        body: str,
        *,
        route: str = "$default",
        lambda_context: LambdaContext | None = None,
    ) -> dict[str, Any] | None:
        """Send one frame; return the decoded route response, if the handler replied."""
        context = self._context(conn.connection_id, route, "MESSAGE")
        context["authorizer"] = self._authorizers[conn.connection_id]
        event = {"requestContext": context, "body": body, "isBase64Encoded": False}
        response = self.handlers["message"].handler(event, lambda_context or LambdaContext())
        assert response["statusCode"] == 200
        body_out = response.get("body")
        return json.loads(body_out) if body_out else None

    def close(self, conn: Connection) -> None:
        """The client closes: API Gateway forgets the id and runs ``$disconnect``."""
        self.api.open.discard(conn.connection_id)
        context = self._context(conn.connection_id, "$disconnect", "DISCONNECT")
        context["authorizer"] = self._authorizers[conn.connection_id]
        context["disconnectStatusCode"] = 1000
        context["disconnectReason"] = "Client closed"
        event = {"requestContext": context, "isBase64Encoded": False}
        self.handlers["disconnect"].handler(event, LambdaContext())

    def vanish(self, conn: Connection) -> None:
        """The socket dies and ``$disconnect`` never arrives (best effort in AWS)."""
        self.api.open.discard(conn.connection_id)

    # -- the event source mappings --------------------------------------------------

    @staticmethod
    def sqs_event(bodies: list[tuple[str, str]]) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "messageId": message_id,
                    "receiptHandle": f"rh-{message_id}",
                    "body": body,
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:q",
                    "awsRegion": REGION,
                }
                for message_id, body in bodies
            ]
        }

    def _poll(self, queue_url: str, handler: Any) -> int:
        messages = self.raw_sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        if not messages:
            return 0
        event = self.sqs_event([(m["MessageId"], m["Body"]) for m in messages])
        response = handler(event, LambdaContext())
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        assert not failed, f"worker failed records {failed}"
        for m in messages:
            self.raw_sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        return len(messages)

    def drain(self, *, max_rounds: int = 1000) -> None:
        """Run the workers until both queues are empty (held delays stay held)."""
        for _ in range(max_rounds):
            moved = self._poll(self.settings.bus_queue_url, self.handlers["router"].handler)
            moved += self._poll(self.settings.delivery_queue_url, self.handlers["delivery"].handler)
            if not moved:
                return
        raise AssertionError("queues did not drain")

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for delayed messages, then drain."""
        self.sqs.advance(seconds)
        self.drain()

    # -- what clients received --------------------------------------------------------

    def received(self, conn: Connection) -> list[dict[str, Any]]:
        return [json.loads(m) for m in self.api.received[conn.connection_id]]

    def take(self, conn: Connection) -> list[dict[str, Any]]:
        messages = self.received(conn)
        self.api.received[conn.connection_id].clear()
        return messages
