"""Fixtures of the client's unit tests: the fake gateway (see fake_gateway.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.client.fake_gateway import FakeGateway


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    gw = FakeGateway()
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()
