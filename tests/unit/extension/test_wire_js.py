"""The extension's ``lib/wire.js`` against the Python protocol, under Node.

``wire_check.mjs`` runs the extension's own module with the Node of ``.tools/``
(``make tools``) and builds frames from the wire fixtures (``tests/fixtures/wire``,
the ones ``tests/unit/test_wire.py`` pins) and from cases at and over the limits.
Every frame must decode with :mod:`tabrelay.wire` to what the fixture holds, and
every constant wire.js exports must equal the Python one it mirrors, so the
extension cannot drift from the one protocol definition.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest
from tabrelay import core, wire

from tests.unit.extension.nodejs import ROOT, WIRE_JS, install_node
from tests.unit.extension.nodejs import run_check as run_node_check

FIXTURES = ROOT / "tests" / "fixtures" / "wire"

#: Every constant wire.js exports, and the Python value it must equal.
JS_CONSTANTS: dict[str, float] = {
    "MESSAGE_BUDGET": core.DEFAULT_FRAME_BUDGET,
    "MAX_PARTS": wire.MAX_PARTS,
    "MAX_URL_CHARS": wire.MAX_URL_CHARS,
    "MAX_TITLE_CHARS": wire.MAX_TITLE_CHARS,
    "MAX_ERROR_CHARS": wire.MAX_ERROR_CHARS,
    "DEFAULT_COMMAND_TIMEOUT": wire.DEFAULT_COMMAND_TIMEOUT,
    # The planned reconnect's window, the same in both clients (ms here, s in Python).
    "EARLY_RECONNECT_FROM_MS": core.DEFAULT_EARLY_RECONNECT[0] * 1000,
    "EARLY_RECONNECT_TO_MS": core.DEFAULT_EARLY_RECONNECT[1] * 1000,
    # The keep-alive, the Python client's browser role's (ms here, s in Python).
    "KEEPALIVE_AFTER_MS": (core.BROWSER_KEEPALIVE.keepalive_after or 0) * 1000,
    "PING_AFTER_MS": (core.BROWSER_KEEPALIVE.ping_after or 0) * 1000,
    "PING_TIMEOUT_MS": core.BROWSER_KEEPALIVE.ping_timeout * 1000,
    # How often the worker asks keepAliveDue: keepalive after + one tick < MV3's 30 s
    # (tests/unit/extension/test_keepalive_js.py checks that sum).
    "KEEPALIVE_TICK_MS": 5000,
}


@pytest.fixture(scope="module")
def node() -> Path:
    """Node 22 under .tools/, installed by the Makefile's ``tools`` target when missing."""
    return install_node()


def run_check(node: Path, wire_js: Path) -> dict[str, Any]:
    return run_node_check(node, "wire_check.mjs", wire_js, FIXTURES)


def problems(report: dict[str, Any]) -> list[str]:
    """Everything in a wire_check.mjs report that disagrees with tabrelay.wire."""
    found = [
        f"wire.js {name} = {report['constants'].get(name)}, Python has {value}"
        for name, value in JS_CONSTANTS.items()
        if report["constants"].get(name) != value
    ]
    found += [
        f"wire.js exports {n}, unchecked" for n in set(report["constants"]) - set(JS_CONSTANTS)
    ]
    for case in report["cases"]:
        try:
            decoded = [_decode(frame) for frame in case["frames"]]
            found += [f"{case['name']}: {p}" for p in _case_problems(case, decoded)]
        except (wire.ProtocolError, wire.RawFrame) as exc:
            found.append(f"{case['name']}: Python refuses a frame: {exc}")
    return found


def _decode(frame: str) -> wire.Message:
    size = len(frame.encode("utf-8"))
    if size > core.DEFAULT_FRAME_BUDGET:
        raise wire.ProtocolError("too_large", f"a frame of {size} bytes")
    return wire.decode(frame)


def _case_problems(case: dict[str, Any], decoded: list[wire.Message]) -> list[str]:
    kind = case["kind"]
    if kind == "result":
        dicts = [wire.to_dict(m) for m in decoded]
        return [] if dicts == [case["fixture"]] else [f"{dicts} is not the fixture"]
    if kind == "parts":
        return _parts_problems(case["value"], decoded)
    if kind == "clipped_error":
        (result,) = decoded
        assert isinstance(result, wire.Result)
        length = len(result.error or "")
        return [] if length == wire.MAX_ERROR_CHARS else [f"error cut to {length} characters"]
    if kind == "clipped_page":
        snap = decoded[0]
        assert isinstance(snap, wire.Snapshot)
        lengths = (len(snap.url), len(snap.title))
        wanted = (wire.MAX_URL_CHARS, wire.MAX_TITLE_CHARS)
        return [] if lengths == wanted else [f"url and title cut to {lengths}, not {wanted}"]
    return _snapshot_problems(case["fixture"], case["html"], decoded)


def _snapshot_problems(
    fixture: dict[str, Any], html: str, decoded: list[wire.Message]
) -> list[str]:
    snaps = [m for m in decoded if isinstance(m, wire.Snapshot)]
    shape = [(s.sid, s.seq, s.url, s.title, s.enc, s.part, s.parts, s.id) for s in snaps]
    sid, seq, url, title = (fixture[k] for k in ("sid", "seq", "url", "title"))
    wanted = [
        (sid, seq, url, title, "gzip", i, len(decoded), f"{sid}.{i}") for i in range(len(decoded))
    ]
    if shape != wanted:
        return [f"parts {shape[:2]}... are not {wanted[:2]}..."]
    joined = "".join(s.data for s in snaps)
    page = gzip.decompress(base64.b64decode(joined, validate=True)).decode("utf-8")
    return [] if page == html else ["the joined parts are not the page"]


def _parts_problems(value: Any, decoded: list[wire.Message]) -> list[str]:
    results = [m for m in decoded if isinstance(m, wire.Result)]
    shape = [(r.part, r.parts, r.ok) for r in results]
    if len(decoded) < 2 or shape != [(i, len(decoded), True) for i in range(len(decoded))]:
        return [f"parts {shape[:3]}... are not numbered 0..n-1 of n"]
    joined = json.loads("".join(str(r.value) for r in results))
    return [] if joined == value else ["the joined parts are not the value"]


def test_wire_js_builds_what_the_python_wire_decodes_to_the_fixtures(node: Path) -> None:
    # Given the extension's wire.js under Node
    # When it builds every fixture's message and the cases at the limits
    report = run_check(node, WIRE_JS)
    # Then each fixture is covered, and Python decodes every frame to what is expected
    names = {case["name"] for case in report["cases"]}
    assert {"fixture result_ok.json", "fixture result_error.json"} <= names
    assert "fixture snapshot_plain.json" in names
    assert problems(report) == []


@pytest.mark.parametrize("name", sorted(JS_CONSTANTS))
def test_a_limit_changed_in_wire_js_fails_the_check(node: Path, tmp_path: Path, name: str) -> None:
    # Given a copy of wire.js with one exported limit changed
    source = WIRE_JS.read_text(encoding="utf-8")
    pattern = re.compile(rf"^(export const {name} = )(\d+);$", re.M)
    match = pattern.search(source)
    assert match is not None, f"wire.js has no `export const {name} = <integer>;`"
    changed = pattern.sub(lambda m: f"{m[1]}{int(m[2]) + 1};", source)
    copy = tmp_path / "wire.js"
    copy.write_text(changed, encoding="utf-8")
    # When the check runs on it
    found = problems(run_check(node, copy))
    # Then it names the drift
    assert any(name in problem for problem in found), found
