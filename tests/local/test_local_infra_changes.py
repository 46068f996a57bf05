"""A change in infra/ alone changes what the emulator does (local and cloud cannot drift).

Each test copies the CDK app (infra/, app.py, cdk.json, and the code asset's
source) to a temporary folder, edits one line of infra/, synthesizes both, and
runs the same real handlers against each template.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import websockets

from emulator.config import REPO_ROOT
from emulator.synth import load_template
from emulator.testing import RunningGateway, running_gateway

ROUTER = "functions.handlers.router.handler"
CACHE = REPO_ROOT / ".local" / "cache"


def edited_app(tmp: Path, path: str, old: str, new: str) -> dict[str, Any]:
    """The template of a copy of the CDK app with ``old`` replaced by ``new`` in ``path``."""
    root = tmp / "app"
    shutil.copytree(
        REPO_ROOT / "infra", root / "infra", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(
        REPO_ROOT / "functions", root / "functions", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("app.py", "cdk.json", "requirements.txt"):
        if (REPO_ROOT / name).exists():
            shutil.copy(REPO_ROOT / name, root / name)
    source = (root / path).read_text()
    assert source.count(old) == 1, f"{path} no longer says {old!r}: update this test"
    (root / path).write_text(source.replace(old, new))
    return load_template(root=root, cache_dir=CACHE)


@pytest.fixture(scope="module")
def baseline() -> dict[str, Any]:
    return load_template()


async def first_router_batch(gw: RunningGateway, records: int) -> int:
    """Size of the router's first batch when ``records`` wait in its queue."""
    poller = gw.poller_of(ROUTER)
    await poller.pause()
    poller.batch_started.clear()
    seen = len(poller.stats.batch_sizes)
    sqs = gw.aws("sqs")
    await asyncio.to_thread(
        sqs.send_message_batch,
        QueueUrl=poller.queue_url,
        Entries=[{"Id": str(i), "MessageBody": "{}"} for i in range(records)],
    )
    poller.start()
    await asyncio.wait_for(poller.batch_started.wait(), 20)
    return poller.stats.batch_sizes[seen]


async def test_router_batch_size_follows_infra(tmp_path: Path, baseline: dict[str, Any]) -> None:
    # Given the app with the router's batch size edited from 10 to 3 in infra/config.py
    edited = edited_app(
        tmp_path, "infra/config.py", "router_batch_size: int = 10", "router_batch_size: int = 3"
    )
    # When 7 records wait on the bus queue
    async with running_gateway(template=baseline) as gw:
        before = await first_router_batch(gw, 7)
    async with running_gateway(template=edited) as gw:
        after = await first_router_batch(gw, 7)
    # Then the deployed setting takes all 7 at once; the edited one takes 3
    assert (before, after) == (7, 3)


async def reply_to(gw: RunningGateway, action: str) -> Any:
    token = gw.token("consumer", "demo", "c1")
    async with websockets.connect(f"{gw.url}?token={token}") as ws:
        await ws.send(json.dumps({"action": action}))
        return json.loads(await asyncio.wait_for(ws.recv(), 20))


async def test_route_key_follows_infra(tmp_path: Path, baseline: dict[str, Any]) -> None:
    # Given the app with the ping mock's route key edited from "ping" to "heartbeat"
    edited = edited_app(
        tmp_path, "infra/components/websocket_api.py", 'route_key="ping"', 'route_key="heartbeat"'
    )
    async with running_gateway(template=baseline) as gw:
        before = await reply_to(gw, "heartbeat")
    async with running_gateway(template=edited) as gw:
        after = await reply_to(gw, "heartbeat")
    # Then "heartbeat" went to the message handler before, and to the mock after
    assert before != {"action": "pong"}
    assert after == {"action": "pong"}
