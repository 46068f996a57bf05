"""The delivery-queue worker: retried posts, parked snapshots, command timeouts.

Failing records are reported as batch item failures, retried by SQS, then
moved to the delivery DLQ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from functions.handlers._batch import QueueWorker, process_queue_batch
from functions.handlers._powertools import logger, metrics
from functions.handlers._wiring import Runtime
from functions.logic.envelopes import decode_delivery
from functions.logic.relay import Relay
from functions.models.settings import GatewaySettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["handler"]

SETTINGS = GatewaySettings.from_env()
RUNTIME = Runtime(SETTINGS)
WORKER = QueueWorker(decode_delivery, Relay.handle_delivery)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_queue_batch(event, context, RUNTIME, WORKER)
