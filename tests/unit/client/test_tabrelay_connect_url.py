"""The URL a relay opens (token and ack flag in the query string), without I/O."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from tabrelay.core import connect_url


def _query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query)


def test_given_token_and_acks_when_built_then_both_in_the_query() -> None:
    url = connect_url("wss://h/prod?x=1", "T", acks=True)
    assert url.startswith("wss://h/prod?")
    assert _query(url) == [("x", "1"), ("token", "T"), ("acks", "1")]


def test_given_url_with_token_when_a_token_is_given_then_replaced() -> None:
    assert _query(connect_url("ws://h/?token=old", "new", acks=False)) == [("token", "new")]


def test_given_no_token_when_built_then_the_urls_token_kept_and_ack_flag_not_doubled() -> None:
    url = connect_url("ws://h/?token=old&acks=1", None, acks=True)
    assert _query(url) == [("token", "old"), ("acks", "1")]
    assert _query(connect_url("ws://h/?acks=1", None, acks=False)) == []
