"""Token rules: what a token must say to open a connection."""

from __future__ import annotations

import jwt
import pytest

from functions.logic.auth import AUDIENCE, Claims, InvalidTokenError, mint_token, verify_token

KEY = "k" * 48


def _unverified(token: str) -> dict[str, int]:
    claims: dict[str, int] = jwt.decode(token, options={"verify_signature": False})
    return claims


def test_minted_token_verifies_to_its_claims() -> None:
    token = mint_token(KEY, tenant="acme", role="consumer", client_id="c1", ttl_seconds=60)
    times = _unverified(token)
    assert times["exp"] - times["iat"] == 60
    assert verify_token(token, KEY, now=times["iat"] + 10) == Claims(
        "acme", "consumer", "c1", times["exp"]
    )


def test_given_a_token_when_its_expiry_comes_then_it_is_refused() -> None:
    token = mint_token(KEY, tenant="acme", role="consumer", client_id="c1", ttl_seconds=60)
    expires = _unverified(token)["exp"]
    assert verify_token(token, KEY, now=expires - 1).expires_at == expires
    with pytest.raises(InvalidTokenError, match="expired"):
        verify_token(token, KEY, now=expires)


@pytest.mark.parametrize(
    ("kwargs", "now"),
    [
        ({"tenant": "acme", "role": "consumer", "client_id": "c1", "ttl_seconds": -1}, None),
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


def _signed(**claims: object) -> str:
    """A token with arbitrary claims (PyJWT writes non-finite floats as Infinity/NaN)."""
    payload: dict[str, object] = {
        "tenant": "acme",
        "role": "browser",
        "client_id": "b1",
        "aud": AUDIENCE,
    }
    payload.update(claims)
    return jwt.encode(payload, KEY, algorithm="HS256")


@pytest.mark.parametrize(
    "claims",
    [
        {"tenant": "acme\n", "exp": 2000},
        {"client_id": "b1\n", "exp": 2000},
        {"exp": float("inf")},
        {"exp": float("nan")},
        {"exp": 10**400},
        {"exp": 1e300},
        {"exp": 2**53},
        {"exp": 2000, "iat": float("inf")},
        {"exp": 2000, "iat": 10**400},
        {"exp": 2000, "nbf": float("inf")},
        {"exp": 2000, "nbf": float("-inf")},
        {"exp": 2000, "nbf": 10**400},
    ],
    ids=lambda claims: ",".join(f"{k}={str(v)[:10]}" for k, v in claims.items()),
)
def test_given_edge_case_claims_when_verified_then_refused_cleanly(
    claims: dict[str, object],
) -> None:
    with pytest.raises(InvalidTokenError):
        verify_token(_signed(**claims), KEY, now=1000)
