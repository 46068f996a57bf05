"""SQS adapter of the bus, the command lane and the delivery queue."""

from __future__ import annotations

import json
import re
from typing import Any

from functions.logic.envelopes import BusEnvelope, DeliveryEnvelope, Lane
from functions.logic.ports import MAX_DELAY_SECONDS

__all__ = ["SqsBus"]


class SqsBus:
    """Implements :class:`~functions.logic.ports.Bus` with an injected SQS client.

    :meth:`publish` sends each envelope to its ``lane``'s queue: commands and
    results to the command lane, everything else to the bus.
    """

    def __init__(
        self, client: Any, bus_queue_url: str, delivery_queue_url: str, command_queue_url: str
    ) -> None:
        self._sqs = client
        self._lanes: dict[Lane, str] = {"bus": bus_queue_url, "commands": command_queue_url}
        self._delivery_url = delivery_queue_url

    def publish(self, envelope: BusEnvelope) -> None:
        self._sqs.send_message(
            QueueUrl=self._lanes[envelope.lane], MessageBody=_dump(envelope.to_dict())
        )

    def schedule(self, envelope: DeliveryEnvelope, delay_seconds: int = 0) -> None:
        self._sqs.send_message(
            QueueUrl=self._delivery_url,
            MessageBody=_dump(envelope.to_dict()),
            DelaySeconds=max(0, min(MAX_DELAY_SECONDS, int(delay_seconds))),
        )


# SQS accepts only #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
# json.dumps already escapes every control character; what is left are U+FFFE,
# U+FFFF and surrogates, which travel as JSON escapes (the router reads them back).
_SQS_REFUSES = re.compile(r"[\ud800-\udfff\ufffe\uffff]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _dump(envelope: dict[str, Any]) -> str:
    text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return _SQS_REFUSES.sub(_escape, text)
