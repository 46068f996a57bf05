"""Token rules: what a token must say to open a connection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from tabrelay import wire

from functions.logic import auth
from functions.logic.auth import (
    _ID_PATTERN,
    AUDIENCE,
    Claims,
    InvalidTokenError,
    SigningKey,
    SigningKeys,
    UnknownKeyIdError,
    _claims,
    mint_token,
    verify_token,
    verify_with,
)

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


# -- The standard-library HS256 against PyJWT ----------------------------------


def _pyjwt_verify(token: str, key: str, now: float) -> bool:
    """The verifier as it was on PyJWT (functions/logic/auth.py before issue 12's last
    cold-start cut): the reference the standard-library one must agree with."""
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=AUDIENCE,
            options={"require": ["exp", "tenant", "role", "client_id"], "verify_exp": False},
        )
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
        return False
    try:
        _claims(payload, now)  # the rules after decoding, unchanged
    except InvalidTokenError:
        return False
    return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, object], payload: dict[str, object] | bytes, key: str = KEY) -> str:
    """A token signed with ``key`` whatever its header and payload say."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(body)}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


_GOOD = {"tenant": "acme", "role": "browser", "client_id": "b1", "aud": AUDIENCE, "exp": 2000}
_HS256 = {"alg": "HS256", "typ": "JWT"}
_VALID = _forge(_HS256, _GOOD)
_CORPUS: list[str] = [
    _VALID,
    _VALID + "=",
    _VALID.replace(".", "=.", 1),
    _VALID[:-1],
    _VALID[:-2] + ("A" if _VALID[-2] != "A" else "B") + _VALID[-1],
    _VALID + ".x",
    "." + _VALID,
    _VALID.replace(".", ".!", 1),
    _VALID.replace(".", "..", 1),
    _forge(_HS256, _GOOD, key="another-key"),
    _forge({"alg": "none"}, _GOOD),
    _forge({"alg": "HS512"}, _GOOD),
    _forge({"typ": "JWT"}, _GOOD),
    _forge({**_HS256, "kid": 7}, _GOOD),
    _forge({**_HS256, "kid": "k1"}, _GOOD),
    _forge({**_HS256, "crit": ["exp"]}, _GOOD),
    _forge({**_HS256, "crit": []}, _GOOD),
    _forge({**_HS256, "crit": ["b64"]}, _GOOD),
    _forge({**_HS256, "crit": ["b64"], "b64": True}, _GOOD),
    _forge({**_HS256, "crit": ["b64"], "b64": False}, _GOOD),
    _forge({**_HS256, "b64": False}, _GOOD),
    _forge(_HS256, b"[1, 2]"),
    _forge(_HS256, b"not json"),
    _forge(_HS256, json.dumps(_GOOD).encode() + b"\xff"),
    _forge(_HS256, {**_GOOD, "aud": ["other", AUDIENCE]}),
    _forge(_HS256, {**_GOOD, "aud": ["other"]}),
    _forge(_HS256, {**_GOOD, "aud": [AUDIENCE, 1]}),
    _forge(_HS256, {**_GOOD, "aud": 1}),
    _forge(_HS256, {**_GOOD, "aud": ""}),
    _forge(_HS256, {k: v for k, v in _GOOD.items() if k != "aud"}),
    _forge(_HS256, {**_GOOD, "tenant": None}),
    _forge(_HS256, {**_GOOD, "exp": None}),
    _forge(_HS256, {**_GOOD, "sub": 5}),
    _forge(_HS256, {**_GOOD, "sub": "s"}),
    _forge(_HS256, {**_GOOD, "jti": 5}),
    _forge(_HS256, {**_GOOD, "iss": 5}),
    _forge(_HS256, {**_GOOD, "iat": 10}),
    _forge(_HS256, {**_GOOD, "iat": "10"}),
    _forge(_HS256, {**_GOOD, "iat": 4_000_000_000}),
    _forge(_HS256, {**_GOOD, "nbf": 4_000_000_000}),
    _forge(_HS256, {**_GOOD, "nbf": 10.5}),
    _forge(_HS256, {**_GOOD, "exp": 999}),
    _forge(_HS256, {**_GOOD, "role": "admin"}),
    _forge(_HS256, {**_GOOD, "extra": {"nested": [1, 2]}}),
    "a.b.c",
    "a.b",
    "",
    "\ud800.a.b",
]


@pytest.mark.parametrize("token", _CORPUS, ids=range(len(_CORPUS)))
def test_given_any_token_when_verified_then_the_answer_is_pyjwts(token: str) -> None:
    # Given a token, well-formed or not, signed with the key or not
    # When both verifiers read it
    ours = True
    try:
        verify_token(token, KEY, now=1000)
    except InvalidTokenError:
        ours = False
    # Then they agree
    assert ours == (bool(token) and _pyjwt_verify(token, KEY, now=1000))


def test_given_claims_when_minted_then_the_token_is_pyjwts_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an identity, minted at a known moment (mint_token reads the clock itself)
    claims = {"tenant": "acme", "role": "consumer", "client_id": "c1", "aud": AUDIENCE}
    monkeypatch.setattr(auth.time, "time", lambda: 1000.0)
    # When minted here and by PyJWT
    token = mint_token(KEY, tenant="acme", role="consumer", client_id="c1")
    reference = jwt.encode({**claims, "iat": 1000, "exp": 1000 + 24 * 3600}, KEY, "HS256")
    # Then the tokens are the same
    assert token == reference
    decoded = jwt.decode(
        token, KEY, algorithms=["HS256"], audience=AUDIENCE, options={"verify_exp": False}
    )
    assert decoded["client_id"] == "c1"


# -- key ids and rotation -------------------------------------------------------

OLD = SigningKey("o" * 48, "v1")
NEW = SigningKey("n" * 48, "v2")


def _header(token: str) -> dict[str, object]:
    header: dict[str, object] = jwt.get_unverified_header(token)
    return header


def test_given_a_key_with_an_id_when_minting_then_the_header_names_it_and_pyjwt_agrees() -> None:
    token = mint_token(NEW, tenant="acme", role="browser", client_id="b1")
    assert _header(token)["kid"] == "v2"
    assert (
        jwt.decode(token, NEW.secret, algorithms=["HS256"], audience=AUDIENCE)["tenant"] == "acme"
    )
    assert "kid" not in _header(
        mint_token(NEW.secret, tenant="acme", role="browser", client_id="b1")
    )


def test_given_a_rotation_when_tokens_of_either_key_arrive_then_each_is_checked_with_its_own() -> (
    None
):
    keys = SigningKeys(current=NEW, previous=OLD)
    for key in (OLD, NEW):
        token = mint_token(key, tenant="acme", role="browser", client_id="b1")
        assert verify_token(token, keys).client_id == "b1"
    # A token naming the current id but signed with the previous key is forged.
    forged = mint_token(
        SigningKey(OLD.secret, NEW.key_id), tenant="acme", role="browser", client_id="b"
    )
    with pytest.raises(InvalidTokenError, match="signature"):
        verify_token(forged, keys)


def test_given_a_token_without_kid_then_only_the_current_key_verifies_it() -> None:
    keys = SigningKeys(current=NEW, previous=OLD)
    assert verify_token(mint_token(NEW.secret, tenant="a", role="browser", client_id="b"), keys)
    with pytest.raises(InvalidTokenError, match="signature"):
        verify_token(mint_token(OLD.secret, tenant="a", role="browser", client_id="b"), keys)


def test_given_a_retired_or_unknown_key_id_then_unknown_key_id_error() -> None:
    token = mint_token(OLD, tenant="acme", role="browser", client_id="b1")
    with pytest.raises(UnknownKeyIdError, match="v1"):
        verify_token(token, SigningKeys(current=NEW))
    assert issubclass(UnknownKeyIdError, InvalidTokenError)


class _Source:
    """A key source that has not seen a rotation yet until it is asked to refresh."""

    def __init__(self, cached: SigningKeys, fresh: SigningKeys) -> None:
        self.cached, self.fresh, self.refreshes = cached, fresh, 0

    def keys(self) -> SigningKeys:
        return self.cached

    def refreshed(self) -> SigningKeys:
        self.refreshes += 1
        self.cached = self.fresh
        return self.fresh


def test_given_a_rotation_the_verifier_has_not_seen_when_a_new_token_arrives_then_it_reads_again() -> (
    None
):
    source = _Source(SigningKeys(current=OLD), SigningKeys(current=NEW, previous=OLD))
    token = mint_token(NEW, tenant="acme", role="consumer", client_id="c1")
    assert verify_with(token, source).client_id == "c1"
    assert source.refreshes == 1
    # Known ids never cost a refresh.
    assert verify_with(mint_token(OLD, tenant="a", role="browser", client_id="b"), source)
    assert source.refreshes == 1


def test_given_an_unknown_key_id_after_a_refresh_then_it_is_refused() -> None:
    source = _Source(SigningKeys(current=NEW), SigningKeys(current=NEW))
    with pytest.raises(UnknownKeyIdError):
        verify_with(
            mint_token(SigningKey("x" * 48, "forged"), tenant="a", role="browser", client_id="b"),
            source,
        )
    assert source.refreshes == 1


def test_id_pattern_allows_exactly_the_wire_id_length() -> None:
    # The token's ids become the wire's ids: the two bounds are one number.
    assert _ID_PATTERN.pattern.endswith(f"{{1,{wire.MAX_ID_CHARS}}}")
