"""The Chromium harness itself, with a stand-in executable (no real browser needed)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import websockets

from .harness import Chromium

# Announces a DevTools endpoint like Chromium does, then, when terminated,
# keeps writing to stderr for a while before it exits (as Chromium's shutdown
# logging does): the harness must not trip over its own stop().
_FAKE = """#!{python}
import signal, sys, time
def bye(*_):
    for i in range(200):
        sys.stderr.write(f"shutting down {{i}}\\n")
        sys.stderr.flush()
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
sys.stderr.write("DevTools listening on {endpoint}\\n")
sys.stderr.flush()
while True:
    sys.stderr.write("still running\\n")
    sys.stderr.flush()
    time.sleep(0.01)
"""


@pytest.fixture
async def devtools() -> AsyncIterator[str]:
    """A WebSocket endpoint standing in for Chromium's DevTools."""

    async def idle(ws: websockets.ServerConnection) -> None:
        await ws.wait_closed()

    async with websockets.serve(idle, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/devtools/browser/fake"


def fake_chromium(tmp_path: Path, endpoint: str) -> Path:
    path = tmp_path / "chromium"
    path.write_text(_FAKE.format(python=sys.executable, endpoint=endpoint))
    path.chmod(0o755)
    return path


async def test_given_started_browser_when_stopped_at_once_then_stop_does_not_raise(
    tmp_path: Path, devtools: str
) -> None:
    # Given a browser that writes to stderr while it shuts down
    browser = Chromium(
        tmp_path / "ext", tmp_path / "profile", executable=fake_chromium(tmp_path, devtools)
    )
    await browser.start()
    # When stop() follows start() immediately, Then it returns cleanly
    await browser.stop()
    # And a second stop() is harmless
    await browser.stop()


async def test_given_browser_when_devtools_refuses_then_start_fails_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    # Given a browser whose announced DevTools endpoint accepts no connection
    from emulator.backend import free_port

    endpoint = f"ws://127.0.0.1:{free_port()}/devtools/browser/none"
    browser = Chromium(
        tmp_path / "ext", tmp_path / "profile", executable=fake_chromium(tmp_path, endpoint)
    )
    # When start() cannot connect, Then it raises and has stopped the process
    with pytest.raises(OSError):
        await browser.start()
    assert browser._proc is None
