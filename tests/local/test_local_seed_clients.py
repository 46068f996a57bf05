"""The seed document's two example clients work through the emulator with only the URL replaced.

The clients are read from the seed document (``shared/seed/`` beside the
repository) at test time, never copied into the project: their code runs as
written, with ``ws://localhost:8765`` replaced by the URL ``make run`` prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from pathlib import Path

import pytest

from emulator.config import REPO_ROOT
from emulator.testing import RunningGateway, running_gateway

SEED_URL = "ws://localhost:8765"
COMMANDS = ("click()", "scroll-down", "scroll-up")
#: Set (to 1) where the seed document must be present, as in CI (.ci/run):
#: its absence then fails the test instead of skipping it.
REQUIRE_SEED = "TABRELAY_REQUIRE_SEED"


def seed_folder() -> Path | None:
    """``shared/seed/`` beside the repository (or one or two levels up), if there."""
    for ancestor in (REPO_ROOT.parent, REPO_ROOT.parent.parent, REPO_ROOT.parent.parent.parent):
        folder = ancestor / "shared" / "seed"
        if folder.is_dir():
            return folder
    return None


def seed_clients() -> dict[str, str]:
    """The seed's browser and consumer simulators, by role, from the seed document.

    A clone without the seed document skips the test; with ``TABRELAY_REQUIRE_SEED=1``
    (CI) that absence is a failure.
    """
    folder = seed_folder()
    if folder is None:
        why = f"no shared/seed/ beside the repository ({REPO_ROOT.parent})"
        if os.environ.get(REQUIRE_SEED, "") not in ("", "0"):
            pytest.fail(f"{why}, and {REQUIRE_SEED} is set")
        pytest.skip(f"{why}: the seed document is not part of this clone")
    text = "\n".join(p.read_text(errors="replace") for p in sorted(folder.iterdir()) if p.is_file())
    blocks = [
        b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "websockets.connect" in b
    ]
    found = {
        "browser": next(b for b in blocks if "async def browser" in b),
        "consumer": next(b for b in blocks if "async def consumer" in b),
    }
    for code in found.values():
        assert code.count(SEED_URL) == 1, "the seed client's URL is the one thing replaced"
    return found


class SeedClient:
    """One seed client running as written, its URL replaced; its output lines."""

    def __init__(self, code: str, url: str) -> None:
        self.code = code.replace(SEED_URL, url)
        self.lines: list[str] = []
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            self.code,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    async def wait_for_line(self, wanted: re.Pattern[str]) -> str:
        """The first output line matching ``wanted`` (the caller bounds the wait)."""
        assert self.process is not None and self.process.stdout is not None
        while True:
            raw = await self.process.stdout.readline()
            if not raw:
                raise AssertionError("client exited:\n" + "\n".join(self.lines[-20:]))
            self.lines.append(raw.decode(errors="replace").rstrip())
            if wanted.search(self.lines[-1]):
                return self.lines[-1]

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            await self.process.wait()


def printed_url(gw: RunningGateway, role: str, client: str) -> str:
    # What `make run` prints: the stage URL with a token in the query string.
    return f"{gw.url}?token={gw.token(role, 'demo', client)}"


async def test_seed_browser_and_consumer_exchange_html_and_commands() -> None:
    clients = seed_clients()
    async with running_gateway() as gw:
        consumer = SeedClient(clients["consumer"], printed_url(gw, "consumer", "consumer-1"))
        browser = SeedClient(clients["browser"], printed_url(gw, "browser", "browser-1"))
        try:
            # Both run until each has seen the other's traffic (bounded).
            await consumer.start()
            await browser.start()
            async with asyncio.timeout(90):
                html_line, command_line = await asyncio.gather(
                    consumer.wait_for_line(
                        re.compile(r"\[Consumer\] HTML received: .*<html>frame=\d+</html>")
                    ),
                    browser.wait_for_line(
                        re.compile(
                            r"\[Browser\] Command: .*(" + "|".join(map(re.escape, COMMANDS)) + ")"
                        )
                    ),
                )
        except TimeoutError:
            raise AssertionError(
                "no exchange within 90 s\nconsumer:\n"
                + "\n".join(consumer.lines[-10:])
                + "\nbrowser:\n"
                + "\n".join(browser.lines[-10:])
            ) from None
        finally:
            await asyncio.gather(consumer.stop(), browser.stop())
    assert "<html>frame=" in html_line
    assert any(cmd in command_line for cmd in COMMANDS)
