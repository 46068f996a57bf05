"""Which pending command or request a frame answers, without I/O."""

from __future__ import annotations

import json

from tabrelay import wire
from tabrelay.core import RESTORE_ID, Answer, Malformed, Replies, request_frame, result_error
from tabrelay.errors import CommandFailedError


def _replies() -> Replies[str]:
    """Waiters are plain strings here: the core never looks inside them."""
    replies: Replies[str] = Replies()
    replies.command("k1", "cmd-waiter")
    replies.request("r1", "subscribe", "sub-frame", "sub-waiter")
    replies.request("r2", "list", "list-frame", "list-waiter")
    return replies


def _result(id: str) -> wire.ResultDelivery:
    return wire.ResultDelivery(id=id, source="b1", ok=True, value=1)


def test_given_a_result_when_matched_then_it_answers_its_command() -> None:
    assert _replies().match(_result("k1")) == Answer("command", "k1", "cmd-waiter")
    assert _replies().match(_result("k9")) is None


def test_given_an_error_when_matched_then_command_then_request_by_id() -> None:
    replies = _replies()
    busy = wire.ErrorMessage(code="busy", message="busy", id="k1")
    assert replies.match(busy) == Answer("command", "k1", "cmd-waiter")
    refused = wire.ErrorMessage(code="forbidden", message="no", id="r1")
    assert replies.match(refused) == Answer("request", "r1", "sub-waiter")
    stray = wire.ErrorMessage(code="internal", message="?", id=None)
    assert replies.match(stray) is None


def test_given_an_error_naming_restore_when_matched_then_restore() -> None:
    error = wire.ErrorMessage(code="bad_request", message="no", id=RESTORE_ID)
    assert _replies().match(error) == Answer("restore", RESTORE_ID)


def test_given_replies_with_ids_when_matched_then_by_id_whatever_the_kind() -> None:
    replies = _replies()
    assert replies.match(wire.Subscribed(browsers=["b1"], id="r1")) == Answer(
        "request", "r1", "sub-waiter"
    )
    assert replies.match(wire.Browsers(browsers=[], id="r2")) == Answer(
        "request", "r2", "list-waiter"
    )
    assert replies.match(wire.Browsers(browsers=[], id="r9")) is None


def test_given_a_subscribed_restore_when_matched_then_restore() -> None:
    assert _replies().match(wire.Subscribed(browsers=[], id=RESTORE_ID)) == Answer(
        "restore", RESTORE_ID
    )


def test_given_replies_without_ids_when_matched_then_oldest_request_of_that_kind() -> None:
    replies = _replies()
    replies.request("r3", "unsubscribe", "unsub-frame", "unsub-waiter")
    assert replies.match(wire.Browsers(browsers=[])) == Answer("request", "r2", "list-waiter")
    assert replies.match(wire.Subscribed(browsers=[])) == Answer("request", "r1", "sub-waiter")
    replies.discard("r1")
    assert replies.match(wire.Subscribed(browsers=[])) == Answer("request", "r3", "unsub-waiter")
    replies.discard("r2")
    assert replies.match(wire.Browsers(browsers=[])) is None


def test_given_malformed_delivery_when_matched_then_by_id_but_never_restore() -> None:
    replies = _replies()
    assert replies.match(Malformed("bad_request", "x", action="result", id="k1")) == Answer(
        "command", "k1", "cmd-waiter"
    )
    assert replies.match(Malformed("bad_request", "x", action="browsers", id="r2")) == Answer(
        "request", "r2", "list-waiter"
    )
    assert replies.match(Malformed("bad_request", "x", action="error", id=RESTORE_ID)) is None
    assert replies.match(Malformed("bad_request", "x")) is None


def test_given_other_deliveries_when_matched_then_nothing() -> None:
    assert _replies().match(wire.Pong()) is None


def test_given_requests_written_on_a_lost_connection_then_resent_once_on_the_next() -> None:
    replies = _replies()
    replies.written("r1", 1)  # r2 was still queued: it goes out with the queue
    assert replies.unanswered(1) == []
    assert replies.unanswered(2) == ["sub-frame"]
    assert replies.unanswered(2) == []
    replies.discard("r1")
    assert replies.unanswered(3) == []


def test_given_a_discarded_command_then_nothing_matches_and_no_waiter_left() -> None:
    replies = _replies()
    replies.discard("k1")
    assert replies.match(_result("k1")) is None
    assert replies.waiters() == ["sub-waiter", "list-waiter"]


def test_given_request_ids_then_distinct() -> None:
    replies: Replies[str] = Replies()
    assert [replies.next_request_id() for _ in range(3)] == ["r1", "r2", "r3"]


def test_given_request_kinds_when_framed_then_the_matching_message() -> None:
    assert json.loads(request_frame("list", "r1", cursor="c")) == {
        "action": "list",
        "id": "r1",
        "cursor": "c",
    }
    assert json.loads(request_frame("unsubscribe", "r2", ["b1"]))["action"] == "unsubscribe"


def test_given_failed_result_when_read_then_command_failed_with_its_code() -> None:
    failed = wire.ResultDelivery(id="k1", source="b1", ok=False, error="boom", code="E1")
    error = result_error(failed)
    assert isinstance(error, CommandFailedError)
    assert (error.code, error.id, error.source) == ("E1", "k1", "b1")
    assert "boom" in str(error)
    vague = result_error(wire.ResultDelivery(id="k1", source="b1", ok=False))
    assert vague is not None and vague.code == "command_failed"
    assert result_error(_result("k1")) is None
