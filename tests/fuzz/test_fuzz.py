"""The seeded, small version of ``make fuzz``: the same fuzzer, 500 frames, fixed seed."""

from __future__ import annotations

import json

import pytest

from fuzz.run import run


@pytest.mark.timeout(900)
def test_given_500_seeded_adversarial_frames_when_fuzzed_then_every_count_is_zero() -> None:
    report = run(seed=20261130, frames=500)

    assert report.frames >= 500
    causes = json.dumps(report.causes, indent=1, ensure_ascii=True)[:6000]
    assert report.counts == dict.fromkeys(report.counts, 0), causes
    # And frames went to the routes API Gateway would select, one-way routes included
    # (their errors are posted, and a reply there would be counted above)
    routes = report.stats["routes"]
    assert {"snapshot", "command", "result", "ack", "subscribe", "$default"} <= set(routes)
