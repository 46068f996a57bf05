"""SQS batch plumbing of the queue workers (router, commands, delivery).

Only those use Powertools' batch utility, and they import it with their
first batch: it imports asyncio and every Powertools event class (about a
fifth of a bare ``import boto3``), which the first invocation counts.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from functions.handlers._powertools import logger
from functions.logic.envelopes import BusEnvelope, CommandLaneEnvelope, DeliveryEnvelope

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from functions.handlers._wiring import Runtime
    from functions.logic.relay import Relay

_E = TypeVar("_E", BusEnvelope, CommandLaneEnvelope, DeliveryEnvelope)

__all__ = ["QueueWorker", "process_queue_batch"]

# A processor holds its batch's records and outcomes, so each thread has its own:
# Lambda runs one invocation at a time (one processor per container), the local
# emulator runs the workers' batches side by side in threads of one process.
_PROCESSORS = threading.local()


def _processor() -> BatchProcessor:
    processor: BatchProcessor | None = getattr(_PROCESSORS, "processor", None)
    if processor is None:
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

        processor = _PROCESSORS.processor = BatchProcessor(event_type=EventType.SQS)
    return processor


@dataclass(frozen=True, slots=True)
class QueueWorker(Generic[_E]):
    """What a queue worker does with its records: ``decode`` each body, ``handle``
    each envelope; ``prepare``, if given, first sees every envelope of the batch
    (the router coalesces presence)."""

    decode: Callable[[str], _E]
    handle: Callable[[Relay, _E], None]
    prepare: Callable[[Relay, list[_E]], None] | None = None


def process_queue_batch(
    event: dict[str, Any], context: LambdaContext, runtime: Runtime, worker: QueueWorker[_E]
) -> PartialItemFailureResponse:
    """Run the worker on each record's envelope; report only the failed records
    (a record that is no envelope fails too).

    The event source mapping has ``ReportBatchItemFailures``, so only a failing
    record is retried and, after ``maxReceiveCount`` receives, lands in its DLQ.
    """
    runtime.once.register_lambda_context(context)
    relay = runtime.relay
    relay.begin_batch()
    decode, handle = worker.decode, worker.handle
    decoded: dict[str, _E] = {}
    if worker.prepare is not None:
        for raw in event.get("Records", []):
            with contextlib.suppress(Exception):  # it fails as its own record below
                decoded[raw["messageId"]] = decode(raw["body"])
        worker.prepare(relay, list(decoded.values()))

    def record_handler(record: SQSRecord) -> None:
        try:
            envelope = decoded.get(record.message_id) or decode(record.body)
            logger.append_keys(
                correlation_id=envelope.cid, tenant=getattr(envelope, "tenant", None)
            )
            handle(relay, envelope)
        except Exception:
            # Keyed by the SQS message id, which the message keeps in its DLQ:
            # whoever inspects a dead letter finds its error in the logs.
            logger.exception("record failed", extra={"message_id": record.message_id})
            raise

    from aws_lambda_powertools.utilities.batch import process_partial_response

    return process_partial_response(
        event=event, record_handler=record_handler, processor=_processor(), context=context
    )
