"""The bus worker: fan-out of snapshots, routing of commands, results and presence.

Each SQS record is processed on its own; a failing record is reported as a
batch item failure (``ReportBatchItemFailures``), so only it is retried and,
after ``maxReceiveCount`` receives, lands in the bus DLQ.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.handlers._runtime import Runtime, envelope_of, logger, metrics, tracer
from functions.models.settings import GatewaySettings

__all__ = ["handler"]

SETTINGS = GatewaySettings.from_env()
RUNTIME = Runtime.build(SETTINGS)
processor = BatchProcessor(event_type=EventType.SQS)


def _record(record: SQSRecord) -> None:
    envelope = envelope_of(record.body)
    logger.append_keys(correlation_id=envelope.get("cid"), tenant=envelope.get("tenant"))
    RUNTIME.relay.handle_bus(envelope)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    RUNTIME.once.config.register_lambda_context(context)
    RUNTIME.relay.begin_batch()
    return process_partial_response(
        event=event, record_handler=_record, processor=processor, context=context
    )
