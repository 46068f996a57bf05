"""``make dlq``: what sits in each dead-letter queue of the running local gateway.

``make run`` writes ``.local/run-<port>.json`` (the moto endpoint, the DLQs'
URLs, where failures are logged; removed when it stops) and appends every
failed SQS record's last error to ``.local/failures-<port>.jsonl``. This
module reads both, peeks at every DLQ (the messages are made visible again at
once, so nothing is consumed) and prints, per message, an envelope summary
(kind, tenant, cid, sizes; never whole payloads), its receive count and the
error logged for it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emulator.pollers import RecordFailure

__all__ = [
    "DeadLetter",
    "append_failure",
    "peek",
    "read_failures",
    "render",
    "state_path",
    "summarize",
]

#: Fields of an envelope worth a glance, in this order (values cut short).
_FIELDS = ("kind", "tenant", "client", "cid", "to", "attempt")
_SHORT = 60


@dataclass(frozen=True)
class DeadLetter:
    """One message in a DLQ."""

    queue: str
    message_id: str
    summary: str
    receive_count: int
    error: str | None
    failed_on_receive: int | None = None


def state_path(config: Path, port: int) -> Path:
    """Where ``make run`` on ``port`` describes itself (next to the config file)."""
    return config.parent / f"run-{port}.json"


def failures_path(config: Path, port: int) -> Path:
    return config.parent / f"failures-{port}.jsonl"


def append_failure(path: Path, failure: RecordFailure) -> None:
    """Log one record failure (a JSON line; the last line per message id wins)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write(json.dumps(asdict(failure)) + "\n")


def read_failures(path: Path) -> dict[str, dict[str, Any]]:
    """The last failure logged per message id (empty when there is no log)."""
    found: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and isinstance(entry.get("message_id"), str):
                    found[entry["message_id"]] = entry
    return found


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= _SHORT else text[: _SHORT - 1] + "…"


def summarize(body: str) -> str:
    """A one-line summary of an envelope: its kind, tenant, cid and sizes."""
    size = len(body.encode("utf-8", "surrogatepass"))
    try:
        envelope = json.loads(body)
    except ValueError:
        return f"not an envelope ({size} bytes): {_short(body)}"
    if not isinstance(envelope, dict):
        return f"not an envelope ({size} bytes): {_short(body)}"
    parts = [f"{key}={_short(envelope[key])}" for key in _FIELDS if key in envelope]
    message = envelope.get("msg")
    if isinstance(message, dict):
        for key in ("action", "id", "name", "sid", "part", "parts"):
            if key in message:
                parts.append(f"msg.{key}={_short(message[key])}")
        data = message.get("data")
        if isinstance(data, str):
            parts.append(f"msg.data={len(data)} chars")
    if isinstance(envelope.get("data"), str):
        parts.append(f"data={len(envelope['data'])} chars")
    parts.append(f"{size} bytes")
    return " ".join(parts)


def peek(
    sqs: Any, queue_url: str, queue: str, failures: Mapping[str, Mapping[str, Any]]
) -> list[DeadLetter]:
    """Every message of one DLQ, left in place (made visible again at once)."""
    letters: list[DeadLetter] = []
    handles: list[str] = []
    seen: set[str] = set()
    try:
        while True:
            # Hidden while we page through, so each receive returns new ones.
            batch = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=60,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                handles.append(message["ReceiptHandle"])
                failure = failures.get(message["MessageId"]) or {}
                attributes = message.get("Attributes") or {}
                # Our own receive counted once: report the receives before it.
                received = max(0, int(attributes.get("ApproximateReceiveCount", 1)) - 1)
                letters.append(
                    DeadLetter(
                        queue=queue,
                        message_id=message["MessageId"],
                        summary=summarize(message.get("Body", "")),
                        receive_count=received,
                        error=failure.get("error"),
                        failed_on_receive=failure.get("receive_count"),
                    )
                )
    finally:
        for start in range(0, len(handles), 10):
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for i, h in enumerate(handles[start : start + 10])
                ],
            )
    return letters


def render(letters_by_queue: Mapping[str, list[DeadLetter]]) -> str:
    """The text ``make dlq`` prints."""
    if not any(letters_by_queue.values()):
        queues = ", ".join(letters_by_queue) or "none"
        return f"no dead letters (DLQs: {queues})"
    lines: list[str] = []
    for queue, letters in letters_by_queue.items():
        lines.append(f"{queue}: {len(letters)} dead letter(s)")
        for letter in letters:
            last = (
                f", last failed on receive {letter.failed_on_receive}"
                if letter.failed_on_receive
                else ""
            )
            lines.append(f"  {letter.message_id}  received {letter.receive_count} time(s){last}")
            lines.append(f"    {letter.summary}")
            lines.append(f"    error: {letter.error or '(none logged by this run of make run)'}")
    return "\n".join(lines)
