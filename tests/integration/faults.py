"""Kill a worker at a chosen AWS call, then let SQS redeliver what it was doing.

:class:`Faults` watches the calls that change something (DynamoDB writes,
``@connections`` posts and deletes, SQS sends) made while a worker (router or
delivery) runs. Recording a clean run gives the sequence of those calls; arming
``(index, "before" | "after")`` makes the worker die just before that call is
made, or just after it returned. :func:`run_workers` plays the event source
mapping: a batch whose worker died is left on its queue and comes back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from simulation.harness import Harness, LambdaContext

__all__ = ["Call", "Faults", "WorkerDied", "run_workers"]

_WRITES = frozenset(
    {
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "PostToConnection",
        "DeleteConnection",
    }
)


class WorkerDied(BaseException):
    """The worker's process died. Not an ``Exception``: nothing in the worker
    (Powertools batch and idempotency, our rules) catches it, so the whole batch
    is redelivered and an idempotency record is left INPROGRESS, as in a crash."""


class DeadlineContext(LambdaContext):
    """SQS redelivers a dead invocation's batch only after the visibility timeout,
    which is longer than the function's timeout: by then the dead invocation's
    deadline has passed and Powertools lets the retry take over its INPROGRESS
    record. This context says so at once, so no test sleeps."""

    def get_remaining_time_in_millis(self) -> int:
        return -1


@dataclass(frozen=True)
class Call:
    """One call that changes something: ``dynamodb.UpdateItem(command)``."""

    operation: str
    target: str

    def __str__(self) -> str:
        return f"{self.operation}({self.target})"


class Faults:
    """Records the workers' writes and posts; kills the worker at an armed one."""

    def __init__(self, gateway: Harness) -> None:
        self._gateway = gateway
        self.calls: list[Call] = []
        self.watching = False  # only while a worker runs inside a watched phase
        self.phase = False
        self.armed: tuple[int, str] | None = None
        self.armed_call: tuple[str, str] | None = None
        self.fired: Call | None = None
        for client in (gateway.clients.dynamodb, gateway.clients.management):
            client.meta.events.register_first("before-call.*.*", self._before)
            client.meta.events.register("after-call.*.*", self._after)
        sqs = gateway.sqs
        send = sqs.send_message

        def send_message(**kwargs: Any) -> Any:
            queue = next(name for url, name in gateway.worker_queues() if url == kwargs["QueueUrl"])
            call = Call("sqs.SendMessage", queue)
            self._maybe_die(call, "before", new=True)
            response = send(**kwargs)
            self._maybe_die(call, "after", new=False)
            return response

        sqs.send_message = send_message  # type: ignore[method-assign]

    def die_at_first(self, call: str, when: str = "after") -> None:
        """Arm a fault at the first call named ``call`` (``"dynamodb.UpdateItem(command)"``)."""
        self.phase = True
        self.armed_call = (call, when)

    def _label(self, model: Any, params: dict[str, Any]) -> Call:
        service, name = model.service_model.service_name, model.name
        if service == "apigatewaymanagementapi":
            connection = unquote(params["url_path"].rsplit("/", 1)[-1])
            role = self._gateway._authorizers.get(connection, {}).get("role", "unknown")
            return Call(name, role)
        body = json.loads(params.get("body") or b"{}")
        key = body.get("Key") or body.get("Item") or {}
        pk = key.get("pk", {}).get("S", "")
        target = {
            "K#": "command",
            "C#": "connection",
            "T#": "client index",
            "S#": "fan-out",
            "id": "idempotency",
        }.get(pk[:2], "batch" if name == "BatchWriteItem" else "other")
        return Call(f"{service}.{name}", target)

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name in _WRITES:
            self._maybe_die(self._label(model, params), "before", new=True)

    def _after(self, model: Any, **kwargs: Any) -> None:
        if model.name in _WRITES and self.watching and self.phase:
            self._maybe_die(self.calls[-1], "after", new=False)

    def _maybe_die(self, call: Call, when: str, *, new: bool) -> None:
        if not (self.watching and self.phase):
            return
        if new:
            self.calls.append(call)
        if self.armed == (len(self.calls) - 1, when) or self.armed_call == (str(call), when):
            self.armed = self.armed_call = None
            self.fired = call
            raise WorkerDied(f"worker died {when} call {len(self.calls) - 1}: {call}")


def _poll(gateway: Harness, faults: Faults, queue_url: str, handler: Any) -> int:
    messages = gateway.raw_sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    ).get("Messages", [])
    if not messages:
        return 0
    event = gateway.sqs_event([(m["MessageId"], m["Body"]) for m in messages])
    faults.watching = True
    try:
        response = handler(event, DeadlineContext())
    except WorkerDied:
        return len(messages)  # nothing deleted: SQS redelivers the whole batch
    finally:
        faults.watching = False
    failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
    for m in messages:
        if m["MessageId"] not in failed:  # a failed record comes back, as in SQS
            gateway.raw_sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return len(messages)


def run_workers(gateway: Harness, faults: Faults, *, max_rounds: int = 200) -> None:
    """Run the workers until every queue is empty, redelivering what failed."""
    for _ in range(max_rounds):
        moved = sum(
            _poll(gateway, faults, url, gateway.handlers[name].handler)
            for url, name in gateway.worker_queues()
        )
        if not moved:
            return
    raise AssertionError("queues did not drain")
