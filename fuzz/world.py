"""The AWS side of the fuzzer: moto plus what moto does not check but AWS does.

The moto world itself (resources, environment, events, the handlers' wiring) is
:mod:`simulation`'s, shared with the tests and the benchmark; this module adds
what the fuzzer checks and counts.

* DynamoDB, Secrets Manager and SQS are moto's (``mock_aws``). The work queues
  have their dead-letter queues and a redrive policy (``maxReceiveCount`` as the
  stack sets it), so a record that keeps failing really lands in a DLQ.
* :class:`AwsRulesSqs` wraps the SQS client the handlers get: it refuses bodies
  with characters SQS refuses (``InvalidMessageContents``; moto accepts them) and
  holds messages sent with a delay on a virtual clock, so timeouts, parks and
  retries run when :meth:`World.drain` lets time pass, not after real seconds.
* :class:`FuzzConnectionsApi` is ``@connections``: a botocore hook on the handlers'
  management client answers 410 for closed ids, 413 above 128 KB (as AWS does)
  and 429 at a chosen rate, and hands every delivered body to the checks;
  ``DeleteConnection`` closes the id and API Gateway's ``$disconnect`` follows.
* :class:`World` invokes the real handler modules with API Gateway- and
  SQS-shaped events, and plays the event source mappings (batches of 10,
  partial batch failures, redelivery until the DLQ).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field, replace
from random import Random
from types import ModuleType
from typing import Any

import boto3
from botocore.exceptions import ClientError

from functions.dal.clients import AWSClients
from functions.logic.gateway import ONE_WAY_ROUTES
from functions.models.settings import GatewaySettings
from simulation import harness
from simulation.environment import ENVIRONMENT, REGION, handler_modules, lambda_environment
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
from simulation.harness import install_runtime
from simulation.resources import create_resources

#: What the stack sets (infra/config.py ``max_receive_count``).
MAX_RECEIVE_COUNT = 5
#: API Gateway's largest message, in and out (PostToConnection answers 413 above it).
MESSAGE_LIMIT = 128 * 1024

# SQS accepts #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF and nothing else.
_SQS_REFUSED = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _client_error(code: str, status: int, message: str, operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


# -- what the fuzzer counts ------------------------------------------------------------


def allows(policy: dict[str, Any] | None) -> bool:
    """Whether an authorizer's answer lets the connection in (a Deny or a raise does not)."""
    return policy is not None and policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"


@dataclass
class Finding:
    """One kind of failure: how often, and the first frame that caused it."""

    count: int = 0
    example: str | None = None
    detail: str = ""


@dataclass
class Observer:
    """The counts (all must stay 0) and, per count, the distinct causes seen."""

    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (
                "internal_answers",
                "exceptions",
                "dlq_records",
                "cross_tenant_deliveries",
                "invalid_json_to_clients",
                "replies_on_one_way_routes",
            ),
            0,
        )
    )
    causes: dict[str, dict[str, Finding]] = field(default_factory=dict)
    #: The frame being played (set by the runner), to name what caused a finding.
    current: str = ""

    def add(self, count: str, cause: str, detail: str = "", n: int = 1) -> None:
        self.counts[count] += n
        finding = self.causes.setdefault(count, {}).setdefault(cause, Finding())
        finding.count += n
        if finding.example is None:
            finding.example = self.current
            finding.detail = detail[:500]

    def exception(self, where: str, exc: BaseException, example: str | None = None) -> None:
        frames = []
        tb = exc.__traceback__
        while tb is not None:
            path = tb.tb_frame.f_code.co_filename
            frames.append((f"{os.path.basename(path)}:{tb.tb_lineno}", path))
            tb = tb.tb_next
        # The innermost frames in project code name the cause well enough to group by.
        project = [f for f, path in frames if f"{os.sep}functions{os.sep}" in path] or [
            f for f, _ in frames
        ]
        cause = f"{where}: {type(exc).__name__} at {' > '.join(project[-3:])}"
        saved = self.current
        if example is not None:
            self.current = example
        self.add("exceptions", cause, f"{type(exc).__name__}: {exc}")
        self.current = saved


class _ErrorLogs(logging.Handler):
    """Exceptions a handler caught and logged (``logger.exception``) are exceptions too."""

    def __init__(self, observer: Observer) -> None:
        super().__init__(logging.ERROR)
        self._observer = observer

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self._observer.exception(f"logged by {record.funcName}", record.exc_info[1])


# -- SQS -----------------------------------------------------------------------------------


class AwsRulesSqs(DelayedSqs):
    """The handlers' SQS client: AWS's body rules, and delays on a virtual clock."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        #: Queues that may hold visible messages (a send since the last empty receive).
        self.dirty: set[str] = set()

    @staticmethod
    def _check(body: Any, operation: str) -> None:
        if isinstance(body, str):
            bad = _SQS_REFUSED.search(body)
            if bad:
                raise _client_error(
                    "InvalidMessageContents",
                    400,
                    f"Invalid characters found. Deleted message body {hex(ord(bad.group()))}",
                    operation,
                )

    def send_message(self, **kwargs: Any) -> Any:
        self._check(kwargs.get("MessageBody"), "SendMessage")
        return super().send_message(**kwargs)

    def release(self, send_kwargs: dict[str, Any]) -> Any:
        self.dirty.add(send_kwargs["QueueUrl"])
        return super().release(send_kwargs)

    def send_message_batch(self, **kwargs: Any) -> Any:
        now_entries, ok = [], []
        for given in kwargs["Entries"]:
            self._check(given.get("MessageBody"), "SendMessageBatch")
            entry = dict(given)
            delay = entry.pop("DelaySeconds", 0) or 0
            if delay:
                self.hold(
                    delay, {"QueueUrl": kwargs["QueueUrl"], "MessageBody": entry["MessageBody"]}
                )
                ok.append({"Id": entry["Id"], "MessageId": "held"})
            else:
                now_entries.append(entry)
        result: dict[str, Any] = {"Successful": ok, "Failed": []}
        if now_entries:
            self.dirty.add(kwargs["QueueUrl"])
            sent = self._client.send_message_batch(QueueUrl=kwargs["QueueUrl"], Entries=now_entries)
            result["Successful"] += sent.get("Successful", [])
            result["Failed"] += sent.get("Failed", [])
        return result


# -- DynamoDB -------------------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$")


def _number_refusal(text: str) -> str | None:
    """Why DynamoDB refuses the number ``text`` (moto stores any): at most 38
    significant digits, magnitude within 1E-130 .. 9.9999999999999999999999999999999999999E+125."""
    match = _NUMBER.match(text)
    if not match:
        return f"{text[:40]} is not a number"
    digits = (match.group(1) + (match.group(2) or "")).strip("0")
    if len(digits) > 38:
        return "Attempting to store more than 38 significant digits in a Number"
    if digits:
        exponent = int(match.group(3) or 0) + len(match.group(1).lstrip("0") or "0") - 1
        if not match.group(1).lstrip("0"):
            exponent = (
                int(match.group(3) or 0)
                - (len(match.group(2) or "") - len((match.group(2) or "").lstrip("0")))
                - 1
            )
        if exponent > 125 or exponent < -130:
            return "Number overflow. Attempting to store a number with magnitude larger than supported range"
    return None


def _check_numbers(params: dict[str, Any], **_: Any) -> None:
    """Refuse what DynamoDB refuses in any ``N``/``NS`` value of a request (moto does not)."""

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "N" and isinstance(inner, str):
                    numbers = [inner]
                elif key == "NS" and isinstance(inner, list):
                    numbers = [n for n in inner if isinstance(n, str)]
                else:
                    walk(inner)
                    continue
                for number in numbers:
                    why = _number_refusal(number)
                    if why:
                        raise _client_error("ValidationException", 400, why, "DynamoDB")
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(params)


# -- @connections -------------------------------------------------------------------------


class FuzzConnectionsApi(ConnectionsApi):
    """``@connections`` with AWS's size limit and throttling at ``throttle_rate``;
    every delivered body goes to ``on_post``. The ids in ``deleted`` are the ones
    whose ``$disconnect`` is due (:meth:`World.closed_by_gateway` takes them)."""

    def __init__(
        self, on_post: Callable[[str, bytes], None], rng: Random, throttle_rate: float
    ) -> None:
        super().__init__()
        self._on_post = on_post
        self._rng = rng
        self.throttle_rate = throttle_rate

    def post(self, connection_id: str, data: bytes) -> Reply:
        if connection_id in self.open:
            if len(data) > MESSAGE_LIMIT:
                return self.error(413, "PayloadTooLargeException")
            if self.throttle_rate and self._rng.random() < self.throttle_rate:
                return self.error(429, "LimitExceededException")
        return super().post(connection_id, data)

    def delivered(self, connection_id: str, data: bytes) -> None:
        self._on_post(connection_id, data)


# -- the world ------------------------------------------------------------------------------


@dataclass
class Connection(harness.Connection):
    """A connection and what API Gateway keeps of it for later events."""

    authorizer: dict[str, Any]
    connected_at: int


class World:
    """The real handlers wired to moto; every invocation's failures go to ``observer``."""

    def __init__(
        self,
        observer: Observer,
        on_post: Callable[[str, bytes], None],
        rng: Random,
        *,
        throttle_rate: float = 0.0,
        settings_overrides: dict[str, Any] | None = None,
    ) -> None:
        from functions.handlers import _batch  # a handler module: after the environment

        self.observer = observer
        self.handlers = handler_modules()
        self._processor = _batch._processor()  # the one the handlers use: its failures are read
        self.dlqs = create_resources(max_receive_count=MAX_RECEIVE_COUNT)
        settings = replace(GatewaySettings.from_env(), **(settings_overrides or {}))
        self.settings = settings
        self.api = FuzzConnectionsApi(on_post, rng, throttle_rate)
        self.raw_sqs = boto3.client("sqs", region_name=REGION)
        self.sqs = AwsRulesSqs(self.raw_sqs)
        management = boto3.client(
            "apigatewaymanagementapi", region_name=REGION, endpoint_url=settings.callback_url
        )
        self.api.install(management)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.meta.events.register("before-parameter-build.dynamodb", _check_numbers)
        clients = AWSClients(dynamodb=dynamodb, sqs=self.sqs, management=management)
        install_runtime(self.handlers, settings, clients)
        self._log_handler = _ErrorLogs(observer)
        logging.getLogger(ENVIRONMENT["POWERTOOLS_SERVICE_NAME"]).addHandler(self._log_handler)
        self.connections: dict[str, Connection] = {}
        self.invocations = 0
        #: Frames per route API Gateway selected.
        self.routes: dict[str, int] = {}
        #: AWS calls the handlers made, per "service.Operation" (moto's and @connections').
        self.calls: dict[str, int] = {}
        self.call_seconds: dict[str, float] = {}
        for client in (clients.dynamodb, self.raw_sqs, management):
            client.meta.events.register("before-call", self._call_started)
            client.meta.events.register("after-call", self._call_ended)
        self._started: list[float] = []

    def _call_started(self, event_name: str, **_: Any) -> None:
        self._started.append(time.perf_counter())

    def _call_ended(self, event_name: str, **_: Any) -> None:
        name = ".".join(event_name.split(".")[1:3])
        self.calls[name] = self.calls.get(name, 0) + 1
        if self._started:
            spent = time.perf_counter() - self._started.pop()
            self.call_seconds[name] = self.call_seconds.get(name, 0.0) + spent

    def close(self) -> None:
        logging.getLogger(ENVIRONMENT["POWERTOOLS_SERVICE_NAME"]).removeHandler(self._log_handler)

    # -- API Gateway events -------------------------------------------------------------

    @staticmethod
    def _context(connection_id: str, route: str, event_type: str, at: int) -> dict[str, Any]:
        return request_context(connection_id, route, event_type, connected_at=at, now=at)

    def _invoke(self, name: str, event: dict[str, Any]) -> Any:
        self.invocations += 1
        return self.handlers[name].handler(event, LambdaContext())

    def authorize(self, token: str) -> dict[str, Any] | None:
        """The authorizer's policy (a Deny when it refused the token), or None when it raised."""
        event = authorizer_event(token, self._context("pending", "$connect", "CONNECT", 0))
        try:
            policy: dict[str, Any] = self._invoke("authorizer", event)
        except Exception as exc:  # a raising authorizer is a finding: the observer reports it
            self.observer.exception("authorizer", exc)
            return None
        return policy

    def connect(self, token: str, *, acks: bool, now_ms: int) -> Connection | None:
        """Authorize and run ``$connect``; the id opens when both allowed it."""
        policy = self.authorize(token)
        if policy is None or not allows(policy):
            return None
        connection_id = base64.b64encode(uuid.uuid4().bytes[:9]).decode()[:11] + "="
        context = self._context(connection_id, "$connect", "CONNECT", now_ms)
        authorizer = {"principalId": policy["principalId"], **policy["context"]}
        context["authorizer"] = authorizer
        try:
            response = self._invoke("connect", connect_event(context, acks=acks))
        except Exception as exc:
            self.observer.exception("connect", exc)
            return None
        if response.get("statusCode") != 200:
            return None
        conn = Connection(
            connection_id,
            str(authorizer["role"]),
            str(authorizer["tenant"]),
            str(authorizer["client_id"]),
            authorizer,
            now_ms,
        )
        self.connections[connection_id] = conn
        self.api.open.add(connection_id)
        return conn

    def send(self, conn: Connection, body: str, *, binary: bool = False) -> str | None:
        """One frame; returns the route response body (None when there is none or the
        handler raised). A binary frame's ``body`` is its base64 text."""
        # The route API Gateway selects from the action: errors on one-way routes
        # (snapshot, command, result, ack) must be posted, never returned. A binary
        # frame has no JSON body to select on.
        route = "$default" if binary else harness.select_route(body)
        self.routes[route] = self.routes.get(route, 0) + 1
        context = self._context(conn.connection_id, route, "MESSAGE", conn.connected_at)
        context["authorizer"] = conn.authorizer
        try:
            response = self._invoke("message", message_event(context, body, binary=binary))
        except Exception as exc:
            self.observer.exception("message handler", exc)
            return None
        out = response.get("body")
        if out is not None and route in ONE_WAY_ROUTES:
            # API Gateway would drop it: the client would never see this answer.
            self.observer.add("replies_on_one_way_routes", route, str(out)[:300])
            return None
        return None if out is None else str(out)

    def disconnect(self, connection_id: str) -> None:
        """API Gateway forgets the id and runs ``$disconnect``."""
        self.api.open.discard(connection_id)
        conn = self.connections.get(connection_id)
        context = self._context(connection_id, "$disconnect", "DISCONNECT", 0)
        context["authorizer"] = conn.authorizer if conn else {}
        try:
            self._invoke("disconnect", disconnect_event(context, reason=""))
        except Exception as exc:
            self.observer.exception("disconnect", exc)

    def closed_by_gateway(self) -> None:
        """``$disconnect`` of every id the handlers closed (superseded, flooders, slow)."""
        while self.api.deleted:
            self.disconnect(self.api.deleted.pop(0))

    # -- the event source mappings ----------------------------------------------------

    def _poll(self, queue_url: str, handler: str) -> int:
        messages = self.raw_sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            AttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        if not messages:
            self.sqs.dirty.discard(queue_url)
            return 0
        queue = queue_url.rsplit("/", 1)[-1]
        event = sqs_event(
            [
                sqs_record(
                    m["MessageId"],
                    m["Body"],
                    receipt_handle=m["ReceiptHandle"],
                    receive_count=m.get("Attributes", {}).get("ApproximateReceiveCount", "1"),
                    queue=queue,
                )
                for m in messages
            ]
        )
        try:
            response = self._invoke(handler, event)
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception as exc:  # the whole batch failed: every record is retried
            failed = {m["MessageId"] for m in messages}
            if not self._processor.exceptions:
                self.observer.exception(f"{handler} worker", exc)
        for info, record in zip(
            self._processor.exceptions, self._processor.fail_messages, strict=False
        ):
            if info[1] is not None:
                body = str(getattr(record, "body", ""))
                shown = body if len(body) <= 600 else f"{body[:500]}... ({len(body)} chars)"
                self.observer.exception(f"{handler} record", info[1], f"envelope {shown}")
        self._processor.exceptions.clear()
        self._processor.fail_messages.clear()
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.raw_sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
        return len(messages)

    def drain(self) -> int:
        """Run the workers until both queues are empty (delayed messages stay held)."""
        moved = 0
        # Posts made by the workers: the frame last sent is only a hint of the cause.
        last = self.observer.current
        if not last.startswith("(worker"):
            self.observer.current = f"(worker delivery; last frame sent: {last[:300]})"
        routes = (
            (self.settings.command_queue_url, "commands"),
            (self.settings.bus_queue_url, "router"),
            (self.settings.delivery_queue_url, "delivery"),
        )
        while True:
            self.closed_by_gateway()
            round_moved = 0
            for url, handler in routes:
                if url in self.sqs.dirty:
                    round_moved += self._poll(url, handler)
            self.closed_by_gateway()
            if not round_moved and not (self.sqs.dirty & {u for u, _ in routes}):
                self.observer.current = last
                return moved
            moved += round_moved

    def advance(self, seconds: float) -> None:
        """Let virtual time pass for delayed messages, then drain."""
        self.sqs.advance(seconds)
        self.drain()

    def settle(self) -> None:
        """Drain everything, delayed messages included, until nothing is left."""
        self.drain()
        while (due := self.sqs.next_due()) is not None:
            self.sqs.advance(due - self.sqs.now)
            self.drain()

    def leftover_items(self) -> dict[str, int]:
        """Items in the table by key kind (``C``, ``T``, ``S``, ``K``, ``idempotency``)."""
        out: dict[str, int] = {}
        db = self.handlers["message"].RUNTIME.clients.dynamodb
        kwargs: dict[str, Any] = {
            "TableName": self.settings.table_name,
            "ProjectionExpression": "pk",
        }
        while True:
            page = db.scan(**kwargs)
            for item in page.get("Items", []):
                kind = item["pk"]["S"].split("#", 1)[0]
                out[kind] = out.get(kind, 0) + 1
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def dead_letters(self) -> dict[str, int]:
        out = {}
        for name, url in self.dlqs.items():
            attrs = self.raw_sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            out[name] = int(attrs["ApproximateNumberOfMessages"]) + int(
                attrs["ApproximateNumberOfMessagesNotVisible"]
            )
        return out

    def dead_letter_bodies(self) -> Iterator[tuple[str, str]]:
        """(queue, body) of every DLQ record."""
        for name, url in self.dlqs.items():
            while got := self.raw_sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=900
            ).get("Messages", []):
                yield from ((name, m["Body"]) for m in got)


@contextmanager
def partition_queries() -> Iterator[None]:
    """Make moto's Query read one partition instead of sorting the whole table.

    moto 5 sorts every item of the table on each Query, so Queries slow down as the
    table grows (rate-limit counters, idempotency records, subscriptions), which
    would make a long run quadratic. The result is the same: the items whose hash
    key matches, in range-key order (moto filters and sorts them afterwards).
    """
    from moto.dynamodb.models.table import Table

    original_query, original_all_items = Table.query, Table.all_items
    hint: dict[int, Any] = {}

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name is None and hash_key is not None:
            hint[id(self)] = hash_key
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            hint.pop(id(self), None)

    def all_items(self: Any) -> Any:
        hash_key = hint.get(id(self))
        if hash_key is None or not self.range_key_attr:
            return original_all_items(self)
        partition = self.items.get(hash_key, {})
        return sorted(partition.values(), key=lambda x: x.range_key)

    Table.query, Table.all_items = query, all_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        Table.query, Table.all_items = original_query, original_all_items  # type: ignore[method-assign]


@contextmanager
def _wiring_kept(modules: dict[str, ModuleType]) -> Iterator[None]:
    """Put back the handler modules' wiring afterwards (pytest runs other suites after this)."""
    saved = {
        (name, attr): getattr(module, attr)
        for name, module in modules.items()
        for attr in ("RUNTIME", "KEYS")
        if hasattr(module, attr)
    }
    try:
        yield
    finally:
        for (name, attr), value in saved.items():
            setattr(modules[name], attr, value)


@contextmanager
def _powertools_logs_quiet() -> Iterator[None]:
    """Powertools' log handler writes to the stdout it found at import: errors reach the
    observer through its own handler, the JSON lines go nowhere."""
    powertools = logging.getLogger(ENVIRONMENT["POWERTOOLS_SERVICE_NAME"])
    streams = [h for h in powertools.handlers if isinstance(h, logging.StreamHandler)]
    with open(os.devnull, "w") as quiet:
        saved = [h.setStream(quiet) for h in streams]
        try:
            yield
        finally:
            for h, stream in zip(streams, saved, strict=True):
                if stream is not None:
                    h.setStream(stream)


@contextmanager
def moto_world(
    observer: Observer,
    on_post: Callable[[str, bytes], None],
    rng: Random,
    **kwargs: Any,
) -> Iterator[World]:
    """A fresh moto account with the stack's resources; Powertools' stdout (EMF metrics,
    logs) goes nowhere, errors reach ``observer`` through the log handler. The process's
    environment and the handler modules' wiring are as they were afterwards."""
    from moto import mock_aws

    with lambda_environment():
        modules = handler_modules()
        with (
            _wiring_kept(modules),
            _powertools_logs_quiet(),
            mock_aws(),
            partition_queries(),
            open(os.devnull, "w") as sink,
            redirect_stdout(sink),
        ):
            world = World(observer, on_post, rng, **kwargs)
            try:
                yield world
            finally:
                world.close()
