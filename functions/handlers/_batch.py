"""SQS batch plumbing of the queue workers (router, commands, delivery).

Only those use Powertools' batch utility, and they import it with their
first batch: it imports asyncio and every Powertools event class (about a
fifth of a bare ``import boto3``), which the first invocation counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

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

__all__ = ["process_queue_batch"]

_PROCESSOR: list[BatchProcessor] = []  # the container's one processor, made by the first batch


def _processor() -> BatchProcessor:
    if not _PROCESSOR:
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

        _PROCESSOR.append(BatchProcessor(event_type=EventType.SQS))
    return _PROCESSOR[0]


def process_queue_batch(
    event: dict[str, Any],
    context: LambdaContext,
    runtime: Runtime,
    decode: Callable[[str], _E],
    handle: Callable[[Relay, _E], None],
) -> PartialItemFailureResponse:
    """Run ``handle`` on each record's envelope (read by ``decode``); report only
    the failed records (a record that is no envelope fails too).

    The event source mapping has ``ReportBatchItemFailures``, so only a failing
    record is retried and, after ``maxReceiveCount`` receives, lands in its DLQ.
    """
    runtime.once.register_lambda_context(context)
    relay = runtime.relay
    relay.begin_batch()

    def record_handler(record: SQSRecord) -> None:
        try:
            envelope = decode(record.body)
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
