"""The ``tabrelay`` command, run as a subprocess against the fake gateway."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
import tabrelay
from tabrelay.cli import EXIT_CODES

from tests.unit.client.fake_gateway import WAIT, FakeGateway


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tabrelay",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_given_help_then_exit_zero_and_every_subcommand_listed() -> None:
    code, out, _ = await _run("--help")
    assert code == 0
    for name in ("watch", "send", "browsers", "simulate-browser", "exit status"):
        assert name in out


async def test_given_online_browser_when_browsers_run_then_one_line_each(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(gateway.url, token="browser:b1"):
        code, out, _ = await _run("browsers", gateway.url, "--token", "consumer:c1")
    assert code == 0
    assert [line.split("\t")[0] for line in out.splitlines()] == ["b1"]


async def test_given_browsers_over_several_pages_when_browsers_run_then_every_one_listed(
    gateway: FakeGateway,
) -> None:
    gateway.list_page = 1
    async with (
        tabrelay.connect(gateway.url, token="browser:b1"),
        tabrelay.connect(gateway.url, token="browser:b2"),
        tabrelay.connect(gateway.url, token="browser:b3"),
    ):
        code, out, _ = await _run("browsers", gateway.url, "--token", "consumer:c1", "--json")
    assert code == 0
    assert [b["client_id"] for b in json.loads(out)] == ["b1", "b2", "b3"]


async def test_given_token_in_environment_when_browsers_json_then_json_array(
    gateway: FakeGateway,
) -> None:
    code, out, _ = await _run(
        "browsers", gateway.url, "--json", env={"TABRELAY_TOKEN": "consumer:c1"}
    )
    assert (code, json.loads(out)) == (0, [])


async def test_given_browser_when_send_run_then_result_printed_as_json(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(gateway.url, token="browser:b1") as browser:
        browser.on_command(lambda cmd: {"got": cmd.args})
        code, out, _ = await _run(
            "send", gateway.url, "--token", "consumer:c1", "b1", "type", "text=hi", "n=3"
        )
    assert code == 0
    assert json.loads(out) == {"got": {"text": "hi", "n": 3}}


async def test_given_offline_target_when_send_run_then_exit_code_and_message(
    gateway: FakeGateway,
) -> None:
    code, _, err = await _run("send", gateway.url, "--token", "consumer:c1", "ghost", "click")
    assert code == EXIT_CODES["target_offline"]
    assert err.startswith("tabrelay: error: target_offline:")


async def test_given_failing_command_when_send_run_then_exit_1(gateway: FakeGateway) -> None:
    def fail(cmd: tabrelay.CommandRequest) -> None:
        raise ValueError("nope")

    async with tabrelay.connect(gateway.url, token="browser:b1") as browser:
        browser.on_command(fail)
        code, _, err = await _run("send", gateway.url, "--token", "consumer:c1", "b1", "click")
    assert code == EXIT_CODES["command_failed"]
    assert "ValueError: nope" in err


async def test_given_bad_token_when_any_command_run_then_exit_3(gateway: FakeGateway) -> None:
    code, _, err = await _run("browsers", gateway.url, "--token", "bad")
    assert code == EXIT_CODES["unauthorized"]
    assert "unauthorized" in err
    assert gateway.refused == 1


async def test_given_no_gateway_when_run_then_exit_4(gateway: FakeGateway) -> None:
    url = gateway.url
    await gateway.stop()
    code, _, err = await _run("browsers", url, "--token", "consumer:c1")
    assert code == EXIT_CODES["connect_failed"]
    assert "connect_failed" in err


async def test_given_bad_argument_when_send_run_then_usage_error() -> None:
    code, _, _ = await _run("send", "ws://127.0.0.1:9/x", "b1", "click", "oops")
    assert code == 2


async def test_given_simulated_browser_when_watch_run_then_snapshot_lines_printed(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><title>t</title>" + "<p>é</p>" * 10_000 + "</html>", encoding="utf-8")
    watch = asyncio.create_task(
        _run("watch", gateway.url, "--token", "consumer:c1", "--count", "2", "--json")
    )
    await gateway.wait_for(lambda: any(c.client_id == "c1" for c in gateway.conns))
    code, _, err = await _run(
        "simulate-browser",
        gateway.url,
        "--token",
        "browser:b1",
        "--count",
        "2",
        "--rate",
        "50",
        "--file",
        str(page),
    )
    assert code == 0, err
    async with asyncio.timeout(WAIT):
        wcode, out, _ = await watch
    lines = [json.loads(line) for line in out.splitlines()]
    assert wcode == 0
    assert [(x["source"], x["size"]) for x in lines] == [("b1", len(page.read_bytes()))] * 2


@pytest.mark.parametrize("name", ["echo", "sleep"])
async def test_given_simulated_browser_when_commanded_then_it_answers(
    gateway: FakeGateway, name: str
) -> None:
    sim = asyncio.create_task(
        _run(
            "simulate-browser",
            gateway.url,
            "--token",
            "browser:b1",
            "--duration",
            "3",
            "--rate",
            "2",
            "--quiet",
        )
    )
    try:
        await gateway.wait_for(lambda: gateway.live("b1") is not None)
        async with tabrelay.connect(gateway.url, token="consumer:c1") as consumer:
            value = await consumer.command("b1", name, timeout=5, seconds=0.01)
        assert value == ({"seconds": 0.01} if name == "echo" else {"slept": 0.01})
    finally:
        code, out, _ = await sim
    assert code == 0
    assert f"\t{name}\t" in out


_HOSTILE_TITLE = "pwn\x1b]0;pwned\x07 \x1b[2J\x9b31m \u202eevil\u202c\ttab\nline"
_HOSTILE_URL = "https://x.test/\x1b[2J\x07"


async def _watch_one(gateway: FakeGateway, *flags: str) -> str:
    watch = asyncio.create_task(
        _run("watch", gateway.url, "--token", "consumer:c1", "--count", "1", *flags)
    )
    await gateway.wait_for(lambda: any(c.client_id == "c1" for c in gateway.conns))
    async with tabrelay.connect(gateway.url, token="browser:b1") as browser:
        await browser.send_snapshot("<p>x</p>", url=_HOSTILE_URL, title=_HOSTILE_TITLE)
        async with asyncio.timeout(WAIT):
            code, out, err = await watch
    assert code == 0, err
    return out


def _no_controls(text: str) -> None:
    for ch in text:
        assert ch in "\t\n" or not (ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0), text
        assert ch not in "\u202a\u202b\u202c\u202d\u202e", text


async def test_given_title_with_escape_sequences_when_watch_then_printed_escaped(
    gateway: FakeGateway,
) -> None:
    out = await _watch_one(gateway)
    _no_controls(out)
    (line,) = out.splitlines()
    fields = line.split("\t")
    assert len(fields) == 6
    assert fields[4] == "https://x.test/\\x1b[2J\\x07"
    assert fields[5] == (
        "pwn\\x1b]0;pwned\\x07 \\x1b[2J\\x9b31m \\u202eevil\\u202c\\x09tab\\x0aline"
    )


async def test_given_title_with_escape_sequences_when_watch_json_then_exact_title_round_trips(
    gateway: FakeGateway,
) -> None:
    out = await _watch_one(gateway, "--json")
    _no_controls(out)
    (obj,) = [json.loads(line) for line in out.splitlines()]
    assert (obj["title"], obj["url"]) == (_HOSTILE_TITLE, _HOSTILE_URL)


async def test_given_hostile_result_and_error_when_send_then_both_printed_escaped(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(gateway.url, token="browser:b1") as browser:

        def handle(cmd: tabrelay.CommandRequest) -> object:
            if cmd.name == "fail":
                raise RuntimeError(_HOSTILE_TITLE)
            return {"title": _HOSTILE_TITLE}

        browser.on_command(handle)
        code, out, err = await _run("send", gateway.url, "--token", "consumer:c1", "b1", "get")
        fcode, _, ferr = await _run("send", gateway.url, "--token", "consumer:c1", "b1", "fail")
    assert code == 0, err
    _no_controls(out)
    assert json.loads(out) == {"title": _HOSTILE_TITLE}
    assert fcode == EXIT_CODES["command_failed"]
    _no_controls(ferr)
    assert "pwn\\x1b]0;pwned\\x07" in ferr


async def test_given_simulated_browser_when_asked_for_a_snapshot_then_it_answers_its_sid_and_seq(
    gateway: FakeGateway,
) -> None:
    # Given a simulated browser sending its own snapshots twice a second
    sim = asyncio.create_task(
        _run(
            "simulate-browser",
            *(gateway.url, "--token", "browser:b1", "--quiet"),
            *("--duration", "3", "--rate", "2"),
        )
    )
    try:
        await gateway.wait_for(lambda: gateway.live("b1") is not None)
        async with tabrelay.connect(gateway.url, token="consumer:c1") as consumer:
            # When a consumer asks it for a snapshot now
            answer = await consumer.command("b1", "snapshot", timeout=5)
            async with asyncio.timeout(WAIT):
                async for snap in consumer.snapshots():
                    if snap.sid == answer["sid"]:
                        break
        # Then the answer names that snapshot's seq as well as its sid, as the
        # extension's does: a waiter can accept a newer snapshot that conflated it
        assert answer["seq"] == snap.seq
    finally:
        code, _, err = await sim
    assert code == 0, err
