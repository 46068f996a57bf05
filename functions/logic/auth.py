"""Tokens: what a client presents at ``$connect`` and what it proves.

A token is an HS256 JWT (PyJWT) with the claims ``tenant``, ``role``
(``browser`` | ``consumer``), ``client_id`` and ``exp``. The signing key is
passed in; where it comes from (Secrets Manager, local configuration) is not
this module's business.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any, Literal, cast

import jwt

__all__ = ["AUDIENCE", "Claims", "InvalidTokenError", "mint_token", "verify_token"]

AUDIENCE = "tabrelay"
_ALGORITHM = "HS256"
_ROLES = ("browser", "consumer")
# Ids become parts of DynamoDB keys ("T#tenant", "role#client"): no '#'.
# Matched with fullmatch: "$" would also accept a trailing newline.
_ID_PATTERN = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
#: Time claims (epoch seconds) must be finite numbers in this range.
_MAX_TIME = 2**53 - 1


class InvalidTokenError(Exception):
    """The token is missing, malformed, forged, expired or names no valid role."""


@dataclass(frozen=True, slots=True)
class Claims:
    tenant: str
    role: Literal["browser", "consumer"]
    client_id: str
    expires_at: int


def verify_token(token: str | None, key: str, *, now: float | None = None) -> Claims:
    """Check ``token`` against ``key`` and return its claims, or raise InvalidTokenError."""
    if not token:
        raise InvalidTokenError("no token")
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[_ALGORITHM],
            audience=AUDIENCE,
            # Expiry is checked below against ``now``, so tests need no real clock.
            options={"require": ["exp", "tenant", "role", "client_id"], "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(str(exc)) from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. iat: Infinity
        raise InvalidTokenError(f"malformed claims: {exc}") from None
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
    key: str,
    *,
    tenant: str,
    role: str,
    client_id: str,
    ttl_seconds: int = 24 * 3600,
) -> str:
    """A signed token for the given identity, valid for ``ttl_seconds`` from now
    (a negative ``ttl_seconds`` mints one that has already expired)."""
    issued = int(time.time())
    claims = {
        "tenant": tenant,
        "role": role,
        "client_id": client_id,
        "aud": AUDIENCE,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    return jwt.encode(claims, key, algorithm=_ALGORITHM)
