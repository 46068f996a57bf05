"""Typed errors and the CLI's exit statuses."""

from __future__ import annotations

import pytest
import tabrelay
from tabrelay.cli import EXIT_CODES, exit_code_for
from tabrelay.errors import error_for_code


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("busy", tabrelay.BusyError),
        ("target_offline", tabrelay.TargetOfflineError),
        ("timeout", tabrelay.CommandTimeoutError),
        ("forbidden", tabrelay.ForbiddenError),
        ("rate_limited", tabrelay.RateLimitedError),
        ("bad_request", tabrelay.BadRequestError),
        ("unknown_action", tabrelay.UnknownActionError),
        ("conflict", tabrelay.ConflictError),
        ("too_large", tabrelay.TooLargeError),
        ("internal", tabrelay.InternalError),
    ],
)
def test_given_gateway_error_code_then_typed_exception_carrying_code_and_id(
    code: str, cls: type[tabrelay.TabRelayError]
) -> None:
    error = error_for_code(code, "why", id="k1")
    assert type(error) is cls
    assert (error.code, error.message, error.id) == (code, "why", "k1")
    assert isinstance(error, tabrelay.TabRelayError)


def test_given_unknown_code_then_base_error_keeps_the_code() -> None:
    error = error_for_code("brand_new", "why")
    assert type(error) is tabrelay.TabRelayError and error.code == "brand_new"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (tabrelay.AuthError("no", status=401), 3),
        (tabrelay.CommandFailedError("no"), 1),
        (tabrelay.ConnectError("no"), 4),
        (tabrelay.ConnectionClosedError("no"), 4),
        (tabrelay.CommandTimeoutError("no"), 5),
        (tabrelay.TargetOfflineError("no"), 6),
        (tabrelay.BusyError("no"), 7),
        (tabrelay.RateLimitedError("no"), 7),
        (tabrelay.ForbiddenError("no"), 8),
    ],
)
def test_given_error_then_documented_exit_status(error: Exception, status: int) -> None:
    assert exit_code_for(error) == status
    assert status in EXIT_CODES.values()
