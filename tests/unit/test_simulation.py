"""The shared moto world (:mod:`simulation`): importing it changes nothing; its fakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from simulation.fakes import DelayedSqs

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import json, os, sys
before = dict(os.environ)
import simulation.environment, simulation.events, simulation.fakes
import simulation.harness, simulation.resources
import bench.cost, fuzz.world
print(json.dumps({
    "changed": sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)),
    "handlers": sorted(m for m in sys.modules if m.startswith("functions.handlers")),
}))
"""


def test_given_a_fresh_process_when_the_shared_modules_load_then_environ_is_untouched() -> None:
    # The Lambda environment is applied by an explicit call, never as an import's side effect.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT}:{ROOT / 'clients' / 'python'}"}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert json.loads(out) == {"changed": [], "handlers": []}


class _Sqs:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_message(self, **kwargs: Any) -> dict[str, str]:
        self.sent.append(kwargs["MessageBody"])
        return {"MessageId": kwargs["MessageBody"]}


def test_given_held_messages_when_time_passes_both_then_the_earlier_due_is_sent_first() -> None:
    raw = _Sqs()
    sqs = DelayedSqs(raw)
    sqs.send_message(QueueUrl="q", MessageBody="late", DelaySeconds=30)
    sqs.send_message(QueueUrl="q", MessageBody="soon", DelaySeconds=2)
    sqs.send_message(QueueUrl="q", MessageBody="now")

    assert (raw.sent, sqs.held, sqs.next_due()) == (["now"], 2, 2)
    assert sqs.advance(31) == 2

    assert raw.sent == ["now", "soon", "late"]
    assert sqs.held == 0
