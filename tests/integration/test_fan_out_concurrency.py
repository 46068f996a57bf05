"""Posts within a large fan-out run concurrently, with a bound (issue 11).

The fake @connections here blocks each post until K of them are in flight
(a barrier, no sleeps): a fan-out that posted one at a time would never pass
it, one that posted more than K at once would be seen doing so.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from simulation.fakes import Reply
from simulation.harness import Connection, Harness

BOUND = 4
#: Generous: only a fan-out that never reaches K posts in flight waits this long.
BARRIER_TIMEOUT_S = 60.0


def snapshot(seq: int) -> str:
    return json.dumps({"action": "snapshot", "sid": "s", "seq": seq, "data": "<p/>"})


def snapshots(gateway: Harness, conn: Connection) -> list[dict[str, Any]]:
    return [m for m in gateway.take(conn) if m["action"] == "snapshot"]


def tenant_with_consumers(gateway: Harness, count: int) -> tuple[Connection, list[Connection]]:
    consumers = [gateway.connect("consumer", "acme", f"c{n:02}") for n in range(count)]
    browser = gateway.connect("browser", "acme", "b1")
    gateway.drain()
    for consumer in consumers:
        gateway.take(consumer)
    return browser, consumers


class InFlight:
    """Wraps the fake @connections' post: counts posts in flight, and makes each
    wait until ``parties`` are in flight together."""

    def __init__(self, post: Callable[[str, bytes], Reply], parties: int) -> None:
        self._post = post
        self._barrier = threading.Barrier(parties, timeout=BARRIER_TIMEOUT_S)
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.posts = 0

    def __call__(self, connection_id: str, data: bytes) -> Reply:
        with self._lock:
            self.now += 1
            self.posts += 1
            self.most = max(self.most, self.now)
        try:
            self._barrier.wait()
            return self._post(connection_id, data)
        finally:
            with self._lock:
                self.now -= 1


def test_a_large_fan_outs_posts_overlap_and_never_exceed_the_bound(
    make_gateway: Callable[..., Harness], monkeypatch: Any
) -> None:
    # Given a browser with 20 consumers (the router's fan-out), posts at most 4 at once
    gateway = make_gateway(fan_out_concurrency=BOUND)
    browser, consumers = tenant_with_consumers(gateway, 20)
    # And an @connections whose posts each wait until 4 are in flight
    in_flight = InFlight(gateway.api.post, BOUND)
    monkeypatch.setattr(gateway.api, "post", in_flight)
    # When the browser sends a snapshot and the router fans it out
    gateway.send(browser, snapshot(1))
    gateway.drain()
    # Then every post passed the barrier (4 were in flight together), never more than 4
    assert in_flight.posts == 20
    assert in_flight.most == BOUND
    # And every consumer has the snapshot once
    for consumer in consumers:
        assert [m["seq"] for m in snapshots(gateway, consumer)] == [1]


def test_a_presence_chunks_posts_overlap_within_the_bound(
    make_gateway: Callable[..., Harness], monkeypatch: Any
) -> None:
    # Given 8 consumers of a tenant, posts at most 4 at once
    gateway = make_gateway(fan_out_concurrency=BOUND)
    consumers = [gateway.connect("consumer", "acme", f"c{n}") for n in range(8)]
    in_flight = InFlight(gateway.api.post, BOUND)
    monkeypatch.setattr(gateway.api, "post", in_flight)
    # When a browser comes online and the router fans its presence out
    gateway.connect("browser", "acme", "b1")
    gateway.drain()
    # Then the 8 posts went 4 at a time, and each consumer has the presence
    assert (in_flight.posts, in_flight.most) == (8, BOUND)
    for consumer in consumers:
        assert [m["client_id"] for m in gateway.take(consumer)] == ["b1"]


def test_each_recipient_of_a_concurrent_fan_out_keeps_its_own_outcome(
    make_gateway: Callable[..., Harness], monkeypatch: Any
) -> None:
    # Given 12 consumers, posted to 8 at once, where c01 has gone (410), c02's post
    # is throttled (429) and c03's meets a server error (500)
    gateway = make_gateway(fan_out_concurrency=8)
    browser, consumers = tenant_with_consumers(gateway, 12)
    gone, throttled, failing = consumers[1], consumers[2], consumers[3]
    gateway.api.open.discard(gone.connection_id)
    post = gateway.api.post
    faults = {throttled.connection_id: (429, "LimitExceededException")}
    faults[failing.connection_id] = (500, "InternalServerErrorException")

    def faulty(connection_id: str, data: bytes) -> Reply:
        fault = faults.pop(connection_id, None)  # once each
        if fault is not None:
            return gateway.api.error(*fault)
        return post(connection_id, data)

    monkeypatch.setattr(gateway.api, "post", faulty)
    # When the browser sends a snapshot and the router fans it out
    gateway.send(browser, snapshot(1))
    gateway.drain()
    # Then the gone consumer's records are removed (410: forget the target)
    assert gateway.runtime.registry.get(gone.connection_id) is None
    # And the throttled one got nothing now (dropped, not retried), nor did the failed one
    assert snapshots(gateway, throttled) == []
    assert snapshots(gateway, failing) == []
    # And everyone else has it once
    others = [c for c in consumers if c not in (gone, throttled, failing)]
    for consumer in others:
        assert [m["seq"] for m in snapshots(gateway, consumer)] == [1]
    # And the failed post is retried through the delivery queue and arrives
    gateway.advance(2)
    assert [m["seq"] for m in snapshots(gateway, failing)] == [1]
    assert snapshots(gateway, throttled) == []
    # And the throttled consumer's next snapshot tells it missed one
    gateway.send(browser, snapshot(2))
    gateway.drain()
    (latest,) = snapshots(gateway, throttled)
    assert (latest["seq"], latest["missed"]) == (2, 1)
