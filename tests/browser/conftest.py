"""Fixtures of the real-browser tests: a local page server and Chromium with the extension."""

from __future__ import annotations

import random
import string
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from .harness import Chromium, prepare_extension

PAGES = Path(__file__).parent / "pages"


async def _big_page(request: web.Request) -> web.Response:
    # About 1.5 MB that gzip cannot shrink much: many snapshot parts.
    rng = random.Random(int(request.query.get("seed", "7")))
    words = " ".join(
        "".join(rng.choices(string.ascii_letters + string.digits, k=12)) for _ in range(120_000)
    )
    body = f"<!doctype html><html><head><title>Big page</title></head><body><p id='words'>{words}</p><p id='end'>the end</p></body></html>"
    return web.Response(text=body, content_type="text/html")


@pytest.fixture
async def pages() -> AsyncIterator[str]:
    """Base URL of a local HTTP server (port 0) serving tests/browser/pages and /big."""
    app = web.Application()
    app.router.add_get("/big", _big_page)
    app.router.add_static("/", PAGES)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


Launch = Callable[..., AbstractAsyncContextManager[Chromium]]


@pytest.fixture
def launch(tmp_path: Path) -> Launch:
    """``async with launch(config, start_url) as browser``: Chromium with the
    extension configured through ``config.json`` (a fresh copy and profile each time)."""
    count = 0

    @asynccontextmanager
    async def run(config: dict[str, Any] | None, start_url: str) -> AsyncIterator[Chromium]:
        nonlocal count
        count += 1
        ext = prepare_extension(tmp_path / f"extension-{count}", config)
        async with Chromium(ext, tmp_path / f"profile-{count}", start_url) as browser:
            yield browser

    return run
