"""Drive the real handlers under moto with API Gateway-shaped events.

What stands in for AWS here:

* moto: DynamoDB, SQS, Secrets Manager (:mod:`simulation.resources` creates them
  with the keys the stack uses);
* :class:`RecordingConnectionsApi`: ``@connections``, recording every post per
  connection (and throttling the next posts on request);
* :class:`simulation.fakes.DelayedSqs`: messages sent with a delay wait until the
  caller advances its clock, so parks and timeouts need no sleep.

The Lambda event source mapping is played by :meth:`Harness.drain`: it reads
the queues in batches of ten, invokes the worker, and deletes what the worker
did not report as failed. A batch whose invocation died (raised anything) stays
on its queue and comes back at the next drain, as after SQS's visibility
timeout: past the dead invocation's deadline, for its idempotency records.

Handler modules are imported by the caller (:func:`simulation.environment.handler_modules`),
never at this module's import.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3

from functions.dal.clients import AWSClients
from functions.dal.secrets import SigningKeySource
from functions.logic.auth import SigningKey, mint_token
from functions.logic.gateway import ONE_WAY_ROUTES, ROUTES_WITH_RESPONSE
from functions.models.settings import GatewaySettings
from simulation.environment import ENVIRONMENT, REGION, SIGNING_KEY
from simulation.events import (
    LambdaContext,
    authorizer_event,
    connect_event,
    disconnect_event,
    message_event,
    request_context,
    sqs_event,
    sqs_record,
)
from simulation.fakes import ConnectionsApi, DelayedSqs, Reply

if TYPE_CHECKING:
    from functions.handlers._wiring import Runtime

__all__ = [
    "Connection",
    "Harness",
    "LambdaContext",
    "RecordingConnectionsApi",
    "install_runtime",
    "register_bystanders",
    "select_route",
]

#: The handler modules that take a ``RUNTIME`` (the authorizer takes ``KEYS``).
RUNTIME_HANDLERS = ("connect", "disconnect", "message", "router", "commands", "delivery")


def install_runtime(
    handlers: dict[str, ModuleType], settings: GatewaySettings, clients: AWSClients
) -> Runtime:
    """Wire the handler modules to ``clients``: one Runtime for the gateway handlers,
    the signing key (from moto's Secrets Manager) for the authorizer."""
    from functions.handlers._wiring import Runtime  # a handler module: imported when wired

    runtime = Runtime.build(settings, clients)
    for name in RUNTIME_HANDLERS:
        handlers[name].RUNTIME = runtime  # type: ignore[attr-defined]
    handlers["authorizer"].KEYS = SigningKeySource(  # type: ignore[attr-defined]
        boto3.client("secretsmanager", region_name=REGION),
        ENVIRONMENT["SIGNING_SECRET_ID"],
        max_age=300,
    )
    return runtime


def select_route(body: str) -> str:
    """The route API Gateway selects for a frame (``$request.body.action``): the
    action's own route when it has one, else ``$default``."""
    try:
        action = json.loads(body).get("action")
    except (ValueError, AttributeError, RecursionError):
        return "$default"
    if isinstance(action, str) and action in ONE_WAY_ROUTES | ROUTES_WITH_RESPONSE:
        return action
    return "$default"


class RecordingConnectionsApi(ConnectionsApi):
    """``@connections`` that records what each connection received; the next
    ``throttle_next`` posts answer 429 (whatever their connection)."""

    def __init__(self) -> None:
        super().__init__()
        self.received: dict[str, list[str]] = defaultdict(list)
        self.throttle_next = 0
        self._lock = threading.Lock()  # a fan-out posts from several threads

    def post(self, connection_id: str, data: bytes) -> Reply:
        with self._lock:
            throttled = self.throttle_next > 0
            if throttled:
                self.throttle_next -= 1
        if throttled:
            return self.error(429, "LimitExceededException", "Too Many Requests")
        return super().post(connection_id, data)

    def delivered(self, connection_id: str, data: bytes) -> None:
        self.received[connection_id].append(data.decode("utf-8", "surrogatepass"))


@dataclass
class Connection:
    connection_id: str
    role: str
    tenant: str
    client_id: str


class Harness:
    """A whole gateway under moto, driven event by event (call inside ``mock_aws``,
    after :func:`simulation.resources.create_resources`)."""

    def __init__(self, handlers: dict[str, ModuleType], settings: GatewaySettings) -> None:
        self.handlers = handlers
        self.settings = settings
        self.api = RecordingConnectionsApi()
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.raw_sqs = boto3.client("sqs", region_name=REGION)
        self.sqs = DelayedSqs(self.raw_sqs)
        management = boto3.client(
            "apigatewaymanagementapi", region_name=REGION, endpoint_url=settings.callback_url
        )
        self.api.install(management)
        self.clients = AWSClients(dynamodb=dynamodb, sqs=self.sqs, management=management)
        self.runtime = install_runtime(handlers, settings, self.clients)
        self.connected_at: dict[str, int] = {}
        #: The authorizer's context per connection, as API Gateway passes it on.
        self._authorizers: dict[str, dict[str, Any]] = {}

    # -- API Gateway events ----------------------------------------------------

    def _context(self, connection_id: str, route: str, event_type: str) -> dict[str, Any]:
        now = int(time.time() * 1000)
        connected_at = self.connected_at.get(connection_id, now)
        return request_context(connection_id, route, event_type, connected_at=connected_at, now=now)

    def authorize(self, token: str | None) -> dict[str, Any]:
        """Run the authorizer: its policy (Allow, or Deny for a refused token)."""
        event = authorizer_event(token, self._context("pending", "$connect", "CONNECT"))
        result: dict[str, Any] = self.handlers["authorizer"].handler(event, LambdaContext())
        return result

    def token(self, role: str, tenant: str, client_id: str, **kwargs: Any) -> str:
        return self.mint(SIGNING_KEY, role, tenant, client_id, **kwargs)

    @staticmethod
    def mint(key: SigningKey | str, role: str, tenant: str, client_id: str, **kwargs: Any) -> str:
        """A token signed with ``key`` (a :class:`SigningKey` names itself in ``kid``)."""
        return mint_token(key, tenant=tenant, role=role, client_id=client_id, **kwargs)

    def connect(self, role: str, tenant: str, client_id: str, *, acks: bool = False) -> Connection:
        """Authorize, run ``$connect``, and open the connection (as API Gateway does)."""
        policy = self.authorize(self.token(role, tenant, client_id))
        assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
        connection_id = f"{uuid.uuid4().hex[:14]}=="
        self.connected_at[connection_id] = int(time.time() * 1000)
        context = self._context(connection_id, "$connect", "CONNECT")
        context["authorizer"] = {"principalId": policy["principalId"], **policy["context"]}
        response = self.handlers["connect"].handler(
            connect_event(context, acks=acks), LambdaContext()
        )
        assert response["statusCode"] == 200
        self.api.open.add(connection_id)
        self._authorizers[connection_id] = context["authorizer"]
        return Connection(connection_id, role, tenant, client_id)

    def send(
        self,
        conn: Connection,
        body: str,
        *,
        route: str | None = None,
        lambda_context: LambdaContext | None = None,
    ) -> dict[str, Any] | None:
        """Send one frame; return what the sender gets back for it, if anything.

        ``route`` defaults to the one API Gateway selects (:func:`select_route`). On a
        route with a route response that is the handler's response body; on a one-way
        route (which has none: API Gateway would drop a body) the handler must return
        no body, and what it posted to the sender meanwhile (an error) is returned.
        """
        route = select_route(body) if route is None else route
        context = self._context(conn.connection_id, route, "MESSAGE")
        context["authorizer"] = self._authorizers[conn.connection_id]
        event = message_event(context, body)
        posted = len(self.api.received[conn.connection_id])
        response = self.handlers["message"].handler(event, lambda_context or LambdaContext())
        assert response["statusCode"] == 200
        body_out = response.get("body")
        if route in ONE_WAY_ROUTES:
            assert body_out is None, f"a reply on {route!r}, which has no route response"
            replies = self.api.received[conn.connection_id][posted:]
            return json.loads(replies[-1]) if replies else None
        return json.loads(body_out) if body_out else None

    def close(self, conn: Connection) -> None:
        """The client closes: API Gateway forgets the id and runs ``$disconnect``."""
        self.api.open.discard(conn.connection_id)
        context = self._context(conn.connection_id, "$disconnect", "DISCONNECT")
        context["authorizer"] = self._authorizers[conn.connection_id]
        event = disconnect_event(context, reason="Client closed")
        self.handlers["disconnect"].handler(event, LambdaContext())

    def vanish(self, conn: Connection) -> None:
        """The socket dies and ``$disconnect`` never arrives (best effort in AWS)."""
        self.api.open.discard(conn.connection_id)

    # -- the event source mappings --------------------------------------------------

    @staticmethod
    def sqs_event(bodies: list[tuple[str, str]]) -> dict[str, Any]:
        """A batch of (message id, body) records."""
        return sqs_event([sqs_record(message_id, body) for message_id, body in bodies])

    def _poll(self, queue_url: str, handler: Any) -> int:
        messages = self.raw_sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        if not messages:
            return 0
        event = self.sqs_event([(m["MessageId"], m["Body"]) for m in messages])
        try:
            response = handler(event, LambdaContext())
        except BaseException:
            # The invocation died (a test runner's timeout signal, Ctrl-C, an injected
            # fault): its batch stays on the queue and the next drain receives it.
            self._pass_dead_deadline()
            raise
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        assert not failed, f"worker failed records {failed}"
        for m in messages:
            self.raw_sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        return len(messages)

    def _pass_dead_deadline(self) -> None:
        """Let a dead invocation's deadline pass, for its idempotency records.

        SQS redelivers a dead invocation's batch only after the visibility timeout,
        six times the function's timeout (``infra/components/queues.py``): by then
        the INPROGRESS records Powertools left (it removes them only when an
        ``Exception`` is raised) have passed their ``in_progress_expiration``, the
        invocation's deadline, and the retry takes them over. Here the batch comes
        back at once, so that time is made to pass for those records alone; else
        every later drain of that batch fails ``IdempotencyAlreadyInProgressError``.
        The harness runs one invocation at a time: every INPROGRESS record is the
        dead one's.
        """
        # Powertools' default status attribute names, which PowertoolsOnce keeps; every
        # record id (its pk) starts with ``idempotency#`` (functions/dal/idempotency.py).
        db = self.clients.dynamodb
        past = str(int(time.time() * 1000) - 1)
        pages = db.get_paginator("scan").paginate(
            TableName=self.settings.table_name,
            FilterExpression="begins_with(pk, :idempotency) AND #status = :inprogress",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":idempotency": {"S": "idempotency#"},
                ":inprogress": {"S": "INPROGRESS"},
            },
        )
        for page in pages:
            for item in page["Items"]:
                db.update_item(
                    TableName=self.settings.table_name,
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET in_progress_expiration = :past",
                    ExpressionAttributeValues={":past": {"N": past}},
                )

    def worker_queues(self) -> tuple[tuple[str, str], ...]:
        """(queue URL, consuming handler) of each event source mapping."""
        settings = self.settings
        return (
            (settings.command_queue_url, "commands"),
            (settings.bus_queue_url, "router"),
            (settings.delivery_queue_url, "delivery"),
        )

    def drain(self, *, max_rounds: int = 1000) -> None:
        """Run the workers until every queue is empty (held delays stay held)."""
        for _ in range(max_rounds):
            moved = sum(
                self._poll(url, self.handlers[name].handler) for url, name in self.worker_queues()
            )
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


def register_bystanders(gateway: Harness, tenant: str, count: int) -> None:
    """``count`` live connections that must not receive b1's snapshots: browsers and
    consumers of other tenants, and consumers of ``tenant`` following another browser.

    Written in batches, as the registry lays them out, to keep the callers fast.
    """
    items: list[dict[str, dict[str, Any]]] = []
    for i in range(count):
        owner = tenant if i % 2 else f"{tenant}-other{i % 17}"
        role = "consumer" if i % 3 else "browser"
        conn, client = f"x{i}-{tenant}", f"n{i}"
        items.append(
            {
                "pk": {"S": f"C#{conn}"},
                "sk": {"S": "META"},
                "tenant": {"S": owner},
                "role": {"S": role},
                "client_id": {"S": client},
                "connected_at": {"N": "0"},
                "ttl": {"N": str(2**40)},
            }
        )
        items.append(
            {
                "pk": {"S": f"T#{owner}"},
                "sk": {"S": f"{role}#{client}"},
                "connection_id": {"S": conn},
                "connected_at": {"N": "0"},
                "ttl": {"N": str(2**40)},
            }
        )
        if role == "consumer":
            items.append(
                {
                    "pk": {"S": f"S#{owner}#elsewhere{i}"},
                    "sk": {"S": conn},
                    "client_id": {"S": client},
                    "acks": {"BOOL": False},
                    "ttl": {"N": str(2**40)},
                }
            )
    db = gateway.clients.dynamodb
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        db.batch_write_item(RequestItems={gateway.settings.table_name: batch})
