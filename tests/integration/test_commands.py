"""A command's life under faults and hostile input: one answer, one slot, no reuse.

Each test names the class of defect it guards (issue 10).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from simulation.harness import Connection, Harness
from tests.integration.faults import Faults, run_workers
from tests.integration.test_routing import command


def result(cmd_id: str, value: Any = 1, **extra: object) -> str:
    return json.dumps({"action": "result", "id": cmd_id, "ok": True, "value": value, **extra})


def setup(gateway: Harness) -> tuple[Connection, Connection]:
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.take(consumer)
    return browser, consumer


def answers(gateway: Harness, conn: Connection, cmd_id: str) -> list[dict[str, Any]]:
    return [m for m in gateway.take(conn) if m.get("id") == cmd_id]


def inflight(gateway: Harness, conn: Connection) -> int:
    registry: Any = gateway.runtime.relay._registry
    return int(registry.inflight_commands(conn.connection_id))


def die_before_answering(gateway: Harness) -> Faults:
    """The next worker dies just before it posts to the consumer: after it decided
    (and recorded) the answer, before the answer left."""
    faults = Faults(gateway)
    faults.die_at_first("PostToConnection(consumer)", "before")
    return faults


# -- class 3: answers lost when a worker dies -----------------------------------


def test_result_whose_worker_died_before_posting_it_still_reaches_the_issuer(
    gateway: Harness,
) -> None:
    # Given a delivered command
    browser, consumer = setup(gateway)
    gateway.send(consumer, command("k1", "b1"))
    gateway.drain()
    gateway.take(browser)

    # When the browser answers and the worker dies before posting the result
    faults = die_before_answering(gateway)
    gateway.send(browser, result("k1", 7))
    run_workers(gateway, faults)
    assert faults.fired is not None

    # Then SQS's redelivery posts it: the issuer gets it once, the browser no refusal
    (answer,) = answers(gateway, consumer, "k1")
    assert answer["action"] == "result" and answer["value"] == 7
    assert gateway.take(browser) == []
    assert inflight(gateway, browser) == 0


def test_timeout_whose_worker_died_before_posting_it_still_reaches_the_issuer(
    gateway: Harness,
) -> None:
    browser, consumer = setup(gateway)
    gateway.send(consumer, command("k1", "b1", timeout=5))
    gateway.drain()
    faults = die_before_answering(gateway)
    gateway.sqs.advance(5)
    run_workers(gateway, faults)
    assert faults.fired is not None
    (answer,) = answers(gateway, consumer, "k1")
    assert answer["code"] == "timeout"
    assert inflight(gateway, browser) == 0


def test_target_offline_whose_worker_died_before_posting_it_still_reaches_the_issuer(
    gateway: Harness,
) -> None:
    browser, consumer = setup(gateway)
    gateway.send(consumer, command("k1", "b1"))
    gateway.drain()
    faults = die_before_answering(gateway)
    gateway.close(browser)
    run_workers(gateway, faults)
    assert faults.fired is not None
    (answer,) = answers(gateway, consumer, "k1")
    assert answer["code"] == "target_offline"


# -- class 4: half-sent results never end ---------------------------------------


def test_half_answered_command_times_out_frees_its_slot_and_refuses_late_parts(
    make_gateway: Callable[..., Harness],
) -> None:
    # Given a browser with room for one command, and one command half answered
    gateway = make_gateway(max_unacked=1)
    browser, consumer = setup(gateway)
    gateway.send(consumer, command("k1", "b1", timeout=5))
    gateway.drain()
    gateway.take(browser)
    gateway.send(browser, result("k1", "[1,", part=0, parts=2))
    gateway.drain()
    (part0,) = answers(gateway, consumer, "k1")
    assert part0["part"] == 0

    # When its timeout passes
    gateway.advance(5)

    # Then the issuer gets one timeout that says how far the result got
    (error,) = answers(gateway, consumer, "k1")
    assert error["code"] == "timeout"
    assert "1 of 2 result parts arrived" in error["message"]
    assert inflight(gateway, browser) == 0

    # And a late part is refused to the browser, precisely, and not relayed
    gateway.send(browser, result("k1", "2]", part=1, parts=2))
    gateway.drain()
    (refusal,) = gateway.take(browser)
    assert refusal["code"] == "bad_request" and refusal["id"] == "k1"
    assert "timed out" in refusal["message"]
    assert answers(gateway, consumer, "k1") == []

    # And the freed slot takes the next command (no busy)
    gateway.send(consumer, command("k2", "b1"))
    gateway.drain()
    assert [m["id"] for m in gateway.take(browser)] == ["k2"]
    assert gateway.take(consumer) == []


def test_half_answered_command_ends_when_its_browser_leaves(gateway: Harness) -> None:
    browser, consumer = setup(gateway)
    gateway.send(consumer, command("k1", "b1"))
    gateway.drain()
    gateway.send(browser, result("k1", "[1,", part=0, parts=2))
    gateway.drain()
    gateway.take(consumer)
    gateway.close(browser)
    gateway.drain()
    (error,) = [m for m in gateway.take(consumer) if m["action"] == "error"]
    assert error["code"] == "target_offline" and error["id"] == "k1"
    gateway.advance(60)
    assert answers(gateway, consumer, "k1") == []


# -- class 2 (gateway side): parts inconsistent with the first part -------------


def test_result_parts_that_disagree_with_the_first_part_are_refused(gateway: Harness) -> None:
    # Given a command whose result arrives in 3 parts
    browser, consumer = setup(gateway)
    gateway.send(consumer, command("k1", "b1"))
    gateway.drain()
    gateway.take(browser)
    gateway.send(browser, result("k1", "[1", part=0, parts=3))
    gateway.drain()

    # When parts disagree on `parts`, repeat, or lie beyond `parts`
    gateway.send(browser, result("k1", "x", part=1, parts=2))
    gateway.send(browser, result("k1", "y", part=0, parts=3))
    reply = gateway.send(browser, result("k1", "z", part=3, parts=3))
    gateway.drain()

    # Then each is refused to the browser with bad_request, saying why: the last at
    # once by the gateway (posted: result has no route response), the others by the router
    assert reply is not None and reply["code"] == "bad_request" and reply["id"] == "k1"
    refusals = gateway.take(browser)
    assert [r["code"] for r in refusals] == ["bad_request", "bad_request", "bad_request"]
    assert refusals[0] == reply
    assert "parts=2 disagrees with parts=3" in refusals[1]["message"]
    assert "part 0 was already received" in refusals[2]["message"]

    # And only the consistent parts reach the issuer, which then gets the whole result
    gateway.send(browser, result("k1", ",2", part=1, parts=3))
    gateway.send(browser, result("k1", "]", part=2, parts=3))
    gateway.drain()
    relayed = answers(gateway, consumer, "k1")
    assert [(m["part"], m["parts"], m["value"]) for m in relayed] == [
        (0, 3, "[1"),
        (1, 3, ",2"),
        (2, 3, "]"),
    ]
    assert inflight(gateway, browser) == 0


# -- class 9: reused command ids ------------------------------------------------


def test_id_reused_for_another_browser_is_a_conflict(gateway: Harness) -> None:
    browser, consumer = setup(gateway)
    other = gateway.connect("browser", "acme", "b2")
    gateway.drain()
    gateway.take(consumer)
    gateway.send(consumer, command("k1", "b1"))
    gateway.send(consumer, command("k1", "b2"))
    gateway.drain()
    (error,) = answers(gateway, consumer, "k1")
    assert error["code"] == "conflict"
    assert "already used" in error["message"] and "'b1'" in error["message"]
    assert gateway.take(other) == []
    assert [m["id"] for m in gateway.take(browser)] == ["k1"]
    # The first command is unaffected: its result still arrives
    gateway.send(browser, result("k1", 5))
    gateway.drain()
    (answer,) = answers(gateway, consumer, "k1")
    assert answer["action"] == "result" and answer["value"] == 5


def test_id_reused_after_its_answer_is_a_conflict(gateway: Harness) -> None:
    browser, consumer = setup(gateway)
    gateway.send(consumer, command("k1", "b1"))
    gateway.drain()
    gateway.send(browser, result("k1"))
    gateway.drain()
    gateway.take(browser)
    (first,) = answers(gateway, consumer, "k1")
    assert first["action"] == "result"
    gateway.send(consumer, command("k1", "b1"))
    gateway.drain()
    (error,) = answers(gateway, consumer, "k1")
    assert error["code"] == "conflict" and error["id"] == "k1"
    assert gateway.take(browser) == []


def test_id_reused_while_pending_is_a_conflict(gateway: Harness) -> None:
    browser, consumer = setup(gateway)
    gateway.send(consumer, command("k1", "b1"))
    gateway.drain()
    gateway.send(consumer, command("k1", "b1", name="scroll"))
    gateway.drain()
    (error,) = answers(gateway, consumer, "k1")
    assert error["code"] == "conflict"
    assert [m["name"] for m in gateway.take(browser)] == ["click"]
    assert inflight(gateway, browser) == 1


def test_id_reused_by_another_consumer_after_the_answer_is_a_conflict(gateway: Harness) -> None:
    browser, consumer = setup(gateway)
    second = gateway.connect("consumer", "acme", "c2")
    gateway.send(consumer, command("k1", "b1"))
    gateway.drain()
    gateway.send(browser, result("k1"))
    gateway.drain()
    gateway.take(browser)
    gateway.take(second)
    gateway.send(second, command("k1", "b1"))
    gateway.drain()
    (error,) = answers(gateway, second, "k1")
    assert error["code"] == "conflict" and "another consumer" in error["message"]
    assert gateway.take(browser) == []


# -- class 10: retries lose the issuer --------------------------------------------


def test_throttled_answer_retried_after_its_issuer_reconnected_reaches_the_new_connection(
    gateway: Harness,
) -> None:
    # Given a delivered command
    browser, old = setup(gateway)
    gateway.send(old, command("k1", "b1"))
    gateway.drain()

    # When the answer's post is throttled (retried through the delivery queue)
    gateway.api.throttle_next = 1
    gateway.send(browser, result("k1", 9))
    gateway.drain()
    assert gateway.sqs.held == 2  # the command's timeout check and the answer's retry

    # And the consumer reconnects before the retry runs (its old socket is gone)
    gateway.close(old)
    new = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.take(new)
    gateway.advance(2)  # the first retry's delay is at most 2 s (full jitter)

    # Then the retry follows the issuer to its new connection
    (answer,) = answers(gateway, new, "k1")
    assert answer["action"] == "result" and answer["value"] == 9
