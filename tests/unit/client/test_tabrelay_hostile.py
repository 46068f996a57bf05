"""Hostile or broken deliveries: each costs one command or one snapshot, never the relay.

The core (:func:`parse_delivery` and the two assemblers) must turn any frame
into a typed message, a :class:`Malformed`, or a ``ProtocolError`` for that one
result or snapshot; the asyncio ``Relay`` must keep working after them.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import random
import zlib
from typing import Any

import pytest
import tabrelay
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tabrelay import wire
from tabrelay.core import (
    Malformed,
    ResultAssembler,
    SnapshotAssembler,
    parse_delivery,
    result_frames,
    snapshot_frames,
)

from tests.unit.client.fake_gateway import WAIT, FakeGateway


def _result(**fields: Any) -> wire.ResultDelivery:
    msg = {"action": "result", "id": "c1", "source": "b1", "ok": True, **fields}
    d = parse_delivery(json.dumps(msg))
    assert isinstance(d, wire.ResultDelivery), d
    return d


def _snap(**fields: Any) -> wire.SnapshotDelivery:
    msg = {"action": "snapshot", "source": "b1", "sid": "s1", "seq": 1, "data": "", **fields}
    d = parse_delivery(json.dumps(msg))
    assert isinstance(d, wire.SnapshotDelivery), d
    return d


# --------------------------------------------------------------------------
# Results.
# --------------------------------------------------------------------------


def test_given_result_parts_disagreeing_on_parts_when_fed_then_protocol_error_for_that_id() -> None:
    # The reported crash: part 0 says 2 parts, part 1 says 3, then part 2 completes "3".
    assembler = ResultAssembler()
    assert assembler.feed(_result(value="[1,", part=0, parts=2)) is None
    with pytest.raises(wire.ProtocolError) as caught:
        assembler.feed(_result(value="2]", part=1, parts=3))
    assert caught.value.id == "c1" and "disagree" in caught.value.message
    assert assembler.pending == 0


@pytest.mark.parametrize(("part", "parts"), [(-1, 2), (2, 2), (0, 0), (0, -3), (0, 10_001), (5, 3)])
def test_given_result_part_out_of_range_when_parsed_then_malformed_with_its_id(
    part: int, parts: int
) -> None:
    text = json.dumps(
        {"action": "result", "id": "c1", "source": "b1", "ok": True, "value": "x"}
        | {"part": part, "parts": parts}
    )
    m = parse_delivery(text)
    assert isinstance(m, Malformed) and (m.action, m.id) == ("result", "c1")
    d = wire.ResultDelivery(id="c1", source="b1", ok=True, value="x", part=part, parts=parts)
    with pytest.raises(wire.ProtocolError):
        ResultAssembler().feed(d)


def test_given_result_with_number_too_long_for_python_when_parsed_then_malformed_with_id() -> None:
    text = '{"action": "result", "id": "c1", "source": "b1", "ok": true, "value": 1' + "0" * 5000
    m = parse_delivery(text + "}")
    assert isinstance(m, Malformed) and (m.action, m.id) == ("result", "c1")


def test_given_duplicate_result_part_when_fed_then_ignored_and_result_whole() -> None:
    assembler = ResultAssembler()
    assert assembler.feed(_result(value="[1,", part=0, parts=2)) is None
    assert assembler.feed(_result(value="[1,", part=0, parts=2)) is None
    whole = assembler.feed(_result(value="2]", part=1, parts=2))
    assert whole is not None and whole.value == [1, 2]


def test_given_result_parts_that_are_not_json_when_joined_then_protocol_error() -> None:
    assembler = ResultAssembler()
    assembler.feed(_result(value="[1,", part=0, parts=2))
    with pytest.raises(wire.ProtocolError):
        assembler.feed(_result(value="{{", part=1, parts=2))
    deep = "[" * 100_000
    assembler.feed(_result(id="c2", value=deep, part=0, parts=2))
    with pytest.raises(wire.ProtocolError):
        assembler.feed(_result(id="c2", value="]" * 100_000, part=1, parts=2))


def test_given_result_over_byte_bound_when_fed_then_too_large_and_nothing_held() -> None:
    assembler = ResultAssembler(max_bytes=50_000)
    frames = result_frames("c1", ok=True, value="x" * 100_000)
    parts = [json.loads(f) | {"source": "b1"} for f in frames]
    with pytest.raises(wire.ProtocolError) as caught:
        for p in parts:
            d = parse_delivery(json.dumps(p))
            assert isinstance(d, wire.ResultDelivery)
            assembler.feed(d)
    assert caught.value.code == "too_large"
    assert assembler.pending == 0 and assembler.pending_bytes == 0


def test_given_more_results_than_bound_when_fed_then_oldest_abandoned_and_reported() -> None:
    assembler = ResultAssembler(max_pending=2)
    for i in range(3):
        assembler.feed(_result(id=f"c{i}", value="[", part=0, parts=2))
    assert assembler.abandoned == ["c0"] and assembler.pending == 2


# --------------------------------------------------------------------------
# Snapshots.
# --------------------------------------------------------------------------


def _gzip_parts(payload: bytes, parts: int, missed: int = 0) -> list[wire.SnapshotDelivery]:
    text = base64.b64encode(payload).decode()
    n = -(-len(text) // parts)
    return [  # the gateway reports missed on part 0 only
        _snap(
            enc="gzip",
            data=text[i * n : (i + 1) * n],
            part=i,
            parts=parts,
            missed=missed * (i == 0),
        )
        for i in range(parts)
    ]


def test_given_gzip_bomb_when_fed_then_dropped_within_bound_and_counted_missed() -> None:
    inflater = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = inflater.compress(b"\0" * (64 * 1024 * 1024)) + inflater.flush()
    assembler = SnapshotAssembler(max_html_bytes=1024 * 1024)
    with pytest.raises(wire.ProtocolError) as caught:
        for d in _gzip_parts(bomb, 3):
            assembler.feed(d)
    assert caught.value.code == "too_large"
    good = assembler.feed(_snap(sid="s2", seq=2, data="<p>ok</p>"))
    assert good is not None and good.missed == 1


@pytest.mark.parametrize(
    "payload",
    [b"not gzip at all", gzip.compress(b"<p>x</p>")[:-6], gzip.compress(b"\xff\xfe bad utf-8")],
)
def test_given_undecodable_gzip_when_fed_then_protocol_error_and_next_reports_missed(
    payload: bytes,
) -> None:
    assembler = SnapshotAssembler()
    with pytest.raises(wire.ProtocolError):
        for d in _gzip_parts(payload, 2, missed=2):
            assembler.feed(d)
    good = assembler.feed(_snap(sid="s2", seq=2, data="<p>ok</p>"))
    assert good is not None and good.missed == 3  # it, and the 2 it reported


def test_given_invalid_base64_when_fed_then_protocol_error_and_counted() -> None:
    assembler = SnapshotAssembler()
    with pytest.raises(wire.ProtocolError):
        assembler.feed(_snap(enc="gzip", data="%%%not base64 日本"))
    good = assembler.feed(_snap(sid="s2", seq=2, data="<p>ok</p>"))
    assert good is not None and good.missed == 1


def test_given_snapshot_parts_that_disagree_when_fed_then_dropped_once_and_later_parts_ignored() -> (
    None
):
    assembler = SnapshotAssembler()
    page = "".join(random.Random(1).choices("abcdefgh<>", k=20_000))
    frames = snapshot_frames(page, sid="s1", seq=1, compress=True, budget=2_000)
    parts = [json.loads(f) | {"source": "b1"} for f in frames]
    for p in parts:
        p.pop("id")
    assert len(parts) > 3
    first = parse_delivery(json.dumps(parts[0]))
    assert isinstance(first, wire.SnapshotDelivery)
    assembler.feed(first)
    with pytest.raises(wire.ProtocolError):
        assembler.feed(_snap(enc="gzip", data="AAAA", part=1, parts=len(parts) + 1))
    for p in parts[1:]:  # the rest of the abandoned snapshot still arrives
        d = parse_delivery(json.dumps(p))
        assert isinstance(d, wire.SnapshotDelivery)
        assert assembler.feed(d) is None
    good = assembler.feed(_snap(sid="s2", seq=2, data="<p>ok</p>"))
    assert good is not None and good.missed == 1
    assert assembler.pending == 0


def test_given_oversized_plain_snapshot_when_fed_then_too_large() -> None:
    assembler = SnapshotAssembler(max_html_bytes=10)
    with pytest.raises(wire.ProtocolError) as caught:
        assembler.feed(_snap(data="x" * 11))
    assert caught.value.code == "too_large"


# --------------------------------------------------------------------------
# Every delivery kind: unknown actions, unknown or mistyped fields, non-JSON.
# --------------------------------------------------------------------------

_VALID: dict[str, dict[str, Any]] = {
    "snapshot": {"source": "b1", "sid": "s1", "seq": 1, "data": "<p>"},
    "command": {"id": "c1", "source": "c9", "name": "click"},
    "result": {"id": "c1", "source": "b1", "ok": True, "value": 1},
    "presence": {"client_id": "b1", "online": True, "at": 1},
    "error": {"code": "busy", "message": "busy", "id": "c1"},
    "browsers": {"browsers": [{"client_id": "b1", "connected_at": 1}], "id": "r1"},
    "subscribed": {"browsers": ["b1"], "id": "r1"},
    "pong": {},
}


@pytest.mark.parametrize("action", sorted(_VALID))
def test_given_each_delivery_kind_when_valid_then_parsed(action: str) -> None:
    msg = parse_delivery(json.dumps({"action": action, **_VALID[action]}))
    assert not isinstance(msg, Malformed) and msg.action == action


@pytest.mark.parametrize("action", sorted(_VALID))
@pytest.mark.parametrize(
    "mutation",
    ["unknown_field", "mistyped", "huge_number", "negative_number", "float_for_int"],
)
def test_given_each_delivery_kind_with_bad_field_when_parsed_then_malformed(
    action: str, mutation: str
) -> None:
    obj: dict[str, Any] = {"action": action, **_VALID[action]}
    if mutation == "unknown_field":
        obj["sneaky"] = 1
    else:
        numeric = {
            "snapshot": "seq",
            "command": "timeout",
            "result": "parts",
            "presence": "at",
            "browsers": "browsers",
            "error": "code",
            "subscribed": "browsers",
            "pong": "id",
        }[action]
        bad = {
            "mistyped": {"x": [1]},
            "huge_number": 10**400,
            "negative_number": -1,
            "float_for_int": 1.5,
        }[mutation]
        if action == "browsers" and mutation != "mistyped":
            bad = [{"client_id": "b1", "connected_at": bad}]
        obj[numeric] = bad
        if action == "command" and mutation == "float_for_int":
            obj[numeric] = 1e400  # timeout is a float: infinity instead
    text = json.dumps(obj)
    m = parse_delivery(text)
    assert isinstance(m, Malformed), (action, mutation, m)
    if action in ("command", "result", "error"):
        assert m.id == "c1"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[1, 2]",
        '"a string"',
        "42",
        "null",
        '{"action": "teleport", "id": "c1"}',
        '{"action": 7}',
        '{"no": "action"}',
        "{" * 100_000,
        '{"action": "pong", "id": 1e400}',
        '{"action": "snapshot", "source": "b1", "sid": "s1", "seq": '
        + "9" * 5000
        + ', "data": ""}',
        b"\xff\xfe{",
        '{"action": "presence", "client_id": "b1", "online": true, "at": NaN}',
    ],
)
def test_given_non_delivery_text_when_parsed_then_malformed(text: str | bytes) -> None:
    assert isinstance(parse_delivery(text), Malformed)


# --------------------------------------------------------------------------
# Random deliveries: the core never raises anything but the typed outcomes.
# --------------------------------------------------------------------------

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_field_values = st.one_of(
    _json,
    st.integers(min_value=-3, max_value=4),
    st.sampled_from(["b1", "b2", "s1", "s2", "c1", "none", "gzip", "H4sI", "[1,", "2]"]),
)
_fields = st.sampled_from(
    [
        "source",
        "sid",
        "seq",
        "data",
        "enc",
        "part",
        "parts",
        "missed",
        "dseq",
        "id",
        "ok",
        "value",
        "error",
        "code",
        "browsers",
        "client_id",
        "at",
        "online",
        "name",
        "args",
        "timeout",
        "message",
        "url",
        "title",
    ]
)


@st.composite
def _deliveries(draw: st.DrawFn) -> str | bytes:
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "raw", "bytes"]))
    if kind == "raw":
        return draw(st.text(max_size=60))
    if kind == "bytes":
        return draw(st.binary(max_size=60))
    action = draw(st.sampled_from([*_VALID, "teleport"]))
    obj: dict[str, Any] = {"action": action, **_VALID.get(action, {})}
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["set", "set", "delete"]))
        name = draw(_fields)
        if op == "delete":
            obj.pop(name, None)
        else:
            obj[name] = draw(_field_values)
    return json.dumps(obj)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(st.lists(_deliveries(), min_size=1, max_size=12))
def test_given_random_deliveries_when_fed_to_core_then_only_typed_outcomes(
    texts: list[str | bytes],
) -> None:
    snapshots = SnapshotAssembler(max_html_bytes=4096, max_bytes=8192, max_pending=4)
    results = ResultAssembler(max_pending=2, max_bytes=64)
    for text in texts:
        msg = parse_delivery(text)  # never raises
        if isinstance(msg, Malformed):
            assert isinstance(msg.code, str) and isinstance(msg.message, str)
            if msg.action == "snapshot" and msg.source is not None:
                snapshots.abandon(msg.source, msg.sid)
            continue
        assert isinstance(msg, wire.Message)
        if isinstance(msg, wire.SnapshotDelivery):
            try:
                snap = snapshots.feed(msg)
            except wire.ProtocolError:
                continue
            if snap is not None:
                assert snap.missed >= 0 and snap.size >= 0
        elif isinstance(msg, wire.ResultDelivery):
            try:
                results.feed(msg)
            except wire.ProtocolError as exc:
                assert exc.id == msg.id
            results.abandoned.clear()
        assert snapshots.pending_bytes <= 8192 and results.pending <= 2


# --------------------------------------------------------------------------
# The Relay goes on.
# --------------------------------------------------------------------------

_HOSTILE: list[str | bytes] = [
    "{",
    "[]",
    "not json at all",
    b"\xff\xfe",
    '{"action": "teleport"}',
    '{"action": "snapshot", "source": "b1", "sid": "bad1", "seq": 1, "data": "", "part": -1}',
    '{"action": "snapshot", "source": "b1", "sid": "bad2", "seq": 1, "data": "%%", "enc": "gzip"}',
    '{"action": "snapshot", "source": "b1", "sid": "bad3", "seq": 1, "data": "", "evil": 1}',
    '{"action": "presence", "client_id": "b1", "online": "yes", "at": 1}',
    '{"action": "pong", "extra": true}',
    '{"action": "browsers", "browsers": 5}',
    '{"action": "subscribed", "browsers": [1]}',
    '{"action": "error", "code": "no_such_code", "message": "x"}',
]
_HOSTILE_COMMAND = '{"action": "command", "id": "k1", "source": "c2", "name": "x", "timeout": -5}'


async def test_given_hostile_frames_when_relay_reads_them_then_it_keeps_working(
    gateway: FakeGateway,
) -> None:
    async with (
        tabrelay.connect(gateway.url, token="consumer:c1", ack_delay=0.01) as consumer,
        tabrelay.connect(gateway.url, token="browser:b1") as browser,
    ):
        browser.on_command(lambda cmd: {"ok": cmd.name})
        snaps = consumer.snapshots()
        conn = gateway.live("c1")
        assert conn is not None
        # A command whose result comes back in parts that disagree: only it fails.
        gateway.silent_commands = True
        victim = asyncio.create_task(consumer.command("b1", "shot", timeout=5))
        await gateway.wait_for(lambda: bool(gateway.messages("c1", "command")))
        victim_id = gateway.messages("c1", "command")[0]["id"]
        result = {"action": "result", "id": victim_id, "source": "b1", "ok": True}
        await gateway.send(conn, {**result, "value": "[1,", "part": 0, "parts": 2})
        await gateway.send(conn, {**result, "value": "2,", "part": 1, "parts": 3})
        await gateway.send(conn, {**result, "value": "3]", "part": 2, "parts": 3})
        with pytest.raises(tabrelay.MalformedResultError) as caught:
            async with asyncio.timeout(WAIT):
                await victim
        assert caught.value.id == victim_id and caught.value.code == "malformed"
        for text in _HOSTILE:
            await conn.ws.send(text)
        browser_conn = gateway.live("b1")
        assert browser_conn is not None
        await browser_conn.ws.send(_HOSTILE_COMMAND)
        gateway.silent_commands = False
        # A later snapshot and a later command still arrive.
        await browser.send_snapshot("<p>after</p>", title="after")
        async with asyncio.timeout(WAIT):
            snap = await anext(snaps)
        assert snap.html == "<p>after</p>"
        assert snap.missed == 3  # bad1, bad2, bad3
        assert await consumer.command("b1", "click", timeout=5) == {"ok": "click"}
        assert consumer.stats.sessions == 1 and consumer.stats.malformed >= len(_HOSTILE)
        # The browser answered the malformed command rather than leave it unanswered.
        await gateway.wait_for(
            lambda: any(m.get("id") == "k1" for m in gateway.messages("b1", "result"))
        )


async def test_given_malformed_reply_to_list_when_awaited_then_typed_error_and_relay_alive(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(gateway.url, token="consumer:c1") as consumer:
        conn = gateway.live("c1")
        assert conn is not None
        gateway.silent_lists = True
        listing = asyncio.create_task(consumer.browsers())
        await gateway.wait_for(lambda: bool(gateway.messages("c1", "list")))
        request_id = gateway.messages("c1", "list")[0]["id"]
        await gateway.send(conn, {"action": "browsers", "browsers": "junk", "id": request_id})
        with pytest.raises(tabrelay.MalformedDeliveryError):
            async with asyncio.timeout(WAIT):
                await listing
        gateway.silent_lists = False
        assert await consumer.browsers() == []


async def test_given_relay_bounds_when_peer_exceeds_them_then_one_snapshot_and_one_command_fail(
    gateway: FakeGateway,
) -> None:
    async with (
        tabrelay.connect(
            gateway.url, token="consumer:c1", max_snapshot_bytes=10_000, max_result_bytes=20_000
        ) as consumer,
        tabrelay.connect(gateway.url, token="browser:b1") as browser,
    ):
        browser.on_command(lambda cmd: "x" * cmd.args["n"])
        snaps = consumer.snapshots()
        await browser.send_snapshot("<p>big</p>" * 2_000, compress=True)  # 20,000 bytes
        await browser.send_snapshot("<p>small</p>", title="small")
        async with asyncio.timeout(WAIT):
            snap = await anext(snaps)
        assert (snap.title, snap.missed) == ("small", 1)
        with pytest.raises(tabrelay.MalformedResultError) as caught:
            await consumer.command("b1", "big", timeout=5, n=100_000)
        assert "20000 bytes" in caught.value.message
        assert await consumer.command("b1", "small", timeout=5, n=3) == "xxx"
