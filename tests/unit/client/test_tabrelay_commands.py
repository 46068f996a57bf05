"""Running each command id at most once (the browser side), without I/O."""

from __future__ import annotations

import json

from tabrelay.core import CommandLedger, Duplicate, Malformed
from tabrelay.errors import TabRelayError


def test_given_new_id_when_received_then_run_it() -> None:
    ledger = CommandLedger()
    assert ledger.receive("k1") is None
    assert "k1" in ledger


def test_given_running_id_when_received_again_then_duplicate_without_answer() -> None:
    ledger = CommandLedger()
    ledger.receive("k1")
    assert ledger.receive("k1") == Duplicate(None)


def test_given_finished_id_when_received_again_then_duplicate_with_the_same_answer() -> None:
    ledger = CommandLedger()
    ledger.receive("k1")
    frames = ledger.finish("k1", value={"x": 1})
    result = json.loads(frames[0])
    assert (result["id"], result["ok"], result["value"]) == ("k1", True, {"x": 1})
    assert ledger.receive("k1") == Duplicate(frames)


def test_given_an_error_with_a_code_when_finished_then_ok_false_with_that_code() -> None:
    ledger = CommandLedger()
    ledger.receive("k1")
    exc = TabRelayError("no such tab", code="no_tab")
    frames = ledger.finish("k1", error=exc)
    result = json.loads(frames[0])
    assert (result["ok"], result["error"], result["code"]) == (False, str(exc), "no_tab")


def test_given_an_error_without_code_or_text_when_finished_then_class_name_for_both() -> None:
    ledger = CommandLedger()
    ledger.receive("k1")
    result = json.loads(ledger.finish("k1", error=KeyError())[0])
    assert (result["error"], result["code"]) == ("KeyError", "KeyError")


def test_given_a_large_value_when_finished_then_parts_within_the_budget() -> None:
    ledger = CommandLedger(budget=2_000)
    ledger.receive("k1")
    frames = ledger.finish("k1", value="x" * 10_000)
    assert len(frames) > 1
    assert all(len(f.encode()) <= 2_000 for f in frames)


def _malformed(id: str | None, action: str | None = "command") -> Malformed:
    return Malformed("bad_request", "timeout must be in (0, 900] seconds", action=action, id=id)


def test_given_malformed_command_when_refused_then_bad_request_once() -> None:
    ledger = CommandLedger()
    refusal = ledger.refuse(_malformed("k1"))
    assert refusal is not None
    id, frames = refusal
    result = json.loads(frames[0])
    assert (id, result["id"], result["ok"], result["code"]) == ("k1", "k1", False, "bad_request")
    assert result["error"] == "malformed command: timeout must be in (0, 900] seconds"
    assert ledger.refuse(_malformed("k1")) is None
    assert ledger.receive("k1") == Duplicate(frames)


def test_given_a_seen_id_when_refused_then_no_answer() -> None:
    ledger = CommandLedger()
    ledger.receive("k1")
    assert ledger.refuse(_malformed("k1")) is None


def test_given_malformed_non_command_or_without_id_when_refused_then_no_answer() -> None:
    ledger = CommandLedger()
    assert ledger.refuse(_malformed("k1", action="result")) is None
    assert ledger.refuse(_malformed(None)) is None
    assert len(ledger) == 0


def test_given_more_than_remember_finished_when_received_then_oldest_forgotten() -> None:
    ledger = CommandLedger(remember=2)
    for id in ("k1", "k2", "k3"):
        ledger.receive(id)
        ledger.finish(id, value=id)
    ledger.receive("k4")
    assert len(ledger) == 2
    assert "k1" not in ledger and "k2" not in ledger


def test_given_oldest_still_running_when_over_remember_then_nothing_forgotten() -> None:
    ledger = CommandLedger(remember=1)
    ledger.receive("k1")  # running: forgetting it would run it twice
    ledger.receive("k2")
    assert "k1" in ledger and "k2" in ledger
