"""Routing through the real handlers under moto: who receives what."""

from __future__ import annotations

import json

from simulation.harness import Harness


def snapshot(seq: int, data: str = "<html>x</html>", **extra: object) -> str:
    return json.dumps({"action": "snapshot", "sid": f"s{seq}", "seq": seq, "data": data, **extra})


def command(cmd_id: str, target: str, name: str = "click", **extra: object) -> str:
    return json.dumps({"action": "command", "id": cmd_id, "target": target, "name": name, **extra})


def snapshots(gateway: Harness, conn: object) -> list[dict[str, object]]:
    return [m for m in gateway.received(conn) if m["action"] == "snapshot"]  # type: ignore[arg-type]


def test_snapshot_reaches_subscribed_consumers_only(gateway: Harness) -> None:
    # Given a browser, three consumers subscribed to it, one subscribed to
    # another browser, and a consumer of another tenant
    browser = gateway.connect("browser", "acme", "b1")
    gateway.connect("browser", "acme", "b2")
    subscribed = [gateway.connect("consumer", "acme", f"c{i}") for i in range(3)]
    for consumer in subscribed:
        reply = gateway.send(consumer, json.dumps({"action": "subscribe", "browsers": ["b1"]}))
        assert reply == {"action": "subscribed", "browsers": ["b1"]}
    other = gateway.connect("consumer", "acme", "c-other")
    gateway.send(other, json.dumps({"action": "subscribe", "browsers": ["b2"]}))
    stranger = gateway.connect("consumer", "globex", "c-stranger")
    gateway.drain()
    for conn in [*subscribed, other, stranger]:
        gateway.take(conn)

    # When the browser sends a snapshot
    assert gateway.send(browser, snapshot(1, url="https://a.example/", title="A")) is None
    gateway.drain()

    # Then exactly the three subscribers receive it, once, with its source
    for consumer in subscribed:
        (delivery,) = gateway.take(consumer)
        assert delivery["action"] == "snapshot"
        assert delivery["source"] == "b1"
        assert delivery["url"] == "https://a.example/"
        assert delivery["data"] == "<html>x</html>"
    assert gateway.take(other) == []
    assert gateway.take(stranger) == []


def test_consumer_without_subscription_receives_every_browser_of_its_tenant(
    gateway: Harness,
) -> None:
    b1 = gateway.connect("browser", "acme", "b1")
    b2 = gateway.connect("browser", "acme", "b2")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.take(consumer)
    gateway.send(b1, snapshot(1))
    gateway.send(b2, snapshot(1))
    gateway.drain()
    assert sorted(m["source"] for m in snapshots(gateway, consumer)) == ["b1", "b2"]


def test_unsubscribe_stops_snapshots(gateway: Harness) -> None:
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.send(consumer, json.dumps({"action": "subscribe", "browsers": ["b1"]}))
    reply = gateway.send(consumer, json.dumps({"action": "unsubscribe", "browsers": ["b1"]}))
    assert reply == {"action": "subscribed", "browsers": []}
    gateway.send(browser, snapshot(1))
    gateway.drain()
    assert snapshots(gateway, consumer) == []


def test_command_reaches_target_and_result_only_its_issuer(gateway: Harness) -> None:
    # Given two browsers and two consumers of one tenant
    target = gateway.connect("browser", "acme", "b1")
    bystander = gateway.connect("browser", "acme", "b2")
    issuer = gateway.connect("consumer", "acme", "c1")
    watcher = gateway.connect("consumer", "acme", "c2")
    gateway.drain()
    for conn in (target, bystander, issuer, watcher):
        gateway.take(conn)

    # When c1 sends a command to b1
    assert gateway.send(issuer, command("k1", "b1", "click", args={"selector": "#go"})) is None
    gateway.drain()

    # Then only b1 receives it, naming its issuer
    (delivered,) = gateway.take(target)
    assert delivered == {
        "action": "command",
        "id": "k1",
        "source": "c1",
        "name": "click",
        "args": {"selector": "#go"},
        "timeout": 30.0,
    }
    assert gateway.take(bystander) == []

    # When b1 answers, only c1 receives the result
    gateway.send(target, json.dumps({"action": "result", "id": "k1", "ok": True, "value": 7}))
    gateway.drain()
    assert gateway.take(issuer) == [
        {
            "action": "result",
            "id": "k1",
            "source": "b1",
            "ok": True,
            "value": 7,
            "part": 0,
            "parts": 1,
        }
    ]
    assert gateway.take(watcher) == []

    # And the command cannot be answered twice, nor time out afterwards
    gateway.send(target, json.dumps({"action": "result", "id": "k1", "ok": True, "value": 8}))
    gateway.advance(60)
    assert gateway.take(issuer) == []
    (refusal,) = gateway.take(target)
    assert refusal["code"] == "bad_request" and refusal["id"] == "k1"


def test_raw_seed_frames_are_relayed(gateway: Harness) -> None:
    # Given the seed's raw clients (no JSON, no acks)
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.take(consumer)

    # When the browser sends bare HTML and the consumer a bare command name
    gateway.send(browser, "<html>frame=42</html>")
    gateway.send(consumer, "click()")
    gateway.drain()

    # Then the consumer receives the HTML and the browser the command
    (html,) = gateway.take(consumer)
    assert html["action"] == "snapshot" and html["data"] == "<html>frame=42</html>"
    (cmd,) = gateway.take(browser)
    assert cmd["action"] == "command" and cmd["name"] == "click()" and cmd["source"] == "c1"


def test_post_gone_deletes_the_target_record_only(gateway: Harness) -> None:
    # Given a consumer whose socket died without a $disconnect
    browser = gateway.connect("browser", "acme", "b1")
    dead = gateway.connect("consumer", "acme", "c-dead")
    alive = gateway.connect("consumer", "acme", "c-alive")
    gateway.drain()
    gateway.vanish(dead)
    registry = gateway.runtime.relay._registry

    # When the browser's snapshot is posted to it and API Gateway answers 410
    gateway.send(browser, snapshot(1))
    gateway.drain()

    # Then the dead consumer's records are gone, the sender's and others' remain
    assert registry.get(dead.connection_id) is None
    assert registry.lookup_client("acme", "consumer", "c-dead") is None
    assert [r.connection_id for r in registry.recipients("acme", "b1")] == [alive.connection_id]
    assert registry.get(browser.connection_id) is not None
    assert registry.get(alive.connection_id) is not None
    assert len(snapshots(gateway, alive)) == 1


def test_presence_and_list(gateway: Harness) -> None:
    consumer = gateway.connect("consumer", "acme", "c1")
    browser = gateway.connect("browser", "acme", "b1")
    gateway.drain()
    (online,) = gateway.take(consumer)
    assert online["action"] == "presence" and online["client_id"] == "b1" and online["online"]

    reply = gateway.send(consumer, json.dumps({"action": "list", "id": "q"}))
    assert reply is not None and reply["id"] == "q"
    assert [b["client_id"] for b in reply["browsers"]] == ["b1"]

    gateway.close(browser)
    gateway.drain()
    (offline,) = gateway.take(consumer)
    assert offline == {**offline, "action": "presence", "client_id": "b1", "online": False}
    assert gateway.send(consumer, json.dumps({"action": "list"}))["browsers"] == []  # type: ignore[index]


def test_new_connection_of_same_client_supersedes_the_old(gateway: Harness) -> None:
    old = gateway.connect("browser", "acme", "b1")
    new = gateway.connect("browser", "acme", "b1")
    assert gateway.api.deleted == [old.connection_id]
    # The old socket's $disconnect must not unregister the new one.
    gateway.close(old)
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.send(consumer, command("k1", "b1"))
    gateway.drain()
    assert [m["id"] for m in gateway.take(new)] == ["k1"]


def test_two_live_connections_of_one_consumer_both_stay_and_both_get_snapshots(
    gateway: Harness,
) -> None:
    # Given a consumer identity used by two programs at once (`tabrelay watch` and
    # `tabrelay send` with the same token, as the client's README shows)
    browser = gateway.connect("browser", "acme", "b1")
    watch = gateway.connect("consumer", "acme", "c1")
    sender = gateway.connect("consumer", "acme", "c1")
    # Then the second does not close the first (closing it lost the snapshot that
    # followed a command while the watcher reconnected)
    assert gateway.api.deleted == []
    # And a snapshot reaches both
    gateway.send(browser, snapshot(1))
    gateway.drain()
    assert [s["seq"] for s in snapshots(gateway, watch)] == [1]
    assert [s["seq"] for s in snapshots(gateway, sender)] == [1]


def test_ping_is_answered_with_pong(gateway: Harness) -> None:
    browser = gateway.connect("browser", "acme", "b1")
    assert gateway.send(browser, json.dumps({"action": "ping", "id": "p1"})) == {
        "action": "pong",
        "id": "p1",
    }


def test_result_reaches_the_issuer_after_it_reconnected(gateway: Harness) -> None:
    # Given a command in flight when its consumer reconnects (2 h limit, network)
    browser = gateway.connect("browser", "acme", "b1")
    old = gateway.connect("consumer", "acme", "c1")
    gateway.send(old, command("k1", "b1"))
    gateway.drain()
    gateway.vanish(old)
    new = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.take(new)

    # When the browser answers
    gateway.send(browser, json.dumps({"action": "result", "id": "k1", "ok": True, "value": 1}))
    gateway.drain()

    # Then the answer reaches the consumer's new connection
    (result,) = gateway.take(new)
    assert result["action"] == "result" and result["id"] == "k1" and result["value"] == 1
