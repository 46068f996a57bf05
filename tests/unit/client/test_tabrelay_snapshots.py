"""Snapshots without I/O: framing budget, compression, parts and reassembly."""

from __future__ import annotations

import base64
import gzip
import json
import random

import pytest
from tabrelay import wire
from tabrelay.core import DEFAULT_FRAME_BUDGET, SnapshotAssembler, encode_frame, snapshot_frames
from tabrelay.errors import TooLargeError


def _page(size: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    words = ["état", "naïve", "<div>", '"quoted"', "日本語", "tab\there", "x" * 7, "😀"]
    out: list[str] = []
    total = 0
    while total < size:
        w = rng.choice(words) + str(rng.randrange(10**6))
        out.append(w)
        total += len(w.encode()) + 1
    return " ".join(out)


def _deliver(frames: list[str], source: str = "b1", missed: int = 0) -> list[wire.SnapshotDelivery]:
    out = []
    for i, text in enumerate(frames):
        msg = json.loads(text)
        msg["source"] = source
        msg.pop("id", None)  # the gateway delivers without the part id
        msg["missed"] = missed if i == 0 else 0
        out.append(wire.decode_outbound(json.dumps(msg)))
    return out  # type: ignore[return-value]


def test_given_small_page_when_framed_then_one_plain_frame() -> None:
    frames = snapshot_frames("<p>hi</p>", sid="s1", seq=1, url="https://a", title="A")
    assert len(frames) == 1
    msg = wire.decode(frames[0])
    assert isinstance(msg, wire.Snapshot)
    assert (msg.enc, msg.data, msg.url, msg.title) == ("none", "<p>hi</p>", "https://a", "A")


def test_given_3mb_page_when_framed_then_every_frame_fits_the_budget_and_is_valid() -> None:
    html = _page(3 * 1024 * 1024)
    frames = snapshot_frames(html, sid="s1", seq=7, url="https://x/" + "é" * 100, title="T")
    assert len(frames) > 1
    for text in frames:
        assert len(text.encode("utf-8")) <= DEFAULT_FRAME_BUDGET
        assert isinstance(wire.decode(text), wire.Snapshot)  # the gateway accepts each part


def test_given_parts_when_joined_by_hand_then_they_are_base64_gzip_of_utf8() -> None:
    html = _page(200_000)
    msgs = [wire.decode(t) for t in snapshot_frames(html, sid="s", seq=1)]
    assert all(isinstance(m, wire.Snapshot) and m.enc == "gzip" for m in msgs)
    data = "".join(m.data for m in msgs)  # type: ignore[attr-defined]
    assert gzip.decompress(base64.b64decode(data)).decode("utf-8") == html


def test_given_3mb_page_when_parts_reassembled_then_html_is_identical() -> None:
    html = _page(3 * 1024 * 1024, seed=3)
    assembler = SnapshotAssembler()
    results = [
        assembler.feed(d)
        for d in _deliver(snapshot_frames(html, sid="s", seq=1, url="u", title="t"))
    ]
    assert all(r is None for r in results[:-1])
    snap = results[-1]
    assert snap is not None
    assert (snap.html, snap.url, snap.title, snap.source, snap.seq) == (html, "u", "t", "b1", 1)
    assert snap.parts == len(results)


def test_given_parts_out_of_order_and_repeated_when_fed_then_one_snapshot() -> None:
    html = _page(120_000)
    deliveries = _deliver(snapshot_frames(html, sid="s", seq=1))
    shuffled = deliveries[::-1] + deliveries[:2]
    assembler = SnapshotAssembler()
    out = [s for s in (assembler.feed(d) for d in shuffled) if s is not None]
    assert len(out) == 1
    assert out[0].html == html


def test_given_repeated_delivery_of_completed_snapshot_when_fed_then_ignored() -> None:
    assembler = SnapshotAssembler()
    (d,) = _deliver(snapshot_frames("<p/>", sid="s", seq=1))
    assert assembler.feed(d) is not None
    assert assembler.feed(d) is None


def test_given_gateway_missed_counts_when_completed_then_missed_is_reported() -> None:
    (d,) = _deliver(snapshot_frames("<p/>", sid="s", seq=9), missed=4)
    snap = SnapshotAssembler().feed(d)
    assert snap is not None and snap.missed == 4


def test_given_half_received_snapshot_when_newer_completes_then_older_counts_as_missed() -> None:
    assembler = SnapshotAssembler()
    old = _deliver(snapshot_frames(_page(100_000), sid="old", seq=1))
    assert assembler.feed(old[0]) is None
    (new,) = _deliver(snapshot_frames("<p>new</p>", sid="new", seq=2))
    snap = assembler.feed(new)
    assert snap is not None and snap.missed == 1
    assert assembler.pending == 0


def test_given_too_many_pending_when_fed_then_oldest_abandoned_and_counted() -> None:
    assembler = SnapshotAssembler(max_pending=1)
    a = _deliver(snapshot_frames(_page(100_000), sid="a", seq=1))
    b = _deliver(snapshot_frames(_page(100_000, seed=2), sid="b", seq=2))
    assembler.feed(a[0])
    assembler.feed(b[0])
    assert assembler.pending == 1
    out = [assembler.feed(d) for d in b[1:]]
    assert out[-1] is not None and out[-1].missed == 1


def test_given_corrupt_gzip_when_completed_then_protocol_error() -> None:
    d = wire.SnapshotDelivery(source="b", sid="s", seq=1, data="bm90Z3ppcA==", enc="gzip")
    with pytest.raises(wire.ProtocolError):
        SnapshotAssembler().feed(d)


def test_given_gzip_bomb_when_completed_then_too_large() -> None:
    bomb = base64.b64encode(gzip.compress(b"a" * 2_000_000)).decode()
    d = wire.SnapshotDelivery(source="b", sid="s", seq=1, data=bomb, enc="gzip")
    with pytest.raises(wire.ProtocolError) as info:
        SnapshotAssembler(max_html_bytes=1_000_000).feed(d)
    assert info.value.code == "too_large"


def test_given_compress_false_and_big_page_when_framed_then_too_large() -> None:
    with pytest.raises(TooLargeError):
        snapshot_frames("x" * 100_000, sid="s", seq=1, compress=False)


def test_given_message_over_budget_when_encoded_then_too_large_error() -> None:
    with pytest.raises(TooLargeError) as info:
        encode_frame(wire.Command(id="c", target="b", name="n", args={"x": "y" * 40_000}))
    assert info.value.code == "too_large"
