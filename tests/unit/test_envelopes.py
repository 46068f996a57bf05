"""The queue envelopes, pinned by JSON fixtures like the wire messages.

An envelope written by one version of the functions is read by the next during
a deploy, so the JSON of each kind is fixed here: decoding a fixture and
encoding it again gives the same object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tabrelay import wire

from functions.logic import envelopes

FIXTURES = Path(__file__).parent.parent / "fixtures" / "envelopes"


def _load(queue: str) -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, json.loads(p.read_text())) for p in sorted((FIXTURES / queue).glob("*.json"))]


@pytest.mark.parametrize(("name", "obj"), _load("bus"))
def test_bus_fixture_decodes_and_encodes_back_unchanged(name: str, obj: dict[str, Any]) -> None:
    envelope = envelopes.decode_bus(json.dumps(obj))
    assert envelope.kind == obj["kind"]
    assert envelope.lane == "bus"
    assert envelope.to_dict() == obj


@pytest.mark.parametrize(("name", "obj"), _load("commands"))
def test_command_lane_fixture_decodes_and_encodes_back_unchanged(
    name: str, obj: dict[str, Any]
) -> None:
    # Given a command-lane envelope, When the commands function decodes it
    envelope = envelopes.decode_command(json.dumps(obj))
    # Then it round-trips and names the command lane as its queue
    assert envelope.kind == obj["kind"]
    assert envelope.lane == "commands"
    assert envelope.to_dict() == obj
    # And the router still reads it (the bus carried commands before the lane: a deploy)
    assert envelopes.decode_bus(json.dumps(obj)) == envelope


@pytest.mark.parametrize(("name", "obj"), _load("bus"))
def test_the_command_lane_refuses_what_belongs_on_the_bus(name: str, obj: dict[str, Any]) -> None:
    with pytest.raises(envelopes.EnvelopeError, match="unknown command lane envelope kind"):
        envelopes.decode_command(json.dumps(obj))


@pytest.mark.parametrize(("name", "obj"), _load("delivery"))
def test_delivery_fixture_decodes_and_encodes_back_unchanged(
    name: str, obj: dict[str, Any]
) -> None:
    envelope = envelopes.decode_delivery(json.dumps(obj))
    assert envelope.kind == obj["kind"]
    assert envelope.to_dict() == obj


def test_every_envelope_kind_has_a_fixture() -> None:
    assert {o["kind"] for _, o in _load("bus")} == {
        "snapshot",
        "presence",
        "browser_gone",
        "presence_fan_out",
    }
    assert {o["kind"] for _, o in _load("commands")} == {"command", "raw_command", "result"}
    assert {o["kind"] for _, o in _load("delivery")} == {"post", "park", "timeout"}


def test_the_wire_message_inside_is_typed_and_its_defaults_filled() -> None:
    # Given a snapshot envelope whose message leaves out its defaults and action
    text = json.dumps(
        {
            "kind": "snapshot",
            "cid": "x",
            "tenant": "acme",
            "client": "b1",
            "connection": "c==",
            "msg": {"sid": "s", "seq": 1, "data": "<p>ok</p>"},
        }
    )
    # When it is decoded
    envelope = envelopes.decode_bus(text)
    # Then it carries a wire.Snapshot with the wire's defaults
    assert isinstance(envelope, envelopes.SnapshotEnvelope)
    assert envelope.msg == wire.Snapshot(sid="s", seq=1, data="<p>ok</p>")
    assert envelope.t is None and envelope.to is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"kind": "nonsense"}', "unknown bus envelope kind 'nonsense'"),
        ("[1]", "a bus envelope must be a JSON object"),
        ("{oops", "malformed envelope JSON"),
        ('{"kind": "presence", "cid": "x", "tenant": "t", "client": "b"}', "'online'"),
        ('{"kind": "timeout", "cid": "x"}', "unknown bus envelope kind 'timeout'"),
    ],
)
def test_what_is_not_a_bus_envelope_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(envelopes.EnvelopeError, match=message):
        envelopes.decode_bus(text)


def test_a_delivery_envelope_on_the_wrong_queue_is_refused() -> None:
    with pytest.raises(envelopes.EnvelopeError, match="unknown delivery envelope kind 'snapshot'"):
        envelopes.decode_delivery(json.dumps(_load("bus")[0][1] | {"kind": "snapshot"}))
