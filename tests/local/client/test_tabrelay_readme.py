"""The examples of clients/python/README.md run as written against the local gateway.

Each example is the code block right after an ``<!-- example: NAME -->`` line. The
test gives them the environment the README's setup step exports (the gateway URL and
two tokens of one tenant) and runs them as a user would: the agent in the background,
the consumer, the command lines, then the simulated browser.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from emulator.testing import RunningGateway, running_gateway

README = Path(__file__).resolve().parents[3] / "clients" / "python" / "README.md"
WAIT = 180.0  # generous: subprocesses start slowly on a loaded 2-core machine


def examples() -> dict[str, tuple[str, str]]:
    """``name -> (language, code)`` of every marked example."""
    pattern = re.compile(r"<!-- example: (\w+) -->\n```(\w+)\n(.*?)```", re.DOTALL)
    return {m[1]: (m[2], m[3]) for m in pattern.finditer(README.read_text(encoding="utf-8"))}


@pytest.fixture
async def gw() -> AsyncIterator[RunningGateway]:
    async with running_gateway() as gateway:
        yield gateway


def _env(gw: RunningGateway) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # where `tabrelay` is installed
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "TABRELAY_URL": gw.url,
        "TABRELAY_BROWSER_TOKEN": gw.token("browser", "demo", "b1"),
        "TABRELAY_CONSUMER_TOKEN": gw.token("consumer", "demo", "c1"),
    }


async def _start(language: str, code: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    if language == "python":
        argv = [sys.executable, "-c", code]
    else:
        assert language == "sh"
        argv = ["bash", "-euo", "pipefail", "-c", code]
    return await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    """Ctrl-C must work in the example as in a terminal, even when this test runs in a
    background job (a non-interactive shell starts those with SIGINT ignored, and a
    child inherits that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def _run(language: str, code: str, env: dict[str, str]) -> str:
    proc = await _start(language, code, env)
    async with asyncio.timeout(WAIT):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


def test_given_readme_then_every_example_is_marked() -> None:
    assert set(examples()) == {"agent", "consumer", "cli", "simulate"}


async def test_given_local_gateway_when_readme_examples_run_then_they_work(
    gw: RunningGateway,
) -> None:
    blocks = examples()
    env = _env(gw)
    agent = await _start(*blocks["agent"], env)
    try:
        consumer_out = await _run(*blocks["consumer"], env)
        cli_out = await _run(*blocks["cli"], env)
    finally:
        agent.send_signal(signal.SIGINT)
        async with asyncio.timeout(WAIT):
            _, agent_err = await agent.communicate()
    assert agent.returncode == 0, agent_err.decode()

    lines = consumer_out.splitlines()
    assert re.fullmatch(r"b1 #\d+ 'frame \d+': \d+ bytes, missed \d+", lines[0])
    assert lines[1] == "online: ['b1']"
    assert lines[2] == "result: {'clicked': '#buy'}"

    cli_lines = cli_out.splitlines()
    assert cli_lines[0].split("\t")[0] == "b1"  # tabrelay browsers
    assert cli_lines[1] == '{"clicked": "#buy"}'  # tabrelay send
    assert [line.split("\t")[0] for line in cli_lines[2:]] == ["b1", "b1"]  # tabrelay watch

    await _run(*blocks["simulate"], env)
