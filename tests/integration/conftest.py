"""Fixtures for the moto-backed tests of the real handlers (:mod:`simulation`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from types import ModuleType
from typing import Any

import pytest
from moto import mock_aws

from functions.models.settings import GatewaySettings
from simulation.environment import apply_environment
from simulation.environment import handler_modules as import_handlers
from simulation.harness import Harness
from simulation.resources import create_resources


def pytest_configure(config: pytest.Config) -> None:
    # Before this folder's test modules are collected: some import handler modules
    # (Powertools reads the environment when they create their logger and metrics).
    apply_environment()


@pytest.fixture(scope="session")
def handler_modules() -> dict[str, ModuleType]:
    return import_handlers()


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
