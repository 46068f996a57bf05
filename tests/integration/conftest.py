"""Fixtures for the moto-backed tests of the real handlers."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.models.settings import GatewaySettings
from tests.integration.env import ENVIRONMENT
from tests.integration.harness import REGION, SIGNING_KEY, Harness

HANDLER_NAMES = ("authorizer", "connect", "disconnect", "message", "router", "delivery")


@pytest.fixture(scope="session")
def handler_modules() -> dict[str, ModuleType]:
    return {name: importlib.import_module(f"functions.handlers.{name}") for name in HANDLER_NAMES}


def create_resources() -> None:
    """The table, queues and secret, with the keys and names the stack gives them."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName=ENVIRONMENT["TABLE_NAME"],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=ENVIRONMENT["TABLE_NAME"],
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
    )
    sqs = boto3.client("sqs", region_name=REGION)
    for name in ("tabrelay-bus", "tabrelay-delivery"):
        sqs.create_queue(QueueName=name)
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=ENVIRONMENT["SIGNING_SECRET_ID"], SecretString=SIGNING_KEY
    )


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        create_resources()
        yield


@pytest.fixture
def make_gateway(aws: None, handler_modules: dict[str, ModuleType]) -> Callable[..., Harness]:
    """Build a harness; keyword arguments override settings (``rate_limit_per_second=20``)."""

    def make(**overrides: Any) -> Harness:
        return Harness(handler_modules, replace(GatewaySettings.from_env(), **overrides))

    return make


@pytest.fixture
def gateway(make_gateway: Callable[..., Harness]) -> Harness:
    return make_gateway()
