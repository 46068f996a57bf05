"""The command-lane worker: commands, raw commands and results.

Its own queue and function, so no command or result waits behind a snapshot
fan-out or a presence storm on the bus. Failing records are reported as batch
item failures, retried by SQS, then moved to the command lane's DLQ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from functions.handlers._batch import QueueWorker, process_queue_batch
from functions.handlers._powertools import logger, metrics
from functions.handlers._wiring import Runtime
from functions.logic.envelopes import decode_command
from functions.logic.relay import Relay
from functions.models.settings import GatewaySettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["handler"]

SETTINGS = GatewaySettings.from_env()
RUNTIME = Runtime(SETTINGS)
WORKER = QueueWorker(decode_command, Relay.handle_command)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_queue_batch(event, context, RUNTIME, WORKER)
