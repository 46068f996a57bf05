"""Part 3, capacity: how many idle connections the local emulator holds, and at what memory.

Consumers (spread over tenants, so no presence fan-out) open WebSockets to the
emulator of ``make run`` in steps, a bounded number at a time; each runs the
real authorizer and ``$connect``. After each step the resident memory of the
emulator's processes is read. At the end a sample of connections sends
``ping`` and must get ``pong`` (API Gateway's mock route, no Lambda), which
shows they are held, not just half-open. Bounded by a target and a deadline;
the emulator is killed at the end rather than running 10,000 ``$disconnect``s.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.protocol import State

from bench.emulated import Emulator, raise_fd_limit, running_emulator

__all__ = ["Plan", "run_capacity"]


@dataclass(frozen=True)
class Plan:
    """How far to go: ``target`` connections in steps of ``step`` (``concurrency``
    opening at once) over ``tenants`` tenants, within ``deadline_s``; then ``sample``
    of them must answer a ping."""

    target: int
    step: int
    tenants: int
    concurrency: int
    deadline_s: float
    sample: int


#: The full run, and the quick one (``python -m bench --quick`` and the tests).
FULL = Plan(target=10_000, step=1_000, tenants=100, concurrency=64, deadline_s=200, sample=100)
QUICK = Plan(target=60, step=30, tenants=3, concurrency=16, deadline_s=60, sample=5)


async def _open(emulator: Emulator, index: int, tenants: int) -> ClientConnection:
    token = emulator.token("consumer", f"cap{index % tenants}", f"c{index}")
    return await connect(
        f"{emulator.url}?token={token}", open_timeout=60, ping_interval=None, max_queue=4
    )


async def _pong(ws: ClientConnection) -> bool:
    try:
        await ws.send(json.dumps({"action": "ping"}))
        async with asyncio.timeout(10):
            while True:
                reply = json.loads(await ws.recv())
                if reply.get("action") == "pong":
                    return True
    except Exception:
        return False


async def _run(plan: Plan) -> dict[str, Any]:
    target, step, tenants = plan.target, plan.step, plan.tenants
    concurrency, deadline_s, sample = plan.concurrency, plan.deadline_s, plan.sample
    fd_limit = raise_fd_limit()
    held: list[ClientConnection] = []
    samples: list[dict[str, float]] = []
    stopped = ""
    failures = 0
    async with running_emulator(graceful=False) as emulator:
        await asyncio.sleep(1.0)  # let the freshly started processes settle before the baseline
        samples.append({"connections": 0, "rss_mb": emulator.rss_mb()})
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int) -> ClientConnection | None:
            async with gate:
                try:
                    return await _open(emulator, index, tenants)
                except Exception:
                    return None

        started = time.monotonic()
        opened_time = 0.0
        while len(held) < target:
            if time.monotonic() - started > deadline_s:
                stopped = f"deadline of {deadline_s:g} s reached"
                break
            batch = min(step, target - len(held))
            t0 = time.monotonic()
            results = await asyncio.gather(*(one(len(held) + i) for i in range(batch)))
            opened_time += time.monotonic() - t0
            new = [ws for ws in results if ws is not None]
            failures += batch - len(new)
            held += new
            samples.append({"connections": len(held), "rss_mb": emulator.rss_mb()})
            print(
                f"[capacity] {len(held):,} open, {samples[-1]['rss_mb']:.0f} MB",
                file=sys.stderr,
                flush=True,
            )
            if len(new) < batch // 2:
                stopped = f"{batch - len(new)} of {batch} connections failed in one step"
                break
        open_now = [ws for ws in held if ws.state is State.OPEN]
        checked = random.Random(7).sample(open_now, min(sample, len(open_now)))
        pongs = sum(await asyncio.gather(*(_pong(ws) for ws in checked)))
    for ws in held:  # the emulator is gone: drop our ends without a closing handshake
        ws.transport.abort()
    base = samples[0]["rss_mb"]
    top = samples[-1]
    count = len(open_now)
    per_1000 = (top["rss_mb"] - base) / (top["connections"] / 1000) if top["connections"] else 0.0
    return {
        "config": {"target": target, "step": step, "tenants": tenants, "concurrency": concurrency,
                   "deadline_s": deadline_s, "fd_limit": fd_limit},
        "samples": samples,
        "failures": failures,
        "stopped_because": stopped,
        "ping_sample": {"checked": len(checked), "answered": pongs},
        "summary": {
            "connections_held": count,
            "rss_mb_per_1000_connections": per_1000,
            "baseline_rss_mb": base,
            "connections_per_s": top["connections"] / opened_time if opened_time else 0.0,
        },
    }  # fmt: skip


def run_capacity(*, quick: bool = False) -> dict[str, Any]:
    """Open connections up to the target (10,000; 60 when quick) within the deadline."""
    return asyncio.run(_run(QUICK if quick else FULL))
