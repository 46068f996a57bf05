"""Rotating the signing key: the real authorizer on moto's Secrets Manager.

A rotation is ``put-secret-value``: the new value becomes ``AWSCURRENT``, the
old one ``AWSPREVIOUS``. Tokens of both verify while the old one is previous;
a refused token is an explicit Deny (HTTP 403), never a function error.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from functions.dal.secrets import SigningKeySource
from functions.logic.auth import SigningKey, SigningKeys
from simulation.environment import ENVIRONMENT, REGION
from simulation.harness import Harness
from tests.integration.test_errors import refused

SECRET_ID = ENVIRONMENT["SIGNING_SECRET_ID"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingClient:
    """Secrets Manager, counting the reads (a fake would hide moto's stage rules)."""

    def __init__(self) -> None:
        self._client = boto3.client("secretsmanager", region_name=REGION)
        self.reads = 0

    def get_secret_value(self, **kwargs: Any) -> Any:
        self.reads += 1
        return self._client.get_secret_value(**kwargs)


def _rotate(value: str) -> str:
    """Put a new version; its VersionId."""
    answer = boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=SECRET_ID, SecretString=value
    )
    return str(answer["VersionId"])


def _current() -> SigningKey:
    answer = boto3.client("secretsmanager", region_name=REGION).get_secret_value(SecretId=SECRET_ID)
    return SigningKey(answer["SecretString"], answer["VersionId"])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def source(gateway: Harness, clock: Clock) -> tuple[SigningKeySource, CountingClient]:
    client = CountingClient()
    keys = SigningKeySource(client, SECRET_ID, max_age=300, refresh_floor=10, clock=clock)
    gateway.handlers["authorizer"].KEYS = keys  # type: ignore[attr-defined]
    return keys, client


def _allowed(gateway: Harness, key: SigningKey, client_id: str = "b1") -> bool:
    policy = gateway.authorize(gateway.mint(key, "browser", "acme", client_id))
    return bool(policy["policyDocument"]["Statement"][0]["Effect"] == "Allow")


def test_given_a_secret_never_rotated_then_it_has_a_current_key_named_by_its_version(
    source: tuple[SigningKeySource, CountingClient],
) -> None:
    keys, _ = source
    assert keys.keys() == SigningKeys(current=_current(), previous=None)


def test_given_a_rotation_when_old_and_new_tokens_connect_then_both_are_allowed_until_the_next(
    gateway: Harness, source: tuple[SigningKeySource, CountingClient], clock: Clock
) -> None:
    # Given tokens minted with the key before the rotation
    first = _current()
    assert _allowed(gateway, first)
    # When the operator rotates (a JSON value naming its own key id)
    _rotate(json.dumps({"kid": "2026-12", "key": "n" * 64}))
    second = SigningKey("n" * 64, "2026-12")
    clock.now += 11  # past the refresh floor, well within the cache's max age
    # Then a token of the new key is allowed by a container that cached the old keys
    assert _allowed(gateway, second)
    # And tokens of the old key still are, as the previous version
    assert _allowed(gateway, first)
    # When the key is rotated once more (a plain value: its id is the VersionId)
    third = SigningKey("t" * 64, _rotate("t" * 64))
    clock.now += 11
    assert _allowed(gateway, third)
    assert _allowed(gateway, second)
    # Then the first key is retired: its tokens are refused with a Deny
    assert refused(gateway, gateway.mint(first, "browser", "acme", "b1"))


def test_given_forged_key_ids_when_they_flood_then_the_secret_is_read_at_most_once_per_floor(
    gateway: Harness, source: tuple[SigningKeySource, CountingClient], clock: Clock
) -> None:
    _, client = source
    assert _allowed(gateway, _current())
    reads = client.reads
    # When a hundred tokens name key ids nobody issued
    for n in range(100):
        forged = SigningKey("x" * 48, f"forged-{n}")
        assert refused(gateway, gateway.mint(forged, "browser", "acme", "b1"))
    # Then each is a Deny, and the secret was not read again within the floor
    assert client.reads == reads
    clock.now += 11
    assert refused(gateway, gateway.mint(SigningKey("x" * 48, "forged"), "browser", "acme", "b"))
    assert client.reads == reads + 2  # one refresh: AWSCURRENT and AWSPREVIOUS
