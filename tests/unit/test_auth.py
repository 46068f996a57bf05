"""Token rules: what a token must say to open a connection."""

from __future__ import annotations

import pytest

from functions.logic.auth import Claims, InvalidTokenError, mint_token, verify_token

KEY = "k" * 48


def test_minted_token_verifies_to_its_claims() -> None:
    token = mint_token(
        KEY, tenant="acme", role="consumer", client_id="c1", now=1000, ttl_seconds=60
    )
    assert verify_token(token, KEY, now=1010) == Claims("acme", "consumer", "c1", 1060)


@pytest.mark.parametrize(
    ("kwargs", "now"),
    [
        (
            {
                "tenant": "acme",
                "role": "consumer",
                "client_id": "c1",
                "now": 1000,
                "ttl_seconds": 60,
            },
            1060,
        ),
        ({"tenant": "acme", "role": "root", "client_id": "c1"}, None),
        ({"tenant": "ac#me", "role": "browser", "client_id": "c1"}, None),
        ({"tenant": "acme", "role": "browser", "client_id": ""}, None),
    ],
)
def test_invalid_claims_are_refused(kwargs: dict[str, object], now: float | None) -> None:
    token = mint_token(KEY, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidTokenError):
        verify_token(token, KEY, now=now)


def test_token_signed_with_another_key_is_refused() -> None:
    token = mint_token("x" * 48, tenant="acme", role="browser", client_id="b")
    with pytest.raises(InvalidTokenError):
        verify_token(token, KEY)


@pytest.mark.parametrize("token", [None, "", "a.b.c"])
def test_missing_or_garbled_token_is_refused(token: str | None) -> None:
    with pytest.raises(InvalidTokenError):
        verify_token(token, KEY)
