"""``python -m emulator run`` and ``token`` as a user runs them (subprocesses)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import jwt
import websockets
from emu_fixture.testkit import FIXTURES

from emulator.backend import free_port
from emulator.config import REPO_ROOT


async def test_run_prints_urls_that_work_and_ctrl_c_closes_every_connection(tmp_path: Path) -> None:
    # Given `python -m emulator run` on a free port with the fixture template
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "emulator", "run",
        "--port", str(port),
        "--template", str(FIXTURES / "template.json"),
        "--code-root", str(FIXTURES),
        "--config", str(tmp_path / "config.json"),
        "--function-log", str(tmp_path / "functions.log"),
        "--status-interval", "0",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)},
        start_new_session=True,  # its own process group, like `make run` in a terminal
    )  # fmt: skip
    assert process.stdout is not None
    try:
        output: list[str] = []
        async with asyncio.timeout(60):
            while not any("consumer URL" in line for line in output):
                line = (await process.stdout.readline()).decode()
                assert line, "\n".join(output)
                output.append(line.rstrip())
        url = next(
            re.search(r"ws://\S+", line).group(0) for line in output if "consumer URL" in line
        )  # type: ignore[union-attr]
        assert url.startswith(f"ws://localhost:{port}/dev?token=")
        # When a client uses the printed URL, then Ctrl-C is pressed
        async with websockets.connect(url) as ws:
            await ws.send('{"action":"ping"}')
            assert await asyncio.wait_for(ws.recv(), 10) == '{"action":"pong"}'
            # Ctrl-C in a terminal signals the whole foreground process group
            os.killpg(process.pid, signal.SIGINT)
            # Then the client gets a close frame (1001)
            await asyncio.wait_for(ws.wait_closed(), 30)
            assert ws.close_code == 1001
        rest = (await asyncio.wait_for(process.stdout.read(), 30)).decode()
        # And $disconnect ran before the process exited cleanly
        assert await asyncio.wait_for(process.wait(), 30) == 0
        assert "$disconnect ran for 1 connection(s), 0 failed" in rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_token_prints_a_verifiable_token_on_its_last_line(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "emulator", "token",
        "--role", "consumer", "--tenant", "acme", "--client", "c1", "--config", str(config),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    token = out.decode().rstrip("\n").splitlines()[-1]
    key = json.loads(config.read_text())["signing_key"]
    claims = jwt.decode(token, key, algorithms=["HS256"], audience="tabrelay")
    assert (claims["role"], claims["tenant"], claims["client_id"]) == ("consumer", "acme", "c1")
