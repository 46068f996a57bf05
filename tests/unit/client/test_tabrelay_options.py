"""Relay options: one frozen RelayOptions, given whole or as keyword arguments."""

from __future__ import annotations

import dataclasses

import pytest
import tabrelay
from tabrelay import Relay, RelayOptions


def test_given_keyword_options_when_connecting_then_they_land_in_relay_options() -> None:
    relay = tabrelay.connect("ws://h/", token="t", ack_every=5, overflow="drop_oldest")
    assert relay.options == RelayOptions(ack_every=5, overflow="drop_oldest")


def test_given_options_and_keywords_when_constructed_then_keywords_override() -> None:
    shared = RelayOptions(request_timeout=3.0, max_rate=None)
    relay = Relay("wss://h/", options=shared, request_timeout=1.0)
    assert (relay.options.request_timeout, relay.options.max_rate) == (1.0, None)
    assert shared.request_timeout == 3.0


def test_given_options_when_assigned_then_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RelayOptions().acks = False  # type: ignore[misc]


def test_given_an_unknown_option_when_connecting_then_type_error() -> None:
    with pytest.raises(TypeError, match="ack_evry"):
        tabrelay.connect("ws://h/", ack_evry=5)


def test_given_an_unknown_overflow_policy_then_value_error() -> None:
    with pytest.raises(ValueError, match="overflow must be one of"):
        tabrelay.connect("ws://h/", overflow="spill")


def test_given_a_non_websocket_url_then_value_error() -> None:
    with pytest.raises(ValueError, match="ws:// or wss://"):
        Relay("http://h/")
