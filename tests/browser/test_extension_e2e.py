"""End to end: headless Chromium with the extension, the local emulator, and the
bundled Python client as the consumer. Nothing is faked: the extension is
configured through config.json with a browser token the emulator minted."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import tabrelay

from emulator.testing import RunningGateway, running_gateway

from .conftest import Launch
from .consumer import Snapshots
from .harness import EXTENSION_SOURCE

pytestmark = pytest.mark.browser

TENANT = "acme"
BROWSER = "chrome-e2e"


@pytest.fixture
async def gateway() -> AsyncIterator[RunningGateway]:
    async with running_gateway() as gw:
        yield gw


def extension_config(gw: RunningGateway) -> dict[str, object]:
    return {"url": gw.url, "token": gw.token("browser", TENANT, BROWSER)}


async def test_given_extension_and_consumer_when_click_navigate_type_then_consumer_sees_each(
    gateway: RunningGateway, pages: str, launch: Launch, tmp_path: Path
) -> None:
    consumer_token = gateway.token("consumer", TENANT, "consumer-e2e")
    async with (
        tabrelay.connect(gateway.url, token=consumer_token) as relay,
        Snapshots(relay) as snaps,
        launch(extension_config(gateway), f"{pages}/page1.html") as browser,
    ):
        # (1) A snapshot of the page.
        first = await snaps.wait(lambda s: s.title == "Page one")
        assert first.source == BROWSER
        assert first.url == f"{pages}/page1.html"
        assert ">not clicked<" in first.html

        # (2) A click that changes the page: its result, then a snapshot showing it.
        clicked = await relay.command(BROWSER, "click", selector="#btn")
        assert clicked == {"tag": "button", "text": "Press me"}
        await snaps.wait(lambda s: ">clicked 1<" in s.html)

        # (3) Navigate to a second page and type there; both seen in snapshots.
        moved = await relay.command(BROWSER, "navigate", url=f"{pages}/page2.html")
        assert moved == {"url": f"{pages}/page2.html", "title": "Page two"}
        await snaps.wait(lambda s: s.title == "Page two" and s.url == f"{pages}/page2.html")
        typed = await relay.command(BROWSER, "type", selector="#name", text="Ada Lovelace")
        assert typed == {"value": "Ada Lovelace"}
        await snaps.wait(
            lambda s: 'value="Ada Lovelace"' in s.html and "echo: Ada Lovelace" in s.html
        )

        # The popup, as a user would see it now (the picture in the README).
        popup = await browser.open_page(
            f"chrome-extension://{browser.extension_id()}/popup.html", 370, 250
        )
        await browser.wait_until(
            popup,
            "document.body.dataset.ready === 'true'"
            " && document.getElementById('state').textContent.startsWith('Connected')",
        )
        state = await browser.evaluate(popup, "document.getElementById('state').textContent")
        assert state.startswith("Connected")
        assert await browser.evaluate(popup, "document.getElementById('client').textContent") == (
            BROWSER
        )
        shot = tmp_path / "popup.png"
        await browser.screenshot(popup, shot)
        if os.environ.get("UPDATE_POPUP_PNG") == "1":
            shutil.copyfile(shot, EXTENSION_SOURCE / "popup.png")


async def test_given_missing_element_when_click_then_consumer_gets_element_not_found(
    gateway: RunningGateway, pages: str, launch: Launch
) -> None:
    consumer_token = gateway.token("consumer", TENANT, "consumer-e2e")
    async with (
        tabrelay.connect(gateway.url, token=consumer_token) as relay,
        Snapshots(relay) as snaps,
        launch(extension_config(gateway), f"{pages}/page1.html"),
    ):
        await snaps.wait(lambda s: s.title == "Page one")
        with pytest.raises(tabrelay.CommandFailedError) as failed:
            await relay.command(BROWSER, "click", selector="#missing")
        assert failed.value.code == "element_not_found"


async def test_given_large_page_when_snapshot_and_screenshot_then_both_arrive_in_parts(
    gateway: RunningGateway, pages: str, launch: Launch
) -> None:
    consumer_token = gateway.token("consumer", TENANT, "consumer-e2e")
    async with (
        tabrelay.connect(gateway.url, token=consumer_token) as relay,
        Snapshots(relay) as snaps,
        launch(extension_config(gateway), f"{pages}/big"),
    ):
        big = await snaps.wait(lambda s: s.title == "Big page", timeout=90)
        assert big.parts > 10 and "the end" in big.html
        shot = await relay.command(BROWSER, "screenshot")
        assert shot["mime"] == "image/png"


async def test_given_emulator_restarted_then_extension_reconnects_and_snapshots_flow(
    gateway: RunningGateway, pages: str, launch: Launch
) -> None:
    consumer_token = gateway.token("consumer", TENANT, "consumer-e2e")
    async with (
        tabrelay.connect(gateway.url, token=consumer_token) as relay,
        Snapshots(relay) as snaps,
        launch(extension_config(gateway), f"{pages}/clock.html"),
    ):
        await snaps.wait(lambda s: s.title == "Clock")

        # When the gateway goes away (every connection closes) and comes back...
        await gateway.stop()
        await gateway.start()
        mark = len(snaps.seen)

        # ...the extension reconnects by itself: the live page's snapshots flow
        # again, and it takes commands on its new connection.
        await snaps.wait(lambda s: s.title == "Clock", after=mark, timeout=60)
        for _ in range(5):
            try:
                await relay.command(BROWSER, "click", selector="#btn")
                break
            except tabrelay.TargetOfflineError:
                # A snapshot sent before the restart can still be in flight; the
                # next one proves the browser is back.
                await snaps.wait(lambda s: True, after=len(snaps.seen), timeout=30)
        else:
            pytest.fail("the browser never came back online")
        await snaps.wait(lambda s: ">clicked 1<" in s.html, after=mark)
