"""The fault matrix: a worker dies at every write and post of the command path.

For each path (the command's delivery, a result in one part or in three, the
timeout, the browser leaving) a clean run first records the sequence of calls
that change something (:mod:`tests.integration.faults`); each cell then makes the
worker die just before or just after one of them, and lets SQS redeliver. Reads
are not cells: dying at a read leaves the same state as dying after the write
before it. In every cell:

* the issuer gets exactly one terminal answer (a result, or one error); a copy
  of something it received is tolerated only when the worker died right after
  posting it, before noting that it did (the client drops a second answer for
  an id);
* the browser receives the command at most once;
* the browser's in-flight count returns to where it started.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from moto import mock_aws

from functions.models.settings import GatewaySettings
from simulation.environment import handler_modules
from simulation.harness import Connection, Harness
from simulation.resources import create_resources
from tests.integration.faults import Faults, run_workers
from tests.integration.test_routing import command

TIMEOUT = 5


@dataclass
class World:
    gateway: Harness
    faults: Faults
    browser: Connection
    consumer: Connection

    def run(self) -> None:
        run_workers(self.gateway, self.faults)

    def advance(self, seconds: float) -> None:
        self.gateway.sqs.advance(seconds)
        self.run()

    def answer(self, parts: int) -> None:
        """The browser answers every command it received, once (as the clients do)."""
        for message in self.gateway.received(self.browser):
            if message["action"] != "command":
                continue
            text = json.dumps({"n": 42, "pad": "x" * 30})
            size = -(-len(text) // parts)
            for i in range(parts):
                frame = {
                    "action": "result",
                    "id": message["id"],
                    "ok": True,
                    "value": text[i * size : (i + 1) * size] if parts > 1 else 42,
                    "part": i,
                    "parts": parts,
                }
                self.gateway.send(self.browser, json.dumps(frame))

    def send_command(self) -> None:
        self.gateway.send(self.consumer, command("k1", "b1", timeout=TIMEOUT))


def _command_path(w: World) -> None:
    w.faults.phase = True
    w.send_command()
    w.run()
    w.faults.phase = False
    w.answer(parts=1)
    w.run()
    w.advance(TIMEOUT)


def _delivered(w: World) -> None:
    w.send_command()
    w.run()


def _result_path(parts: int) -> Callable[[World], None]:
    def path(w: World) -> None:
        _delivered(w)
        w.faults.phase = True
        w.answer(parts=parts)  # every part on the bus: one batch, redelivered whole
        w.run()
        w.faults.phase = False
        w.advance(TIMEOUT)

    return path


def _timeout_path(w: World) -> None:
    _delivered(w)
    w.faults.phase = True
    w.advance(TIMEOUT)
    w.faults.phase = False


def _partial_then_timeout_path(w: World) -> None:
    _delivered(w)
    w.gateway.send(
        w.browser,
        json.dumps({"action": "result", "id": "k1", "ok": True, "value": "[1,", "parts": 2}),
    )
    w.run()
    w.faults.phase = True
    w.advance(TIMEOUT)
    w.faults.phase = False


def _browser_gone_path(w: World) -> None:
    _delivered(w)
    w.faults.phase = True
    w.gateway.close(w.browser)
    w.run()
    w.faults.phase = False
    w.advance(TIMEOUT)


PATHS: dict[str, Callable[[World], None]] = {
    "command": _command_path,
    "result": _result_path(1),
    "result_in_parts": _result_path(3),
    "timeout": _timeout_path,
    "partial_result_timeout": _partial_then_timeout_path,
    "target_offline": _browser_gone_path,
}


@dataclass
class Outcome:
    world: World
    inflight_before: int

    @property
    def issuer(self) -> list[dict[str, Any]]:
        return self.world.gateway.received(self.world.consumer)


#: The terminal answers each path may end with.
EXPECTED = {
    "command": {"result", "timeout"},
    "result": {"result"},
    "result_in_parts": {"result"},
    "timeout": {"timeout"},
    "partial_result_timeout": {"timeout"},
    "target_offline": {"target_offline"},
}


@dataclass
class Play:
    """What one run of a path left behind."""

    calls: list[str]
    fired: str | None
    issuer: list[dict[str, Any]]
    browser: list[dict[str, Any]]
    inflight_before: int
    inflight_after: int


def play(path: str, armed: tuple[int, str] | None) -> Play:
    modules = handler_modules()
    with mock_aws():
        create_resources()
        gateway = Harness(modules, replace(GatewaySettings.from_env()))
        faults = Faults(gateway)
        browser = gateway.connect("browser", "acme", "b1")
        consumer = gateway.connect("consumer", "acme", "c1")
        run_workers(gateway, faults)
        gateway.take(consumer)
        registry: Any = gateway.runtime.relay._registry
        before = registry.inflight_commands(browser.connection_id)
        faults.armed = armed
        PATHS[path](World(gateway, faults, browser, consumer))
        return Play(
            calls=[str(c) for c in faults.calls],
            fired=None if faults.fired is None else str(faults.fired),
            issuer=[m for m in gateway.received(consumer) if m.get("id") == "k1"],
            browser=gateway.received(browser),
            inflight_before=before,
            inflight_after=registry.inflight_commands(browser.connection_id),
        )


def _cells() -> Iterator[Any]:
    """Every call of every path, before and after, from a clean run of the path."""
    for path in PATHS:
        clean = play(path, None)
        for index, call in enumerate(clean.calls):
            for when in ("before", "after"):
                # Dying between posting an answer and noting it may repeat that answer.
                posted = call if when == "after" else (clean.calls[index - 1] if index else "")
                copies = 2 if posted == "PostToConnection(consumer)" else 1
                yield pytest.param(
                    path, index, when, copies, id=f"{path}-{index:02d}-{when}-{call}"
                )


CELLS = list(_cells())


@pytest.mark.parametrize(("path", "index", "when", "copies"), CELLS)
def test_worker_dying_at_a_call_still_answers_the_command_once(
    path: str, index: int, when: str, copies: int
) -> None:
    # Given a command on one path, When its worker dies at this call and SQS redelivers
    run = play(path, (index, when))
    assert run.fired is not None, "the armed call was not made"

    # Then the issuer has exactly one terminal answer, of a kind this path may end with
    errors = [m for m in run.issuer if m["action"] == "error"]
    parts = [m for m in run.issuer if m["action"] == "result"]
    complete = bool(parts) and {p["part"] for p in parts} == set(range(parts[0]["parts"]))
    kinds = {m["code"] for m in errors} | ({"result"} if complete else set())
    assert len(kinds) == 1, run.issuer
    assert kinds <= EXPECTED[path], run.issuer
    if errors:
        assert not complete, run.issuer
    # ... and a copy of it only when the worker died between posting it and noting that
    assert max(run.issuer.count(m) for m in run.issuer) <= copies, run.issuer

    # And the browser received the command at most once, and no refusal of its results
    assert [m["id"] for m in run.browser if m["action"] == "command"] in (["k1"], [])
    assert [m for m in run.browser if m["action"] == "error"] == []

    # And its in-flight count is back where it started
    assert run.inflight_after == run.inflight_before


def test_the_matrix_covers_every_path_with_writes_and_posts() -> None:
    paths = {cell.values[0] for cell in CELLS}
    assert paths == set(PATHS)
    names = " ".join(str(cell.id) for cell in CELLS)
    for needed in (
        "PostToConnection(browser)",
        "PostToConnection(consumer)",
        "UpdateItem(command)",
    ):
        assert needed in names
