"""The token signing keys, from Secrets Manager: the current and the previous version.

Rotating the key is Secrets Manager's own versioning: putting a new value makes
it ``AWSCURRENT`` and moves the old one to ``AWSPREVIOUS``, so tokens signed
with either verify during a rotation (docs/architecture.md, "Rotating the
signing key").

A version's value is either the key itself, or JSON ``{"key": ..., "kid": ...}``.
Its key id is that ``kid``, or else the version's ``VersionId`` (which
``get-secret-value`` returns beside the key, so an issuer can name it).

Both versions are cached for ``max_age`` seconds in a warm container, so
verifying a token costs no AWS call on most connects. A token naming a key id
the cache does not know may be a rotation this container has not seen: the
caller asks for :meth:`SigningKeySource.refreshed`, which reads again at most
once per ``refresh_floor`` seconds, so forged key ids cannot turn into a flood
of Secrets Manager calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from functions.logic.auth import SigningKey, SigningKeys

__all__ = ["DEFAULT_REFRESH_FLOOR_SECONDS", "SigningKeySource"]

#: The shortest time between two reads of the secret forced by unknown key ids.
DEFAULT_REFRESH_FLOOR_SECONDS = 10.0


class SigningKeySource:
    """Reads and caches the current and previous signing keys of one secret."""

    def __init__(
        self,
        client: Any,
        secret_id: str,
        *,
        max_age: int,
        refresh_floor: float = DEFAULT_REFRESH_FLOOR_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._secret_id = secret_id
        self._max_age = max_age
        self._refresh_floor = refresh_floor
        self._clock = clock
        self._keys: SigningKeys | None = None
        self._read_at = 0.0

    def keys(self) -> SigningKeys:
        """The cached keys, read again once they are ``max_age`` seconds old."""
        if self._keys is None or self._clock() - self._read_at >= self._max_age:
            return self._read()
        return self._keys

    def refreshed(self) -> SigningKeys:
        """The keys read again now, unless they were read within ``refresh_floor`` seconds."""
        if self._keys is None or self._clock() - self._read_at >= self._refresh_floor:
            return self._read()
        return self._keys

    def _read(self) -> SigningKeys:
        current = self._version("AWSCURRENT")
        if current is None:
            raise LookupError(f"secret {self._secret_id} has no AWSCURRENT version")
        self._keys = SigningKeys(current, self._version("AWSPREVIOUS"))
        self._read_at = self._clock()
        return self._keys

    def _version(self, stage: str) -> SigningKey | None:
        try:
            answer = self._client.get_secret_value(SecretId=self._secret_id, VersionStage=stage)
        except ClientError as exc:
            # No previous version yet (a secret never rotated) is not an error.
            if (
                stage != "AWSCURRENT"
                and exc.response["Error"]["Code"] == "ResourceNotFoundException"
            ):
                return None
            raise
        text = answer.get("SecretString")
        if text is None:
            text = bytes(answer["SecretBinary"]).decode("utf-8")
        return _signing_key(str(text), answer.get("VersionId"))


def _signing_key(text: str, version_id: str | None) -> SigningKey:
    if text.startswith("{"):
        parsed = json.loads(text)
        if isinstance(parsed, dict) and isinstance(parsed.get("key"), str):
            kid = parsed.get("kid")
            return SigningKey(parsed["key"], kid if isinstance(kid, str) else version_id)
    return SigningKey(text, version_id)
