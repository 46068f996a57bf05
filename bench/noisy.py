"""Part 3 of issue 11, noisy neighbour: tenant B's commands during tenant A's storm.

Tenant A has ``storm_browsers`` browsers and ``storm_consumers`` consumers that
follow every browser (``*``). Tenant B has one browser, which answers every
command at once, and one consumer, which runs command round trips one after
the other. B's round trips are timed twice in the same run: quiet (A idle),
then while A's storm runs (every A browser closes at once and reconnects at
once: about ``2 * storm_browsers * storm_consumers`` presence posts). With
commands on their own lane, a B command never waits behind A's presence.

:func:`noisy_neighbour` runs the scenario against any gateway URL (the
emulator in this process for ``tests/local``, in its own process for
``make bench``) and returns what happened; :func:`run_noisy` is the bench
part. Plain websockets on 127.0.0.1, bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websockets

from bench.emulated import raise_fd_limit, running_emulator
from bench.local import percentile

__all__ = ["NoisyConfig", "NoisyOutcome", "noisy_neighbour", "run_noisy"]

TokenFor = Callable[[str, str, str], str]

TENANT_A, TENANT_B = "noisy-a", "noisy-b"
#: The longest one step may take before the scenario gives up (not a measurement:
#: a bound so that a broken gateway fails the run instead of hanging it).
STEP_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class NoisyConfig:
    storm_browsers: int = 200
    storm_consumers: int = 50
    #: B's command round trips per phase (quiet, storm).
    round_trips: int = 20
    #: How long A's consumers may take to see every browser's latest presence.
    settle_timeout_s: float = 600.0


@dataclass
class NoisyOutcome:
    """What B and A saw."""

    #: B's round trips, in milliseconds, per phase.
    quiet_ms: list[float] = field(default_factory=list)
    storm_ms: list[float] = field(default_factory=list)
    #: The id of every result B's consumer received, in arrival order.
    results: list[str] = field(default_factory=list)
    #: The ids B sent, in order.
    sent: list[str] = field(default_factory=list)
    #: A's consumers had not yet all seen every browser back online when B's
    #: last storm-phase result arrived: B did not wait for A's backlog.
    a_pending_when_b_done: bool = False
    #: Every A consumer ended with every A browser's latest state online.
    a_settled: bool = False
    #: Presence notes A's consumers received during the storm.
    a_presence_notes: int = 0


class _Follower:
    """An A consumer's view of the storm: each browser's latest presence (by ``at``),
    from notes stamped after ``since`` (epoch ms; set when the storm starts)."""

    def __init__(self, browsers: int, settled: Callable[[], None]) -> None:
        self.latest: dict[str, tuple[int, bool]] = {}
        self.notes = 0
        self.done = False
        self.since: int | None = None
        self._browsers = browsers
        self._settled = settled

    def note(self, frame: dict[str, Any]) -> None:
        client, at, online = frame["client_id"], int(frame["at"]), bool(frame["online"])
        if self.since is None or at < self.since:
            return  # the setup's presence, late: not the storm's
        self.notes += 1
        if (at, online) > self.latest.get(client, (-1, False)):
            self.latest[client] = (at, online)
        complete = len(self.latest) == self._browsers
        if not self.done and complete and all(up for _, up in self.latest.values()):
            self.done = True
            self._settled()


async def _read_forever(ws: Any, on_frame: Callable[[dict[str, Any]], None]) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for raw in ws:
            on_frame(json.loads(raw))


def _connect(url: str, token: str) -> Any:
    return websockets.connect(
        f"{url}?token={token}", open_timeout=STEP_TIMEOUT_S, close_timeout=STEP_TIMEOUT_S
    )


async def _open_all(url: str, tokens: list[str]) -> list[Any]:
    """Open every connection at once (the storm's reconnect)."""
    return list(await asyncio.gather(*(_connect(url, t) for t in tokens)))


class _Scenario:
    """The connections of both tenants, and the steps of the run."""

    def __init__(self, url: str, token_for: TokenFor, config: NoisyConfig) -> None:
        self.url, self.token_for, self.config = url, token_for, config
        self.outcome = NoisyOutcome()
        self.settled = asyncio.Event()
        self.followers = [
            _Follower(config.storm_browsers, self._one_settled)
            for _ in range(config.storm_consumers)
        ]
        self.a_tokens = [
            token_for("browser", TENANT_A, f"a{n:03}") for n in range(config.storm_browsers)
        ]
        self.sockets: list[Any] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.results: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._settled_count = 0
        self.b_consumer: Any = None
        self.b_browser: Any = None

    def _one_settled(self) -> None:
        self._settled_count += 1
        if self._settled_count == self.config.storm_consumers:
            self.settled.set()

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def setup(self) -> list[Any]:
        """A's browsers first, then its consumers (so the setup sends them no
        presence), then B's pair; returns A's browsers."""
        a_browsers = await _open_all(self.url, self.a_tokens)
        self.sockets += a_browsers
        for n, follower in enumerate(self.followers):
            ws = await _connect(self.url, self.token_for("consumer", TENANT_A, f"ac{n:02}"))
            self.sockets.append(ws)

            def on_frame(frame: dict[str, Any], follower: _Follower = follower) -> None:
                if frame.get("action") == "presence":
                    follower.note(frame)

            self._spawn(_read_forever(ws, on_frame))
        self.b_browser = await _connect(self.url, self.token_for("browser", TENANT_B, "bb"))
        self.b_consumer = await _connect(self.url, self.token_for("consumer", TENANT_B, "bc"))
        self.sockets += [self.b_browser, self.b_consumer]
        self._spawn(_read_forever(self.b_browser, self._answer))
        self._spawn(_read_forever(self.b_consumer, self._collect))
        return a_browsers

    def _answer(self, frame: dict[str, Any]) -> None:
        """B's browser answers every command at once."""
        if frame.get("action") == "command":
            reply = {"action": "result", "id": frame["id"], "ok": True, "value": frame["id"]}
            self._spawn(self.b_browser.send(json.dumps(reply)))

    def _collect(self, frame: dict[str, Any]) -> None:
        if frame.get("action") in ("result", "error"):
            self.results.put_nowait(frame)

    async def round_trips(self, phase: str, times: list[float]) -> None:
        """B's command round trips, one after the other, each timed."""
        for n in range(self.config.round_trips):
            command_id = f"{phase}-{n:03}"
            self.outcome.sent.append(command_id)
            started = time.perf_counter()
            command = {"action": "command", "id": command_id, "target": "bb", "name": "ping"}
            await self.b_consumer.send(json.dumps(command))
            async with asyncio.timeout(STEP_TIMEOUT_S):
                frame = await self.results.get()
            times.append((time.perf_counter() - started) * 1000)
            self.outcome.results.append(str(frame.get("id")))
            if frame.get("action") != "result":
                raise RuntimeError(f"B's command {command_id} was answered {frame}")

    async def storm(self, a_browsers: list[Any]) -> None:
        """Every A browser leaves at once, then all come back at once, while B
        keeps running round trips."""
        outcome = self.outcome
        storm_started = int(time.time() * 1000)
        for follower in self.followers:
            follower.since = storm_started
        await asyncio.gather(*(ws.close() for ws in a_browsers))
        reconnect = self._spawn(_open_all(self.url, self.a_tokens))
        await self.round_trips("storm", outcome.storm_ms)
        outcome.a_pending_when_b_done = not self.settled.is_set()
        self.sockets += await reconnect
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.settle_timeout_s):
                await self.settled.wait()
        outcome.a_settled = self.settled.is_set()
        outcome.a_presence_notes = sum(f.notes for f in self.followers)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


async def noisy_neighbour(url: str, token_for: TokenFor, config: NoisyConfig) -> NoisyOutcome:
    """Run the scenario against the gateway at ``url``; see the module's docstring."""
    scenario = _Scenario(url, token_for, config)
    try:
        a_browsers = await scenario.setup()
        await scenario.round_trips("quiet", scenario.outcome.quiet_ms)
        await scenario.storm(a_browsers)
        return scenario.outcome
    finally:
        await scenario.close()


def _summary(outcome: NoisyOutcome) -> dict[str, Any]:
    quiet = percentile(outcome.quiet_ms, 99)
    storm = percentile(outcome.storm_ms, 99)
    return {
        "noisy_b_p99_ms_quiet": None if quiet is None else round(quiet, 1),
        "noisy_b_p99_ms_storm": None if storm is None else round(storm, 1),
        "noisy_ratio": None if not quiet or storm is None else round(storm / quiet, 2),
        "noisy_b_p50_ms_quiet": round(percentile(outcome.quiet_ms, 50) or 0, 1),
        "noisy_b_p50_ms_storm": round(percentile(outcome.storm_ms, 50) or 0, 1),
        "noisy_b_in_order": outcome.results == outcome.sent,
        "noisy_a_pending_when_b_done": outcome.a_pending_when_b_done,
        "noisy_a_settled": outcome.a_settled,
        "noisy_a_presence_notes": outcome.a_presence_notes,
    }


def run_noisy(*, quick: bool = False) -> dict[str, Any]:
    """The bench part: the emulator in its own process, the clients in this one."""
    config = (
        NoisyConfig(storm_browsers=20, storm_consumers=5, round_trips=5) if quick else NoisyConfig()
    )
    raise_fd_limit()

    async def run() -> NoisyOutcome:
        async with running_emulator() as emulator:
            return await noisy_neighbour(emulator.url, emulator.token, config)

    outcome = asyncio.run(run())
    return {
        "config": {
            "storm_browsers": config.storm_browsers,
            "storm_consumers": config.storm_consumers,
            "round_trips_per_phase": config.round_trips,
        },
        "quiet_ms": [round(v, 1) for v in outcome.quiet_ms],
        "storm_ms": [round(v, 1) for v in outcome.storm_ms],
        "summary": _summary(outcome),
    }
