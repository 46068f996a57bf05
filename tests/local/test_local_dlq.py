"""``make dlq`` (``python -m emulator dlq``) against a ``make run`` in another process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import boto3
import websockets
from emu_fixture.testkit import FIXTURES

from emulator.backend import free_port
from emulator.config import REPO_ROOT, load_config

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}
POISON = {
    "kind": "command",
    "cid": "cid-42",
    "tenant": "acme",
    "client": "c1",
    "msg": {"action": "command", "id": "k1", "name": "click", "args": {"x": "y" * 500}},
    "poison": True,
}


async def dlq(config: Path, port: int) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "emulator", "dlq", "--port", str(port), "--config", str(config),
        cwd=REPO_ROOT, env=ENV,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_given_poison_message_when_it_reaches_the_dlq_then_make_dlq_shows_it(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.json"
    port = free_port()
    # Given `make run` (here: python -m emulator run) in another process
    run = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "emulator", "run", "--port", str(port),
        "--template", str(FIXTURES / "template.json"), "--code-root", str(FIXTURES),
        "--config", str(config), "--function-log", str(tmp_path / "functions.log"),
        "--status-interval", "0",
        cwd=REPO_ROOT, env=ENV, start_new_session=True,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert run.stdout is not None
    try:
        lines: list[str] = []
        async with asyncio.timeout(90):
            while not any("consumer URL" in line for line in lines):
                line = (await run.stdout.readline()).decode()
                assert line, "\n".join(lines)
                lines.append(line.rstrip())
        url = next(re.search(r"ws://\S+", x).group(0) for x in lines if "consumer URL" in x)  # type: ignore[union-attr]

        # When nothing failed yet, Then make dlq says so
        code, out = await dlq(config, port)
        assert (code, out.strip().splitlines()[0][:15]) == (0, "no dead letters"), out

        # When a poison message fails maxReceiveCount (2) times
        async with websockets.connect(url) as ws:
            await ws.send("enqueue-one:" + json.dumps(POISON))
            await asyncio.wait_for(ws.recv(), 10)
        state = json.loads((tmp_path / f"run-{port}.json").read_text())
        credentials = load_config(config).credentials
        sqs = boto3.client(
            "sqs",
            endpoint_url=state["moto_endpoint"],
            region_name="us-east-1",
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
        )
        (dlq_url,) = state["dead_letter_queues"].values()
        got: list[dict[str, str]] = []
        async with asyncio.timeout(60):
            while not got:  # a bounded long poll: it waits on moto
                got = (
                    await asyncio.to_thread(
                        sqs.receive_message, QueueUrl=dlq_url, WaitTimeSeconds=5
                    )
                ).get("Messages", [])
        await asyncio.to_thread(
            sqs.change_message_visibility,
            QueueUrl=dlq_url,
            ReceiptHandle=got[0]["ReceiptHandle"],
            VisibilityTimeout=0,
        )

        # Then make dlq prints its summary, receive count and the logged error
        code, out = await dlq(config, port)
        assert code == 0, out
        assert "WorkDlq: 1 dead letter(s)" in out
        assert got[0]["MessageId"] in out
        assert "kind=command tenant=acme client=c1 cid=cid-42" in out
        # (twice by the worker, once by this test's receive above)
        assert "received 3 time(s), last failed on receive 2" in out
        assert "error: ValueError: poison envelope: cannot route it (record failed)" in out
        assert "y" * 100 not in out
        # And it left the message where it was
        code, again = await dlq(config, port)
        assert got[0]["MessageId"] in again
    finally:
        if run.returncode is None:
            os.killpg(run.pid, signal.SIGINT)
            await asyncio.wait_for(run.wait(), 60)

    # When no make run is running, Then make dlq says so and fails
    code, out = await dlq(config, port)
    assert code == 1 and "no local gateway runs on port" in out
