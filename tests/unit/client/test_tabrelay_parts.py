"""Resending snapshot parts the gateway refused as rate_limited, without I/O."""

from __future__ import annotations

from tabrelay import wire
from tabrelay.core import PartResender, TokenBucket


def _limited(id: str | None) -> wire.ErrorMessage:
    return wire.ErrorMessage(code="rate_limited", message="slow down", id=id)


def test_given_written_part_when_rate_limited_then_resent_with_its_id() -> None:
    parts = PartResender()
    parts.written("s1.0", "frame0")
    assert parts.refused(_limited("s1.0")) == ("s1.0", "frame0")


def test_given_a_part_when_refused_more_than_max_tries_then_given_up() -> None:
    parts = PartResender(max_tries=3)
    parts.written("s1.0", "frame0")
    assert [parts.refused(_limited("s1.0")) for _ in range(4)] == [("s1.0", "frame0")] * 3 + [None]


def test_given_resent_part_when_written_again_then_tries_are_kept() -> None:
    parts = PartResender(max_tries=1)
    parts.written("s1.0", "frame0")
    assert parts.refused(_limited("s1.0")) is not None
    parts.written("s1.0", "frame0")  # the resend went out
    assert parts.refused(_limited("s1.0")) is None


def test_given_unknown_or_missing_id_or_other_code_then_nothing_to_resend() -> None:
    parts = PartResender()
    parts.written("s1.0", "frame0")
    assert parts.refused(_limited("s9.0")) is None
    assert parts.refused(_limited(None)) is None
    busy = wire.ErrorMessage(code="busy", message="busy", id="s1.0")
    assert parts.refused(busy) is None


def test_given_more_than_keep_parts_when_written_then_oldest_forgotten() -> None:
    parts = PartResender(keep=2)
    for i in range(3):
        parts.written(f"s1.{i}", f"frame{i}")
    assert len(parts) == 2
    assert parts.refused(_limited("s1.0")) is None
    assert parts.refused(_limited("s1.2")) == ("s1.2", "frame2")


def test_given_rate_limited_code_when_bucket_told_then_it_halves_other_codes_do_nothing() -> None:
    bucket = TokenBucket(rate=20, burst=20)
    bucket.refused("busy")
    assert (bucket.rate, bucket.burst) == (20, 20)
    bucket.refused("rate_limited")
    assert (bucket.rate, bucket.burst) == (10, 10)
