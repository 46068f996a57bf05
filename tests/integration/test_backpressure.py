"""Flow control through the real handlers: windows, conflation, busy, timeouts, retries."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from simulation.harness import Harness, LambdaContext
from tests.integration.test_routing import command, snapshot, snapshots


def test_consumer_over_its_window_gets_conflated_snapshots_with_missed_count(
    gateway: Harness,
) -> None:
    # Given a browser, a consumer that negotiated acks but acks nothing, and a
    # prompt consumer of the same browser
    browser = gateway.connect("browser", "acme", "b1")
    slow = gateway.connect("consumer", "acme", "slow", acks=True)
    prompt = gateway.connect("consumer", "acme", "prompt")
    gateway.drain()

    # When the browser sends 110 snapshots
    for seq in range(1, 111):
        gateway.send(browser, snapshot(seq))
    gateway.drain()

    # Then the slow consumer got its window of 100, numbered 1..100, the prompt
    # one all 110
    first = snapshots(gateway, slow)
    assert [m["dseq"] for m in first] == list(range(1, 101))
    assert sorted(m["seq"] for m in first) == list(range(1, 101))
    assert len(snapshots(gateway, prompt)) == 110
    gateway.take(slow)

    # When the slow consumer acks everything and the parked snapshots return
    gateway.send(slow, json.dumps({"action": "ack", "seq": 100}))
    gateway.advance(2)

    # Then it receives only the newest, told it missed the 9 before it
    (latest,) = snapshots(gateway, slow)
    assert latest["seq"] == 110
    assert latest["missed"] == 9
    assert latest["dseq"] == 101


def test_acked_consumer_keeps_receiving_everything(gateway: Harness) -> None:
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1", acks=True)
    gateway.drain()
    gateway.take(consumer)
    delivered = 0
    for seq in range(1, 151):
        gateway.send(browser, snapshot(seq))
        gateway.drain()
        for message in gateway.take(consumer):
            delivered += 1
            gateway.send(consumer, json.dumps({"action": "ack", "seq": message["dseq"]}))
    assert delivered == 150


def test_ack_beyond_last_delivery_is_refused(gateway: Harness) -> None:
    consumer = gateway.connect("consumer", "acme", "c1", acks=True)
    reply = gateway.send(consumer, json.dumps({"action": "ack", "seq": 5}))
    assert reply is not None and reply["code"] == "bad_request"


def test_consumer_that_stays_over_its_window_is_disconnected_with_a_reason(
    make_gateway: Callable[..., Harness],
) -> None:
    gateway = make_gateway(max_unacked=3)
    browser = gateway.connect("browser", "acme", "b1")
    slow = gateway.connect("consumer", "acme", "slow", acks=True)
    gateway.drain()
    for seq in range(1, 5):
        gateway.send(browser, snapshot(seq))
    gateway.drain()
    gateway.take(slow)
    for _ in range(gateway.settings.max_parks + 1):
        gateway.advance(900)
    (reason,) = gateway.take(slow)
    assert reason["action"] == "error" and reason["code"] == "busy"
    assert "disconnected" in reason["message"]
    assert slow.connection_id in gateway.api.deleted


def test_command_over_the_bound_gets_busy(make_gateway: Callable[..., Harness]) -> None:
    # Given a bound of 5 and a browser that answers nothing
    gateway = make_gateway(max_unacked=5)
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.take(consumer)

    # When a consumer sends 6 commands
    for i in range(6):
        gateway.send(consumer, command(f"k{i}", "b1"))
        gateway.drain()

    # Then 5 reach the browser and the 6th is answered busy, not dropped
    assert len(gateway.take(browser)) == 5
    (busy,) = gateway.take(consumer)
    assert busy["action"] == "error" and busy["code"] == "busy" and busy["id"] == "k5"

    # And once one is answered there is room again
    gateway.send(browser, json.dumps({"action": "result", "id": "k0", "ok": True}))
    gateway.send(consumer, command("k6", "b1"))
    gateway.drain()
    assert [m["id"] for m in gateway.take(browser)] == ["k6"]


def test_command_to_offline_browser_gets_target_offline(gateway: Harness) -> None:
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.send(consumer, command("k1", "nobody"))
    gateway.drain()
    (error,) = gateway.take(consumer)
    assert error == {
        "action": "error",
        "code": "target_offline",
        "message": "browser 'nobody' is not connected",
        "id": "k1",
    }


def test_unanswered_command_times_out(gateway: Harness) -> None:
    gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.take(consumer)
    gateway.send(consumer, command("k1", "b1", timeout=5))
    gateway.drain()
    assert gateway.take(consumer) == []
    gateway.advance(5)
    (error,) = gateway.take(consumer)
    assert error["code"] == "timeout" and error["id"] == "k1"


def test_browser_leaving_fails_its_pending_commands(gateway: Harness) -> None:
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.send(consumer, command("k1", "b1"))
    gateway.drain()
    gateway.take(consumer)
    gateway.close(browser)
    gateway.drain()
    codes = [(m["action"], m.get("code"), m.get("id")) for m in gateway.take(consumer)]
    assert ("error", "target_offline", "k1") in codes
    gateway.advance(60)
    assert gateway.take(consumer) == []  # no second answer (timeout) afterwards


def test_redelivered_command_is_not_delivered_twice(gateway: Harness) -> None:
    # Given a command envelope that SQS delivers twice (at-least-once)
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.send(consumer, command("k1", "b1"))
    messages = gateway.raw_sqs.receive_message(
        QueueUrl=gateway.settings.command_queue_url, MaxNumberOfMessages=10
    )["Messages"]
    event = gateway.sqs_event([(m["MessageId"], m["Body"]) for m in messages])

    # When the command lane's worker processes it twice
    worker = gateway.handlers["commands"].handler
    worker(event, LambdaContext())
    worker(event, LambdaContext())

    # Then the browser receives it once
    assert [m["id"] for m in gateway.take(browser)] == ["k1"]


def test_same_command_id_from_another_consumer_is_a_conflict(gateway: Harness) -> None:
    gateway.connect("browser", "acme", "b1")
    first = gateway.connect("consumer", "acme", "c1")
    second = gateway.connect("consumer", "acme", "c2")
    gateway.drain()
    gateway.take(second)
    gateway.send(first, command("same", "b1"))
    gateway.send(second, command("same", "b1"))
    gateway.drain()
    (error,) = gateway.take(second)
    assert error["code"] == "conflict" and error["id"] == "same"


def test_throttled_post_is_retried_through_the_delivery_queue(gateway: Harness) -> None:
    # A presence post (snapshots are dropped instead: see test_bounded.py)
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.api.throttle_next = 1
    gateway.connect("browser", "acme", "b1")
    gateway.drain()
    assert gateway.take(consumer) == []
    gateway.advance(2)  # the first retry's delay is at most 2 s (full jitter)
    (presence,) = gateway.take(consumer)
    assert presence["action"] == "presence" and presence["online"] is True


def test_flooding_client_is_rate_limited_then_disconnected(
    make_gateway: Callable[..., Harness],
) -> None:
    gateway = make_gateway(rate_limit_per_second=20)
    # Every send falls in one rate window, however slow a loaded machine is (on a
    # loaded machine 400 sends took longer than 400 / 40 per second).
    limiter = gateway.runtime.gateway._limiter  # type: ignore[attr-defined]
    frozen = time.time()
    limiter._clock = lambda: frozen
    browser = gateway.connect("browser", "acme", "b1")
    codes = []
    for seq in range(400):
        reply = gateway.send(browser, snapshot(seq))
        codes.append(reply["code"] if reply else "ok")
        if browser.connection_id in gateway.api.deleted:
            break
    assert "rate_limited" in codes
    assert browser.connection_id in gateway.api.deleted
    # snapshot has no route response: each rate_limited error was posted, and the
    # disconnection's reason after them
    errors = [m for m in gateway.received(browser) if m["action"] == "error"]
    assert len(errors) == codes.count("rate_limited")  # the last send's answer: the reason
    (reason,) = [e for e in errors if "disconnected" in e["message"]]
    assert reason == errors[-1] and reason["code"] == "rate_limited"
