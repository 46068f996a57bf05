"""The local gateway of ``make run`` in its own process, for load from this one.

The emulator runs exactly as a user starts it (``python -m emulator run``), on
127.0.0.1 and a free port, with a signing key this process knows so that it
can mint tokens. Its resident memory is read from ``/proc`` (the gateway
process and its children: the moto server). Stopping it is bounded: SIGTERM,
then SIGKILL of the processes it started, by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

__all__ = ["Emulator", "raise_fd_limit", "running_emulator", "tree_rss_mb"]

ROOT = Path(__file__).resolve().parent.parent
_READY = "tabrelay local gateway on "


def raise_fd_limit(wanted: int = 65_536) -> int:
    """Raise this process's open-file limit toward ``wanted`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found += [int(c) for c in text.split()]
    return found


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += _children(current)
    return pids


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MB."""
    return sum(_rss_kb(p) for p in _tree(pid)) / 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Emulator:
    """A running ``python -m emulator run``: its URL, tokens, memory."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, signing_key: str) -> None:
        self.process = process
        self.url = url
        self._key = signing_key
        self.pids = _tree(process.pid)

    def token(self, role: str, tenant: str, client_id: str) -> str:
        from emulator.config import mint_token

        return mint_token(self._key, role=role, tenant=tenant, client_id=client_id, ttl=3600)

    def rss_mb(self) -> float:
        self.pids = sorted(set(self.pids) | set(_tree(self.process.pid)))
        return tree_rss_mb(self.process.pid)

    def kill(self) -> None:
        """SIGKILL the emulator and the processes it started (skips 10,000 ``$disconnect``s)."""
        self.pids = sorted(set(self.pids) | set(_tree(self.process.pid)))
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@asynccontextmanager
async def running_emulator(
    *,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 180.0,
    graceful: bool = True,
) -> AsyncIterator[Emulator]:
    """Start the emulator, wait (bounded) until it prints its URL, yield, stop it.

    ``env`` overrides variables in every function's environment. With
    ``graceful=False`` it is killed at the end instead of closing connections.
    """
    key = secrets.token_urlsafe(48)
    with tempfile.TemporaryDirectory(prefix="tabrelay-bench-") as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps({"signing_key": key}))
        output = Path(tmp) / "stdout.txt"
        command = [
            sys.executable, "-m", "emulator", "run",
            "--host", "127.0.0.1", "--port", str(_free_port()),
            "--config", str(config), "--status-interval", "0",
            "--function-log", str(Path(tmp) / "functions.log"),
        ]  # fmt: skip
        for name, value in (env or {}).items():
            command += ["--env", f"{name}={value}"]
        with output.open("wb") as sink:
            process = subprocess.Popen(
                command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        emulator: Emulator | None = None
        try:
            deadline = time.monotonic() + ready_timeout
            while emulator is None:
                text = output.read_text(errors="replace")
                for line in text.splitlines():
                    if line.startswith(_READY):
                        url = line.removeprefix(_READY).split()[0].replace("localhost", "127.0.0.1")
                        emulator = Emulator(process, url, key)
                if emulator is None:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the emulator did not start:\n{text[-3000:]}")
                    await asyncio.sleep(0.2)  # polling a file another process writes
            yield emulator
        finally:
            if emulator is not None and not graceful:
                emulator.kill()
            elif process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(process.wait, 60)
                except subprocess.TimeoutExpired:
                    Emulator(process, "", key).kill()
