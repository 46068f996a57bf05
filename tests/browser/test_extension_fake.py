"""The extension in real headless Chromium against a fake gateway (protocol-level proofs)."""

from __future__ import annotations

import pytest

from .conftest import Launch
from .fakegateway import FakeGateway

pytestmark = pytest.mark.browser

TOKEN = "header.payload.signature"


async def test_given_configured_extension_when_page_loads_then_gateway_gets_valid_snapshot(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch({"url": gw.url, "token": TOKEN}, f"{pages}/page1.html"):
        page = await gw.page(lambda p: p.title == "Page one")
        assert "not clicked" in page.html
        assert page.url == f"{pages}/page1.html"
        assert gw.tokens[0] == TOKEN
        assert gw.violations == []
