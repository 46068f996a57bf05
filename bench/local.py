"""Part 2, local end to end: the emulator of ``make run`` against the direct relay.

N browsers and M consumers of one tenant, all through the bundled Python
client; every consumer receives every browser. Browsers send 20 KB HTML
snapshots on a fixed schedule (open loop) at each offered rate; each page
starts with a marker carrying its scheduled send time, so latency at the
consumer counts from when the snapshot *should* have left, and a sender that
falls behind cannot hide the delay. The same clients, pages and schedule run
against :mod:`bench.direct` (the seed's design, no bus), which stands for what
this machine can do at all. Everything stays on 127.0.0.1, bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import tabrelay

from bench.direct import direct_relay
from bench.emulated import raise_fd_limit, running_emulator
from bench.pages import html_page

__all__ = ["LoadConfig", "measure_rate", "percentile", "run_local"]

_MARK = re.compile(r"^<!--bench (\w+) (\d+) (\d+) ([\d.]+)-->")

TokenFor = Callable[[str, str, str], str]


@dataclass(frozen=True, slots=True)
class LoadConfig:
    browsers: int = 20
    consumers: int = 2
    snapshot_kb: int = 20
    seconds: float = 3.0
    grace: float = 2.0


@dataclass
class _Tally:
    """What one consumer saw: when each (browser, k) arrived, and what was conflated."""

    expected: int = 0
    arrived: dict[tuple[int, int], float] = field(default_factory=dict)
    in_window: int = 0
    missed: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


def percentile(values: list[float], pct: float) -> float | None:
    """The ``pct`` percentile (nearest rank) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[rank]


async def _consume(relay: tabrelay.Relay, run: str, tally: _Tally, window_end: list[float]) -> None:
    async for snap in relay.snapshots():
        now = time.perf_counter()
        match = _MARK.match(snap.html)
        if match is None or match.group(1) != run:
            continue
        tally.arrived[(int(match.group(2)), int(match.group(3)))] = now - float(match.group(4))
        tally.missed += snap.missed
        if now <= window_end[0]:
            tally.in_window += 1
        if len(tally.arrived) + tally.missed >= tally.expected > 0:
            tally.done.set()


async def _browse(
    relay: tabrelay.Relay, run: str, index: int, times: list[float], page: str
) -> int:
    sent = 0
    for k, at in enumerate(times):
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the offered load, not synchronization
        await relay.send_snapshot(f"<!--bench {run} {index} {k} {at:.6f}-->{page}")
        sent += 1
    await relay.drain()
    return sent


async def measure_rate(
    url: str, token_for: TokenFor, rate: float, config: LoadConfig
) -> dict[str, Any]:
    """Offer ``rate`` snapshots/s in total for ``config.seconds``; what the consumers saw."""
    run = uuid.uuid4().hex[:8]
    tenant = f"load{run}"
    pages = [html_page(config.snapshot_kb * 1024, seed=b) for b in range(config.browsers)]
    per_browser = max(1, round(rate * config.seconds / config.browsers))
    tallies = [_Tally() for _ in range(config.consumers)]
    window_end = [float("inf")]
    async with contextlib.AsyncExitStack() as stack:
        consumers = [
            await stack.enter_async_context(
                tabrelay.connect(url, token=token_for("consumer", tenant, f"c{c}"), acks=True)
            )
            for c in range(config.consumers)
        ]
        browsers = [
            await stack.enter_async_context(
                tabrelay.connect(url, token=token_for("browser", tenant, f"b{b}"), max_rate=None)
            )
            for b in range(config.browsers)
        ]
        readers = [
            asyncio.create_task(_consume(relay, run, tally, window_end))
            for relay, tally in zip(consumers, tallies, strict=True)
        ]
        await asyncio.sleep(0.5)  # let presence and subscriptions settle before the clock starts
        start = time.perf_counter() + 0.2
        interval = config.browsers / rate
        window_end[0] = start + config.seconds
        schedules = [
            [start + b / rate + k * interval for k in range(per_browser)]
            for b in range(config.browsers)
        ]
        for tally in tallies:
            tally.expected = per_browser * config.browsers
        sent = sum(
            await asyncio.gather(
                *(_browse(r, run, b, schedules[b], pages[b]) for b, r in enumerate(browsers))
            )
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(t.done.wait() for t in tallies)),
                timeout=max(0.1, window_end[0] + config.grace - time.perf_counter()),
            )
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    cutoff = time.perf_counter()
    # A snapshot neither delivered nor reported conflated by the cutoff counts with
    # the time it had been waiting: a lower bound, so percentiles never flatter.
    latencies: list[float] = []
    censored = 0
    for tally in tallies:
        latencies += [v * 1000 for v in tally.arrived.values()]
        waiting = [
            (cutoff - at) * 1000
            for b, times in enumerate(schedules)
            for k, at in enumerate(times)
            if (b, k) not in tally.arrived
        ]
        waiting.sort(reverse=True)
        lost = waiting[tally.missed :]  # conflated ones were dropped on purpose, not late
        censored += len(lost)
        latencies += lost
    received = sum(len(t.arrived) for t in tallies)
    return {
        "offered_per_s": rate,
        "sent": sent,
        "received": received,
        "missed": sum(t.missed for t in tallies),
        "lost": censored,
        "delivered_per_s": statistics.mean(t.in_window for t in tallies) / config.seconds,
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": max(latencies) if latencies else None,
        },
        "latency_is_lower_bound": censored > 0,
    }


async def _sweep(
    url: str, token_for: TokenFor, rates: list[float], config: LoadConfig, label: str
) -> list[dict[str, Any]]:
    results = []
    for rate in rates:
        print(f"[local] {label}: {rate:g}/s", file=sys.stderr, flush=True)
        results.append(await measure_rate(url, token_for, rate, config))
    return results


def _direct_token(role: str, tenant: str, client_id: str) -> str:
    import jwt

    claims = {
        "tenant": tenant,
        "role": role,
        "client_id": client_id,
        "exp": int(time.time()) + 3600,
    }
    return jwt.encode(
        claims, "direct-relay-reads-tokens-and-never-verifies-them", algorithm="HS256"
    )


async def _run(
    config: LoadConfig, gateway_rates: list[float], direct_rates: list[float]
) -> dict[str, Any]:
    raise_fd_limit()
    gateway = []
    for rate in gateway_rates:
        # A fresh emulator per rate: a backlog left in its queues must not slow the next rate.
        async with running_emulator(graceful=False) as emulator:
            gateway += await _sweep(emulator.url, emulator.token, [rate], config, "emulator")
    async with direct_relay() as url:
        direct = await _sweep(url, _direct_token, direct_rates, config, "direct relay")
    return {"gateway": gateway, "direct": direct}


def _max_rate(runs: list[dict[str, Any]]) -> float:
    return max((r["delivered_per_s"] for r in runs), default=0.0)


def run_local(*, quick: bool = False) -> dict[str, Any]:
    """Sweep the offered rates on both systems; plain data for results.json."""
    if quick:
        config = LoadConfig(browsers=2, consumers=1, seconds=1.0, grace=10.0)
        gateway_rates, direct_rates = [10.0], [10.0]
    else:
        config = LoadConfig()
        gateway_rates = [25.0, 50.0, 100.0, 200.0, 300.0]
        direct_rates = [200.0, 400.0, 800.0, 1600.0]
    out: dict[str, Any] = asyncio.run(_run(config, gateway_rates, direct_rates))
    at_200 = next((r for r in out["gateway"] if r["offered_per_s"] == 200.0), None)
    out["config"] = {
        "browsers": config.browsers,
        "consumers": config.consumers,
        "snapshot_kb": config.snapshot_kb,
        "seconds": config.seconds,
    }
    out["summary"] = {
        "local_p99_ms_at_200_per_s": at_200["latency_ms"]["p99"] if at_200 else None,
        "local_p99_at_200_is_lower_bound": bool(at_200 and at_200["latency_is_lower_bound"]),
        "local_max_snapshots_per_s": _max_rate(out["gateway"]),
        "direct_relay_max_snapshots_per_s": _max_rate(out["direct"]),
    }
    return out
