"""SQS-to-Lambda event source mappings and the DynamoDB TTL sweeper.

A :class:`QueuePoller` does what Lambda's SQS poller does for one mapping:
long-polls the queue, gathers up to ``BatchSize`` records within
``MaximumBatchingWindowInSeconds``, runs at most ``MaximumConcurrency``
batches at once, deletes what succeeded and leaves the rest to come back
after the queue's visibility timeout (a raised error leaves the whole batch;
``ReportBatchItemFailures`` leaves only the failed records). moto applies the
redrive policy on receive, so records that keep failing reach the DLQ.
The last error of every failed record (what the function logged for its
message id, or why the batch failed) is kept in :attr:`QueuePoller.errors`
and given to ``on_failure``: ``make dlq`` shows it next to the dead letter.

moto never expires items by TTL: :class:`TtlSweeper` deletes expired items.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from emulator.events import sqs_event, sqs_record
from emulator.lambdas import FunctionError, LocalFunction
from emulator.template import EventSourceMapping

__all__ = ["PollerStats", "QueuePoller", "RecordFailure", "SqsQueue", "TtlSweeper"]

log = logging.getLogger("emulator.pollers")

#: Lambda's poller starts with five concurrent batches when no maximum is set.
DEFAULT_CONCURRENCY = 5
_RECEIVE_WAIT_S = 1  # short long-polls keep shutdown prompt
#: Failed records whose last error is remembered (the oldest are forgotten).
ERRORS_KEPT = 10_000


@dataclass(frozen=True)
class RecordFailure:
    """Why one SQS record failed, as far as the function told."""

    message_id: str
    queue_url: str
    receive_count: int
    error: str
    at: float


@dataclass
class PollerStats:
    """What one mapping has done, for status lines and tests."""

    batches: int = 0
    records: int = 0
    failed_records: int = 0
    batch_sizes: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class SqsQueue:
    """A queue to poll: the SQS client to call, its URL, and what records name."""

    sqs: Any
    url: str
    arn: str
    region: str


class QueuePoller:
    """Feeds one SQS queue to one function, with the mapping's batch settings."""

    def __init__(
        self,
        *,
        queue: SqsQueue,
        function: LocalFunction,
        mapping: EventSourceMapping,
        executor: Executor | None = None,
        on_failure: Callable[[RecordFailure], None] | None = None,
    ) -> None:
        self._sqs = queue.sqs
        self._executor = executor
        self.queue_url = queue.url
        self.queue_arn = queue.arn
        self._region = queue.region
        self.function = function
        self.batch_size = max(1, mapping.batch_size)
        self.batching_window_s = mapping.batching_window_s
        self.concurrency = mapping.maximum_concurrency or DEFAULT_CONCURRENCY
        self.report_batch_item_failures = mapping.report_batch_item_failures
        self.stats = PollerStats()
        self.errors: OrderedDict[str, RecordFailure] = OrderedDict()
        self._on_failure = on_failure
        #: Set whenever a batch has been handed to the function (tests wait on it).
        self.batch_started = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def pause(self) -> None:
        """Stop receiving (batches in flight finish); :meth:`start` resumes."""
        await self.stop()

    async def stop(self) -> None:
        """Stop receiving and wait for the batches in flight."""
        self._stopping.set()
        if self._task is not None:
            # A receive blocked in moto's long poll is abandoned, not awaited:
            # its thread ends within a second and its result is discarded.
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _call(self, func: Any, *args: Any) -> Any:
        # A private executor: a receive parked in a long poll must not hold up
        # the loop's default executor (asyncio waits for it at loop close).
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    def _receive(self, max_messages: int, wait: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    async def _gather_batch(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = await self._call(
            self._receive, self.batch_size, _RECEIVE_WAIT_S
        )
        if not batch:
            return batch
        deadline = time.monotonic() + self.batching_window_s
        while len(batch) < self.batch_size and not self._stopping.is_set():
            need = self.batch_size - len(batch)
            left = deadline - time.monotonic()
            if left <= 0:
                # Window over (or none): take what is already there, as the
                # poller's immediate follow-up receives would, and no more.
                more = await self._call(self._receive, need, 0)
                batch.extend(more)
                if len(more) < min(10, need):
                    break
                continue
            wait = max(1, min(20, math.ceil(left)))
            batch.extend(await self._call(self._receive, need, wait))
        return batch

    async def _run(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        while not self._stopping.is_set():
            await slots.acquire()
            try:
                batch = await self._gather_batch()
            except Exception as exc:
                slots.release()
                if self._stopping.is_set():
                    return
                log.warning("receive from %s failed: %s", self.queue_url, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 1.0)
                continue
            if not batch:
                slots.release()
                continue
            task = asyncio.create_task(self._process(batch))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            task.add_done_callback(lambda _t: slots.release())

    async def _process(self, batch: list[dict[str, Any]]) -> None:
        self.stats.batches += 1
        self.stats.records += len(batch)
        self.stats.batch_sizes.append(len(batch))
        self.batch_started.set()
        records = [sqs_record(m, queue_arn=self.queue_arn, region=self._region) for m in batch]
        failed: set[str]
        logged: dict[str, str]
        try:
            result, logged = await self.function.invoke_logged(sqs_event(records))
        except FunctionError as exc:
            failed = {m["MessageId"] for m in batch}
            logged = exc.logged
            why = f"the batch failed: {exc.error_type}: {exc.error_message}"
        else:
            failed = self._failed_ids(result, batch)
            why = "reported as a batch item failure (the function logged no error for it)"
        self.stats.failed_records += len(failed)
        for message in batch:
            if message["MessageId"] in failed:
                self._remember(message, logged.get(message["MessageId"], why))
        done = [m for m in batch if m["MessageId"] not in failed]
        if done:
            await self._call(self._delete, done)

    def _remember(self, message: dict[str, Any], error: str) -> None:
        attributes = message.get("Attributes") or {}
        failure = RecordFailure(
            message_id=message["MessageId"],
            queue_url=self.queue_url,
            receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
            error=error,
            at=time.time(),
        )
        self.errors.pop(failure.message_id, None)
        self.errors[failure.message_id] = failure
        while len(self.errors) > ERRORS_KEPT:
            self.errors.popitem(last=False)
        if self._on_failure is not None:
            try:
                self._on_failure(failure)
            except Exception as exc:  # a full disk must not stop the poller
                log.warning("cannot record the failure of %s: %s", failure.message_id, exc)

    def _failed_ids(self, result: Any, batch: list[dict[str, Any]]) -> set[str]:
        everything = {m["MessageId"] for m in batch}
        if not self.report_batch_item_failures or not isinstance(result, dict):
            return set()
        failures = result.get("batchItemFailures")
        if failures is None:
            return set()
        if not isinstance(failures, list):
            return everything
        ids: set[str] = set()
        for item in failures:
            ident = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not ident or ident not in everything:
                # Lambda treats a malformed or unknown identifier as a failed batch.
                return everything
            ids.add(str(ident))
        return ids

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )


class TtlSweeper:
    """Deletes items whose TTL attribute lies in the past (moto never does)."""

    def __init__(self, *, dynamodb: Any, tables: Mapping[str, str], interval_s: float) -> None:
        self._ddb = dynamodb
        self._tables = dict(tables)  # physical table name -> TTL attribute
        self._interval_s = interval_s
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.deleted = 0

    def start(self) -> None:
        if self._tables:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)
            if self._stopping.is_set():
                return
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("TTL sweep failed: %s", exc)

    async def sweep(self) -> int:
        """Delete every expired item now; how many were deleted."""
        return await asyncio.to_thread(self._sweep)

    def _sweep(self) -> int:
        now = int(time.time())
        count = 0
        for table, attribute in self._tables.items():
            keys = [
                k["AttributeName"]
                for k in self._ddb.describe_table(TableName=table)["Table"]["KeySchema"]
            ]
            kwargs: dict[str, Any] = {
                "TableName": table,
                "FilterExpression": "#t < :now",
                "ExpressionAttributeNames": {"#t": attribute},
                "ExpressionAttributeValues": {":now": {"N": str(now)}},
            }
            while True:
                page = self._ddb.scan(**kwargs)
                for item in page.get("Items", []):
                    self._ddb.delete_item(TableName=table, Key={k: item[k] for k in keys})
                    count += 1
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        self.deleted += count
        return count
