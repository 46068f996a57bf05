"""Results without I/O: large values in parts, and their reassembly."""

from __future__ import annotations

import json

from tabrelay import wire
from tabrelay.core import DEFAULT_FRAME_BUDGET, ResultAssembler, result_frames


def _deliveries(frames: list[str]) -> list[wire.ResultDelivery]:
    out = []
    for text in frames:
        msg = json.loads(text)
        msg["source"] = "b1"
        d = wire.decode_outbound(json.dumps(msg))
        assert isinstance(d, wire.ResultDelivery)
        out.append(d)
    return out


def test_given_small_value_when_framed_then_one_frame() -> None:
    (text,) = result_frames("c1", ok=True, value={"a": 1})
    msg = wire.decode(text)
    assert isinstance(msg, wire.Result) and msg.value == {"a": 1} and msg.parts == 1


def test_given_screenshot_sized_value_when_framed_then_parts_fit_and_rejoin() -> None:
    value = {"png": "iVBOR" * 60_000, "text": 'quotes " and \\ and é 日本 ' * 2_000}
    frames = result_frames("c1", ok=True, value=value)
    assert len(frames) > 1
    for text in frames:
        assert len(text.encode("utf-8")) <= DEFAULT_FRAME_BUDGET
        assert isinstance(wire.decode(text), wire.Result)
    assembler = ResultAssembler()
    outs = [assembler.feed(d) for d in reversed(_deliveries(frames))]
    whole = outs[-1]
    assert all(o is None for o in outs[:-1])
    assert whole is not None and whole.ok and whole.value == value and whole.parts == 1


def test_given_error_result_when_framed_then_one_frame_with_code() -> None:
    (text,) = result_frames("c1", ok=False, error="boom", code="no_such_element")
    msg = wire.decode(text)
    assert isinstance(msg, wire.Result)
    assert (msg.ok, msg.error, msg.code) == (False, "boom", "no_such_element")


def test_given_half_received_result_when_discarded_then_forgotten() -> None:
    frames = result_frames("c1", ok=True, value="x" * 100_000)
    assembler = ResultAssembler()
    first, *rest = _deliveries(frames)
    assert assembler.feed(first) is None
    assembler.discard("c1")
    assert all(assembler.feed(d) is None for d in rest)
