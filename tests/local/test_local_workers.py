"""Functions' environment from the template, SQS pollers with the mapping's settings, TTL."""

from __future__ import annotations

import asyncio
import time
from types import ModuleType
from typing import Any

from emu_fixture.testkit import connect, fixture_gateway, wait_record

from emulator.testing import RunningGateway

WORK_QUEUE = "WorkQueue11223344"
WORK_DLQ = "WorkDlqAABB0011"
TABLE = "ConnectionsTableA1B2C3D4"


async def test_environment_is_resolved_to_local_resources(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    env = (await wait_record(recorder, "import", lambda d: d["module"] == "connect"))["env"]
    assert env["CALLBACK_URL"] == gw.http_url
    assert env["WORK_QUEUE_URL"] == gw.queue_url(WORK_QUEUE)
    assert env["WORK_QUEUE_ARN"].startswith("arn:aws:sqs:us-east-1:123456789012:")
    assert env["TABLE_NAME"] == gw.table_name(TABLE)
    assert env["SECRET_ID"].startswith("arn:aws:secretsmanager:us-east-1:")
    assert env["GREETING"] == "hello from us-east-1 in tabrelay-local"
    assert env["AWS_ENDPOINT_URL"] == gw.system.moto.endpoint


async def test_env_overrides_reach_every_function(recorder: ModuleType) -> None:
    async with fixture_gateway(env_overrides={"MAX_UNACKED": "3"}):
        env = (await wait_record(recorder, "import", lambda d: d["module"] == "connect"))["env"]
    assert env["MAX_UNACKED"] == "3"


async def test_poller_honours_batch_size(gw: RunningGateway, recorder: ModuleType) -> None:
    # Given a mapping with BatchSize 5, when 12 records are queued at once
    items = ",".join(f"item{i}" for i in range(12))
    async with connect(gw) as ws:
        await ws.send(f"enqueue:{items}")
        await asyncio.wait_for(ws.recv(), 10)

    def all_seen(_d: dict[str, object]) -> bool:
        return sum(b["size"] for b in recorder.records("batch")) >= 12

    await wait_record(recorder, "batch", all_seen)
    # Then every record arrived, in batches of at most 5
    sizes = [b["size"] for b in recorder.records("batch")]
    assert sum(sizes) == 12
    assert max(sizes) == 5


async def test_failed_records_are_retried_then_reach_the_dlq(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    # Given a worker that reports "fail..." records as batch item failures
    async with connect(gw) as ws:
        await ws.send("enqueue:ok-1,fail-1")
        await asyncio.wait_for(ws.recv(), 10)
    # When the failing record exceeds maxReceiveCount (2)
    sqs = gw.aws("sqs")
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(60):
        while not messages:  # each receive is a bounded long poll: it waits on moto
            response = await asyncio.to_thread(
                sqs.receive_message, QueueUrl=gw.queue_url(WORK_DLQ), WaitTimeSeconds=5
            )
            messages = response.get("Messages", [])
    # Then it lands in the DLQ, after two attempts, and the good record ran once
    assert [m["Body"] for m in messages] == ["fail-1"]
    bodies = [r["body"] for b in recorder.records("batch") for r in b["records"]]
    assert bodies.count("fail-1") == 2
    assert bodies.count("ok-1") == 1


async def test_sqs_records_are_shaped_as_lambda_sends_them(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    async with connect(gw) as ws:
        await ws.send("enqueue:shape")
        await asyncio.wait_for(ws.recv(), 10)
    record = (await wait_record(recorder, "batch"))["records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(gw.queue_url(WORK_QUEUE).rsplit("/", 1)[1])
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"messageId", "receiptHandle", "body", "md5OfBody", "awsRegion"} <= set(record)


async def test_ttl_sweeper_deletes_expired_items(gw: RunningGateway) -> None:
    ddb = gw.aws("dynamodb")
    table = gw.table_name(TABLE)
    now = int(time.time())
    for sk, ttl in (("old", now - 10), ("new", now + 3600)):
        await asyncio.to_thread(
            ddb.put_item,
            TableName=table,
            Item={"pk": {"S": "C#1"}, "sk": {"S": sk}, "ttl": {"N": str(ttl)}},
        )
    assert await gw.sweep_ttl() == 1
    items = (await asyncio.to_thread(ddb.scan, TableName=table))["Items"]
    assert [i["sk"]["S"] for i in items] == ["new"]
