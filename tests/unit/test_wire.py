"""The wire format, pinned by JSON fixtures that both sides (Lambdas, client) share."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tabrelay import wire

from functions.models.settings import DEFAULT_MAX_UNACKED

FIXTURES = Path(__file__).parent.parent / "fixtures" / "wire"


def _load(direction: str) -> list[tuple[str, dict[str, object]]]:
    return [
        (p.name, json.loads(p.read_text())) for p in sorted((FIXTURES / direction).glob("*.json"))
    ]


@pytest.mark.parametrize(("name", "frame"), _load("inbound"))
def test_inbound_fixture_decodes_and_encodes_back_unchanged(
    name: str, frame: dict[str, object]
) -> None:
    message = wire.decode(json.dumps(frame))
    assert type(message) is wire.INBOUND[str(frame["action"])]
    assert wire.to_dict(message) == frame
    assert json.loads(wire.encode(message)) == frame


@pytest.mark.parametrize(("name", "frame"), _load("outbound"))
def test_outbound_fixture_decodes_and_encodes_back_unchanged(
    name: str, frame: dict[str, object]
) -> None:
    message = wire.decode_outbound(json.dumps(frame))
    assert type(message) is wire.OUTBOUND[str(frame["action"])]
    assert wire.to_dict(message) == frame


def test_every_message_class_has_a_fixture() -> None:
    inbound = {f["action"] for _, f in _load("inbound")}
    outbound = {f["action"] for _, f in _load("outbound")}
    assert inbound == set(wire.INBOUND)
    assert outbound == set(wire.OUTBOUND)


def test_defaults_are_filled_and_none_fields_left_out() -> None:
    message = wire.decode('{"action":"command","id":"k","target":"b","name":"reload"}')
    assert message == wire.Command(id="k", target="b", name="reload", args={}, timeout=30.0)
    assert "id" not in wire.to_dict(wire.Ping())


@pytest.mark.parametrize(
    "text", ["<html>hi</html>", "click()", "scroll-down", "[1,2]", '"str"', "42", ""]
)
def test_text_that_is_not_a_json_object_is_a_raw_frame(text: str) -> None:
    with pytest.raises(wire.RawFrame) as raised:
        wire.decode(text)
    assert raised.value.text == text


@pytest.mark.parametrize(
    ("frame", "code", "message"),
    [
        ("{oops", "bad_request", "malformed JSON"),
        ('{"action": 3}', "bad_request", "'action' is required and must be a string"),
        ('{"action": "fly"}', "unknown_action", "unknown inbound action 'fly'"),
        ('{"action": "ack"}', "bad_request", "ack: missing field 'seq'"),
        ('{"action": "ack", "seq": 1.5}', "bad_request", "ack.seq must be integer, got 1.5"),
        ('{"action": "ack", "seq": true}', "bad_request", "ack.seq must be integer, got true"),
        ('{"action": "ping", "id": 7}', "bad_request", "ping.id must be string or null, got 7"),
        (
            '{"action": "subscribe", "browsers": []}',
            "bad_request",
            "subscribe.browsers must not be empty",
        ),
        (
            '{"action": "subscribe", "browsers": [""]}',
            "bad_request",
            "subscribe.browsers must not be empty",
        ),
        (
            '{"action": "snapshot", "sid": "s", "seq": 1, "data": "", "enc": "br"}',
            "bad_request",
            'snapshot.enc must be "none" | "gzip"',
        ),
        (
            '{"action": "snapshot", "sid": "s", "seq": 1, "data": "", "part": 3, "parts": 3}',
            "bad_request",
            "'part' must be less than 'parts'",
        ),
        (
            '{"action": "result", "id": "k", "ok": true, "value": 1, "parts": 2}',
            "bad_request",
            "result.value must be a string slice when parts > 1",
        ),
        (
            '{"action": "command", "id": "k", "target": "b", "name": "n", "timeout": NaN}',
            "bad_request",
            "NaN is not a JSON number",
        ),
    ],
)
def test_invalid_frames_raise_precise_protocol_errors(frame: str, code: str, message: str) -> None:
    with pytest.raises(wire.ProtocolError) as raised:
        wire.decode(frame)
    assert raised.value.code == code
    assert message in raised.value.message


def test_protocol_error_keeps_the_id_for_the_reply() -> None:
    with pytest.raises(wire.ProtocolError) as raised:
        wire.decode('{"action": "command", "id": "k7", "target": "b"}')
    assert raised.value.id == "k7"


def test_error_codes_are_the_documented_ones() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    for code in wire.ERROR_CODES:
        assert f"`{code}`" in doc


_DEEP = wire.MAX_DEPTH
_SEQ_MAX = wire.MAX_INTEGER


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ('{"action": "ack", "seq": Infinity}', "Infinity is not a JSON number"),
        ('{"action": "ack", "seq": -Infinity}', "-Infinity is not a JSON number"),
        ('{"action": "command", "id": "k", "target": "b", "name": "n", "args": {"x": NaN}}', "NaN"),
        (
            '{"action": "command", "id": "k", "target": "b", "name": "n", "args": {"x": 1e400}}',
            "number 1e400 is out of range",
        ),
        ('{"action": "result", "id": "k", "ok": true, "value": -1e999}', "out of range"),
        # An integer literal too large for any float (was an uncaught OverflowError).
        (
            '{"action": "command", "id": "k", "target": "b", "name": "n", "timeout": 1'
            + "0" * 400
            + "}",
            "command.timeout must be number",
        ),
        (f'{{"action": "ack", "seq": {_SEQ_MAX + 1}}}', f"ack.seq must be <= {_SEQ_MAX}"),
        ('{"action": "ack", "seq": ' + "9" * 39 + "}", "ack.seq must be <="),
        (
            f'{{"action": "snapshot", "sid": "s", "seq": {10**40}, "data": ""}}',
            f"snapshot.seq must be <= {_SEQ_MAX}",
        ),
        (
            '{"action": "snapshot", "sid": "s", "seq": 1, "data": "", "title": "a\\ud800b"}',
            "lone UTF-16 surrogate",
        ),
        ('{"action": "ping", "id": "\\udc00"}', "lone UTF-16 surrogate"),
        ('{"action": "result", "id": "k", "ok": true, "value": {"\\ud83d": 1}}', "field name"),
        (
            '{"action": "command", "id": "k", "target": "b", "name": "n", "args": {"a": '
            + "[" * _DEEP
            + "]" * _DEEP
            + "}}",
            f"nested deeper than {_DEEP} levels",
        ),
        ('{"action": "ping", "id": ' + "[" * 5000 + "]" * 5000 + "}", "nested deeper"),
        ('{"a": ' + "{" * 100_000, "nested deeper"),
    ],
)
def test_json_the_gateway_cannot_carry_is_refused_as_bad_request(frame: str, message: str) -> None:
    with pytest.raises(wire.ProtocolError) as raised:
        wire.decode(frame)
    assert raised.value.code == "bad_request"
    assert message in raised.value.message


@pytest.mark.parametrize(
    "frame",
    [
        # The deepest allowed frame, brackets inside strings, and characters SQS
        # refuses but UTF-8 carries (they travel, escaped on the queue).
        '{"action": "command", "id": "k", "target": "b", "name": "n", "args": {"a": '
        + "[" * (_DEEP - 2)
        + "]" * (_DEEP - 2)
        + "}}",
        '{"action": "ping", "id": "' + "[{" * 60 + '\\"' + "}" * 3 + '"}',
        '{"action": "snapshot", "sid": "s", "seq": 1, "data": "\\uffff\\ufffe\\u0001", '
        '"title": "\\ud83d\\ude00"}',
        f'{{"action": "ack", "seq": {_SEQ_MAX}}}',
    ],
)
def test_carryable_edge_cases_decode_and_encode_back(frame: str) -> None:
    message = wire.decode(frame)
    assert wire.decode(wire.encode(message)) == message


def test_a_binary_frame_with_invalid_utf8_is_bad_request() -> None:
    with pytest.raises(wire.ProtocolError) as raised:
        wire.decode(b'{"action": "ping", "id": "\xff"}')
    assert raised.value.code == "bad_request"


def test_the_encoder_never_emits_nan_or_infinity() -> None:
    with pytest.raises(ValueError):
        wire.encode(wire.ResultDelivery(id="k", source="b", ok=True, value=float("inf")))


def test_subscribe_accepts_at_most_the_documented_number_of_ids_per_frame() -> None:
    ids = [f"b{i}" for i in range(wire.MAX_SUBSCRIPTIONS + 1)]
    with pytest.raises(wire.ProtocolError) as raised:
        wire.decode(json.dumps({"action": "subscribe", "browsers": ids}))
    assert f"at most {wire.MAX_SUBSCRIPTIONS}" in raised.value.message


def test_every_bound_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    for name, shown in (
        ("MAX_SUBSCRIPTIONS", str(wire.MAX_SUBSCRIPTIONS)),
        ("MAX_DEPTH", str(wire.MAX_DEPTH)),
        ("RAW_COMMAND_MAX_TARGETS", str(wire.RAW_COMMAND_MAX_TARGETS)),
        ("MAX_INTEGER", "2^53 - 1"),
        ("MAX_ID_CHARS", str(wire.MAX_ID_CHARS)),
        ("MAX_NAME_CHARS", str(wire.MAX_NAME_CHARS)),
        ("MAX_URL_CHARS", str(wire.MAX_URL_CHARS)),
        ("MAX_TITLE_CHARS", str(wire.MAX_TITLE_CHARS)),
        ("MAX_ERROR_CHARS", str(wire.MAX_ERROR_CHARS)),
        ("MAX_PARTS", f"{wire.MAX_PARTS:,}"),
        ("MAX_COMMAND_TIMEOUT", str(wire.MAX_COMMAND_TIMEOUT)),
        ("DEFAULT_COMMAND_TIMEOUT", f"{wire.DEFAULT_COMMAND_TIMEOUT:g}"),
    ):
        # The value and its name on one line of the doc (a limits table row).
        assert re.search(rf"(^|\D){re.escape(shown)}(\D|$)[^\n]*`{name}`", doc, re.M), name
    assert str(wire.MAX_INTEGER) in doc


def test_a_full_list_page_of_the_longest_ids_fits_one_frame() -> None:
    # Given the longest page the gateway sends: LIST_PAGE_MAX browsers with
    # 128-character ids, a 16-digit connected_at, an id of characters JSON
    # escapes, and the longest cursor
    infos = [
        wire.BrowserInfo(client_id=f"{i:04d}".ljust(128, "b"), connected_at=10**15 + i)
        for i in range(wire.LIST_PAGE_MAX)
    ]
    reply = wire.Browsers(browsers=infos, id="\x01" * 128, next="c" * 256)
    # Then it fits one 32 KB frame, far under API Gateway's 128 KB message limit
    size = len(wire.encode(reply).encode("utf-8"))
    assert size <= wire.FRAME_LIMIT < wire.MESSAGE_LIMIT
    # And one more browser would not have fitted the computation's bound
    assert wire.LIST_PAGE_MAX >= 100


def test_list_limit_above_the_page_size_is_refused() -> None:
    with pytest.raises(wire.ProtocolError) as refused:
        wire.decode(json.dumps({"action": "list", "id": "l", "limit": wire.LIST_PAGE_MAX + 1}))
    assert refused.value.code == "bad_request" and "list.limit" in refused.value.message
    assert refused.value.id == "l"


def test_the_gateways_default_window_is_the_wires() -> None:
    # The clients batch acks by wire.MAX_UNACKED; the gateway's setting defaults to it
    assert DEFAULT_MAX_UNACKED == wire.MAX_UNACKED
