"""Real headless Chromium with the tabrelay extension loaded, for the browser tests.

:func:`prepare_extension` copies ``clients/extension`` to a fresh folder and
writes its ``config.json`` (the automation path of configuring the extension).
:class:`Chromium` starts Debian's ``/usr/bin/chromium`` in ``--headless=new``
with that extension, a fresh profile and ``--remote-debugging-port=0``, and
offers a minimal DevTools-protocol client (used only to capture the popup).

Nothing here talks to the extension: the tests observe it from the gateway's
side, as a real deployment would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import re
import shutil
from collections import deque
from pathlib import Path
from typing import Any

import websockets

__all__ = [
    "CHROMIUM",
    "EXTENSION_SOURCE",
    "Chromium",
    "ChromiumError",
    "extension_id_for",
    "prepare_extension",
]

CHROMIUM = Path("/usr/bin/chromium")
EXTENSION_SOURCE = Path(__file__).resolve().parents[2] / "clients" / "extension"

# The flags that make Chromium usable as root on a machine whose network is
# closed: without the background-networking ones it floods refused connections.
_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    "--remote-debugging-port=0",
)
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


class ChromiumError(RuntimeError):
    """Chromium did not start, or a DevTools call failed."""


def extension_id_for(path: Path) -> str:
    """Chromium's id of an unpacked extension: SHA-256 of its absolute path,
    first 32 hex digits spelled with the letters a-p."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]
    return digest.translate(str.maketrans("0123456789abcdef", "abcdefghijklmnop"))


def prepare_extension(dest: Path, config: dict[str, Any] | None) -> Path:
    """Copy the extension to ``dest`` and write ``config.json`` (when given)."""
    shutil.copytree(
        EXTENSION_SOURCE, dest, ignore=shutil.ignore_patterns("config.json", "*.md", "*.png")
    )
    if config is not None:
        (dest / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return dest


class Chromium:
    """One headless Chromium process; use ``async with`` or start/stop."""

    def __init__(
        self,
        extension: Path,
        profile: Path,
        start_url: str = "about:blank",
        executable: Path = CHROMIUM,
    ) -> None:
        self.executable = executable
        self.extension = extension
        self.profile = profile
        self.start_url = start_url
        self.log: deque[str] = deque(maxlen=200)
        self._proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None
        self._cdp: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._targets: dict[str, str] = {}
        self._events: dict[tuple[str, str | None], list[asyncio.Future[dict[str, Any]]]] = {}

    async def __aenter__(self) -> Chromium:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, timeout: float = 60.0) -> None:
        """Launch Chromium and connect to its DevTools endpoint."""
        if not self.executable.exists():
            raise ChromiumError(f"{self.executable} is missing: run `make chromium` first")
        ext = str(self.extension)
        self._proc = proc = await asyncio.create_subprocess_exec(
            str(self.executable),
            *_FLAGS,
            f"--user-data-dir={self.profile}",
            f"--disable-extensions-except={ext}",
            f"--load-extension={ext}",
            self.start_url,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        try:
            endpoint = await asyncio.wait_for(self._endpoint(proc.stderr), timeout)
        except TimeoutError:
            await self.stop()
            raise ChromiumError("Chromium did not open DevTools:\n" + "\n".join(self.log)) from None
        # The tasks get what they read as arguments: stop() clears the
        # attributes while they may still be running.
        self._drain = asyncio.create_task(self._read_stderr(proc.stderr))
        try:
            self._cdp = cdp = await websockets.connect(endpoint, max_size=64 * 1024 * 1024)
        except BaseException:
            await self.stop()  # no process left behind when start() fails
            raise
        self._reader = asyncio.create_task(self._read_cdp(cdp))

    async def _endpoint(self, stderr: asyncio.StreamReader) -> str:
        while True:
            line = await stderr.readline()
            if not line:
                raise ChromiumError("Chromium exited:\n" + "\n".join(self.log))
            text = line.decode(errors="replace").rstrip()
            self.log.append(text)
            match = _LISTENING.search(text)
            if match:
                return match.group(1)

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        # Keep reading so Chromium never blocks on a full pipe.
        while line := await stderr.readline():
            self.log.append(line.decode(errors="replace").rstrip())

    async def _read_cdp(self, cdp: Any) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in cdp:
                message = json.loads(raw)
                if "method" in message:
                    key = (message["method"], message.get("sessionId"))
                    for waiter in self._events.pop(key, []):
                        if not waiter.done():
                            waiter.set_result(message.get("params", {}))
                    continue
                call = self._calls.pop(message.get("id", -1), None)
                if call is not None and not call.done():
                    call.set_result(message)

    async def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """One DevTools-protocol call; returns its ``result`` or raises."""
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[ident] = future
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        await self._cdp.send(json.dumps(message))
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise ChromiumError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def extension_id(self) -> str:
        """The id Chromium gives the unpacked extension: derived from its path."""
        return extension_id_for(self.extension)

    async def open_page(self, url: str, width: int, height: int) -> str:
        """Open ``url`` in a new tab sized ``width`` x ``height``; returns a session id."""
        target = (await self.call("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await self.call("Target.attachToTarget", {"targetId": target, "flatten": True}))[
            "sessionId"
        ]
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        await self.call("Page.enable", {}, session)
        loaded = self.event("Page.loadEventFired", session)
        await self.call("Page.navigate", {"url": url}, session)
        await asyncio.wait_for(loaded, 30)
        self._targets[session] = target
        return str(session)

    async def close_page(self, session: str) -> None:
        """Close a tab opened with :meth:`open_page`."""
        await self.call("Target.closeTarget", {"targetId": self._targets.pop(session)})

    async def stop_service_workers(self) -> None:
        """Stop every service worker now, as Chrome does to an idle extension."""
        targets = (await self.call("Target.getTargets"))["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        session = (
            await self.call(
                "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}
            )
        )["sessionId"]
        await self.call("ServiceWorker.enable", {}, session)
        await self.call("ServiceWorker.stopAllWorkers", {}, session)

    def event(self, method: str, session: str | None = None) -> asyncio.Future[dict[str, Any]]:
        """A future for the next DevTools event ``method`` (of ``session``)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._events.setdefault((method, session), []).append(future)
        return future

    async def evaluate(self, session: str, expression: str) -> Any:
        """Evaluate ``expression`` (awaiting promises) in a page; returns its value."""
        result = await self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session,
        )
        if "exceptionDetails" in result:
            raise ChromiumError(f"evaluate failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_until(self, session: str, condition: str, timeout: float = 30.0) -> None:
        """Wait until the JavaScript expression ``condition`` is true in a page
        (re-checked on every DOM mutation there, not polled)."""
        script = f"""new Promise((resolve) => {{
            const met = () => {{ try {{ return !!({condition}); }} catch {{ return false; }} }};
            if (met()) return resolve(true);
            const observer = new MutationObserver(() => {{
                if (met()) {{ observer.disconnect(); resolve(true); }}
            }});
            observer.observe(document, {{subtree: true, childList: true, characterData: true, attributes: true}});
        }})"""
        await asyncio.wait_for(self.evaluate(session, script), timeout)

    async def screenshot(self, session: str, path: Path) -> None:
        """Capture the page of ``session`` as a PNG file."""
        shot = await self.call("Page.captureScreenshot", {"format": "png"}, session)
        path.write_bytes(base64.b64decode(shot["data"]))

    async def stop(self) -> None:
        """Close DevTools and end the Chromium process (and wait for it).

        Safe at any point, also right after (or during a failed) :meth:`start`.
        """
        cdp, self._cdp = self._cdp, None
        if cdp is not None:
            await cdp.close()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        drain, self._drain = self._drain, None
        if drain is not None:
            # The pipe ends with the process, so the reader is finishing anyway;
            # cancel it in case a grandchild still holds the pipe open.
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
