"""The Management API client's bounds against the message function's timeout.

The message function posts up to ``inline_fan_out`` snapshots itself; its
@connections client must be bounded so that the deadline check can hand the rest
to the bus before the function times out (issue 16).
"""

from __future__ import annotations

from functions.dal.clients import HANDOFF_SECONDS, MANAGEMENT_POST_WORST_SECONDS
from functions.dal.clients import MANAGEMENT_CONFIG as _MANAGEMENT_CONFIG
from functions.logic.gateway import Limits
from infra.components.functions import FUNCTION_SPECS


def _timeout_ms(name: str) -> int:
    (spec,) = [s for s in FUNCTION_SPECS if s.name == name]
    return spec.timeout_seconds * 1000


def test_management_api_client_has_short_timeouts_and_one_retry() -> None:
    assert (_MANAGEMENT_CONFIG.connect_timeout, _MANAGEMENT_CONFIG.read_timeout) == (1, 1)
    # total_max_attempts counts the first attempt: one retry
    assert _MANAGEMENT_CONFIG.retries == {"total_max_attempts": 2, "mode": "standard"}
    # 2 attempts x (1 s connect + 1 s read) + up to 1 s of backoff before the retry
    assert MANAGEMENT_POST_WORST_SECONDS == 5


def test_inline_fan_out_hands_off_in_time_and_still_has_room_to_post() -> None:
    message_timeout = _timeout_ms("message")
    reserve = (MANAGEMENT_POST_WORST_SECONDS + HANDOFF_SECONDS) * 1000
    # The default the logic uses is the one the runtime computes
    assert Limits().handoff_reserve_ms == reserve
    # A post started with the reserve left ends with the hand-off's time still left
    assert reserve - MANAGEMENT_POST_WORST_SECONDS * 1000 >= HANDOFF_SECONDS * 1000
    # and the first post of an invocation is not handed off at once
    assert reserve < message_timeout
