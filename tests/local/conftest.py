"""Shared fixtures of the emulator tests: a gateway on a free port running the fixture template.

The helpers tests import live in ``fixtures/emu_fixture/testkit.py`` (this
folder is not a package, so test modules cannot import from conftest).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
# The repository root (for ``emulator``) and the fixture handlers' root (the
# handlers import emu_fixture.recorder; the tests read the same module).
for entry in (str(ROOT), str(FIXTURES)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from emu_fixture.testkit import TEMPLATE  # noqa: E402  importable only once sys.path has the fixtures

from emulator.testing import RunningGateway, running_gateway  # noqa: E402  after the sys.path set-up above


@pytest.fixture
def recorder() -> ModuleType:
    from emu_fixture import recorder as module

    module.clear()
    return module


@pytest.fixture
async def gw(recorder: ModuleType) -> AsyncIterator[RunningGateway]:
    async with running_gateway(template=TEMPLATE, code_root=FIXTURES) as gateway:
        yield gateway
