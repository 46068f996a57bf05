"""Tokens: what a client presents at ``$connect`` and what it proves.

A token is an HS256 JWT (RFC 7519) with the claims ``tenant``, ``role``
(``browser`` | ``consumer``), ``client_id`` and ``exp``. The signing keys are
passed in; where they come from (Secrets Manager, local configuration) is not
this module's business.

Key rotation: a token names its key in the header's ``kid``. The verifier
holds the current key and, during a rotation, the previous one
(:class:`SigningKeys`), and checks a token against the key its ``kid`` names;
a token without ``kid`` is checked against the current key. A ``kid`` the
verifier does not know raises :class:`UnknownKeyIdError`, so the caller can
read its keys again (a rotation it has not seen yet) before refusing.

HS256 is read and written here with the standard library (``hmac``), checking
what PyJWT 2.x checks for ``jwt.decode(token, key, algorithms=["HS256"],
audience=AUDIENCE)``: PyJWT imports the ``cryptography`` package whenever it is
installed, which cost the authorizer's cold start more than the rest of it.
``tests/unit/test_auth.py`` holds the two to the same answers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

__all__ = [
    "AUDIENCE",
    "Claims",
    "InvalidTokenError",
    "KeySource",
    "SigningKey",
    "SigningKeys",
    "UnknownKeyIdError",
    "mint_token",
    "verify_token",
    "verify_with",
]

AUDIENCE = "tabrelay"
_ALGORITHM = "HS256"
_ROLES = ("browser", "consumer")
_REQUIRED = ("exp", "tenant", "role", "client_id")
# Ids become parts of DynamoDB keys ("T#tenant", "role#client"): no '#'.
# Matched with fullmatch: "$" would also accept a trailing newline.
_ID_PATTERN = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")
#: Time claims (epoch seconds) must be finite numbers in this range.
_MAX_TIME = 2**53 - 1


class InvalidTokenError(Exception):
    """The token is missing, malformed, forged, expired or names no valid role."""


class UnknownKeyIdError(InvalidTokenError):
    """The token's ``kid`` names neither the current nor the previous key."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One HS256 key and the id tokens signed with it carry (``None``: no id)."""

    secret: str
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class SigningKeys:
    """The keys a verifier accepts: the current one and, during a rotation, the previous."""

    current: SigningKey
    previous: SigningKey | None = None

    def for_key_id(self, key_id: str | None) -> SigningKey:
        """The key a token's ``kid`` names; no ``kid`` means the current key, and so
        does any ``kid`` when the current key has no id (a verifier that names no
        keys ignores ``kid``, as PyJWT does)."""
        if key_id is None or key_id == self.current.key_id:
            return self.current
        if self.previous is not None and key_id == self.previous.key_id:
            return self.previous
        if self.current.key_id is None:
            return self.current
        raise UnknownKeyIdError(f"unknown key id {key_id[:64]!r}")


@dataclass(frozen=True, slots=True)
class Claims:
    tenant: str
    role: Literal["browser", "consumer"]
    client_id: str
    expires_at: int


def verify_token(token: str | None, keys: SigningKeys | str, *, now: float | None = None) -> Claims:
    """Check ``token`` against the key its ``kid`` names and return its claims,
    or raise InvalidTokenError (UnknownKeyIdError for a ``kid`` not in ``keys``).

    A plain string is the current key, with no id."""
    if not token:
        raise InvalidTokenError("no token")
    if isinstance(keys, str):
        keys = SigningKeys(SigningKey(keys))
    return _claims(_decode(token, keys), now)


class KeySource(Protocol):
    """Where a verifier gets its keys (cached), and reads them again on demand."""

    def keys(self) -> SigningKeys: ...

    def refreshed(self) -> SigningKeys: ...


def verify_with(token: str | None, source: KeySource, *, now: float | None = None) -> Claims:
    """:func:`verify_token` against ``source``'s keys; a token naming a key id they
    do not hold is checked once more against freshly read keys (a rotation this
    verifier has not seen yet) before it is refused."""
    keys = source.keys()
    try:
        return verify_token(token, keys, now=now)
    except UnknownKeyIdError:
        fresh = source.refreshed()
        if fresh == keys:
            raise
        return verify_token(token, fresh, now=now)


def _claims(payload: dict[str, Any], now: float | None) -> Claims:
    """The identity a verified payload names, if its claims hold."""
    for claim in ("exp", "iat", "nbf"):
        if claim not in payload:
            continue
        value = payload[claim]
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or (isinstance(value, float) and not math.isfinite(value))
            or not 0 <= value <= _MAX_TIME
        ):
            raise InvalidTokenError(f"claim {claim!r} must be a number from 0 to {_MAX_TIME}")
    expires = payload["exp"]
    if expires <= (time.time() if now is None else now):
        raise InvalidTokenError("token expired")
    role = payload["role"]
    if role not in _ROLES:
        raise InvalidTokenError(f"role must be one of {', '.join(_ROLES)}")
    for claim in ("tenant", "client_id"):
        value = payload[claim]
        if not isinstance(value, str) or not _ID_PATTERN.fullmatch(value):
            raise InvalidTokenError(f"claim {claim!r} must match {_ID_PATTERN.pattern}")
    return Claims(
        tenant=payload["tenant"],
        role=cast(Literal["browser", "consumer"], role),
        client_id=payload["client_id"],
        expires_at=int(expires),
    )


def mint_token(
    key: SigningKey | str,
    *,
    tenant: str,
    role: str,
    client_id: str,
    ttl_seconds: int = 24 * 3600,
) -> str:
    """A token for the given identity signed with ``key``, valid for ``ttl_seconds``
    from now (a negative ``ttl_seconds`` mints one that has already expired). A
    :class:`SigningKey` with a ``key_id`` puts it in the header's ``kid``; a plain
    string is a key without an id."""
    if isinstance(key, str):
        key = SigningKey(key)
    issued = int(time.time())
    claims = {
        "tenant": tenant,
        "role": role,
        "client_id": client_id,
        "aud": AUDIENCE,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    fields = {"alg": _ALGORITHM, "typ": "JWT"}
    if key.key_id is not None:
        fields["kid"] = key.key_id
    header = _b64encode(_compact(fields, sort_keys=True))
    signing_input = header + b"." + _b64encode(_compact(claims))
    return (signing_input + b"." + _b64encode(_sign(key.secret, signing_input))).decode("ascii")


def _compact(value: dict[str, Any], *, sort_keys: bool = False) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys).encode("utf-8")


def _sign(key: str, signing_input: bytes) -> bytes:
    return hmac.new(key.encode("utf-8"), signing_input, hashlib.sha256).digest()


def _b64encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64decode(segment: bytes, name: str) -> bytes:
    """Canonical base64url only (at most the padding some issuers add)."""
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    if (
        padding > 2
        or (padding and len(segment) % 4)
        or len(stripped) % 4 == 1
        or not _BASE64URL.fullmatch(stripped)
    ):
        raise InvalidTokenError(f"invalid {name} encoding")
    try:
        decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
    except (ValueError, binascii.Error):
        raise InvalidTokenError(f"invalid {name} encoding") from None
    if _b64encode(decoded) != stripped:
        raise InvalidTokenError(f"invalid {name} encoding")
    return decoded


def _object(data: bytes, name: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidTokenError(f"invalid {name}: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidTokenError(f"invalid {name}: must be a JSON object")
    return value


def _check_header(header: dict[str, Any]) -> None:
    if "kid" in header and not isinstance(header["kid"], str):
        raise InvalidTokenError("header 'kid' must be a string")
    if "crit" in header:
        crit = header["crit"]
        # The only critical extension PyJWT knows is RFC 7797's "b64".
        if not isinstance(crit, list) or not crit or any(e != "b64" for e in crit):
            raise InvalidTokenError("unsupported critical header extension")
        if "b64" not in header:
            raise InvalidTokenError("critical extension 'b64' missing from the header")
    if header.get("b64", True) is False:
        raise InvalidTokenError("detached payloads (b64: false) are not accepted")
    if header.get("alg") != _ALGORITHM:
        raise InvalidTokenError("the specified alg value is not allowed")


def _check_registered_claims(payload: dict[str, Any]) -> None:
    for claim in _REQUIRED:
        if payload.get(claim) is None:
            raise InvalidTokenError(f"token is missing the {claim!r} claim")
    # As PyJWT: iat and nbf must not lie ahead of the real clock (exp, checked
    # against the caller's ``now``, is the verifier's own rule).
    real_now = time.time()
    for claim in ("iat", "nbf"):
        if claim in payload:
            try:
                value = int(payload[claim])
            except (ValueError, TypeError, OverflowError):
                raise InvalidTokenError(f"claim {claim!r} must be an integer") from None
            if value > real_now:
                raise InvalidTokenError(f"the token is not yet valid ({claim})")
    audience = payload.get("aud")
    if not audience:
        raise InvalidTokenError("token is missing the 'aud' claim")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or any(not isinstance(a, str) for a in audiences):
        raise InvalidTokenError("invalid claim format in token (aud)")
    if AUDIENCE not in audiences:
        raise InvalidTokenError("audience doesn't match")
    for claim in ("sub", "jti"):
        if claim in payload and not isinstance(payload[claim], str):
            raise InvalidTokenError(f"claim {claim!r} must be a string")


def _decode(token: str, keys: SigningKeys) -> dict[str, Any]:
    """The verified payload of a compact HS256 JWS, or InvalidTokenError."""
    raw = token.encode("utf-8", "surrogatepass")
    parts = raw.split(b".")
    if len(parts) != 3:
        raise InvalidTokenError("a token has three segments")
    header_segment, payload_segment, signature_segment = parts
    header = _object(_b64decode(header_segment, "header"), "header")
    payload_bytes = _b64decode(payload_segment, "payload")
    signature = _b64decode(signature_segment, "signature")
    _check_header(header)
    key = keys.for_key_id(header.get("kid"))
    expected = _sign(key.secret, header_segment + b"." + payload_segment)
    if not hmac.compare_digest(signature, expected):
        raise InvalidTokenError("signature verification failed")
    payload = _object(payload_bytes, "payload")
    _check_registered_claims(payload)
    return payload
